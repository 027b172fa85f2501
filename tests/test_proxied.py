"""Proxied artifacts: docker-compose.yml + docker-compose.proxied.yml, run as merged.

The merged files' tracking server runs next to the direct one, on the same PostgreSQL
database and S3 server, so the experiments made in direct mode are there too.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from conftest import printed, run_script
from mlflow import MlflowClient
from mlflow.environment_variables import (
    MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD,
    MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE,
)
from mlflow.exceptions import MlflowException
from stack import COMPOSE_FILE, PROXIED_FILE, argument, clean_env, compose_environment
from test_examples import EXPECTED_FILES, check_contents

MERGED = (COMPOSE_FILE, PROXIED_FILE)


def test_proxied_server_command_has_no_default_artifact_root(proxied):
    assert argument(proxied.server_command, "--artifacts-destination") == f"s3://{proxied.bucket}/proxied"
    assert not any(arg.startswith("--default-artifact-root") for arg in proxied.server_command)


def test_proxied_trainer_has_no_s3_settings(proxied):
    compose_env = compose_environment("trainer", {}, MERGED)
    assert not [name for name in compose_env if name.startswith("AWS_") or name.startswith("MLFLOW_S3_")]


def test_run_py_runs_unchanged_in_proxied_mode(proxied, proxied_run):
    run, stdout = proxied_run
    assert printed(stdout, "experiment").startswith("02-artifacts-proxied (id ")
    assert printed(stdout, "artifact URI") == f"mlflow-artifacts:/{run.info.experiment_id}/{run.info.run_id}/artifacts"
    assert printed(stdout, "artifact store") == "proxied: uploads go through the tracking server"
    assert run.info.status == "FINISHED" and run.info.run_name == "artifact_examples"


def test_proxied_files_still_land_in_the_bucket(proxied, proxied_run):
    run, _ = proxied_run
    prefix = f"proxied/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    assert proxied.keys(prefix) == [prefix + path for path in EXPECTED_FILES]
    s3 = proxied.s3()
    check_contents(lambda path: s3.get_object(Bucket=proxied.bucket, Key=prefix + path)["Body"].read())


def test_experiments_keep_the_artifact_location_they_were_made_with(proxied, proxied_run, trainer_env, tmp_path):
    client = MlflowClient(proxied.tracking_uri)
    assert client.get_experiment_by_name("02-artifacts").artifact_location.startswith("s3://")
    assert client.get_experiment_by_name("02-artifacts-proxied").artifact_location.startswith("mlflow-artifacts:/")
    # The direct-mode experiment, from a trainer without S3 settings: refused with a clear message.
    env = {k: v for k, v in clean_env(proxied.trainer_env).items() if k != "MLFLOW_EXPERIMENT_NAME"}
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "MLFLOW_S3_ENDPOINT_URL is not set" in result.stderr
    # And the other way round: the proxied experiment from the direct trainer, whose server
    # does not serve files (MLflow alone would answer HTTP 503 for minutes).
    env = dict(trainer_env, MLFLOW_EXPERIMENT_NAME="02-artifacts-proxied")
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2].endswith("runs with --no-serve-artifacts (the direct set-up)")
    assert "Traceback" not in result.stderr


def test_server_itself_refuses_dot_dot_paths(proxied, proxied_run):
    """Sent straight to the server's artifact API, not through MLflow's client."""
    run, _ = proxied_run
    ids = f"{run.info.experiment_id}/{run.info.run_id}"
    base = f"{proxied.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{ids}/artifacts"
    before = proxied.keys()
    for bad in ("%2E%2E/escape.txt", "reports/%2E%2E/%2E%2E/escape.txt"):
        answer = requests.put(f"{base}/{bad}", data=b"x", timeout=10)
        assert answer.status_code == 400, (bad, answer.status_code, answer.text)
        assert "Invalid path" in answer.text
    assert proxied.keys() == before


@pytest.mark.parametrize("bad_path", ["/reports/notes.md", "../escape.txt"])
def test_proxied_client_refuses_absolute_and_dot_dot_paths(proxied, proxied_run, bad_path):
    run, _ = proxied_run
    before = proxied.keys()
    with pytest.raises(MlflowException, match="Invalid artifact path"):
        MlflowClient(proxied.tracking_uri).log_text(run.info.run_id, "x", bad_path)
    assert proxied.keys() == before


def test_proxy_multipart_upload_starts_at_500_mib(proxied, proxied_run, tmp_path, monkeypatch):
    """MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD (off by default) lets clients upload large files in
    parts straight to S3, but only from MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE (500 MiB) on:
    a smaller file still goes through the tracking server in one PUT."""
    assert MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD.default is False
    assert MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.default == 500 << 20
    experiment_id = proxied_run[0].info.experiment_id
    client = MlflowClient(proxied.tracking_uri)
    run_id = client.create_run(experiment_id).info.run_id
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(12 << 20))
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    client.log_artifact(run_id, str(payload), "large")
    client.set_terminated(run_id)
    put = f"PUT /api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/large/payload.bin"
    assert put in proxied.server.log.read_text()
    prefix = f"proxied/{experiment_id}/{run_id}/"
    assert proxied.keys(prefix) == [prefix + "artifacts/large/payload.bin"]


DOWNLOAD = """
import sys, mlflow
print(mlflow.artifacts.download_artifacts(run_id=sys.argv[1], artifact_path="reports/notes.md", dst_path=sys.argv[2]))
"""


def test_proxied_trainer_downloads_through_the_server(proxied, proxied_run, tmp_path):
    """The server advertises presigned downloads straight from S3 (/server-info), which a
    trainer without a way to the object store cannot use; the override switches them off."""
    info = requests.get(f"{proxied.tracking_uri}/api/3.0/mlflow/server-info", timeout=10).json()
    assert info.get("multipart_downloads_enabled") is True
    env = clean_env(proxied.trainer_env)
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "false"
    run, _ = proxied_run
    done = subprocess.run(
        [sys.executable, "-c", DOWNLOAD, run.info.run_id, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "notes.md").read_text().startswith("# Training notes")
