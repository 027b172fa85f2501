"""Checks of the settings in the environment, and the timeouts the checks and the run use."""

from __future__ import annotations

import os
import sys
import threading

from common.checks.errors import FixableError, _is_text, _short


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
# Every setting the checks may put in the environment (tracking.py): checked_setup undoes these,
# and only these, on its way out.
SET_BY_THE_CHECKS = (*FAIL_FAST, "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
# boto3 waits 60 s for each S3 answer and makes 3 attempts (minutes, on an S3 server that stops
# answering mid-upload); MLflow has no setting for that, and boto3 reads none for the wait. So the
# S3 clients of this process, MLflow's included, get these defaults instead: one retry, as for the
# tracking server. AWS_MAX_ATTEMPTS, when set, still decides the attempts.
S3_FAIL_FAST = {"connect_timeout": CHECK_TIMEOUT, "read_timeout": 10, "retries": {"total_max_attempts": 2}}


# What to set instead of a tracking URI MLflow cannot use.
TRACKING_URI_FIX = (
    "set MLFLOW_TRACKING_URI to a server, like http://localhost:5000 (http://mlflow:5000 inside docker compose), "
    "or unset it to use the embedded default (mlflow.db in this folder)"
)
# MLflow's own check allows 500 characters, but its database column (experiments.name) is
# VARCHAR(256): PostgreSQL and MySQL refuse a longer name, SQLite keeps it. 256 holds everywhere.
MAX_EXPERIMENT_NAME = 256


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
    if not name and os.environ.get("MLFLOW_EXPERIMENT_NAME") == "":  # MLflow would say it needs a name or an id
        raise FixableError(
            "MLFLOW_EXPERIMENT_NAME is set, but empty", "set it to an experiment name, or unset it to use the example's own"
        )
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
