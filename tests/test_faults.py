"""Faults: each ends in seconds with one message that says what to do, and loses nothing.

Every case runs the three entry points as a learner would (the preflight
`python -m common.checks` and both examples, at the same time), with the compose trainer's
environment and one thing broken: here a tracking server stopped or silent, a Host header not
allowed, an old file store in the folder; S3 faults are in test_faults_s3.py, the rest of the
matrix (servers that fail mid-run, mistyped settings) in test_fault_matrix.py, and the embedded
default's (read-only folders, odd names, mlflow.db) in test_faults_embedded.py.
The time to the error is printed (run with `-s` to see it); the 10-second target is asserted
only with a wide margin, wider on a busy machine, since a slow machine must not fail the suite.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
)

from common.checks.runs import _close_command

from support.examples import run_script
from support.faults import ENTRY_POINTS, MESSAGES, SCRIPTS, assert_one_clear_message, folder_for, run_all
from support.stack import REPO, clean_env, compose_service, free_port

TROUBLESHOOTING = REPO / "docs/troubleshooting.md"


# --- the tracking server -------------------------------------------------------------------


def test_tracking_server_not_running(trainer_env, tmp_path):
    address = f"http://127.0.0.1:{free_port()}"
    for result, seconds in run_all(dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path).values():
        assert_one_clear_message(result, seconds, "server down", address)


def test_tracking_server_that_never_answers(trainer_env, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never replies
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        # All at once: each waits out the trainer's 5 s timeout, no need to wait three times.
        results = run_all(dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path)
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "server silent", address)


def test_host_header_not_allowed(trainer_env, tmp_path):
    # 127.1 is 127.0.0.1 written short: the same server, a Host header it does not list.
    host = trainer_env["MLFLOW_TRACKING_URI"].replace("//127.0.0.1:", "//127.1:").removeprefix("http://")
    for result, seconds in run_all(dict(trainer_env, MLFLOW_TRACKING_URI=f"http://{host}"), tmp_path).values():
        assert_one_clear_message(result, seconds, "host refused", f"'{host}'", f"add {host} to")


def test_debug_flag_shows_the_traceback(trainer_env, tmp_path):
    env = dict(trainer_env, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    result = run_script(SCRIPTS[0], cwd=tmp_path, env=env, args=["--debug"])
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "error: cannot reach" in result.stderr


# --- the embedded default ------------------------------------------------------------------

OLD_FILE_STORE_META = "artifact_location: mlruns/0\nexperiment_id: '0'\nlifecycle_stage: active\nname: Default\n"


def test_old_mlruns_file_store_in_the_folder(tmp_path):
    for entry in ENTRY_POINTS:
        (folder_for(tmp_path, entry) / "mlruns/0").mkdir(parents=True)
        (folder_for(tmp_path, entry) / "mlruns/0/meta.yaml").write_text(OLD_FILE_STORE_META)
    for result, seconds in run_all(clean_env({}), tmp_path).values():
        assert_one_clear_message(result, seconds, "old file store")
    # Fixed as the message says: the same command succeeds, the old store is untouched.
    for entry in ENTRY_POINTS:
        shutil.move(folder_for(tmp_path, entry) / "mlruns", folder_for(tmp_path, entry) / "mlruns.old")
    for entry, (result, _) in run_all(clean_env({}), tmp_path).items():
        assert result.returncode == 0, result.stderr
        assert (folder_for(tmp_path, entry) / "mlruns.old/0/meta.yaml").read_text() == OLD_FILE_STORE_META


# --- what the tutorial says about faults -------------------------------------------------


def test_mlflow_retries_for_long_by_default():
    """Why the examples check first: MLflow's defaults, and what the compose trainer sets instead."""
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.default, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default) == (7, 2)
    assert compose_service("trainer")["environment"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_boto3_waits_a_minute_three_times_by_default():
    """Why the checks give S3 clients their own defaults: boto3's, which no setting of MLflow changes."""
    import boto3
    from botocore.retries.standard import DEFAULT_MAX_ATTEMPTS

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert (s3.meta.config.read_timeout, s3.meta.config.retries, DEFAULT_MAX_ATTEMPTS) == (60, {"mode": "standard"}, 3)


def test_troubleshooting_table_quotes_every_message():
    section = TROUBLESHOOTING.read_text().split("## Every message")[1].split("\n## ")[0]
    for error, fix in MESSAGES.values():
        assert error in section and fix in section, (error, fix)


STOPPABLE = """
import sys, time
import mlflow
from common.checks import checked_setup
with checked_setup("stopped"):
    mlflow.set_experiment("stopped")
    with mlflow.start_run() as run:
        print(run.info.run_id, flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize(
    "stop, said",
    [
        (signal.SIGTERM, "stopped by SIGTERM"),
        (signal.SIGINT, "stopped with Ctrl+C"),
        (signal.SIGQUIT, "stopped by SIGQUIT"),  # Ctrl+\ (backslash): a silent kill before, the run left RUNNING
        (signal.SIGUSR1, "stopped by SIGUSR1"),
    ],
)
def test_stopped_from_outside_marks_the_run_failed(stop, said, tmp_path):
    """A closed terminal, `timeout`, a cancelled job, Ctrl+C or Ctrl+\\ in the middle of a run: two
    lines, exit status 128 + the signal's number (130 for Ctrl+C, 143 for SIGTERM, as a shell reports
    a process the signal ended), and the run marked FAILED (checked_setup, which the examples run under)."""
    env = dict(clean_env({}), PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPABLE], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_id = process.stdout.readline().strip()
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + stop and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-2:] == [
        f"error: {said} (run {run_id} is marked FAILED)",
        "fix: run the same command again when you want to",
    ]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(run_id).info.status == "FAILED"


def test_killed_run_stays_running_until_closed(tmp_path):
    """SIGKILL cannot be handled: the run stays RUNNING, and the command the tutorial shows
    (the one a `fix:` line gives) marks it FAILED."""
    env = dict(clean_env({}), PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-c", STOPPABLE], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    run_id = process.stdout.readline().strip()
    process.kill()
    process.communicate(timeout=60)
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri)
    assert client.get_run(run_id).info.status == "RUNNING"
    mlflow.set_tracking_uri(tracking_uri)
    try:
        command = shlex.split(_close_command(run_id).split(": ", 1)[1])  # as a shell reads it
    finally:
        mlflow.set_tracking_uri(None)
    subprocess.run([sys.executable, *command[1:]], env=clean_env({}), check=True, timeout=60)
    assert client.get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize("pause", [0, 0.05, 0.3])
def test_ctrl_c_twice_still_ends_in_two_lines(pause, tmp_path):
    """An impatient second Ctrl+C, while the first is being handled (a 134-line traceback before):
    still two lines and exit status 130 (or killed by SIGINT, which a shell also reports as 130); the run is FAILED, or the message names it and says how
    to close it."""
    env = dict(clean_env({}), PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPABLE], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run_id = process.stdout.readline().strip()
    process.send_signal(signal.SIGINT)
    time.sleep(pause)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = stderr.strip().splitlines()
    # 130: from checked_setup; -2: the second came once it had put Python's own handler back, which
    # ended the process by SIGINT (a shell says 130 for both).
    assert process.returncode in (130, -signal.SIGINT) and "Traceback" not in stderr, stderr  # also after the two lines
    assert [line.split(":")[0] for line in lines[-2:]] == ["error", "fix"], stderr
    assert sum(line.startswith("error:") for line in lines) == 1, stderr
    status = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).info.status
    assert status == "FAILED" or f"run {run_id} may stay RUNNING" in stderr, stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_python_loads_mlflow_writes_nothing(stop, tmp_path):
    """Before the checks start (Python still importing MLflow), Ctrl+C gets Python's own traceback
    and another stop signal ends the process at once, as the tutorial says: no run, no database,
    no artifact folder."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / SCRIPTS[0])], cwd=tmp_path, env=clean_env({}), stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.3)  # importing MLflow alone takes about two seconds
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    if stop == signal.SIGINT:
        assert process.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    else:
        assert process.returncode == -stop, stderr  # killed by the signal, as the shell reports (143)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_stop_after_the_run_has_finished(tmp_path):
    """A SIGTERM just after the last line (the run FINISHED, Python ending): still in the example,
    the two lines that say the run had finished (exit status 143); after checked_setup has put
    the process back, killed by the signal as any program (-15, a shell says 143); or it ended
    first (0). Never a FAILED run."""
    env = dict(clean_env({}), PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, str(REPO / SCRIPTS[0])], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines = iter(process.stdout.readline, "")
    run_id = next(line for line in lines if line.startswith("run id")).split(":")[1].strip()
    next(line for line in lines if line.startswith("open the UI"))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, -signal.SIGTERM) or stderr.strip().splitlines()[-2:] == [
        f"error: stopped by SIGTERM after run {run_id} had finished (all its files are logged)",
        "fix: nothing to do again: that run is complete",
    ], (process.returncode, stderr)
    assert process.returncode in (0, 143, -signal.SIGTERM)
    assert mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).info.status == "FINISHED"


