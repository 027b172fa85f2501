"""MLflow's MinIO user may use the artifact bucket and nothing else (minio/mlflow-artifacts-policy.json)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from botocore.exceptions import ClientError
from stack import ARTIFACTS_POLICY, REPO, argument, compose_service, map_hosts


def test_artifacts_user_reads_and_writes_its_bucket(stack):
    s3 = stack.s3()  # the key of the user the services run as
    s3.put_object(Bucket=stack.bucket, Key="least-privilege/x.txt", Body=b"x")
    assert s3.get_object(Bucket=stack.bucket, Key="least-privilege/x.txt")["Body"].read() == b"x"
    assert stack.keys("least-privilege/") == ["least-privilege/x.txt"]
    s3.delete_object(Bucket=stack.bucket, Key="least-privilege/x.txt")


def test_artifacts_user_cannot_touch_other_buckets(stack):
    stack.client("s3", key=stack.root_key).create_bucket(Bucket="someone-elses-bucket")
    s3 = stack.s3()
    for attempt in (
        lambda: s3.list_objects_v2(Bucket="someone-elses-bucket"),
        lambda: s3.put_object(Bucket="someone-elses-bucket", Key="x", Body=b"x"),
        lambda: s3.create_bucket(Bucket="a-new-bucket"),
    ):
        with pytest.raises(ClientError, match="AccessDenied"):
            attempt()


def test_policy_names_only_the_artifact_bucket():
    bucket = argument(compose_service("mlflow")["command"], "--default-artifact-root").removeprefix("s3://").strip("/")
    resources = {r for s in json.loads(ARTIFACTS_POLICY.read_text())["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_bucket_job_creates_the_user_with_the_policy_file():
    job = compose_service("create-bucket")
    assert "./minio/mlflow-artifacts-policy.json:/policy/mlflow-artifacts.json:ro" in job["volumes"]
    command = job["command"][0]
    for step in (
        "mc admin policy create local mlflow-artifacts /policy/mlflow-artifacts.json",
        'mc admin user add local "${ARTIFACTS_ACCESS_KEY}" "${ARTIFACTS_SECRET_KEY}"',
        'mc admin policy attach local mlflow-artifacts --user "${ARTIFACTS_ACCESS_KEY}"',
    ):
        assert step in command


@pytest.mark.parametrize("service", ["mlflow", "trainer"])
def test_services_use_that_user_never_the_minio_root(service):
    env = compose_service(service)["environment"]
    assert env["AWS_ACCESS_KEY_ID"] == compose_service("create-bucket")["environment"]["ARTIFACTS_ACCESS_KEY"]
    assert env["AWS_SECRET_ACCESS_KEY"] == compose_service("create-bucket")["environment"]["ARTIFACTS_SECRET_KEY"]
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]["environment"]
    assert not any("MINIO_ROOT" in str(value) for value in raw.values())


def test_compose_healthcheck_command_passes_against_the_server(stack):
    """The mlflow service's healthcheck, run as written (python + urllib, no curl in the image)."""
    test = compose_service("mlflow")["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    # Inside the mlflow container, localhost:5000 is the server itself (the Host header
    # localhost:5000 is accepted: test_allowed_hosts_admit_the_trainer_and_a_browser_on_the_host).
    here = {"localhost:5000": stack.hosts["mlflow:5000"]}
    assert subprocess.run([sys.executable, *[map_hosts(arg, here) for arg in test[2:]]], timeout=30).returncode == 0
