"""S3 faults: unreachable, not configured, no bucket, a wrong key, an upload refused mid-run.

As in test_faults.py, the preflight and both examples run at once with the compose trainer's
environment and one thing broken; afterwards the same command succeeds and the run made before the faults is
unchanged, in the bucket and on the tracking server.
"""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from support.docs import printed
from support.examples import run_script
from support.faults import SCRIPTS, assert_one_clear_message, run_all, run_and_time
from support.stack import free_port, s3_server_client, start_s3_server, with_key


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


# --- the S3 artifact store -----------------------------------------------------------------


def test_s3_endpoint_not_reachable(before_faults, trainer_env, tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    for result, seconds in run_all(dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=endpoint), tmp_path).values():
        assert_one_clear_message(result, seconds, "s3 down", endpoint)


def test_s3_endpoint_setting_missing(before_faults, trainer_env, tmp_path):
    env = {k: v for k, v in trainer_env.items() if k != "MLFLOW_S3_ENDPOINT_URL"}
    for result, seconds in run_all(env, tmp_path).values():
        assert_one_clear_message(result, seconds, "s3 endpoint unset", "would upload to Amazon S3", "http://minio:9000")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "http://[::1:9000", "minio"])
def test_s3_endpoint_that_is_not_an_address(endpoint, before_faults, trainer_env, tmp_path):
    """A typo like `minio:9000` without http:// used to end in boto3's ValueError traceback."""
    env = dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=endpoint)
    for result, seconds in run_all(env, tmp_path).values():
        assert_one_clear_message(result, seconds, "s3 endpoint not an address", repr(endpoint))


def test_bucket_missing_then_created(stack, before_faults, trainer_env, tmp_path):
    server, endpoint = start_s3_server(tmp_path)  # an S3 server without the bucket
    try:
        # An experiment of its own: its finished runs keep their files in this S3 server, which
        # stops at the end; in 02-artifacts they would break pattern G's load_table later on.
        env = dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=endpoint, MLFLOW_EXPERIMENT_NAME="bucket-created-later")
        for result, seconds in run_all(env, tmp_path).values():
            assert_one_clear_message(result, seconds, "no bucket", f"bucket '{stack.bucket}'", endpoint)
        # Fixed: the same command succeeds.
        s3_server_client(endpoint).create_bucket(Bucket=stack.bucket)
        for result, _ in run_all(env, tmp_path).values():
            assert result.returncode == 0, result.stderr
    finally:
        server.stop()


@pytest.mark.parametrize(
    "wrong, fault",
    [
        ("secret", "wrong secret"),
        ("key", "unknown key"),
    ],
)
def test_wrong_s3_credentials(wrong, fault, stack, before_faults, trainer_env, tmp_path):
    """The S3 server checks keys (INITIAL_NO_AUTH_ACTION_COUNT): a wrong one is refused."""
    key = {"AccessKeyId": trainer_env["AWS_ACCESS_KEY_ID"], "SecretAccessKey": trainer_env["AWS_SECRET_ACCESS_KEY"]}
    key["SecretAccessKey" if wrong == "secret" else "AccessKeyId"] = "wrong"
    for result, seconds in run_all(with_key(trainer_env, key), tmp_path).values():
        assert_one_clear_message(result, seconds, fault, stack.s3_endpoint)
        assert "wrong" not in result.stderr and trainer_env["AWS_SECRET_ACCESS_KEY"] not in result.stderr


def test_upload_refused_mid_run_marks_the_run_failed(stack, before_faults, reader_key, trainer_env, tmp_path):
    """`reader` passes the check (it may list the bucket) but may not upload."""
    result, seconds = run_and_time(SCRIPTS[0], with_key(trainer_env, reader_key), tmp_path)
    assert_one_clear_message(result, seconds, "upload denied", f"bucket '{stack.bucket}'")
    run = MlflowClient(stack.tracking_uri).get_run(printed(result.stdout, "run id"))
    assert run.info.status == "FAILED"


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
