"""checked_setup: the one call that changes the process, and that puts everything back.

    with checked_setup("02-artifacts"):
        main()

On entry it checks the set-up (the settings, the tracking server, the experiment name, the
artifact store of that experiment) and, for the block only:

- MLflow's calls to a tracking server fail in seconds (MLFLOW_HTTP_REQUEST_TIMEOUT=5, one
  retry: settings.FAIL_FAST), unless set otherwise; S3 clients too (boto3's default session
  gets settings.S3_FAIL_FAST);
- a stop (Ctrl+C, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2, SIGALRM) ends the run like a failure, so
  that MLflow marks it FAILED, then ends in two lines; a second stop ends the process at once;
- sys.excepthook and sys.unraisablehook see a stop that would otherwise be lost; what the
  output's encoding cannot show is printed escaped instead of failing the run.

On the way out (finished, failed or stopped) it puts back what was there before: the signal
handlers, the two hooks, boto3's default session, the output's error handling, and what the
checks set in os.environ and as the tracking URI (changes the block itself or another thread
made stay). The experiment stays active, as after mlflow.set_experiment (with
MLFLOW_EXPERIMENT_ID, which MLflow sets for child processes). It registers no atexit handler.
Then:

- a set-up problem (errors.is_setup_problem, explained by explain.explain): `error:` and `fix:`
  on stderr, exit status 1 (`--debug` on the command line adds the traceback);
- a stop: its two lines, exit status 128 + the signal's number (130 for Ctrl+C, 143 for SIGTERM);
- anything else, a mistake in the code's own calls included (`mlflow.log_metric("acc", "high")`,
  `mlflow.log_artifact("missing.csv")`, explain.is_learners_mistake): raised again unchanged,
  with MLflow's message and traceback.

At an interactive prompt nothing ends the session: Ctrl+C comes back as KeyboardInterrupt and a
set-up problem as a FixableError (its two lines are its message), as plain Python would.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import boto3
import mlflow
from mlflow.entities import Experiment
from mlflow.utils.file_utils import local_file_uri_to_path

from common.checks import stops
from common.checks.errors import FixableError, _chain, _short, is_setup_problem, without_passwords
from common.checks.explain import explain, is_learners_mistake
from common.checks.runs import _close_run
from common.checks.s3 import check_artifact_store
from common.checks.settings import SET_BY_THE_CHECKS, check_experiment_name
from common.checks.tracking import check_tracking_server


class SetUp(NamedTuple):
    """What the checks found: the tracking server's version (None without a server), the
    experiment (created if new), and what kind of artifact store it uses."""

    version: str | None
    experiment: Experiment
    store: str


def check_setup(experiment_name: str) -> SetUp:
    """Raise FixableError unless the set-up works: settings, tracking server, experiment name,
    artifact store, in that order (when two things are wrong, the first to fix is named)."""
    # As common.mlflow_env.use_experiment: MLFLOW_EXPERIMENT_NAME, when set, wins.
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", experiment_name)
    check_experiment_name(name)
    version = check_tracking_server(mlflow.get_tracking_uri())
    experiment = mlflow.set_experiment(name)
    return SetUp(version, experiment, check_artifact_store(experiment.artifact_location))


class _Process:
    """What checked_setup changes, as it was before: kept, then put back."""

    def __init__(self):
        self.main_thread = threading.current_thread() is threading.main_thread()
        self.signals = [getattr(signal, name) for name in stops.STOP_SIGNALS if hasattr(signal, name)]
        self.handlers = {signum: signal.getsignal(signum) for signum in self.signals} if self.main_thread else {}
        self.excepthook, self.unraisablehook = sys.excepthook, sys.unraisablehook
        self.environ = dict(os.environ)
        self.tracking_uri = _tracking_uri_set()
        self.checks_set: dict[str, str] = {}
        self.boto3_session = boto3.DEFAULT_SESSION
        self.streams = [(s, s.errors) for s in (sys.stdout, sys.stderr) if hasattr(s, "reconfigure")]

    def change(self) -> None:
        # What the output's encoding cannot show (PYTHONIOENCODING=ascii, a file on Windows) is
        # printed escaped, like 'Exp\xe9rience', instead of failing the run.
        for stream, _ in self.streams:
            stream.reconfigure(errors="backslashreplace")
        if self.main_thread:  # only the main thread may set signal handlers
            stops._on_stop(stops._stopped)
            sys.unraisablehook = stops._stop_lost_in_a_callback
            sys.excepthook = stops._stopped_on_the_way_out

    def checked(self) -> None:
        """Note what the checks set in the environment (timeouts, retries; the tracking URI, in a
        folder whose name MLflow would escape): that, and only that, is undone on the way out.
        MLFLOW_EXPERIMENT_ID stays: mlflow.set_experiment sets it for child processes, and the
        experiment stays active, as after any call of mlflow.set_experiment."""
        self.checks_set = {
            name: os.environ[name]
            for name in SET_BY_THE_CHECKS
            if name in os.environ and self.environ.get(name) != os.environ[name]
        }
        self.tracking_uri_by_checks = _tracking_uri_set() if _tracking_uri_set() != self.tracking_uri else None

    def restore(self) -> None:
        if self.main_thread:
            # No stop in between: one that comes now waits, then meets the handler put back
            # (Windows has no signal masks).
            masks = hasattr(signal, "pthread_sigmask")
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.signals) if masks else None
            try:  # what the block itself set stays: only our own handlers and hooks are replaced
                for signum, handler in self.handlers.items():
                    if _ours(signal.getsignal(signum)):
                        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
                if _ours(sys.excepthook):
                    sys.excepthook = self.excepthook
                if _ours(sys.unraisablehook):
                    sys.unraisablehook = self.unraisablehook
            finally:
                if masks:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        # Only what the checks set, and only where nobody has changed it since (the code in the
        # block, another thread): their changes stay theirs.
        for name, value in self.checks_set.items():
            if os.environ.get(name) == value:
                if name in self.environ:
                    os.environ[name] = self.environ[name]
                else:
                    del os.environ[name]
        if getattr(self, "tracking_uri_by_checks", None) and _tracking_uri_set() == self.tracking_uri_by_checks:
            mlflow.set_tracking_uri(self.tracking_uri)  # None: MLflow's default again
        boto3.DEFAULT_SESSION = self.boto3_session
        for stream, errors in self.streams:
            stream.reconfigure(errors=errors)


def _ours(handler) -> bool:
    """True for a signal handler or hook of common/checks/stops.py (set on entry, or while a failure is reported)."""
    return getattr(handler, "__module__", None) == stops.__name__


def _tracking_uri_set() -> str | None:
    """The tracking URI set with mlflow.set_tracking_uri, or None (MLflow's default, or the setting)."""
    from mlflow.tracking._tracking_service import utils

    return utils._tracking_uri


@contextmanager
def checked_setup(experiment_name: str):
    """Check the set-up, then run the block with the process changes above; undo them on exit.

    Yields what the checks found (a SetUp). Ends the process with status 1 on a set-up problem,
    128 + the signal's number on a stop; re-raises anything else unchanged. At an interactive
    prompt (`python -i`, IPython, Jupyter) it ends nothing: Ctrl+C is raised again as
    KeyboardInterrupt, and a set-up problem as a FixableError, both after the run is closed.
    """
    process = _Process()
    status, checked = None, None
    try:
        process.change()
        try:
            checked = check_setup(experiment_name)
            process.checked()
            yield checked
        except KeyboardInterrupt as stop:  # Ctrl+C, or stops.Stopped by another signal
            status = _stopped(stop)
        except Exception as error:
            if not is_setup_problem(error):
                raise
            stop = next((e for e in _chain(error) if isinstance(e, KeyboardInterrupt)), None)
            if stop is not None:
                # A stop that came inside MLflow's own work, whose clean-up then failed (on the
                # embedded store, 'database is locked'): what happened is the stop.
                status = _stopped(stop)
            else:
                status = _set_up_problem(error, checked)
    finally:
        if checked is None:
            process.checked()  # the checks failed: undo what they had set too
        process.restore()
    if status is not None:
        sys.exit(status)


def _set_up_problem(error: Exception, checked: SetUp | None) -> int:
    """Close the run a set-up problem hit and report it in two lines; the exit status. A mistake in
    the code's own call is raised again, and at a prompt the two lines come as a FixableError."""
    try:
        explained = explain(error)
    except Exception:  # the explanation must never hide the problem itself
        explained = FixableError(f"{type(error).__name__}: {_short(str(error))}", "add --debug to see where it failed")
    if checked and is_learners_mistake(error, explained, _local_folder(checked.experiment)):
        raise  # the error being handled, with its traceback as it was
    stops._end_at_once_if_stopped_again()
    try:
        run_note, run_fix = _close_run(error)
    except Exception:
        run_note, run_fix = "", ""
    if _interactive():
        raise FixableError(f"{explained.what}{run_note}", f"{explained.fix}{run_fix}") from None
    if "--debug" in sys.argv:
        traceback.print_exception(error)
    _report(f"{explained.what}{run_note}", f"{explained.fix}{run_fix}")
    return 1


def _stopped(stop: KeyboardInterrupt) -> int:
    """Close the run a stop hit and report it; the exit status (Ctrl+C at a prompt: raised again)."""
    stops._end_at_once_if_stopped_again()
    what, fix = stops._stop_message(stop)
    status = stops.exit_status(stop)
    if _interactive() and status == 128 + signal.SIGINT:
        raise KeyboardInterrupt(f"{what}; {fix}") from None
    _report(what, fix)
    return status


def _interactive() -> bool:
    """True at an interactive prompt, or in `python -i script.py`, which ends at one: ending the
    process there would end the learner's session."""
    ipython = sys.modules.get("IPython")
    return hasattr(sys, "ps1") or bool(sys.flags.interactive) or bool(ipython and ipython.get_ipython())


def _local_folder(experiment: Experiment) -> Path | None:
    """The experiment's artifact folder, on the embedded store; None for S3 or a tracking server."""
    if urlsplit(experiment.artifact_location).scheme not in ("", "file"):
        return None
    return Path(local_file_uri_to_path(experiment.artifact_location))


def _report(what: str, fix: str) -> None:
    """Print the two lines. A line end or another control character (in a file name, say) is
    shown escaped: two lines stay two."""
    for label, text in (("error", what), ("fix", fix)):
        shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
        print(f"{label}: {without_passwords(shown)}", file=sys.stderr)
    sys.stderr.flush()
