"""Stops from outside: Ctrl+C, `kill`, `timeout`, a closed terminal.

Under checked_setup, the first stop ends the run like any failure (so that `with
mlflow.start_run()` marks it FAILED) and ends in two lines; a second one ends the process at once.
Nothing here is installed at import: checked_setup installs it, and puts back what was there.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

from common.checks import database
from common.checks.errors import without_passwords
from common.checks.runs import _close_command, _close_run, _run_id


# The signals that end a process unless it handles them, and that a person or a tool sends:
# Ctrl+C, `kill` and `timeout` (SIGTERM), a closed terminal (SIGHUP), Ctrl+\ (SIGQUIT), and the
# ones a job runner may choose. SIGKILL cannot be handled: after it, the run stays RUNNING.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")


def _on_stop(handler) -> None:
    """`handler` for the STOP_SIGNALS the system has, but those the process ignores, which stay
    ignored: SIGHUP under `nohup`, SIGINT and SIGQUIT in a shell's background job."""
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, handler)


class Stopped(KeyboardInterrupt):
    """The process was told to stop by a signal other than Ctrl+C (SIGTERM, SIGHUP... STOP_SIGNALS).

    Like Ctrl+C's KeyboardInterrupt, not an Exception: code that catches every Exception (MLflow
    does, around the tags it adds to a new run) cannot swallow it, and the run goes on no further."""

    def __init__(self, signal_name: str):
        super().__init__(f"stopped by {signal_name}")
        self.what, self.fix = f"stopped by {signal_name}", "run the same command again when you want to"
        self.signum = signal.Signals[signal_name]


def exit_status(stop: KeyboardInterrupt) -> int:
    """The exit status of a process a stop ended, as a shell reports one killed by the signal:
    128 + its number (130 for Ctrl+C, 143 for SIGTERM)."""
    return 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)


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


def _stopped_on_the_way_out(kind, error, trace) -> None:
    """A stop that came after the example's last step, before checked_setup could put the
    process back (Python leaving the `with` block): the two lines, not a traceback."""
    if not issubclass(kind, KeyboardInterrupt):
        return sys.__excepthook__(kind, error, trace)
    _on_stop(signal.SIG_IGN)
    what, fix = _stop_message(error)
    print(without_passwords(f"error: {what}\nfix: {fix}"), file=sys.stderr)
    sys.stderr.flush()
    os._exit(exit_status(error))


def _stop_message(stop: KeyboardInterrupt) -> tuple[str, str]:
    """The two lines' text for a stop: what stopped, and the run it hit (now FAILED, named, or
    already finished: then there is nothing to do again)."""
    run_note, run_fix = _close_run(stop)
    what = (stop.what if isinstance(stop, Stopped) else "stopped with Ctrl+C") + run_note
    if "had finished" in run_note:
        return what, "nothing to do again: that run is complete"
    return what, f"run the same command again when you want to{run_fix}"


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
        if database._MAKING:
            database._MAKING.unlink(missing_ok=True)
        os._exit(128 + signum)  # now: no cleanup that a third signal could interrupt

    _on_stop(stop_now)
