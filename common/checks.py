"""Checks that run before anything is logged, and the one message a failure ends in.

MLflow's own defaults retry a refused connection for minutes and end in a long traceback.
These checks ask the tracking server and the S3 artifact store one question each, with a
short timeout, and turn what can go wrong into a FixableError: one `error:` line (what
failed, with the address or setting) and one `fix:` line (what to do). `exit_on_error()`
prints it and exits with status 1.

When two things are wrong at once, the message names the one to fix first: the checks run
in that order (experiment name, tracking server, artifact store). Where one answer hides
another (Amazon S3 says NoSuchBucket before it looks at the key), the check asks again and
names both, the key first. A request that went through an HTTP proxy (HTTP_PROXY...) and
failed says so, and how to keep the local hosts away from the proxy (NO_PROXY).

Which failures are set-up problems, with an `error:` and a `fix:` line: a FixableError, and
any exception raised by the libraries that talk to the outside world (MLflow, boto3,
botocore, s3transfer, requests, urllib3, SQLAlchemy, sqlite3) or by the operating system
(OSError: a file, a folder, a socket). The environment causes those: a server down, a
setting mistyped, a folder read-only. Any other exception (a TypeError, a KeyError...) is a
bug in our own code and keeps its traceback, unless those libraries raised it (a ValueError
from botocore, for a setting it cannot read).
"""

from __future__ import annotations

import _thread
import ast
import atexit
import configparser
import errno
import json
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import mlflow
import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

# When this process started (in ms, as MLflow's run start times): its runs started after it.
_STARTED_MS = int(time.time() * 1000)
# How long a server may take to answer a check. MLflow's own default is minutes of retries.
CHECK_TIMEOUT = 5
# And for MLflow's own calls to a tracking server, unless set otherwise: the values the compose
# trainer sets (docker-compose.yml), so that a server that stops answering mid-run costs seconds
# without Docker too. MLflow reads them at each call. Its defaults: 120 s, 7 retries.
FAIL_FAST = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
# boto3 waits 60 s for each S3 answer and makes 3 attempts (minutes, on an S3 server that stops
# answering mid-upload); MLflow has no setting for that, and boto3 reads none for the wait. So the
# S3 clients of this process, MLflow's included, get these defaults instead: one retry, as for the
# tracking server. AWS_MAX_ATTEMPTS, when set, still decides the attempts.
S3_FAIL_FAST = {"connect_timeout": CHECK_TIMEOUT, "read_timeout": 10, "retries": {"total_max_attempts": 2}}

# The tracking URI schemes MLflow 3.17 can use, and what to set instead of a wrong one.
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
TRACKING_URI_FIX = (
    "set MLFLOW_TRACKING_URI to a server, like http://localhost:5000 (http://mlflow:5000 inside docker compose), "
    "or unset it to use the embedded default (mlflow.db in this folder)"
)
# MLflow's own check allows 500 characters, but its database column (experiments.name) is
# VARCHAR(256): PostgreSQL and MySQL refuse a longer name, SQLite keeps it. 256 holds everywhere.
MAX_EXPERIMENT_NAME = 256
# Where a request should not go through HTTP_PROXY / HTTPS_PROXY: the compose hosts and this machine.
NO_PROXY_EXAMPLE = "NO_PROXY=localhost,127.0.0.1,mlflow,minio,seaweedfs"


class FixableError(Exception):
    """A problem with a known fix (a service down, a setting missing, a bad path): says both."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"error: {what}\nfix: {fix}")
        self.what, self.fix = what, fix


def check_setting(name: str, secret: bool = False) -> None:
    """Raise FixableError if the setting `name` holds what a copy or a .env file saved on
    Windows slips in: a line end or another control character, spaces around the value, or
    quotes around it (`set X="..."` in Windows' cmd keeps them). MLflow and boto3 would take
    such a value as it is, and fail later with a message about something else. A secret (an
    S3 key) may hold no space at all, and its value is never shown."""
    value = os.environ.get(name)
    if value is None:
        return
    odd = next((char for char in value if not char.isprintable() or (secret and char.isspace())), None)
    shown = "its value is not shown here" if secret else f"now {value!r}"
    if odd and "\udc80" <= odd <= "\udcff":  # a byte Python could not decode: not the setting's fault alone
        raise FixableError(
            f"{name} holds bytes that are not text in this terminal's encoding ({sys.getfilesystemencoding()})",
            f"use a UTF-8 locale (like `export LANG=C.UTF-8`) or `export PYTHONUTF8=1`, or set {name} in plain ASCII",
        )
    if odd:
        raise FixableError(
            f"{name} contains {odd!r} (U+{ord(odd):04X}), which does not belong in it (copied with a line end?)",
            f"set {name} again, on one line ({shown})",
        )
    if value != value.strip():
        raise FixableError(f"{name} has spaces around its value ({shown})", f"set {name} without them")
    if len(value) > 1 and value[0] in "\"'" and value[-1] == value[0]:
        raise FixableError(
            f"{name} is written with quotes around it ({shown})", f"set {name} without the quotes: {value[1:-1]}"
        )


def check_experiment_name(name: str) -> None:
    """Raise FixableError if MLflow would refuse the experiment name."""
    check_setting("MLFLOW_EXPERIMENT_NAME")
    if not _is_text(name):  # given on the command line, bytes the locale cannot decode
        utf8 = sys.getfilesystemencoding() == "utf-8"
        raise FixableError(
            f"the experiment name {name!r} holds bytes that are not text in this terminal's encoding "
            f"({sys.getfilesystemencoding()})",
            "give the name as UTF-8 text" if utf8 else
            "use a UTF-8 locale (like `export LANG=C.UTF-8`) or `export PYTHONUTF8=1`, or an ASCII name",
        )
    odd = next((char for char in name if not char.isprintable()), None)
    if odd:  # MLflow would keep it, and the UI would show a name nobody can type
        raise FixableError(
            f"the experiment name {name!r} contains {odd!r}, which does not belong in it (copied with a line end?)",
            "give the name again, on one line, without control characters",
        )
    if len(name) > MAX_EXPERIMENT_NAME:
        from_setting = os.environ.get("MLFLOW_EXPERIMENT_NAME") == name
        setting = "MLFLOW_EXPERIMENT_NAME" if from_setting else "the experiment name"
        raise FixableError(
            f"{setting} is {len(name)} characters long ('{_short(name, 40)}'); "
            f"MLflow's database allows at most {MAX_EXPERIMENT_NAME}",
            f"set {setting} to a shorter name"
            + (", or unset it to use the example's own" if from_setting else ""),
        )


def check_mlflow_settings() -> None:
    """Raise FixableError if an MLFLOW_* setting holds what MLflow cannot read (a timeout of '5s',
    a switch of 'yes'): MLflow would fail on it at some call later, mid-run."""
    import mlflow.environment_variables as settings

    for setting in vars(settings).values():
        if isinstance(setting, settings._EnvironmentVariable) and setting.name in os.environ:
            try:
                setting.get()
            except ValueError:
                kind = {bool: "true or false", int: "a whole number", float: "a number"}.get(setting.type, "")
                raise FixableError(
                    f"{setting.name}={os.environ[setting.name]!r} is not a value MLflow can read"
                    + (f" (it takes {kind})" if kind else ""),
                    f"set {setting.name} to {kind or 'what MLflow documents for it'}, or unset it"
                    + (f" (MLflow's default: {setting.default})" if setting.default is not None else ""),
                ) from None


def check_tracking_server(tracking_uri: str) -> str | None:
    """Raise FixableError unless the tracking store can be used; return the server's version."""
    check_setting("MLFLOW_TRACKING_URI")
    check_mlflow_settings()
    try:
        scheme = urlsplit(tracking_uri).scheme.split("+")[0]
        if scheme in ("http", "https"):  # as requests reads it: a broken IPv6 address, a name too long
            labels = (parse_url(tracking_uri).host or "").split(".")
            if any(len(label) > 63 for label in labels):
                raise ValueError("a part of the host name is longer than 63 characters")
    except (LocationParseError, ValueError) as error:
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} is not an address MLflow can use ({_short(str(error), 80)})",
            TRACKING_URI_FIX,
        ) from None
    parts = urlsplit(tracking_uri)
    address = tracking_uri[: len(f"{parts.scheme}://{parts.netloc}{parts.path}")]
    if scheme in ("http", "https") and parts.netloc and tracking_uri != address:  # a '?...' or '#...' after it
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} goes on after the server's address with "
            f"{tracking_uri[len(address):]!r}; MLflow adds its API paths (/api/2.0/...) after the whole text, "
            "so the server would never see them",
            f"set MLFLOW_TRACKING_URI={address}",
        )
    if tracking_uri in TRACKING_SCHEMES:  # a scheme alone, like 'databricks' or 'sqlite'
        databricks = tracking_uri == "databricks"
        if databricks and (os.environ.get("DATABRICKS_HOST") or Path("~/.databrickscfg").expanduser().exists()):
            return None  # a configured Databricks workspace: MLflow connects to it itself
        unconfigured = " (and no Databricks workspace is configured: no DATABRICKS_HOST, no ~/.databrickscfg)"
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} is a scheme without an address{unconfigured if databricks else ''}",
            TRACKING_URI_FIX,
        )
    if scheme in ("", "file") and "MLFLOW_TRACKING_URI" not in os.environ:
        raise FixableError(
            "this folder holds an old MLflow file store (./mlruns), so MLflow uses it instead of "
            "mlflow.db, and MLflow 3 no longer writes to it",
            "move it away (mv mlruns mlruns.old) or run from another folder; "
            "`mlflow migrate-filestore --help` explains how to keep the old runs",
        )
    if scheme in ("", "file"):
        folder = tracking_uri.removeprefix("file://")
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri} is a folder, and MLflow 3 no longer keeps runs in folders",
            f"for a database file there, set MLFLOW_TRACKING_URI=sqlite:///{folder.rstrip('/')}/mlflow.db; "
            f"else {TRACKING_URI_FIX}",
        )
    if scheme not in TRACKING_SCHEMES or (scheme.startswith("http") and not urlsplit(tracking_uri).hostname):
        why = "no host name" if scheme.startswith("http") else f"MLflow knows no tracking store '{scheme}:'"
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} is not an address MLflow can use ({why})", TRACKING_URI_FIX
        )
    if scheme == "sqlite":
        return _check_sqlite(tracking_uri)
    if scheme in ("postgresql", "mysql", "mssql"):
        _check_database_driver(tracking_uri)
        if scheme in ("postgresql", "mysql"):
            _check_database_answers(tracking_uri)
    if urlsplit(tracking_uri).password or "@" in urlsplit(tracking_uri).netloc:
        # MLflow prints "View run ... at: <the tracking URI>" itself: not with a password in it.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if not scheme.startswith("http"):
        return None  # a database URL: MLflow opens it itself
    for name, value in FAIL_FAST.items():
        os.environ.setdefault(name, value)
    try:
        return _ask_tracking_server(tracking_uri.rstrip("/"))
    except FixableError as error:
        raise _via_proxy(error, tracking_uri) from None


