"""Faults: each ends in seconds with one message that says what to do, and loses nothing.

Every case runs both examples as a learner would, with the compose trainer's environment
and one thing broken: a server stopped or silent, a Host header not allowed, S3 settings
wrong or missing, a bucket gone, a key wrong, an old file store in the folder. The time to
the error is printed (run with `-s` to see it); the 10-second target is asserted only with
a wide margin, since a slow machine must not fail the suite.
"""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest
from conftest import printed, run_script
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES
from stack import REPO, clean_env, compose_service, free_port, s3_server_client, start_s3_server, with_key

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


@pytest.fixture(scope="module")
def before_faults(stack, stack_run):
    """What the bucket and the tracking server hold before any fault: must not change."""
    run, _ = stack_run
    objects = {o["Key"]: o["ETag"] for o in stack.s3().list_objects_v2(Bucket=stack.bucket)["Contents"]}
    return run, objects


@pytest.fixture(scope="module")
def reader_key(stack):
    """A key that may list the bucket but not write to it: passes the check, fails the upload."""
    iam = stack.client("iam", key=stack.root_key)
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{stack.bucket}"]}],
    }
    iam.put_user_policy(UserName="reader", PolicyName="list-only", PolicyDocument=json.dumps(policy))
    return iam.create_access_key(UserName="reader")["AccessKey"]


# --- the tracking server -------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_tracking_server_not_running(script, before_faults, trainer_env, tmp_path):
    address = f"http://127.0.0.1:{free_port()}"
    result, seconds = run_and_time(script, dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path)
    assert_one_clear_message(result, seconds, "server down", address)


@pytest.mark.parametrize("script", SCRIPTS)
def test_tracking_server_that_never_answers(script, before_faults, trainer_env, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never replies
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result, seconds = run_and_time(script, dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path)
    assert_one_clear_message(result, seconds, "server silent", address)


@pytest.mark.parametrize("script", SCRIPTS)
def test_host_header_not_allowed(script, before_faults, trainer_env, tmp_path):
    # 127.1 is 127.0.0.1 written short: the same server, a Host header it does not list.
    host = trainer_env["MLFLOW_TRACKING_URI"].replace("//127.0.0.1:", "//127.1:").removeprefix("http://")
    env = dict(trainer_env, MLFLOW_TRACKING_URI=f"http://{host}")
    result, seconds = run_and_time(script, env, tmp_path)
    assert_one_clear_message(result, seconds, "host refused", f"'{host}'", f"add {host} to")


# --- the S3 artifact store -----------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_s3_endpoint_not_reachable(script, before_faults, trainer_env, tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    result, seconds = run_and_time(script, dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=endpoint), tmp_path)
    assert_one_clear_message(result, seconds, "s3 down", endpoint)


@pytest.mark.parametrize("script", SCRIPTS)
def test_s3_endpoint_setting_missing(script, before_faults, trainer_env, tmp_path):
    env = {k: v for k, v in trainer_env.items() if k != "MLFLOW_S3_ENDPOINT_URL"}
    result, seconds = run_and_time(script, env, tmp_path)
    assert_one_clear_message(result, seconds, "s3 endpoint unset", "would upload to Amazon S3", "http://minio:9000")


@pytest.mark.parametrize("script", SCRIPTS)
def test_bucket_missing_then_created(script, stack, before_faults, trainer_env, tmp_path):
    server, endpoint = start_s3_server(tmp_path)  # an S3 server without the bucket
    try:
        env = dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=endpoint)
        result, seconds = run_and_time(script, env, tmp_path)
        assert_one_clear_message(result, seconds, "no bucket", f"bucket '{stack.bucket}'", endpoint)
        # Fixed: the same command succeeds.
        s3_server_client(endpoint).create_bucket(Bucket=stack.bucket)
        assert run_script(script, cwd=tmp_path, env=env).returncode == 0
    finally:
        server.stop()


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "wrong, fault",
    [
        ("secret", "wrong secret"),
        ("key", "unknown key"),
    ],
)
def test_wrong_s3_credentials(script, wrong, fault, stack, before_faults, trainer_env, tmp_path):
    """The S3 server checks keys (INITIAL_NO_AUTH_ACTION_COUNT): a wrong one is refused."""
    key = {"AccessKeyId": trainer_env["AWS_ACCESS_KEY_ID"], "SecretAccessKey": trainer_env["AWS_SECRET_ACCESS_KEY"]}
    key["SecretAccessKey" if wrong == "secret" else "AccessKeyId"] = "wrong"
    result, seconds = run_and_time(script, with_key(trainer_env, key), tmp_path)
    assert_one_clear_message(result, seconds, fault, stack.s3_endpoint)
    assert "wrong" not in result.stderr and trainer_env["AWS_SECRET_ACCESS_KEY"] not in result.stderr


def test_upload_refused_mid_run_marks_the_run_failed(stack, before_faults, reader_key, trainer_env, tmp_path):
    """`reader` passes the check (it may list the bucket) but may not upload."""
    result, seconds = run_and_time(SCRIPTS[0], with_key(trainer_env, reader_key), tmp_path)
    assert_one_clear_message(result, seconds, "upload denied", f"bucket '{stack.bucket}'")
    run = MlflowClient(stack.tracking_uri).get_run(printed(result.stdout, "run id"))
    assert run.info.status == "FAILED"


def test_debug_flag_shows_the_traceback(before_faults, trainer_env, tmp_path):
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


# --- afterwards ----------------------------------------------------------------------------


def test_after_the_faults_the_same_command_succeeds_and_earlier_runs_are_intact(
    stack, before_faults, trainer_env, tmp_path
):
    result = run_script(SCRIPTS[0], cwd=tmp_path, env=trainer_env)
    assert result.returncode == 0, result.stderr
    run, objects = before_faults
    now = {o["Key"]: o["ETag"] for o in stack.s3().list_objects_v2(Bucket=stack.bucket)["Contents"]}
    assert {key: now.get(key) for key in objects} == objects
    again = MlflowClient(stack.tracking_uri).get_run(run.info.run_id)
    assert again.info.status == "FINISHED" and again.data.to_dictionary() == run.data.to_dictionary()


def test_mlflow_retries_for_long_by_default():
    """Why the examples check first: MLflow's defaults, and what the compose trainer sets instead."""
    assert (MLFLOW_HTTP_REQUEST_MAX_RETRIES.default, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default) == (7, 2)
    assert compose_service("trainer")["environment"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


def test_troubleshooting_table_quotes_every_message():
    section = TUTORIAL.read_text().split("## 9) Troubleshooting")[1].split("\n## ")[0]
    for error, fix in MESSAGES.values():
        assert error in section and fix in section, (error, fix)
