"""The error type of the checks, and what writing its two lines needs.

A FixableError says what failed, with the address or setting (`error:`), and what to do (`fix:`).
Also here: which failures are set-up problems (`is_setup_problem`), passwords kept out of what is
printed (`without_passwords`), and text quoted for a shell, to paste.

Which failures are set-up problems: a FixableError, and any exception raised by the libraries
that talk to the outside world (MLflow, boto3, botocore, s3transfer, requests, urllib3,
SQLAlchemy, sqlite3) or by the operating system (OSError: a file, a folder, a socket). The
environment causes those: a server down, a setting mistyped, a folder read-only. Any other
exception (a TypeError, a KeyError...) is a bug in the code and keeps its traceback, unless
those libraries raised it (a ValueError from botocore, for a setting it cannot read).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import traceback
from urllib.parse import urlsplit


class FixableError(Exception):
    """A problem with a known fix (a service down, a setting missing, a bad path): says both."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"error: {what}\nfix: {fix}")
        self.what, self.fix = what, fix


def is_server(uri: str) -> bool:
    """True for a tracking server's address: http:// or https://, written in any case (MLflow accepts HTTP://)."""
    return urlsplit(uri).scheme in ("http", "https")


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


def without_passwords(text: str) -> str:
    """`text` with the password of any address in it (http://user:password@host) shown as ***:
    first the tracking URI's own, whatever characters it holds (a '/', a quote, also as repr()
    writes it), then any other address's."""
    uris = [value for value in os.environ.values() if "://" in value]  # the tracking URI, S3's, a proxy's...
    try:
        import mlflow  # here, not at the top: common/artifact_paths.py imports this module without MLflow

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


def _is_text(name: str) -> bool:
    """False for a name holding bytes the system could not decode (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


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