def _check_sqlite(tracking_uri: str) -> None:
    """Raise FixableError unless MLflow can use the SQLite database in `tracking_uri`; make it if new."""
    # SQLite needs to write the database AND its folder (for its journal): check both now,
    # or MLflow retries a read-only database for minutes.
    from sqlalchemy.engine import make_url

    # Without a server, MLflow keeps the files in ./mlruns, and 3.17 reads that path as a URI:
    # a folder named 'x%20y' (an escape in its name) would send them to 'x y'.
    here = str(Path.cwd())
    escape = re.search(r"%[0-9A-Fa-f]{2}", here)
    if escape:
        raise FixableError(
            f"this folder's path, {here}, holds {escape.group(0)!r}, which MLflow 3.17 reads as an escaped "
            f"character: it would put the run's files in {unquote(here)}/mlruns instead",
            "run from a folder whose path has no '%' followed by two hex digits, "
            "or set MLFLOW_TRACKING_URI to a tracking server, like http://localhost:5000",
        )
    # As SQLAlchemy reads it: MLflow's default writes 'my work' as 'my%20work'.
    database = Path(make_url(tracking_uri).database or "")
    if str(database) in ("", ".", ":memory:"):
        return  # an in-memory database: nothing on disk to check
    if "MLFLOW_TRACKING_URI" not in os.environ and "%" in tracking_uri:
        # MLflow 3.17 makes the database's folder first, and it reads 'my%20work' literally:
        # it would make a folder named so beside this one, or fail where it may not. The same
        # file, named relative to this folder, has no folder to make.
        mlflow.set_tracking_uri(f"sqlite:///{database.name}")
        database = Path(database.name)
    elif re.search(r"[^\w./-]", str(database.parent)) and not database.parent.exists():  # 'a@b' made as 'a%40b'
        raise FixableError(
            f"the folder of the MLflow database in MLFLOW_TRACKING_URI, {database.parent}, does not exist, and "
            "MLflow 3.17 would make it under its URI-escaped name (%40 for @, %25 for %...), then wait for minutes",
            f"make it first: mkdir -p {_quote(str(database.parent))}",
        )
    if database.is_dir():  # SQLite cannot open a folder, and MLflow retries that for minutes
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri} names a folder, not a database file",
            f"name a file in it: MLFLOW_TRACKING_URI=sqlite:///{str(database).rstrip('/')}/mlflow.db",
        )
    if database.is_symlink() and not database.exists():  # SQLite would retry it for minutes
        raise FixableError(
            f"the MLflow database {database} is a link to {os.readlink(database)}, which does not exist",
            f"remove the link (rm {_quote(str(database))}) to start a new database, or restore what it points to",
        )
    if database.exists() and not database.is_file():  # a pipe would hang, a device would fail, for minutes
        raise FixableError(
            f"the MLflow database {database} is not a file (a pipe, a device...)",
            f"move it away (like `mv {_quote(str(database))} {_quote(str(database))}.old`), then run again",
        )
    # An SQLite database starts with these 16 bytes (an empty file becomes one).
    if database.is_file() and database.stat().st_size and not _starts_with(database, b"SQLite format 3\0"):
        raise FixableError(
            f"{database} (in MLFLOW_TRACKING_URI) is not an SQLite database",
            "name a new file or an MLflow database, like MLFLOW_TRACKING_URI=sqlite:///mlflow.db",
        )
    _check_writable(database.parent, f"the MLflow database {database}")
    if database.exists() and not os.access(database, os.W_OK):
        raise FixableError(
            f"the MLflow database {database} is read-only", f"make it writable: chmod u+w {database}"
        )
    if not database.exists():
        _create_database(database)
    else:
        _check_not_locked(database, tracking_uri)


