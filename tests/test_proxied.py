"""Proxied artifacts: docker-compose.yml + docker-compose.proxied.yml, run as merged.

The merged files' tracking server runs next to the direct one, on the same PostgreSQL
database and S3 server, so the experiments made in direct mode are there too.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE
from mlflow.exceptions import MlflowException

from support.docs import printed
from support.examples import EXPECTED_FILES, check_contents, run_script
from support.stack import COMPOSE_FILE, PROXIED_FILE, argument, clean_env, compose_environment

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
    # The experiment's files go through the tracking server (the preflight's `artifact store` line says so).
    assert printed(stdout, "artifact root").startswith("mlflow-artifacts:/")
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


# A client on this machine in proxied mode, in a process of its own: downloads notes.md, or
# uploads a 12 MiB file, to the run given.
CLIENT = """
import os, sys, tempfile, mlflow
run_id, action = sys.argv[1], sys.argv[2]
if action == "download":
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reports/notes.md", dst_path=tempfile.mkdtemp())
else:
    payload = os.path.join(tempfile.mkdtemp(), "payload.bin")
    with open(payload, "wb") as file:
        file.write(os.urandom(12 << 20))
    mlflow.MlflowClient().log_artifact(run_id, payload, action)
"""
PROXY_SETTINGS = ("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD")


def client_requests(proxied, run_id: str, action: str, **settings: str) -> str:
    """What the tracking server logged while the client ran, with the proxied trainer's
    settings but the two proxy settings unset, plus `settings`."""
    env = {k: v for k, v in clean_env(proxied.trainer_env).items() if k not in PROXY_SETTINGS}
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", **settings)
    before = len(proxied.server.log.read_text())
    subprocess.run([sys.executable, "-c", CLIENT, run_id, action], env=env, capture_output=True, timeout=120)
    time.sleep(1)  # the access log's last lines
    return proxied.server.log.read_text()[before:]


def test_unset_proxy_settings_mean_presigned_s3_urls(proxied, proxied_run):
    """MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD / _UPLOAD unset: the client asks the server
    (/server-info), and a server whose --artifacts-destination is S3 says yes to both. Then
    every download asks for a presigned S3 URL instead of the file; an upload does so from
    MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE on (500 MiB by default; 5 MiB here), smaller
    files go through the server in one PUT. Set to false, both go through the server."""
    info = requests.get(f"{proxied.tracking_uri}/api/3.0/mlflow/server-info", timeout=10).json()
    assert info["multipart_uploads_enabled"] is True and info["multipart_downloads_enabled"] is True
    run, _ = proxied_run
    ids = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"
    presigned = f"GET /api/2.0/mlflow-artifacts/presigned/{ids}/reports/notes.md"
    through = f"GET /api/2.0/mlflow-artifacts/artifacts/{ids}/reports/notes.md"
    unset = client_requests(proxied, run.info.run_id, "download")
    assert presigned in unset and through not in unset, unset
    off = client_requests(proxied, run.info.run_id, "download", MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD="false")
    assert through in off and presigned not in off, off

    upload_run = MlflowClient(proxied.tracking_uri).create_run(run.info.experiment_id).info.run_id
    ids = f"{run.info.experiment_id}/{upload_run}/artifacts"
    assert MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE.default == 500 << 20
    below = client_requests(proxied, upload_run, "below-threshold")
    assert f"PUT /api/2.0/mlflow-artifacts/artifacts/{ids}/below-threshold/payload.bin" in below, below
    assert "/mpu/create" not in below
    lower = {"MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(5 << 20)}
    unset = client_requests(proxied, upload_run, "unset", **lower)
    assert f"POST /api/2.0/mlflow-artifacts/mpu/create/{ids}/unset HTTP" in unset, unset  # then the parts go to S3
    assert f"PUT /api/2.0/mlflow-artifacts/artifacts/{ids}/unset/" not in unset
    off = client_requests(proxied, upload_run, "off", MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD="false", **lower)
    assert f"PUT /api/2.0/mlflow-artifacts/artifacts/{ids}/off/payload.bin" in off, off
    assert "/mpu/create" not in off
    MlflowClient(proxied.tracking_uri).set_terminated(upload_run)


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


def test_the_proxied_trainer_waits_for_an_upload_the_server_stores_slowly(proxied, tmp_path):
    """In proxied mode the server answers an upload once the file is in the bucket. A server
    that takes 8 s for that (a large file; here a proxy holds the upload 8 s): the proxied
    trainer's 60 s wait takes it, the direct trainer's 5 s would have failed the run."""
    from support.faults import FaultyServer

    with FaultyServer("slow", proxied.tracking_uri, methods={"PUT"}, paths=("/api/2.0/mlflow-artifacts/",)) as slow:
        env = dict(clean_env(proxied.trainer_env), MLFLOW_TRACKING_URI=slow.url)
        assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
        upload = "import mlflow\nwith mlflow.start_run():\n    mlflow.log_text('x', artifact_file='slow.txt')\n"
        waited = subprocess.run([sys.executable, "-c", upload], env=env, capture_output=True, text=True, timeout=120)
        assert waited.returncode == 0, waited.stderr
        short = subprocess.run(
            [sys.executable, "-c", upload], env=dict(env, MLFLOW_HTTP_REQUEST_TIMEOUT="5"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert short.returncode != 0 and "timed out" in short.stderr.lower(), short.stderr[-2000:]
