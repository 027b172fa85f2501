"""Checks that run before anything is logged, and the one message a failure ends in.

MLflow's own defaults retry a refused connection for minutes and end in a long traceback.
These checks ask the tracking server and the S3 artifact store one question each, with a
short timeout, and turn what can go wrong into a FixableError: one `error:` line (what
failed, with the address or setting) and one `fix:` line (what to do). `exit_on_error()`
prints it and exits with status 1.

Which failures are set-up problems, with an `error:` and a `fix:` line: a FixableError, and
any exception raised by the libraries that talk to the outside world (MLflow, boto3,
botocore, s3transfer, requests, urllib3, SQLAlchemy, sqlite3) or by the operating system
(OSError: a file, a folder, a socket). The environment causes those: a server down, a
setting mistyped, a folder read-only. Any other exception (a TypeError, a KeyError...) is a
bug in our own code and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import requests

# How long a server may take to answer a check. MLflow's own default is minutes of retries.
CHECK_TIMEOUT = 5

# The tracking URI schemes MLflow 3.17 can use, and what to set instead of a wrong one.
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
TRACKING_URI_FIX = (
    "set MLFLOW_TRACKING_URI to a server, like http://localhost:5000 (http://mlflow:5000 inside docker compose), "
    "or unset it to use the embedded default (mlflow.db in this folder)"
)
MAX_EXPERIMENT_NAME = 500  # MLflow refuses longer names


class FixableError(Exception):
    """A problem with a known fix (a service down, a setting missing, a bad path): says both."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"error: {what}\nfix: {fix}")
        self.what, self.fix = what, fix


def check_experiment_name(name: str) -> None:
    """Raise FixableError if MLflow would refuse the experiment name."""
    if len(name) > MAX_EXPERIMENT_NAME:
        from_setting = os.environ.get("MLFLOW_EXPERIMENT_NAME") == name
        setting = "MLFLOW_EXPERIMENT_NAME" if from_setting else "the experiment name"
        raise FixableError(
            f"{setting} is {len(name)} characters long ('{_short(name, 40)}'); "
            f"MLflow allows at most {MAX_EXPERIMENT_NAME}",
            f"set {setting} to a shorter name"
            + (", or unset it to use the example's own" if from_setting else ""),
        )


def check_tracking_server(tracking_uri: str) -> str | None:
    """Raise FixableError unless the tracking store can be used; return the server's version."""
    scheme = urlsplit(tracking_uri).scheme.split("+")[0]
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
        # SQLite needs to write the database AND its folder (for its journal): check both now,
        # or MLflow retries a read-only database for minutes.
        database = Path(tracking_uri.partition(":///")[2])
        _check_writable(database.parent, f"the MLflow database {database}")
        if database.exists() and not os.access(database, os.W_OK):
            raise FixableError(
                f"the MLflow database {database} is read-only", f"make it writable: chmod u+w {database}"
            )
        return None
    if not scheme.startswith("http"):
        return None  # a database URL: MLflow opens it itself
    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    server = tracking_uri.rstrip("/")
    host = urlsplit(server).netloc
    try:
        answer = requests.get(
            f"{server}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth, timeout=CHECK_TIMEOUT
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
        return requests.get(f"{server}/version", auth=auth, timeout=CHECK_TIMEOUT).text.strip() or None
    except requests.exceptions.RequestException:
        return None


def explain_tracking_error(error: Exception, server: str) -> FixableError | None:
    """The FixableError for a failed request to the tracking server (ours or MLflow's), if we know it."""
    text = str(error)
    if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text:
        return FixableError(
            f"the tracking server name in {server} does not resolve on this machine",
            "inside docker compose use http://mlflow:5000; on your computer use http://localhost:5000",
        )
    if "Connection refused" in text or "NewConnectionError" in text:
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
    status = re.search(r"error code (\d{3}) != 200|too many (\d{3}) error responses", text)
    if status:
        code = int(status.group(1) or status.group(2))
        if code >= 500:
            return _server_error(server, code)
        return FixableError(
            f"{server} answered HTTP {code} to an MLflow API call",
            "check that MLFLOW_TRACKING_URI points at an MLflow tracking server",
        )
    return None


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
    try:
        parts = urlsplit(endpoint)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is no number, a broken IPv6 address
        usable = False
    if not usable:
        raise FixableError(
            f"MLFLOW_S3_ENDPOINT_URL={endpoint!r} is not an address boto3 can use",
            "write it with http:// and the port, like http://localhost:9000 (http://minio:9000 inside docker compose)",
        )
    import boto3
    from botocore.config import Config

    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(connect_timeout=CHECK_TIMEOUT, read_timeout=CHECK_TIMEOUT, retries={"total_max_attempts": 1}),
        )
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as error:
        if not is_setup_problem(error):
            raise
        raise explain_s3_error(error, endpoint, bucket) from error  # --debug shows the cause
    return f"S3 direct: this process uploads to bucket {bucket} at {endpoint}"


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
}
_S3_LOG = "look at the S3 server's log (`docker compose logs minio`)"