def _check_not_locked(database: Path, tracking_uri: str) -> None:
    """Raise FixableError if another program holds a write lock on the database for CHECK_TIMEOUT
    seconds: MLflow itself would wait and retry for half a minute, and log tracebacks meanwhile."""
    import sqlite3

    connection = sqlite3.connect(database, timeout=CHECK_TIMEOUT, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")  # the lock a write takes; then given back unused
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            raise _locked(tracking_uri) from None
    finally:
        connection.close()


def _locked(tracking_uri: str) -> FixableError:
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database or "mlflow.db"
    return FixableError(
        f"the MLflow database in {tracking_uri} stayed locked by another program (another run, `mlflow ui`, "
        "a database browser with unsaved changes)",
        f"close what holds it (`lsof {_quote(database)}` names it), then run again; for many runs at once, "
        "use a tracking server (docker compose)",
    )


def _create_database(database: Path) -> None:
    """Create MLflow's SQLite database under a name of its own, then put it in place in one step.

    MLflow creates it in place, table by table, in about a second: Ctrl+C in that second, or
    two first runs at once, would leave a half-made mlflow.db that every later run fails on.
    """
    from sqlalchemy.engine import URL

    global _MAKING
    making = _MAKING = database.with_name(f"{database.name}.{os.getpid()}.new")
    try:
        # Relative where the database is: MLflow makes the database's folder from the URI as written.
        uri = URL.create("sqlite", database=str(making)).render_as_string()  # '#', '?', '%' quoted
        mlflow.MlflowClient(uri).search_experiments(max_results=1)  # makes the tables
        try:
            os.link(making, database)  # in one step, and never over a database another process made first
        except FileExistsError:
            pass  # another first run was quicker: use its database
        except OSError:  # a file system without hard links
            if not database.exists():
                os.replace(making, database)
    finally:
        making.unlink(missing_ok=True)
        _MAKING = None


_MAKING: Path | None = None  # the database being made, for a stop that cannot wait for `finally`


def is_server(uri: str) -> bool:
    """True for a tracking server's address: http:// or https://, written in any case (MLflow accepts HTTP://)."""
    return urlsplit(uri).scheme in ("http", "https")


def _starts_with(path: Path, header: bytes) -> bool:
    with open(path, "rb") as file:
        return file.read(len(header)) == header


def _check_database_driver(tracking_uri: str) -> None:
    """Raise FixableError unless the Python module SQLAlchemy needs for this database URL is installed.

    `postgresql://` means the driver SQLAlchemy 2.1 picks by default, psycopg (version 3), and
    `mysql://` means MySQLdb: neither comes with requirements.txt, which installs psycopg2.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(tracking_uri)
        url.get_dialect().import_dbapi()  # what MLflow's first connection would import
    except ImportError as error:
        module = error.name or str(error)
        psycopg2 = url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=True)  # no password shown
        raise FixableError(
            f"MLFLOW_TRACKING_URI={url.render_as_string(hide_password=True)} needs the Python module "
            f"'{module}' (the driver SQLAlchemy uses for {url.drivername}://), and it is not installed",
            f"write it as MLFLOW_TRACKING_URI={psycopg2} (psycopg2 comes with requirements.txt)"
            if url.get_backend_name() == "postgresql"
            else f"install the package that provides '{module}' into this Python, or use PostgreSQL "
            "with postgresql+psycopg2://user:password@host:5432/database as docker-compose.yml does",
        ) from None
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise FixableError(
            f"MLFLOW_TRACKING_URI is not a database URL SQLAlchemy can use: {_short(str(error))}",
            "write it like postgresql+psycopg2://user:password@host:5432/database, " + TRACKING_URI_FIX,
        ) from None


def _check_database_answers(tracking_uri: str) -> None:
    """Raise FixableError unless the database in MLFLOW_TRACKING_URI takes a connection within
    CHECK_TIMEOUT seconds: MLflow itself retries a database that is down for minutes."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(tracking_uri)
    engine = create_engine(url, connect_args={"connect_timeout": CHECK_TIMEOUT}, poolclass=NullPool)
    try:
        with engine.connect():
            pass
    except Exception as error:
        reason = str(getattr(error, "orig", None) or error)
        if re.search(r"database .* does not exist", reason):
            fix = f"create the database ({url.database}), or correct its name at the end of MLFLOW_TRACKING_URI"
        elif re.search(r"authentication failed|role .* does not exist|Access denied", reason):
            fix = "correct the user or password in MLFLOW_TRACKING_URI"
        elif re.search(r"refused|timeout|timed out|could not translate host|Name or service not known", reason):
            fix = "start the database (`docker compose up -d postgres`), or correct the host or port in MLFLOW_TRACKING_URI"
        else:  # a setting in the URL (?sslmode=...), or something the database says itself
            fix = "correct MLFLOW_TRACKING_URI as the database's answer above says"
        raise FixableError(
            f"could not connect to the database in MLFLOW_TRACKING_URI={url.render_as_string(hide_password=True)}: "
            f"{_short(reason, 160)}",
            fix,
        ) from None
    finally:
        engine.dispose()


def _ask_tracking_server(server: str) -> str | None:
    """Raise FixableError unless an MLflow tracking server answers at `server`; return its version."""
    host = urlsplit(server).netloc
    search = f"{server}/api/2.0/mlflow/experiments/search"
    try:
        answer = _in_time(
            lambda: requests.get(search, params={"max_results": 1}, **_as_mlflow_does()),
            requests.exceptions.ReadTimeout(f"Read timed out: no whole answer from {search} in {CHECK_TIMEOUT} s"),
        )
    except requests.exceptions.RequestException as error:
        raise explain_tracking_error(error, server) or FixableError(
            f"the request to {server} failed: {type(error).__name__}: {_short(str(error))}",
            "check that MLFLOW_TRACKING_URI points at an MLflow tracking server",
        ) from None
    if answer.status_code == 403 and "Invalid Host header" in answer.text:
        raise FixableError(
            f"the tracking server at {server} refused the Host header '{host}' (403 Invalid Host header)",
            f"add {host} to the server's --allowed-hosts (in docker-compose.yml), or use an address it already accepts",
        )
    if answer.status_code == 401:
        raise FixableError(
            f"the tracking server at {server} asks for a login (401)",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        )
    if answer.status_code >= 500:
        raise _server_error(server, answer.status_code)
    if answer.status_code != 200:
        raise FixableError(
            f"{server} answered HTTP {answer.status_code} to an MLflow API call",
            "check that MLFLOW_TRACKING_URI points at an MLflow tracking server",
        )
    try:
        is_mlflow = isinstance(answer.json(), dict)
    except ValueError:  # a web page, say
        is_mlflow = False
    if not is_mlflow:
        raise _not_mlflow(server, f"HTTP 200, {answer.headers.get('Content-Type', 'no content type')}")
    try:
        version = _in_time(lambda: requests.get(f"{server}/version", **_as_mlflow_does()), requests.Timeout())
        return version.text.strip() or None
    except requests.exceptions.RequestException:
        return None


def _in_time(call, timeout: Exception):
    """call()'s result, or `timeout` raised if it has not returned within CHECK_TIMEOUT seconds in
    all. requests' and botocore's timeouts count each read: a server that sends a byte now and
    then would keep a check waiting for minutes."""
    done = {}

    def work():
        try:
            done["result"] = call()
        except BaseException as error:  # handed to the caller
            done["error"] = error

    worker = threading.Thread(target=work, daemon=True)  # left behind if it hangs: the process ends soon
    worker.start()
    worker.join(CHECK_TIMEOUT)
    if worker.is_alive():
        raise timeout
    if "error" in done:
        raise done["error"]
    return done["result"]


def _as_mlflow_does() -> dict:
    """requests' options for a check of the tracking server, with MLflow's own settings for its calls:
    a login, a server certificate of your own or none checked; and the checks' short timeout."""
    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or os.environ.get(
        "MLFLOW_TRACKING_INSECURE_TLS", ""
    ).lower() != "true"
    return {"auth": auth, "verify": verify, "timeout": CHECK_TIMEOUT}


def explain_tracking_error(error: Exception, server: str) -> FixableError | None:
    """The FixableError for a failed request to the tracking server (ours or MLflow's), if we know it."""
    explained = _tracking_error(error, server)
    return _via_proxy(explained, server, str(error)) if explained and server else explained


def _tracking_error(error: Exception, server: str) -> FixableError | None:
    text = str(error)
    if "SSLError" in text or "SSL:" in text:
        return FixableError(
            f"TLS (https) with the tracking server at {server} failed: {_tls_reason(text)}",
            "if the server speaks plain HTTP (the compose mlflow service does), write http:// in MLFLOW_TRACKING_URI; "
            "for a certificate of your own, set MLFLOW_TRACKING_SERVER_CERT_PATH to its CA file",
        )
    if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text:
        return FixableError(
            f"the tracking server name in {server} does not resolve on this machine",
            "inside docker compose use http://mlflow:5000; on your computer use http://localhost:5000",
        )
    if "Connection refused" in text or "NewConnectionError" in text or "ProxyError" in text:
        return FixableError(
            f"cannot reach the MLflow tracking server at {server} (connection refused)",
            "start it (`docker compose up -d`), or set MLFLOW_TRACKING_URI to a server that runs; "
            "unset it to use the embedded default (mlflow.db in this folder)",
        )
    if re.search(r"timed out|Timeout", text):
        return FixableError(
            f"the MLflow tracking server at {server} did not answer within {_timeout(error)} s",
            "look at its log (`docker compose logs mlflow`) and restart it (`docker compose restart mlflow`)",
        )
    if re.search(r"RemoteDisconnected|Connection aborted|Connection reset|closed connection", text):
        return FixableError(
            f"the MLflow tracking server at {server} closed the connection without an answer (stopped or restarting?)",
            "look at its log (`docker compose logs mlflow`); once `python -m common.mlflow_env` says ready, "
            "run the same command again",
        )
    if "not in a valid JSON format" in text:
        return _not_mlflow(server, "not JSON")
    # MLflow's errors always carry an error_code; JSON without one comes from something else that
    # answers for some paths (a proxy, a gateway, another program on a path prefix).
    foreign = next((e.json for e in _chain(error) if isinstance(getattr(e, "json", None), dict)), None)
    if foreign is not None and "error_code" not in foreign:
        return FixableError(
            f"{server} answered an MLflow API call with JSON that MLflow does not send ({_short(str(foreign), 100)})",
            "something other than MLflow answers some paths there (a proxy, a gateway, another program): "
            "point MLFLOW_TRACKING_URI at the MLflow tracking server itself",
        )
    # MLflow's words for a failed call, or requests' (raise_for_status, for a proxied upload).
    status = re.search(r"error code (\d{3}) != 200|too many (\d{3}) error responses|(\d{3}) (?:Client|Server) Error", text)
    if status:
        code = int(next(group for group in status.groups() if group))
        if code >= 500:
            return _server_error(server, code)
        if code == 413:  # MLflow's server takes any size: a proxy in front of it (nginx: 1 MB by default)
            return FixableError(
                f"{server} refused an upload as too large (HTTP 413): a proxy in front of the tracking server "
                "limits the size of a request",
                "raise that proxy's limit above your largest file (nginx: client_max_body_size), then run again",
            )
        return FixableError(
            f"{server} answered HTTP {code} to an MLflow API call",
            "check that MLFLOW_TRACKING_URI points at an MLflow tracking server",
        )
    return None


def _tls_reason(text: str) -> str:
    """The TLS library's reason, like '[SSL: WRONG_VERSION_NUMBER] wrong version number'."""
    found = re.search(r"\[SSL[^\]]*\][^'\")(]*", text)
    return found.group(0).strip() if found else _short(text, 120)


def _proxy_for(url: str, boto: bool = False) -> str | None:
    """The proxy setting a request to `url` goes through, like 'HTTP_PROXY=http://proxy:3128'
    (a password in it left out), or None: NO_PROXY lists the host, or no proxy is set.
    requests (our checks, MLflow) also use ALL_PROXY; boto3 does not."""
    scheme = urlsplit(url).scheme
    try:
        proxies = requests.utils.get_environ_proxies(url)  # {} when NO_PROXY lists the host
    except ValueError:
        return None
    kinds = (scheme,) if boto else (scheme, "all")
    kind, proxy = next(((k, proxies[k]) for k in kinds if proxies.get(k)), (None, None))
    if not proxy:
        return None
    name = next((n for n in os.environ if n.lower() == f"{kind}_proxy" and os.environ[n] == proxy), f"{kind}_proxy")
    parts = urlsplit(proxy)
    return f"{name}={parts._replace(netloc=parts.netloc.rpartition('@')[2]).geturl()}"


def _via_proxy(error: FixableError, url: str, text: str = "", boto: bool = False) -> FixableError:
    """`error`, saying that the request went through an HTTP proxy, if it did: a proxy set for
    the internet also catches requests to localhost and to the compose hosts, unless NO_PROXY
    lists them."""
    proxy = _proxy_for(url, boto)
    if not proxy or "NO_PROXY" in error.fix:
        return error
    host = urlsplit(url).hostname
    add = f"add {host} to NO_PROXY so that it is reached directly, like {NO_PROXY_EXAMPLE}"
    if re.search(r"ProxyError|(connect|Unable to connect) to proxy", text):
        return FixableError(
            f"cannot reach the proxy in {proxy}, which requests to {url} go through",
            f"{add}; or start that proxy, or unset {proxy.split('=')[0]}",
        )
    return FixableError(
        f"{error.what}; the request went through the proxy in {proxy}",
        f"if {host} is not behind that proxy, {add}; else {error.fix}",
    )


def _timeout(error: Exception) -> int:
    """The timeout that ran out: ours for the checks, MLflow's (MLFLOW_HTTP_REQUEST_TIMEOUT) for its calls."""
    if _origin(error) == "mlflow":
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_TIMEOUT

        return MLFLOW_HTTP_REQUEST_TIMEOUT.get()
    return CHECK_TIMEOUT


def _server_error(server: str, status: int) -> FixableError:
    return FixableError(
        f"the MLflow tracking server at {server} answered HTTP {status} (a server error)",
        "look at its log (`docker compose logs mlflow`) and restart it (`docker compose restart mlflow`); "
        "then run the same command again",
    )


def _not_mlflow(server: str, content: str) -> FixableError:
    return FixableError(
        f"{server} answers, but not as an MLflow tracking server ({content})",
        "another program listens there: correct the host or port in MLFLOW_TRACKING_URI "
        "(http://localhost:5000 on your computer, http://mlflow:5000 inside docker compose)",
    )


def _check_writable(folder: Path, what: str) -> None:
    """Raise FixableError unless a file can be made in `folder` (or in the part of it that exists)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise FixableError(
            f"a file is in the way of a folder: {folder} ({what} goes in a folder of that name)",
            f"move the file away (like `mv {_quote(str(folder))} {_quote(str(folder))}.old`), then run again",
        )
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise FixableError(
            f"{what} cannot be written: {folder} is not writable ({error.strerror})",
            "run from a folder you can write to (like your home folder), or set MLFLOW_TRACKING_URI "
            "to a tracking server, like http://localhost:5000",
        ) from None


def check_artifact_store(location: str) -> str:
    """Raise FixableError unless this process can write to `location`; return what kind of store it is."""
    # log_text, log_dict, log_table and log_image write a temporary file first, wherever the store.
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise FixableError(
            "no folder for temporary files is writable (Python tried TMPDIR, /tmp, /var/tmp, /usr/tmp "
            "and the current folder)",
            "set TMPDIR to a folder you can write to, like TMPDIR=$HOME/tmp (create it first)",
        ) from None
    scheme = urlsplit(location).scheme
    if scheme in ("mlflow-artifacts", "http", "https"):
        if scheme == "mlflow-artifacts":
            _check_server_serves_artifacts(location)
        return "proxied: uploads go through the tracking server"
    if scheme != "s3":
        _check_writable(Path(location.removeprefix("file://")), f"the artifact folder {location}")
        return "local folder"
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    if not endpoint:
        raise FixableError(
            f"the artifact store is {location}, but MLFLOW_S3_ENDPOINT_URL is not set, "
            "so this process would upload to Amazon S3",
            "set MLFLOW_S3_ENDPOINT_URL=http://localhost:9000 (http://minio:9000 inside docker compose); "
            "for Amazon S3 itself, set MLFLOW_S3_ENDPOINT_URL=https://s3.amazonaws.com",
        )
    check_setting("MLFLOW_S3_ENDPOINT_URL")
    problem = _endpoint_problem(endpoint)
    if problem:
        raise FixableError(
            f"MLFLOW_S3_ENDPOINT_URL={endpoint!r} is not an address boto3 can use ({problem})",
            "write it with http:// and the port, and nothing after the port, "
            "like http://localhost:9000 (http://minio:9000 inside docker compose)",
        )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        check_setting(name, secret=True)  # else S3 would only say the key is unknown, or the signature wrong
    try:  # MLflow reads it only at the first upload, mid-run
        _check_upload_args(os.environ.get("MLFLOW_S3_UPLOAD_EXTRA_ARGS") or "{}")
    except ValueError as error:
        raise FixableError(
            f"MLFLOW_S3_UPLOAD_EXTRA_ARGS is not JSON boto3 can use ({_short(str(error))})",
            'write it as a JSON object, like MLFLOW_S3_UPLOAD_EXTRA_ARGS=\'{"ServerSideEncryption": "AES256"}\', '
            "or unset it",
        ) from None
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle and urlsplit(endpoint).scheme == "https" and not Path(bundle).exists():
        raise FixableError(  # else a TLS failure that names no setting
            f"AWS_CA_BUNDLE names {bundle}, and there is no such file", "set AWS_CA_BUNDLE to your server's CA file, or unset it"
        )
    attempts = os.environ.get("AWS_MAX_ATTEMPTS")
    if attempts is not None and not (re.fullmatch(r"\s*\+?\d+\s*", attempts) and int(attempts) >= 1):  # as int()
        raise FixableError(
            f"AWS_MAX_ATTEMPTS={attempts!r} is not a number of attempts boto3 can read",
            "set AWS_MAX_ATTEMPTS to a whole number, like 2 (1: no retry), or unset it",
        )
    import boto3
    import botocore.exceptions
    import botocore.session
    from botocore.config import Config

    # botocore's default client config: merged into every S3 client this process makes from now on.
    defaults = {k: v for k, v in S3_FAIL_FAST.items() if not (k == "retries" and "AWS_MAX_ATTEMPTS" in os.environ)}
    session = botocore.session.get_session()
    session.set_default_client_config(Config(**defaults))
    boto3.setup_default_session(botocore_session=session)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(connect_timeout=CHECK_TIMEOUT, read_timeout=CHECK_TIMEOUT, retries={"total_max_attempts": 1}),
        )
        _in_time(
            lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1),
            botocore.exceptions.ReadTimeoutError(endpoint_url=endpoint),
        )
    except RecursionError:  # botocore follows some redirects back to the same address, again and again
        raise _s3_redirect(endpoint, bucket, *_redirect_of(endpoint, bucket)) from None
    except Exception as error:
        if not is_setup_problem(error):
            raise
        explained = explain_s3_error(error, endpoint, bucket)
        if _s3_answer(error)[0] == "NoSuchBucket":
            explained = _and_the_key(s3, explained, endpoint, bucket)
        raise explained from error  # --debug shows the cause
    return f"S3 direct: this process uploads to bucket {bucket} at {endpoint}"


def _check_upload_args(setting: str) -> None:
    """Raise ValueError unless `setting` (MLFLOW_S3_UPLOAD_EXTRA_ARGS) is a JSON object that boto3
    takes for an upload: keys it allows, values of the type and, where S3 lists them, of the
    values its API model names (an ACL of 'nonsense' would get a 500 from S3, mid-run)."""
    import botocore.session
    from boto3.s3.transfer import S3Transfer
    from botocore.validate import ParamValidator

    extra = json.loads(setting)
    if not isinstance(extra, dict):
        raise ValueError("not an object {...}")
    unknown = sorted(set(extra) - set(S3Transfer.ALLOWED_UPLOAD_ARGS))
    if unknown:
        raise ValueError(f"boto3 takes no {', '.join(unknown)}; it takes {', '.join(S3Transfer.ALLOWED_UPLOAD_ARGS)}")
    put_object = botocore.session.get_session().get_service_model("s3").operation_model("PutObject").input_shape
    for key, value in extra.items():
        texts = value.values() if key == "Metadata" and isinstance(value, dict) else [value]
        odd = next((c for text in texts if isinstance(text, str) for c in text if not (c.isascii() and c.isprintable())), None)
        if odd:  # boto3 sends them as HTTP headers
            raise ValueError(f"{key} holds {odd!r}: S3 takes printable ASCII only in it (an HTTP header)")
        allowed = getattr(put_object.members.get(key), "enum", None)
        if allowed and value not in allowed:
            raise ValueError(f"{key} takes one of {', '.join(allowed)}, not {value!r}")
    known = {key: value for key, value in extra.items() if key in put_object.members}
    report = ParamValidator().validate({"Bucket": "bucket", "Key": "key", **known}, put_object)
    if report.has_errors():
        raise ValueError(report.generate_report())


def _check_server_serves_artifacts(location: str) -> None:
    """Raise FixableError if the experiment's files live behind a tracking server (proxied
    mode) but this server runs with --no-serve-artifacts (an experiment made in proxied mode,
    used with the direct set-up: MLflow itself would only answer HTTP 503, for minutes), or if
    the server cannot list the store behind it."""
    server = mlflow.get_tracking_uri().rstrip("/")
    if not is_server(server):
        return
    listing = f"{server}/api/2.0/mlflow-artifacts/artifacts"
    try:
        answer = _in_time(
            lambda: requests.get(listing, params={"path": ""}, **_as_mlflow_does()), requests.Timeout(listing)
        )
    except requests.exceptions.RequestException:
        return  # the tracking check has just reached the server; MLflow's own call will say what fails
    if answer.status_code == 503 and "--no-serve-artifacts" in answer.text:
        raise FixableError(
            f"this experiment keeps its files behind the tracking server ({location}), as in proxied mode, "
            f"but the server at {server} runs with --no-serve-artifacts (the direct set-up)",
            "use the set-up the experiment was made in: add -f docker-compose.proxied.yml to the docker compose "
            "command; or, in direct mode, unset MLFLOW_EXPERIMENT_NAME (02-artifacts-proxied is proxied mode's)",
        )
    if answer.status_code >= 500:  # proxied mode: the server's own S3 calls fail (a missing bucket, say)
        raise FixableError(
            f"the tracking server at {server} could not list the artifact store it serves for {location} "
            f"(HTTP {answer.status_code})",
            "look at its log (`docker compose logs mlflow`): NoSuchBucket there means the bucket is missing "
            "(`docker compose up create-bucket`); AccessDenied or a key error, the server's S3 settings",
        )


def _endpoint_problem(endpoint: str) -> str | None:
    """Why MLFLOW_S3_ENDPOINT_URL is no address boto3 can use, or None."""
    if _password_in(endpoint) or "@" in endpoint.split("://", 1)[-1].split("/", 1)[0]:
        return "it holds a user name or password: boto3 takes the keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as error:  # a port out of range or not a number, a broken IPv6 address
        return str(error).lower()
    if parts.scheme not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname or port == 0:
        return "no host name" if not parts.hostname else "port 0"
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not (is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)):
        return "boto3 takes host names of letters, digits, '-' and '.', at most 63 characters between dots"
    if parts.path.strip("/") or parts.query or parts.fragment:
        # boto3 puts the bucket after the address itself: '/minio' would be taken for the bucket.
        return f"it goes on after the address with {endpoint[len(parts.scheme) + 3 + len(parts.netloc):]!r}"
    return None


def _and_the_key(s3, no_bucket: FixableError, endpoint: str, bucket: str) -> FixableError:
    """An S3 server may say NoSuchBucket before it checks the key (moto and SeaweedFS check the
    key first; others are not known here): ask once more, about no bucket at all, so that a
    wrong key is named too, and first."""
    try:
        s3.list_buckets()
    except Exception as error:  # AccessDenied: the key is known, just not allowed to list buckets
        if _s3_answer(error)[0] in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            key = explain_s3_error(error, endpoint, bucket)
            return FixableError(
                f"{key.what}, and bucket '{bucket}' does not exist there either",
                f"{key.fix}; and create the bucket: `docker compose up create-bucket`",
            )
    return no_bucket


def _redirect_of(endpoint: str, bucket: str) -> tuple[int | None, str]:
    """Where S3 redirects a request for the bucket: asked once more, without following it."""
    try:
        answer = requests.get(f"{endpoint}/{bucket}", allow_redirects=False, timeout=CHECK_TIMEOUT)
    except requests.exceptions.RequestException:
        return None, ""
    endpoint = re.search(r"<Endpoint>([^<]+)</Endpoint>", answer.text)
    return answer.status_code, _redirect_target(answer.headers, endpoint and endpoint.group(1))


def _redirect_target(headers, s3_endpoint: str | None) -> str:
    """Where a redirect points: 'region eu-west-1, https://...', from its headers and S3's <Endpoint>."""
    headers = {name.lower(): value for name, value in headers.items()}
    region = headers.get("x-amz-bucket-region")
    places = [f"region {region}" if region else "", headers.get("location", ""), s3_endpoint or ""]
    return ", ".join(place for place in places if place)


