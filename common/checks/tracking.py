"""Checks of the tracking URI and the tracking server, and what a failed request to it means.

MLflow's own defaults retry a refused connection for minutes and end in a long traceback: the
check asks the server one question, with a short timeout. A request that went through an HTTP
proxy (HTTP_PROXY...) and failed says so, and how to keep the local hosts away from the proxy
(NO_PROXY).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from common.checks.database import _check_database_answers, _check_database_driver, _check_sqlite
from common.checks.errors import FixableError, _chain, _origin, _short
from common.checks.settings import (
    CHECK_TIMEOUT,
    FAIL_FAST,
    TRACKING_URI_FIX,
    _in_time,
    check_mlflow_settings,
    check_setting,
)


# The tracking URI schemes MLflow 3.17 can use.
TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
# What a learner names an SQLite database (mlflow.db): a path that ends so is a file, not a folder.
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


# Where a request should not go through HTTP_PROXY / HTTPS_PROXY: the compose hosts and this machine.
NO_PROXY_EXAMPLE = "NO_PROXY=localhost,127.0.0.1,mlflow,minio,seaweedfs"


def _check_near_misses(tracking_uri: str, scheme: str) -> None:
    """Addresses one character away from what was meant: a server without http://, or an SQLite
    address with two slashes, one, none, or its scheme in capitals."""
    server = re.fullmatch(r"(?:https?:?/*)?([A-Za-z0-9.-]+):(\d{1,5})/?", tracking_uri)
    if server and scheme not in ("http", "https"):
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} looks like a tracking server's address, written without 'http://'",
            f"set MLFLOW_TRACKING_URI=http://{server.group(1)}:{server.group(2)}",
        )
    if scheme == "sqlite" and tracking_uri != "sqlite://" and not tracking_uri.startswith("sqlite:///"):
        rest = tracking_uri.partition(":")[2]
        path = rest[3:] if rest.startswith("///") else rest.lstrip("/")
        raise FixableError(
            f"MLFLOW_TRACKING_URI={tracking_uri!r} is not how SQLite's address is written: 'sqlite:' in small "
            "letters, three slashes, then the database's path (a fourth slash starts an absolute path)",
            f"set MLFLOW_TRACKING_URI=sqlite:///{path or 'mlflow.db'}",
        )


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
    _check_near_misses(tracking_uri, scheme)
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
        # 'file:mlflow.db', 'file:///x/runs', '~/runs': the path itself, as a shell would write it
        folder = os.path.expanduser(urlsplit(tracking_uri).path if scheme == "file" else tracking_uri)
        if Path(folder).is_file() or (not Path(folder).exists() and folder.endswith(DATABASE_SUFFIXES)):
            raise FixableError(  # `MLFLOW_TRACKING_URI=mlflow.db`: a database, without its scheme
                f"MLFLOW_TRACKING_URI={tracking_uri} names a database file without 'sqlite:///' in front, "
                "so MLflow would read it as a folder of runs, which MLflow 3 no longer keeps",
                f"set MLFLOW_TRACKING_URI=sqlite:///{folder}",
            )
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
            "look at its log (`docker compose logs mlflow`); once `python -m common.checks` says ready, "
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