def explain_s3_error(error: Exception, endpoint: str | None, bucket: str | None) -> FixableError:
    """The FixableError for an S3 failure: a known code or connection problem, else what S3 answered."""
    # boto3 wraps some failures (an upload's ClientError) in an error that keeps only the text.
    text = " ".join(str(e) for e in _chain(error))
    names = {type(e).__name__ for e in _chain(error)}
    if "NoCredentialsError" in names:
        return FixableError(
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the MinIO user and password in docker compose)",
        )
    if names & {"EndpointConnectionError", "ConnectTimeoutError"} or "Could not connect to the endpoint" in text:
        return FixableError(
            f"cannot reach the S3 endpoint {endpoint}",
            "start MinIO (`docker compose up -d minio`), or correct MLFLOW_S3_ENDPOINT_URL",
        )
    if "ReadTimeoutError" in names or "Read timeout on endpoint" in text:
        return FixableError(f"the S3 endpoint {endpoint} did not answer in time", f"{_S3_LOG} and restart MinIO")
    if "ConnectionClosedError" in names or "Connection was closed before" in text:
        return FixableError(
            f"the S3 endpoint {endpoint} closed the connection without an answer (stopped or restarting?)",
            f"{_S3_LOG}, restart it (`docker compose restart minio`), then run the same command again",
        )
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
    if code in _S3_CODES:
        what, fix = _S3_CODES[code]
        return FixableError(what.format(bucket=bucket, endpoint=endpoint), fix)
    if code and code.isdigit():  # a bare status code, no S3 error code (a HEAD, or a server that is not S3)
        status, code = int(code), None
    key = re.search(r"Failed to upload .* to (.*): An error occurred", text, re.DOTALL)
    answer = " ".join(str(part) for part in (status, code) if part) or "with an error"
    what = f"S3 at {endpoint} answered {answer}" + (f" to {operation}" if operation else "")
    what += f" for {key.group(1)!r}" if key else ""
    what += f": {_short(said)}" if said and said != code else ""
    if status == 404:
        fix = (
            "not a missing bucket (S3 says NoSuchBucket for that): S3 refused or could not find the key; "
            "remove control characters (a newline, a tab) from the artifact path, and check that "
            "MLFLOW_S3_ENDPOINT_URL is the S3 server the tracking server uses"
        )
    elif (status or 0) >= 500 or code in ("SlowDown", "InternalError", "ServiceUnavailable"):
        fix = f"the S3 server is failing or overloaded: {_S3_LOG}, wait, then run the same command again"
    else:
        fix = f"check MLFLOW_S3_ENDPOINT_URL and the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; {_S3_LOG}"
    return FixableError(what, fix)


# Packages whose exceptions come from the environment (servers, settings, files), not from our code.
_OUTSIDE_WORLD = ("mlflow", "boto3", "botocore", "s3transfer", "requests", "urllib3", "sqlalchemy", "sqlite3")


def is_setup_problem(error: BaseException) -> bool:
    """True for the failures the module docstring calls set-up problems; False for bugs in our code."""
    return isinstance(error, (FixableError, OSError)) or _origin(error) in _OUTSIDE_WORLD


def _origin(error: BaseException) -> str:
    """The package that defines the error's class: 'mlflow', 'botocore', 'builtins'..."""
    return type(error).__module__.split(".")[0]


class Stopped(FixableError):
    """The process was told to stop (Ctrl+C, SIGTERM, SIGHUP)."""