def _s3_redirect(endpoint: str, bucket: str | None, status: int | None, target: str) -> FixableError:
    return FixableError(
        f"S3 at {endpoint} redirected the request for bucket '{bucket}'"
        + (f" (HTTP {status})" if status else "")
        + (f" to {target}" if target else " elsewhere"),
        "set MLFLOW_S3_ENDPOINT_URL to the S3 server itself, as scheme://host:port (http://minio:9000 inside "
        "docker compose); for Amazon S3, set AWS_DEFAULT_REGION to the bucket's region",
    )


# S3 error codes, as boto3 reports them, and what they mean for a learner.
_S3_CODES = {
    "NoSuchBucket": ("bucket '{bucket}' does not exist at {endpoint}", "create it: `docker compose up create-bucket`"),
    "InvalidAccessKeyId": (
        "{endpoint} does not know the access key in AWS_ACCESS_KEY_ID",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the MinIO user's key and secret",
    ),
    "SignatureDoesNotMatch": (
        "{endpoint} rejected the secret key (AWS_SECRET_ACCESS_KEY) of AWS_ACCESS_KEY_ID",
        "set AWS_SECRET_ACCESS_KEY to the secret that belongs to AWS_ACCESS_KEY_ID",
    ),
    "AccessDenied": (
        "the S3 user in AWS_ACCESS_KEY_ID may not use bucket '{bucket}' at {endpoint}",
        "grant that user s3:ListBucket, s3:GetObject and s3:PutObject on the bucket, or use another key",
    ),
    "RequestTimeTooSkewed": (
        "{endpoint} refused the request: this machine's clock is too far from the S3 server's",
        "set this machine's clock right (S3 allows 15 minutes), for example with NTP, then run again",
    ),
    "InvalidToken": (
        "{endpoint} does not accept the session token in AWS_SESSION_TOKEN",
        "unset AWS_SESSION_TOKEN (MinIO's access keys need none), or set the token that belongs to the key",
    ),
    "ExpiredToken": (
        "the session token in AWS_SESSION_TOKEN has expired for {endpoint}",
        "get new temporary credentials, or unset AWS_SESSION_TOKEN and use a key that needs none",
    ),
    "XMinioStorageFull": (
        "the S3 server at {endpoint} has no disk space left",
        "free space on the disk that holds the S3 server's data (the minio-data volume); waiting does not help",
    ),
}
_S3_LOG = "look at the S3 server's log (`docker compose logs minio`)"


