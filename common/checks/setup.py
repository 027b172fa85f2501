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
handlers, the two hooks, os.environ, boto3's default session, the output's error handling.
It registers no atexit handler. Then:

- a set-up problem (errors.is_setup_problem, explained by explain.explain): `error:` and `fix:`
  on stderr, exit status 1 (`--debug` on the command line adds the traceback);
- a stop: its two lines, exit status 128 + the signal's number (130 for Ctrl+C, 143 for SIGTERM);
- anything else, a mistake in the code's own calls included (`mlflow.log_metric("acc", "high")`,
  explain.is_learners_mistake): raised again unchanged, with MLflow's message and traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from typing import NamedTuple

import boto3
import mlflow
from mlflow.entities import Experiment

from common.checks import stops
from common.checks.errors import FixableError, _short, is_setup_problem, without_passwords
from common.checks.explain import explain, is_learners_mistake
from common.checks.runs import _close_run
from common.checks.s3 import check_artifact_store
from common.checks.settings import check_experiment_name
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

    def restore(self) -> None:
        if self.main_thread:
            # No stop in between: one that comes now waits, then meets the handler put back
            # (Windows has no signal masks).
            masks = hasattr(signal, "pthread_sigmask")
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.signals) if masks else None
            try:
                for signum, handler in self.handlers.items():
                    signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
                sys.excepthook, sys.unraisablehook = self.excepthook, self.unraisablehook
            finally:
                if masks:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for name in [name for name in os.environ if name not in self.environ]:
            del os.environ[name]
        for name, value in self.environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        boto3.DEFAULT_SESSION = self.boto3_session
        for stream, errors in self.streams:
            stream.reconfigure(errors=errors)


@contextmanager
def checked_setup(experiment_name: str):
    """Check the set-up, then run the block with the process changes above; undo them on exit.

    Yields what the checks found (a SetUp). Ends the process with status 1 on a set-up problem,
    128 + the signal's number on a stop; re-raises anything else unchanged.
    """
    process = _Process()
    status = None
    try:
        process.change()
        try:
            yield check_setup(experiment_name)
        except KeyboardInterrupt as stop:  # Ctrl+C, or stops.Stopped by another signal
            stops._end_at_once_if_stopped_again()
            _report(*stops._stop_message(stop))
            status = stops.exit_status(stop)
        except Exception as error:
            if not is_setup_problem(error):
                raise
            try:
                explained = explain(error)
            except Exception:  # the explanation must never hide the problem itself
                explained = FixableError(
                    f"{type(error).__name__}: {_short(str(error))}", "add --debug to see where it failed"
                )
            if is_learners_mistake(error, explained):
                raise
            stops._end_at_once_if_stopped_again()
            try:
                run_note, run_fix = _close_run(error)
            except Exception:
                run_note, run_fix = "", ""
            if "--debug" in sys.argv:
                traceback.print_exc()
            _report(f"{explained.what}{run_note}", f"{explained.fix}{run_fix}")
            status = 1
    finally:
        process.restore()
    if status is not None:
        sys.exit(status)


def _report(what: str, fix: str) -> None:
    """Print the two lines. A line end or another control character (in a file name, say) is
    shown escaped: two lines stay two."""
    for label, text in (("error", what), ("fix", fix)):
        shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
        print(f"{label}: {without_passwords(shown)}", file=sys.stderr)
    sys.stderr.flush()
