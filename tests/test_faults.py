"""Faults: each ends in seconds with one message that says what to do, and loses nothing.

Every case runs both examples as a learner would, with the compose trainer's environment
and one thing broken: here a tracking server stopped or silent, a Host header not allowed,
an old file store in the folder; S3 faults are in test_faults_s3.py. The time to the error
is printed (run with `-s` to see it); the 10-second target is asserted only with a wide
margin, since a slow machine must not fail the suite.
"""

from __future__ import annotations

import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_script
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES
from stack import REPO, clean_env, compose_service, free_port

SCRIPTS = ["examples/02_artifacts/run.py", "examples/01_log_artifact/run.py"]

# The fixed part of each message (error, fix). The tutorial's troubleshooting table quotes them.
MESSAGES = {
    "server down": ("cannot reach the MLflow tracking server at", "start it (`docker compose up -d`)"),
    "server silent": ("did not answer within 5 s", "`docker compose logs mlflow`"),
    "host refused": ("refused the Host header", "to the server's --allowed-hosts"),
    "s3 down": ("cannot reach the S3 endpoint", "start MinIO (`docker compose up -d minio`)"),
    "s3 endpoint unset": ("MLFLOW_S3_ENDPOINT_URL is not set", "set MLFLOW_S3_ENDPOINT_URL=http://localhost:9000"),
    "no bucket": ("does not exist at", "`docker compose up create-bucket`"),
    "wrong secret": ("rejected the secret key", "set AWS_SECRET_ACCESS_KEY"),
    "unknown key": ("does not know the access key", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    "upload denied": ("may not use bucket", "s3:PutObject"),
    "old file store": ("old MLflow file store (./mlruns)", "mv mlruns mlruns.old"),
}
TUTORIAL = REPO / "examples/02_artifacts/README.md"
TARGET_SECONDS = 10
MARGIN = 3  # a fault must never again take MLflow's default of four minutes


def run_and_time(script, env, cwd, *args):
    started = time.monotonic()
    result = run_script(script, cwd=cwd, env=env, args=list(args))
    return result, time.monotonic() - started


def assert_one_clear_message(result, seconds, fault, *phrases):
    """Exit status 1, no traceback, one `error:` line and one `fix:` line: MESSAGES[fault] and `phrases`."""
    print(f"\n    {seconds:4.1f} s  {result.stderr.strip().splitlines()[-2:]}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines[-2:]] == ["error", "fix"], result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    error, fix = MESSAGES[fault]
    assert error in lines[-2] and fix in lines[-1]
    for phrase in phrases:
        assert phrase in "\n".join(lines[-2:])
    assert seconds < TARGET_SECONDS * MARGIN


# --- the tracking server -------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_tracking_server_not_running(script, trainer_env, tmp_path):
    address = f"http://127.0.0.1:{free_port()}"
    result, seconds = run_and_time(script, dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path)
    assert_one_clear_message(result, seconds, "server down", address)


def test_tracking_server_that_never_answers(trainer_env, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never replies
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        env = dict(trainer_env, MLFLOW_TRACKING_URI=address)
        # Both examples at once: each waits out the trainer's 5 s timeout, no need to wait twice.
        folders = [tmp_path / str(number) for number in range(len(SCRIPTS))]
        for folder in folders:
            folder.mkdir()
        with ThreadPoolExecutor() as pool:
            results = list(pool.map(lambda script, folder: run_and_time(script, env, folder), SCRIPTS, folders))
    for result, seconds in results:
        assert_one_clear_message(result, seconds, "server silent", address)


@pytest.mark.parametrize("script", SCRIPTS)
def test_host_header_not_allowed(script, trainer_env, tmp_path):
    # 127.1 is 127.0.0.1 written short: the same server, a Host header it does not list.
    host = trainer_env["MLFLOW_TRACKING_URI"].replace("//127.0.0.1:", "//127.1:").removeprefix("http://")
    env = dict(trainer_env, MLFLOW_TRACKING_URI=f"http://{host}")
    result, seconds = run_and_time(script, env, tmp_path)
    assert_one_clear_message(result, seconds, "host refused", f"'{host}'", f"add {host} to")


def test_debug_flag_shows_the_traceback(trainer_env, tmp_path):
    env = dict(trainer_env, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    result = run_script(SCRIPTS[0], cwd=tmp_path, env=env, args=["--debug"])
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "error: cannot reach" in result.stderr


# --- the embedded default ------------------------------------------------------------------

OLD_FILE_STORE_META = "artifact_location: mlruns/0\nexperiment_id: '0'\nlifecycle_stage: active\nname: Default\n"


@pytest.mark.parametrize("script", SCRIPTS)
def test_old_mlruns_file_store_in_the_folder(script, tmp_path):
    (tmp_path / "mlruns/0").mkdir(parents=True)
    (tmp_path / "mlruns/0/meta.yaml").write_text(OLD_FILE_STORE_META)
    result, seconds = run_and_time(script, clean_env({}), tmp_path)
    assert_one_clear_message(result, seconds, "old file store")
    # Fixed as the message says: the same command succeeds, the old store is untouched.
    shutil.move(tmp_path / "mlruns", tmp_path / "mlruns.old")
    assert run_script(script, cwd=tmp_path, env=clean_env({})).returncode == 0
    assert (tmp_path / "mlruns.old/0/meta.yaml").read_text() == OLD_FILE_STORE_META


# --- what the tutorial says about faults -------------------------------------------------


def test_mlflow_retries_for_long_by_default():
    """Why the examples check first: MLflow's defaults, and what the compose trainer sets instead."""
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.default, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default) == (7, 2)
    assert compose_service("trainer")["environment"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_troubleshooting_table_quotes_every_message():
    section = TUTORIAL.read_text().split("## 9) Troubleshooting")[1].split("\n## ")[0]
    for error, fix in MESSAGES.values():
        assert error in section and fix in section, (error, fix)