def explain_s3_error(error: Exception, endpoint: str | None, bucket: str | None) -> FixableError:
    """The FixableError for an S3 failure: a known code or connection problem, else what S3 answered."""
    # boto3 wraps some failures (an upload's ClientError) in an error that keeps only the text.
    text = " ".join(str(e) for e in _chain(error))
    names = {type(e).__name__ for e in _chain(error)}

    def via_proxy(explained: FixableError) -> FixableError:  # for the failures a proxy can cause
        return _via_proxy(explained, endpoint, text, boto=True) if is_server(endpoint or "") else explained

    if "NoCredentialsError" in names:
        return FixableError(
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the MinIO user and password in docker compose)",
        )
    if "ProfileNotFound" in names:
        files = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        return FixableError(
            f"AWS_PROFILE={os.environ.get('AWS_PROFILE')!r} names a profile that is not in {files}",
            "unset AWS_PROFILE (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are enough), "
            "or create that profile: `aws configure --profile <name>`",
        )
    if "InvalidRegionError" in names:
        return FixableError(
            f"AWS_DEFAULT_REGION={os.environ.get('AWS_DEFAULT_REGION')!r} is not a region name boto3 accepts",
            "set AWS_DEFAULT_REGION to a region like us-east-1 (the one your S3 server expects), or unset it",
        )
    if "SSLError" in names:
        return via_proxy(
            FixableError(
                f"TLS (https) with the S3 endpoint {endpoint} failed: {_tls_reason(text)}",
                "if the server speaks plain HTTP (MinIO and SeaweedFS in docker compose do), write http:// in "
                "MLFLOW_S3_ENDPOINT_URL; for a certificate of your own, set AWS_CA_BUNDLE to its CA file",
            )
        )
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"} or (
        "Could not connect to the endpoint" in text
    ):
        return via_proxy(
            FixableError(
                f"cannot reach the S3 endpoint {endpoint}",
                "start MinIO (`docker compose up -d minio`), or correct MLFLOW_S3_ENDPOINT_URL",
            )
        )
    if "ReadTimeoutError" in names or "Read timeout on endpoint" in text:
        return via_proxy(
            FixableError(f"the S3 endpoint {endpoint} did not answer in time", f"{_S3_LOG} and restart MinIO")
        )
    if "ConnectionClosedError" in names or "Connection was closed before" in text:
        return via_proxy(
            FixableError(
                f"the S3 endpoint {endpoint} closed the connection without an answer (stopped or restarting?)",
                f"{_S3_LOG}, restart it (`docker compose restart minio`), then run the same command again",
            )
        )
    code, status, said, operation, response = _s3_answer(error)
    if code in _S3_CODES:
        what, fix = _S3_CODES[code]
        return FixableError(what.format(bucket=bucket, endpoint=endpoint), fix)
    if status in (301, 302, 303, 307, 308) or code in ("PermanentRedirect", "TemporaryRedirect", "Redirect"):
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        target = _redirect_target(headers, response.get("Error", {}).get("Endpoint"))
        return _s3_redirect(endpoint, bucket, status, target)
    expected = response.get("Error", {}).get("Region") or re.search(r"expecting '([\w-]+)'", said or "")
    if expected and code in ("AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException"):
        expected = expected if isinstance(expected, str) else expected.group(1)
        region = os.environ.get("AWS_DEFAULT_REGION")
        return FixableError(
            f"S3 at {endpoint} expects the region {expected!r}, and this process signs its requests for "
            + (f"AWS_DEFAULT_REGION={region!r}" if region else "boto3's default (AWS_DEFAULT_REGION is not set)"),
            f"set AWS_DEFAULT_REGION={expected}",
        )
    key = re.search(r"Failed to upload .* to (.*): An error occurred", text, re.DOTALL)
    if status == 413 or code == "EntityTooLarge":  # from a proxy in front of S3: boto3 sends 8 MB at most
        return FixableError(
            f"S3 at {endpoint} refused an upload as too large (HTTP 413"
            + (f" {code})" if code else ")") + (f" for {key.group(1)!r}" if key else ""),
            "a proxy in front of the S3 server limits the size of a request: raise its limit to 16 MB or more "
            "(nginx: client_max_body_size 16m); boto3 sends a file over 8 MB in parts of 8 MB",
        )
    if not code and not status:  # no answer from S3 at all: boto3 stopped before it sent the request
        cause = _chain(error)[-1]
        said = str(cause)
        if isinstance(cause, configparser.Error):  # an AWS config file it cannot read: never quote its lines (keys)
            source = getattr(cause, "source", None) or "an AWS config file"
            said = said.splitlines()[0] + ("" if source in said.splitlines()[0] else f" (in '{source}')")
        settings = _aws_settings_in(said)
        try:
            extra = dict(json.loads(os.environ.get("MLFLOW_S3_UPLOAD_EXTRA_ARGS") or "{}"))
        except (ValueError, TypeError):
            extra = {}
        if not settings and any(name in said or str(value) in said for name, value in extra.items()):
            settings = ["MLFLOW_S3_UPLOAD_EXTRA_ARGS"]  # what boto3 adds to every upload
        return FixableError(
            f"boto3 could not send a request to S3 at {endpoint}: {type(cause).__name__}: {_short(said)}",
            f"correct or unset {' and '.join(settings)}, then run again"
            if settings
            else "check the AWS_* settings (`env | grep ^AWS_` lists them) and the AWS config files ("
            + ", ".join(os.environ.get(name, default) for name, default in _AWS_FILES)
            + "), then run again; add --debug to see where it failed",
        )
    answer = " ".join(str(part) for part in (status, code) if part)
    busy = status == 429 or code == "TooManyRequests"
    answer += " (too many requests)" if busy else ""
    what = f"S3 at {endpoint} answered {answer}" + (f" to {operation}" if operation else "")
    what += f" for {key.group(1)!r}" if key else ""
    what += f": {_short(said)}" if said and said != code else ""
    if status == 404:
        fix = (
            "not a missing bucket (S3 says NoSuchBucket for that): S3 refused or could not find the key; "
            "remove control characters (a newline, a tab) from the artifact path, and check that "
            "MLFLOW_S3_ENDPOINT_URL is the S3 server the tracking server uses"
        )
    elif busy:
        fix = f"the S3 server is busy (too many requests): wait a minute, then run the same command again; {_S3_LOG}"
    elif (status or 0) >= 500 or code in ("SlowDown", "InternalError", "ServiceUnavailable"):
        fix = f"the S3 server is failing or overloaded: {_S3_LOG}, wait, then run the same command again"
    else:
        fix = f"check MLFLOW_S3_ENDPOINT_URL and the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; {_S3_LOG}"
    explained = FixableError(what, fix)
    return explained if code else via_proxy(explained)  # with an S3 error code, S3 itself answered


