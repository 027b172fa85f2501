"""MLflow's MinIO users may use the artifact bucket and nothing else: the trainer's reads and
writes (minio/mlflow-artifacts-policy.json), the tracking server's reads and deletes
(minio/mlflow-server-policy.json); in proxied mode the server holds the trainer's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from support.stack import (
    ARTIFACTS_POLICY,
    COMPOSE_FILE,
    PROXIED_FILE,
    REPO,
    SERVER_POLICY,
    argument,
    compose_config,
    compose_service,
    map_hosts,
)


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


def test_server_user_reads_and_deletes_but_cannot_write(stack):
    """Direct mode: the server reads (UI listings and previews) and deletes (`mlflow gc`)."""
    stack.s3().put_object(Bucket=stack.bucket, Key="least-privilege/server.txt", Body=b"x")
    server = stack.client("s3", key=stack.server_key)
    assert server.get_object(Bucket=stack.bucket, Key="least-privilege/server.txt")["Body"].read() == b"x"
    with pytest.raises(ClientError, match="AccessDenied"):
        server.put_object(Bucket=stack.bucket, Key="least-privilege/server-wrote.txt", Body=b"x")
    server.delete_object(Bucket=stack.bucket, Key="least-privilege/server.txt")
    assert stack.keys("least-privilege/server") == []


@pytest.mark.parametrize("policy", [ARTIFACTS_POLICY, SERVER_POLICY], ids=lambda p: p.stem)
def test_policy_names_only_the_artifact_bucket(policy):
    bucket = argument(compose_service("mlflow")["command"], "--default-artifact-root").removeprefix("s3://").strip("/")
    resources = {r for s in json.loads(policy.read_text())["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_server_policy_allows_no_writes():
    actions = {a for s in json.loads(SERVER_POLICY.read_text())["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:DeleteObject"}


@pytest.mark.parametrize("user, key", [("mlflow-artifacts", "ARTIFACTS"), ("mlflow-server", "SERVER")])
def test_bucket_job_creates_the_users_with_the_policy_files(user, key):
    job = compose_service("create-bucket")
    mounts = {(volume["source"], volume["target"], volume.get("read_only")) for volume in job["volumes"]}
    assert (str(REPO / f"minio/{user}-policy.json"), f"/policy/{user}.json", True) in mounts
    command = job["command"][0].replace("$$", "$")  # `config` keeps Compose's escape; the container gets one $
    for step in (
        f"mc admin policy create local {user} /policy/{user}.json",
        f'mc admin user add local "${{{key}_ACCESS_KEY}}" "${{{key}_SECRET_KEY}}"',
        f'mc admin policy attach local {user} --user "${{{key}_ACCESS_KEY}}"',
    ):
        assert step in command


@pytest.mark.parametrize(
    "service, files, key",
    [
        ("trainer", (COMPOSE_FILE,), "ARTIFACTS"),
        ("mlflow", (COMPOSE_FILE,), "SERVER"),
        ("mlflow", (COMPOSE_FILE, PROXIED_FILE), "ARTIFACTS"),
    ],
    ids=["trainer", "mlflow-direct", "mlflow-proxied"],
)
def test_services_use_their_own_user_never_the_minio_root(service, files, key):
    env = compose_service(service, files)["environment"]
    job = compose_service("create-bucket")["environment"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        job[f"{key}_ACCESS_KEY"],
        job[f"{key}_SECRET_KEY"],
    )
    written = compose_config(files, interpolate=False)["services"][service]["environment"]  # ${...} as written
    assert "MINIO_ROOT" not in json.dumps(written)


def test_compose_healthcheck_command_passes_against_the_server(stack):
    """The mlflow service's healthcheck, run as written (python + urllib, no curl in the image)."""
    test = compose_service("mlflow")["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    # Inside the mlflow container, mlflow:5000 is the server itself (a Host header it accepts
    # whatever MLFLOW_PORT is: test_one_port_setting_moves_the_browsers_way_in).
    here = {"mlflow:5000": stack.hosts["mlflow:5000"]}
    assert subprocess.run([sys.executable, *[map_hosts(arg, here) for arg in test[2:]]], timeout=30).returncode == 0
