"""Checks of a tracking store that is a database: SQLite (the embedded default, mlflow.db),
PostgreSQL or MySQL; and of local folders MLflow writes to."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

import mlflow

from common.checks.errors import FixableError, _password_in, _quote, _short, without_passwords
from common.checks.settings import CHECK_TIMEOUT, TRACKING_URI_FIX


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