# The files boto3 reads its settings and keys from, and where they are unless set otherwise.
_AWS_FILES = (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))


def _aws_settings_in(text: str) -> list[str]:
    """The AWS_* settings that are set and that `text` names, by botocore's name for them or by
    value: 'Invalid value provided to "mode": "weird"' names AWS_RETRY_MODE='weird'. Never a key."""
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES as SETTINGS

    known = {variable: name for name, (_, variables, *_) in SETTINGS.items()
             for variable in ([variables] if isinstance(variables, str) else variables or [])}  # fmt: skip
    named, lowered = [], text.lower()
    for variable, value in sorted(os.environ.items()):
        if not variable.startswith("AWS_") or not value or re.search("KEY|SECRET|TOKEN", variable):
            continue
        name = known.get(variable, variable.removeprefix("AWS_").lower())
        said = (name, name.replace("_", " "), f'"{value}"', f"'{value}'", f"got {value}", f": {value}.")
        if any(words.lower() in lowered for words in said) or (len(value) > 2 and f" {value} " in text):
            named.append(f"{variable}={value!r}")
    return named


def _s3_answer(error: BaseException) -> tuple[str | None, int | None, str | None, str | None, dict]:
    """What S3 answered, as far as the error tells: code, HTTP status, message, operation, whole answer."""
    text = " ".join(str(e) for e in _chain(error))
    # ClientError has S3's answer as a dict; other errors' `response` may be None or missing.
    response = next((e.response for e in _chain(error) if isinstance(getattr(e, "response", None), dict)), {})
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    said = response.get("Error", {}).get("Message")
    found = re.search(r"An error occurred \(([\w.-]+)\) when calling the (\w+) operation[^:]*: ?(.*)", text)
    if found:
        code, operation, said = code or found.group(1), found.group(2), said or found.group(3)
    else:
        operation = getattr(error, "operation_name", None)
    if code and code.isdigit():  # a bare status code, no S3 error code (a HEAD, or a server that is not S3)
        status, code = int(code), None
    return code, status, said, operation, response


# Packages whose exceptions come from the environment (servers, settings, files), not from our code.
_OUTSIDE_WORLD = (
    "mlflow", "boto3", "botocore", "s3transfer", "requests", "urllib3", "sqlalchemy", "sqlite3", "alembic"
)  # fmt: skip


def is_setup_problem(error: BaseException) -> bool:
    """True for the failures the module docstring calls set-up problems; False for bugs in our code."""
    return isinstance(error, (FixableError, OSError)) or (_origin(error) or _raised_in(error)) in _OUTSIDE_WORLD


def _raised_in(error: BaseException) -> str:
    """The package whose code raised a built-in error (a ValueError botocore raises for a setting
    it cannot read): the innermost frame outside Python's standard library."""
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        package = frame.f_globals.get("__name__", "").split(".")[0]
        if package not in sys.stdlib_module_names:
            return package
    return "builtins"


def _origin(error: BaseException) -> str:
    """The package that defines the error's class: 'mlflow', 'botocore'..., 'builtins' for an
    OSError, and '' for another error of Python's own (a ValueError: _raised_in says whose)."""
    package = type(error).__module__.split(".")[0]
    return "" if package in sys.stdlib_module_names and not isinstance(error, OSError) else package