SWALLOWING = """
import os, signal, time
from common.checks import checked_setup
with checked_setup("swallowed"):
    try:  # as MLflow does around the tags of a new run: every Exception is logged and forgotten
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except Exception:
        pass
    print("went on")
"""


def test_a_stop_is_no_exception_that_code_can_swallow(tmp_path):
    """A SIGTERM that landed in MLflow's tag resolution (`except Exception` around each tag
    provider, mlflow/tracking/context/registry.py) was logged as a warning, and the run went on
    to exit 0. A stop is a KeyboardInterrupt now, as Ctrl+C's is: no Exception."""
    result = subprocess.run(
        [sys.executable, "-c", SWALLOWING], cwd=tmp_path, env=dict(clean_env({}), PYTHONPATH=str(REPO)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 143 and "went on" not in result.stdout, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-2:] == [  # after MLflow's INFO lines (the checks make mlflow.db)
        "error: stopped by SIGTERM",
        "fix: run the same command again when you want to",
    ]


def test_sigterm_during_an_mlflow_call_is_called_a_stop(trainer_env, tmp_path):
    """A SIGTERM while MLflow waits for the tracking server: MLflow wraps it in its own error,
    and the message used to call it an MLflow failure, with the generic fix."""
    from support.faults import FaultyServer

    mlflow.MlflowClient(trainer_env["MLFLOW_TRACKING_URI"]).create_experiment("stopped-mid-call")
    with FaultyServer("hang", trainer_env["MLFLOW_TRACKING_URI"], paths=("/api/2.0/mlflow/runs/create",)) as server:
        env = dict(trainer_env, MLFLOW_TRACKING_URI=server.url, MLFLOW_EXPERIMENT_NAME="stopped-mid-call")
        process = subprocess.Popen(
            [sys.executable, str(REPO / SCRIPTS[0])], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        while not process.stdout.readline().startswith("artifact root"):  # next: runs/create, which hangs
            assert process.poll() is None, process.stderr.read()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in stderr, stderr
    error, fix = stderr.strip().splitlines()[-2:]
    # It came while the server was to start the run: that may have happened all the same.
    assert error == "error: stopped by SIGTERM; the server may have started the run anyway, and it would stay RUNNING"
    assert fix.startswith("fix: run the same command again when you want to; once the server answers")