def _stopped(signum, frame):
    raise Stopped(f"stopped by {signal.Signals(signum).name}", "run the same command again when you want to")


@contextmanager
def exit_on_error():
    """Turn a set-up problem into one message and exit status 1.

    Anything else is a bug and keeps its traceback. With `--debug` on the command line,
    set-up problems show their traceback too. A run the failure interrupted is marked
    FAILED; if the tracking server is gone, the message names the run and says how to
    close it once the server is back.
    """
    # Stopped from outside (a closed terminal, `timeout`, a cancelled job): end like any other
    # failure, so that `with mlflow.start_run()` marks the run FAILED on the way out.
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
            signal.signal(getattr(signal, name), _stopped)
    try:
        yield
    except KeyboardInterrupt:
        error = Stopped("stopped with Ctrl+C", "run the same command again when you want to")
        run_note, _ = _close_run(error)
        print(f"error: {error.what}{run_note}\nfix: {error.fix}", file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        if not is_setup_problem(error):
            raise
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
        print(f"error: {explained.what}{run_note}\nfix: {explained.fix}{run_fix}", file=sys.stderr)
        sys.exit(1)


def explain(error: Exception) -> FixableError:
    """The FixableError for a set-up problem: the checks' own, or one made from what failed."""
    if isinstance(error, FixableError):
        return error
    origin = _origin(error)
    if origin in ("boto3", "botocore", "s3transfer"):
        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL", "Amazon S3 (MLFLOW_S3_ENDPOINT_URL is not set)")
        return explain_s3_error(error, endpoint, _bucket())
    tracking_uri = mlflow.get_tracking_uri()
    if origin in ("mlflow", "requests", "urllib3") and tracking_uri.startswith(("http://", "https://")):
        explained = explain_tracking_error(error, tracking_uri.rstrip("/"))
        if explained:
            return explained
    if isinstance(error, OSError) and error.filename:
        return FixableError(
            f"{error.strerror or type(error).__name__}: {error.filename}",
            "check that file or folder: it must exist and this process must be allowed to write there",
        )
    return _generic(error)


def _generic(error: BaseException) -> FixableError:
    """A set-up problem nothing above recognises: what failed, in one line, and how to see more."""
    where = {"mlflow": f"MLflow ({mlflow.get_tracking_uri()})", "builtins": "the operating system"}.get(
        _origin(error), _origin(error)
    )
    return FixableError(
        f"{where} failed: {type(error).__name__}: {_short(str(error))}",
        "check the settings `python -m common.mlflow_env` prints, then run again; "
        "add --debug to see where it failed",
    )


def _close_run(error: BaseException) -> tuple[str, str]:
    """Mark the run this failure interrupted FAILED. Returns a note for the `error:` line and one
    for the `fix:` line: the run's id, and the command that closes it once the server is back."""
    from mlflow.tracking.fluent import _last_active_run_id  # the run MLflow last ended, or tried to

    open_run = mlflow.active_run()  # a run started without `with`, still open
    run_id = open_run.info.run_id if open_run else _last_active_run_id.get()
    if run_id is None:
        return "", ""
    # Leaving `with mlflow.start_run()` on an error calls end_run("FAILED"). If that call is what
    # failed, the server never heard it, and asking the server again would only wait again.
    ending_failed = any(frame.f_code.co_name == "end_run" for frame, _ in traceback.walk_tb(error.__traceback__))
    if not open_run and not ending_failed:
        if _origin(error) in ("mlflow", "requests", "urllib3") and explain_tracking_error(error, ""):
            return "", ""  # the run had ended before the server went away
        try:
            failed = mlflow.MlflowClient().get_run(run_id).info.status == "FAILED"
        except Exception:
            return "", ""
        return (f" (run {run_id} is marked FAILED)" if failed else ""), ""
    if open_run:
        try:
            mlflow.end_run("FAILED")
            return f" (run {run_id} is marked FAILED)", ""
        except Exception:
            pass
    close = f"import mlflow; mlflow.MlflowClient({mlflow.get_tracking_uri()!r}).set_terminated({run_id!r}, 'FAILED')"
    return (
        f"; run {run_id} stays RUNNING on the tracking server",
        f'; once the server answers, mark that run FAILED: python -c "{close}"',
    )


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