class Stopped(KeyboardInterrupt):
    """The process was told to stop by a signal other than Ctrl+C (SIGTERM, SIGHUP... STOP_SIGNALS).

    Like Ctrl+C's KeyboardInterrupt, not an Exception: code that catches every Exception (MLflow
    does, around the tags it adds to a new run) cannot swallow it, and the run goes on no further."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.what, self.fix = f"stopped by {signal_name}", "run the same command again when you want to"


def _stopped(signum, frame):
    """The first Ctrl+C, SIGTERM or other stop signal: from now on another one ends the process at once
    (a second Ctrl+C inside MLflow's own clean-up would leave its traceback); this one ends the
    run like any failure, so that `with mlflow.start_run()` marks it FAILED on the way out."""
    _end_at_once_if_stopped_again()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signal.Signals(signum).name)


def _stop_lost_in_a_callback(unraisable) -> None:
    """Python drops an exception raised in a garbage-collection callback (SQLAlchemy has some):
    a Ctrl+C or SIGTERM that lands in one would be lost, and the run would go on. Send it again,
    to be taken as the first one it was."""
    if isinstance(unraisable.exc_value, Stopped):
        signum = signal.Signals[unraisable.exc_value.what.split()[-1]]
    elif issubclass(unraisable.exc_type, KeyboardInterrupt):
        signum = signal.SIGINT
    else:
        return sys.__unraisablehook__(unraisable)
    _on_stop(_stopped)
    # From a new thread, a moment later: raised inside this hook, it would be dropped again
    # (and threading.Thread would run Python code here while it waits for the thread to start).
    _thread.start_new_thread(lambda: (time.sleep(0.05), os.kill(os.getpid(), signum)), ())


@contextmanager
def exit_on_error():
    """Turn a set-up problem into one message and exit status 1.

    Anything else is a bug and keeps its traceback. With `--debug` on the command line,
    set-up problems show their traceback too. A run the failure interrupted is marked
    FAILED; if the tracking server is gone, the message names the run and says how to
    close it once the server is back.
    """
    # What the output's encoding cannot show (PYTHONIOENCODING=ascii, a file on Windows) is
    # printed escaped, like 'Exp\xe9rience', instead of failing the run.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    # Ctrl+C, or stopped from outside (a closed terminal, `timeout`, a cancelled job).
    if threading.current_thread() is threading.main_thread():
        _on_stop(_stopped)
        sys.unraisablehook = _stop_lost_in_a_callback
        sys.excepthook = _stopped_on_the_way_out
    try:
        yield
        if threading.current_thread() is threading.main_thread():
            # Done, the run FINISHED: a stop from now on has nothing left to stop, and the exit status stays 0.
            _on_stop(signal.SIG_IGN)
            atexit.register(_on_stop, signal.SIG_IGN)  # Python's last steps put the default back
    except KeyboardInterrupt as interrupt:  # Ctrl+C, or Stopped by another signal
        _end_at_once_if_stopped_again()
        _report(*_stop_message(interrupt))
    except Exception as error:
        if not is_setup_problem(error):
            raise
        _end_at_once_if_stopped_again()
        try:
            explained = explain(error)
            run_note, run_fix = _close_run(error)
        except Exception:  # the explanation must never hide the problem itself
            explained = FixableError(
                f"{type(error).__name__}: {_short(str(error))}", "add --debug to see where it failed"
            )
            run_note, run_fix = "", ""
        if "--debug" in sys.argv:
            traceback.print_exc()
        _report(f"{explained.what}{run_note}", f"{explained.fix}{run_fix}")


def _stopped_on_the_way_out(kind, error, trace) -> None:
    """A stop that came after the example's last step, before this handler could stand down
    (Python leaving the `with` block): the two lines, not a traceback."""
    if not issubclass(kind, KeyboardInterrupt):
        return sys.__excepthook__(kind, error, trace)
    _on_stop(signal.SIG_IGN)
    what, fix = _stop_message(error)
    print(without_passwords(f"error: {what}\nfix: {fix}"), file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)


def _stop_message(stop: KeyboardInterrupt) -> tuple[str, str]:
    """The two lines' text for a stop: what stopped, and the run it hit (now FAILED, named, or
    already finished: then there is nothing to do again)."""
    run_note, run_fix = _close_run(stop)
    what = (stop.what if isinstance(stop, Stopped) else "stopped with Ctrl+C") + run_note
    if "had finished" in run_note:
        return what, "nothing to do again: that run is complete"
    return what, f"run the same command again when you want to{run_fix}"


def _report(what: str, fix: str) -> None:
    """Print the two lines and exit with status 1; a signal after them ends the process quietly.
    A line end or another control character (in a file name, say) is shown escaped: two lines stay two."""
    for label, text in (("error", what), ("fix", fix)):
        shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
        print(f"{label}: {without_passwords(shown)}", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        _on_stop(lambda signum, frame: os._exit(1))
        # Python's own last steps put the default back, under which a signal would end the
        # process with its own status: from the last steps on, ignore them (registered last: run first).
        atexit.register(_on_stop, signal.SIG_IGN)
    sys.exit(1)


def without_passwords(text: str) -> str:
    """`text` with the password of any address in it (http://user:password@host) shown as ***:
    first the tracking URI's own, whatever characters it holds (a '/', a quote, also as repr()
    writes it), then any other address's."""
    uris = [value for value in os.environ.values() if "://" in value]  # the tracking URI, S3's, a proxy's...
    try:
        uris.append(mlflow.get_tracking_uri())
    except Exception:  # MLflow cannot even make its default URI (a folder name that is not UTF-8)
        pass
    for password in filter(None, map(_password_in, uris)):
        quoted = shlex.quote(password)
        for written in {password, repr(password)[1:-1], repr(password + '"')[1:-2], quoted.strip("'"), quoted}:
            text = text.replace(f":{written}@", ":***@")
    text = re.sub(r"([?&](?:password|passwd|pwd|token|access_token|secret|api_key)=)[^&#\s'\"]+", r"\1***", text, flags=re.I)
    return re.sub(r"(\b[a-z][\w+.-]*://[^/\s:@'\"]+:)[^\s'\"/]+@", r"\1***@", text, flags=re.IGNORECASE)


def _password_in(uri: str) -> str | None:
    """The password in an address (scheme://user:password@host), whatever it holds: up to the
    LAST '@', since a password may hold '/' or '@'."""
    found = re.match(r"[a-z][\w+.-]*://[^:/@\s]*:(.+)@", uri, re.IGNORECASE | re.DOTALL)
    return found.group(1) if found else None


def _end_at_once_if_stopped_again() -> None:
    """While a failure is reported and its run closed (a few seconds at most), a second Ctrl+C or
    SIGTERM ends the process at once: with the two lines, and the run named, not a traceback."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set signal handlers
    run_id = _run_id()

    def stop_now(signum, frame):
        note, fix = (f"; run {run_id} may stay RUNNING", f"; {_close_command(run_id)}") if run_id else ("", "")
        sys.stderr.write(
            without_passwords(
                f"error: stopped by {signal.Signals(signum).name} while the process was ending{note}\n"
                f"fix: run the same command again when you want to{fix}\n"
            )
        )
        sys.stderr.flush()
        if _MAKING:
            _MAKING.unlink(missing_ok=True)
        os._exit(1)  # now: no cleanup that a third signal could interrupt

    _on_stop(stop_now)


# The signals that end a process unless it handles them, and that a person or a tool sends:
# Ctrl+C, `kill` and `timeout` (SIGTERM), a closed terminal (SIGHUP), Ctrl+\ (SIGQUIT), and the
# ones a job runner may choose. SIGKILL cannot be handled: after it, the run stays RUNNING.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")


def _on_stop(handler) -> None:
    """`handler` for the STOP_SIGNALS the system has."""
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def explain(error: Exception) -> FixableError:
    """The FixableError for a set-up problem: the checks' own, or one made from what failed."""
    if isinstance(error, FixableError):
        return error
    # A stop that came while another error was being handled: the stop is what happened.
    stopped = next((e for e in _chain(error) if isinstance(e, Stopped)), None)
    if stopped:
        return FixableError(stopped.what, stopped.fix)
    origin = _origin(error)
    # S3's errors, also where MLflow wraps them in its own ("Failed to list artifacts in s3://...").
    if any((_origin(e) or _raised_in(e)) in ("boto3", "botocore", "s3transfer") for e in _chain(error)):
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL", "Amazon S3 (MLFLOW_S3_ENDPOINT_URL is not set)")
        return explain_s3_error(error, endpoint, _bucket())
    if isinstance(error, UnicodeEncodeError) and not _is_text(os.getcwd()):  # MLflow's default URI names this folder
        return FixableError(
            f"this folder's path, {os.getcwd()!r}, holds bytes that are not UTF-8 text, and MLflow writes it into a URI",
            "run from a folder whose name is UTF-8 text (rename it), "
            "or set MLFLOW_TRACKING_URI to a tracking server, like http://localhost:5000",
        )
    tracking_uri = mlflow.get_tracking_uri()
    deleted = re.search(r"Cannot set a deleted experiment ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") as the active", str(error))
    if deleted:  # deleted in the UI, say: MLflow keeps it (and its name) until `mlflow gc`
        name = ast.literal_eval(deleted.group(1))  # MLflow writes the name as repr() does
        restore = (
            f"import mlflow; client = {_client()}; "
            f"client.restore_experiment(client.get_experiment_by_name({json.dumps(name)}).experiment_id)"
        )
        return FixableError(
            f"experiment '{name}' was deleted (in the UI, or with mlflow.delete_experiment); MLflow keeps "
            "a deleted experiment and its name until `mlflow gc` removes it",
            f"restore it: {_python_c(restore)}; or set MLFLOW_EXPERIMENT_NAME to another name",
        )
    if "database is locked" in str(error):  # SQLite: locked mid-run, past SQLite's wait
        return _locked(tracking_uri)
    schema = re.search(r"out-of-date database schema \(found version (\w+), but expected (\w+)\)", str(error))
    if schema:
        return _schema_error(tracking_uri, schema.group(1))
    if isinstance(error, BrokenPipeError) and _raised_in(error) not in _OUTSIDE_WORLD:  # our print()
        return FixableError(
            "the output of this command was closed before the run ended (a `| head` that stops reading, say)",
            "let it print everything: send it to `less`, or to a file (`> run.log`), then run again",
        )
    if origin in ("mlflow", "requests", "urllib3") and is_server(tracking_uri):
        explained = explain_tracking_error(error, tracking_uri.rstrip("/"))
        if explained:
            return explained
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return FixableError(
            "the disk is full" + (f" (writing {error.filename})" if error.filename else ""),
            "free some space (`df -h` shows which disk is full), or set TMPDIR to a folder on another disk",
        )
    if isinstance(error, OSError) and error.errno in (errno.EEXIST, errno.ENOTDIR) and error.filename:
        return FixableError(
            f"a file is in the way of a folder: {error.filename} ({error.strerror})",
            f"move the file away (like `mv {error.filename} {error.filename}.old`), then run again",
        )
    if isinstance(error, OSError) and error.errno == errno.EISDIR and error.filename:
        return FixableError(
            f"a folder is in the way of a file: {error.filename} ({error.strerror})",
            f"move the folder away (like `mv {error.filename} {error.filename}.old`), then run again",
        )
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return FixableError(
            f"too many open files: this process may open {limit} (ulimit -n)"
            + (f", and {error.filename} was one too many" if error.filename else ""),
            "raise the limit in this shell, like `ulimit -n 4096`, then run again",
        )
    bundle = re.search(r"Could not find a suitable TLS CA certificate bundle, invalid path: (.+)", str(error))
    if bundle:  # from requests: a CA file setting that names no file
        path = bundle.group(1).strip()
        names = [n for n in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                 if os.environ.get(n) == path] or ["a CA file setting"]  # fmt: skip
        return FixableError(
            f"{' and '.join(names)} names {path}, and there is no such file",
            f"set {names[0]} to your server's CA file, or unset it",
        )
    if isinstance(error, OSError) and error.filename:
        return FixableError(
            f"{error.strerror or type(error).__name__}: {error.filename}",
            "check that file or folder: it must exist and this process must be allowed to write there",
        )
    return _generic(error)


