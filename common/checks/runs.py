"""The run a failure or a stop interrupted: marked FAILED, or named with the command that closes it."""

from __future__ import annotations

import json
import re
import time
import traceback

import mlflow

from common.checks.errors import _chain, _origin, _password_in, _python_c
from common.checks.tracking import explain_tracking_error


# When this process started (in ms, as MLflow's run start times): its runs started after it.
_STARTED_MS = int(time.time() * 1000)


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
