"""Turning an exception into a FixableError: what failed, and what to do."""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

import mlflow

from common.checks.database import _locked, _schema_error
from common.checks.errors import (
    _OUTSIDE_WORLD,
    FixableError,
    _chain,
    _is_text,
    _origin,
    _python_c,
    _raised_in,
    _short,
    is_server,
)
from common.checks.runs import _client
from common.checks.s3_answers import explain_s3_error
from common.checks.stops import Stopped
from common.checks.tracking import explain_tracking_error


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
    if "database or disk is full" in str(error):  # SQLite's word for ENOSPC
        return FixableError(
            f"the disk is full (writing the MLflow database in {tracking_uri})",
            "free some space on the disk that holds it (`df -h` shows which disk is full), then run again",
        )
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


def _generic(error: BaseException) -> FixableError:
    """A set-up problem nothing above recognises: what failed, in one line, and how to see more."""
    package = _origin(error) or _raised_in(error)
    try:
        mlflow_at = f"MLflow ({mlflow.get_tracking_uri()})"
    except Exception:
        mlflow_at = "MLflow"
    where = {"mlflow": mlflow_at, "builtins": "the operating system"}.get(package, package)
    if _in_the_preflight():  # in `python -m common.checks` itself: not itself again
        fix = "compare your settings with the troubleshooting table (docs/troubleshooting.md)"
    else:
        fix = "check the settings `python -m common.checks` prints"
    explained = FixableError(
        f"{where} failed: {type(error).__name__}: {_short(str(error))}",
        f"{fix}, then run again; add --debug to see where it failed",
    )
    explained.recognised = False
    return explained


def _in_the_preflight() -> bool:
    """True in `python -m common.checks` (or its old name, `python -m common.mlflow_env`)."""
    path = Path(sys.argv[0])
    return path.name == "mlflow_env.py" or (path.name == "__main__.py" and path.parent.name == "checks")


# MLflow's error codes for a call given what it cannot take (a metric that is no number, a
# parameter logged again with another value, a run id that does not exist).
CALLER_ERROR_CODES = (
    "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE"
)  # fmt: skip


def is_learners_mistake(error: BaseException, explained: FixableError, artifact_folder: Path | None = None) -> bool:
    """True for an error that the code's own call caused, not the set-up. It keeps MLflow's whole
    message and its traceback:

    - MLflow refusing what it was given: `mlflow.log_metric("acc", "high")`, a ValueError or
      TypeError MLflow's own code raised, an artifact path it refuses ("Invalid artifact path");
    - a file or folder the call itself named: `mlflow.log_artifact("missing.csv")`, a name too
      long for the file system, or a file the code's own lines open (`open("data.csv")`);
    - a run started while another is active (MLflow raises a plain Exception);
    - on the embedded store (`artifact_folder`: the experiment's local folder), two artifact
      paths of the code's own that collide: 'a/b.txt', then 'a/b.txt/c.txt'.

    A failure the explanations above recognise (a deleted experiment, a server's answer...) stays
    a set-up problem, and so does anything the checks themselves raised."""
    if isinstance(error, FixableError):
        return False
    if isinstance(error, OSError) and error.filename is not None and error.errno != errno.ENOSPC:
        if error.errno == errno.ENAMETOOLONG or _named_in_the_call(error) or _in_the_store(error, artifact_folder):
            return True
        # A file the code's own lines open, not MLflow or boto3: `pd.read_csv("data/train.csv")`.
        if error.errno == errno.ENOENT and _raised_in(error) not in _OUTSIDE_WORLD:
            return True
    if getattr(explained, "recognised", True):
        return False
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in CALLER_ERROR_CODES or str(error).startswith("Invalid artifact path")
    # MLflow raises a plain Exception for a run started while another is active.
    mistake = isinstance(error, (ValueError, TypeError)) or type(error) is Exception
    return mistake and not _origin(error) and _raised_in(error) == "mlflow"


def _named_in_the_call(error: OSError) -> bool:
    """True when the file the error names is a path the code passed to MLflow: an argument of the
    first MLflow function the code called (the outermost MLflow frame of the traceback)."""
    for frame, _ in traceback.walk_tb(error.__traceback__):
        if frame.f_globals.get("__name__", "").split(".")[0] == "mlflow":
            given = {os.fspath(v) for v in frame.f_locals.values() if isinstance(v, (str, os.PathLike))}
            return os.fspath(error.filename) in given
    return False


# What two artifact paths of the code's own do to each other in a folder: 'a/b.txt' stands where
# 'a/b.txt/c.txt' needs a folder (ENOTDIR, EEXIST), or the other way round (EISDIR); or a name
# the file system cannot hold (ENAMETOOLONG).
_PATH_CLASHES = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG)


def _in_the_store(error: OSError, artifact_folder: Path | None) -> bool:
    """True for a clash between artifact paths inside a run's folder of the embedded store."""
    if artifact_folder is None or error.errno not in _PATH_CLASHES:
        return False
    folder = Path(os.path.realpath(artifact_folder))
    names = [os.fspath(n) for n in (error.filename, error.filename2) if n is not None]
    return any(Path(os.path.realpath(name)).is_relative_to(folder) for name in names)


def _bucket() -> str:
    """The bucket of the run being logged, if it can still be asked for."""
    try:
        artifact_uri = mlflow.get_artifact_uri() if mlflow.active_run() else mlflow.last_active_run().info.artifact_uri
    except Exception:  # no run, or the tracking server is gone too
        return "?"
    return urlsplit(artifact_uri).netloc if artifact_uri.startswith("s3://") else "?"