def _schema_error(tracking_uri: str, found: str) -> FixableError:
    """The database's tables were made by another MLflow version: an older one (MLflow knows the
    revision, and can upgrade them) or a newer one (it does not; this MLflow must not touch them)."""
    from mlflow.store import db_migrations

    database = without_passwords(tracking_uri)
    if list(Path(db_migrations.__file__).parent.glob(f"versions/{found}_*.py")):
        return FixableError(
            f"the MLflow database in {database} was made by an older MLflow (schema {found})",
            f"back it up, then upgrade it for MLflow {mlflow.__version__}: mlflow db upgrade "
            + ('"$MLFLOW_TRACKING_URI"' if _password_in(tracking_uri) else _quote(tracking_uri)),
        )
    return FixableError(
        f"the MLflow database in {database} was made by a newer MLflow than this one ({mlflow.__version__}): "
        f"its schema {found} is unknown here, and MLflow cannot downgrade it",
        "run with the MLflow that made it (`pip install mlflow==<that version>`), or start a new database: "
        "move this one away (like `mv mlflow.db mlflow.db.newer`), or set MLFLOW_TRACKING_URI to another",
    )


def _is_text(name: str) -> bool:
    """False for a name holding bytes the system could not decode (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _generic(error: BaseException) -> FixableError:
    """A set-up problem nothing above recognises: what failed, in one line, and how to see more."""
    package = _origin(error) or _raised_in(error)
    try:
        mlflow_at = f"MLflow ({mlflow.get_tracking_uri()})"
    except Exception:
        mlflow_at = "MLflow"
    where = {"mlflow": mlflow_at, "builtins": "the operating system"}.get(package, package)
    if Path(sys.argv[0]).name == "mlflow_env.py":  # in `python -m common.mlflow_env` itself: not itself again
        fix = "compare your settings with the troubleshooting table (examples/02_artifacts/README.md, section 9)"
    else:
        fix = "check the settings `python -m common.mlflow_env` prints"
    return FixableError(
        f"{where} failed: {type(error).__name__}: {_short(str(error))}",
        f"{fix}, then run again; add --debug to see where it failed",
    )


def _close_run(error: BaseException) -> tuple[str, str]:
    """Mark the run this failure interrupted FAILED. Returns a note for the `error:` line and one
    for the `fix:` line: the run's id, and the command that closes it once the server is back."""
    open_run = mlflow.active_run()  # a run started without `with`, still open
    run_id = _run_id()
    if run_id is None:
        creating = any(frame.f_code.co_name == "create_run" for frame, _ in traceback.walk_tb(error.__traceback__))
        if creating or "/runs/create" in " ".join(str(e) for e in _chain(error)):
            return _runs_started_unseen(error)
        return "", ""
    # Leaving `with mlflow.start_run()` on an error calls end_run("FAILED"). If that call is what
    # failed, the server never heard it, and asking the server again would only wait again
    # (unless a second Ctrl+C, not the server, interrupted it).
    ending_failed = not isinstance(error, KeyboardInterrupt) and any(
        frame.f_code.co_name == "end_run" for frame, _ in traceback.walk_tb(error.__traceback__)
    )
    if not open_run and not ending_failed:
        text = " ".join(str(e) for e in _chain(error))
        refused = re.search(r"error code 4\d\d != 200|4\d\d Client Error", text)  # the server is there: ask it
        if _origin(error) in ("mlflow", "requests", "urllib3") and explain_tracking_error(error, "") and not refused:
            return "", ""  # the run had ended before the server went away
        try:
            client = mlflow.MlflowClient()
            status = client.get_run(run_id).info.status
            if status == "RUNNING":  # its ending was interrupted (a second Ctrl+C, say)
                client.set_terminated(run_id, "FAILED")
                status = "FAILED"
            if status == "FINISHED":  # stopped after the run: nothing of it is lost
                return f" after run {run_id} had finished (all its files are logged)", ""
            return (f" (run {run_id} is marked FAILED)" if status == "FAILED" else ""), ""
        except Exception:
            pass  # the server cannot say now: give the command that closes the run if it is still open
    elif open_run:
        try:
            mlflow.end_run("FAILED")
            return f" (run {run_id} is marked FAILED)", ""
        except Exception:
            pass
    return (
        f"; run {run_id} may stay RUNNING on the tracking server",
        f"; once the server answers, {_close_command(run_id)}",
    )


def _runs_started_unseen(error: BaseException) -> tuple[str, str]:
    """The server did not answer the call that starts the run in time: it may have started it
    anyway, twice even (MLflow asks again), and no run id ever reached this process. The fix's
    command closes the runs this process started, found by experiment, start time and name."""
    from mlflow.tracking.fluent import _get_experiment_id

    # The name the example gave mlflow.start_run(run_name=...), if it is on the way to the error.
    name = next(
        (frame.f_locals.get("run_name") for frame, _ in traceback.walk_tb(error.__traceback__)
         if frame.f_code.co_name == "start_run" and frame.f_locals.get("run_name")),
        None,
    )  # fmt: skip
    which = f'r.info.status == "RUNNING" and r.info.start_time >= {_STARTED_MS}'
    which += f" and r.info.run_name == {json.dumps(name)}" if name else ""
    close = (
        f"import mlflow; client = {_client()}; "
        f'[client.set_terminated(r.info.run_id, "FAILED") for r in client.search_runs([{json.dumps(_get_experiment_id())}]) '
        f"if {which}]"
    )
    return (
        "; the server may have started the run anyway, and it would stay RUNNING",
        f"; once the server answers, find the runs this command left RUNNING and mark them FAILED: {_python_c(close)}",
    )


def _run_id() -> str | None:
    """The run this process has open, or the one MLflow last ended (or tried to)."""
    from mlflow.tracking.fluent import _last_active_run_id

    open_run = mlflow.active_run()
    return open_run.info.run_id if open_run else _last_active_run_id.get()


def _close_command(run_id: str) -> str:
    """The command that marks the run FAILED, only if it is still RUNNING: a server that answered
    too late may have finished it after all."""
    run = json.dumps(run_id)
    close = (
        f"import mlflow; client = {_client()}; "
        f'client.get_run({run}).info.status == "RUNNING" and client.set_terminated({run}, "FAILED")'
    )
    return f"mark that run FAILED if it is still RUNNING: {_python_c(close)}"


def _client() -> str:
    """The Python code that makes a client for this tracking URI; with a password in the URI,
    one that reads it from MLFLOW_TRACKING_URI (in the same shell), so that no password is printed."""
    uri = mlflow.get_tracking_uri()
    return "mlflow.MlflowClient()" if _password_in(uri) else f"mlflow.MlflowClient({json.dumps(uri)})"


def _python_c(code: str) -> str:
    """`python -c '...'`, to paste into a shell: in single quotes, where no shell reads `$`, `!`
    or a backslash, whatever a name or an address in the code holds. Code that reads the address
    from MLFLOW_TRACKING_URI (it holds a password) says so."""
    where = "with MLFLOW_TRACKING_URI exported in that shell: " if "MlflowClient()" in code else ""
    return f"{where}python -c {_quote(code)}"


def _quote(text: str) -> str:
    """`text` quoted for a shell, to paste: in single quotes; with a line end or another control
    character in it, as bash's $'...', which spells them \\n, \\t... (the two lines stay two)."""
    if text.isprintable():
        return shlex.quote(text)
    escaped = "".join(c if c.isprintable() and c not in "'\\" else repr(c)[1:-1] if c not in "'\\" else "\\" + c for c in text)
    return f"$'{escaped}'"


def _bucket() -> str:
    """The bucket of the run being logged, if it can still be asked for."""
    try:
        artifact_uri = mlflow.get_artifact_uri() if mlflow.active_run() else mlflow.last_active_run().info.artifact_uri
    except Exception:  # no run, or the tracking server is gone too
        return "?"
    return urlsplit(artifact_uri).netloc if artifact_uri.startswith("s3://") else "?"


def _chain(error: BaseException):
    """The error and the errors it was raised from or while handling."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _short(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
