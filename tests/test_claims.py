"""Every behaviour examples/02_artifacts/README.md states, shown on real stores.

Most tests run twice: on MLflow's embedded default (SQLite + ./mlruns) and on the
compose stack (tracking server + PostgreSQL + S3, direct uploads). Test names say
the claim; the README's sections name the tests.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from PIL import Image
from stack import s3_server_client, start_s3_server

from common.mlflow_env import artifact_tree


@pytest.fixture
def run(mlflow_store):
    mlflow.set_experiment("claims")
    with mlflow.start_run() as active:
        yield active


def artifacts(run_id: str) -> list[str]:
    """File paths of a run, as the store lists them (the helper run.py prints them with)."""
    return sorted(artifact_tree(run_id))


def text_of(run, path: str) -> str:
    return mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{path}")


# --- "artifact_file": the same path overwrites -------------------------------------------


def test_log_text_same_path_overwrites(run):
    mlflow.log_text("first", artifact_file="reports/notes.md")
    mlflow.log_text("second", artifact_file="reports/notes.md")
    assert text_of(run, "reports/notes.md") == "second"
    assert artifacts(run.info.run_id) == ["reports/notes.md"]


def test_log_dict_same_path_overwrites(run):
    mlflow.log_dict({"lr": 0.1}, artifact_file="configs/train.json")
    mlflow.log_dict({"bs": 64}, artifact_file="configs/train.json")
    assert json.loads(text_of(run, "configs/train.json")) == {"bs": 64}


def test_log_image_same_path_overwrites(run):
    mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), artifact_file="images/x.png")
    mlflow.log_image(np.full((8, 8, 3), 255, dtype=np.uint8), artifact_file="images/x.png")
    image = mlflow.artifacts.load_image(f"runs:/{run.info.run_id}/images/x.png")
    assert image.size == (8, 8)


def test_log_artifact_same_path_overwrites(run, tmp_path):
    local = tmp_path / "report.txt"
    local.write_text("first")
    mlflow.log_artifact(str(local), artifact_path="reports")
    local.write_text("second")
    mlflow.log_artifact(str(local), artifact_path="reports")
    assert text_of(run, "reports/report.txt") == "second"


def test_backslash_is_part_of_the_file_name(run):
    mlflow.log_text("x", artifact_file="reports\\notes.md")
    assert artifacts(run.info.run_id) == ["reports\\notes.md"]


def test_intermediate_folders_are_created(run):
    mlflow.log_text("deep", artifact_file="a/b/c/deep.txt")
    assert artifacts(run.info.run_id) == ["a/b/c/deep.txt"]


# --- log_table appends -------------------------------------------------------------------


def test_log_table_same_path_appends_rows(run):
    mlflow.log_table(pd.DataFrame({"epoch": [1], "loss": [0.9]}), artifact_file="tables/metrics.json")
    mlflow.log_table(pd.DataFrame({"epoch": [2], "loss": [0.5]}), artifact_file="tables/metrics.json")
    table = json.loads(text_of(run, "tables/metrics.json"))
    assert table["columns"] == ["epoch", "loss"]
    assert table["data"] == [[1, 0.9], [2, 0.5]]


def test_log_table_needs_json_or_parquet(run):
    with pytest.raises(ValueError, match=r"\.json|\.parquet"):
        mlflow.log_table(pd.DataFrame({"a": [1]}), artifact_file="tables/metrics.csv")


def test_log_table_marks_the_file_as_a_table_for_the_ui(run):
    mlflow.log_table(pd.DataFrame({"a": [1]}), artifact_file="tables/metrics.json")
    tag = mlflow.get_run(run.info.run_id).data.tags["mlflow.loggedArtifacts"]
    assert {"path": "tables/metrics.json", "type": "table"} in json.loads(tag)


# --- what each function accepts --------------------------------------------------------------


def test_log_dict_picks_json_or_yaml_from_the_extension(run):
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.json")
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.yaml")
    assert json.loads(text_of(run, "configs/train.json")) == {"lr": 0.001}
    assert yaml.safe_load(text_of(run, "configs/train.yaml")) == {"lr": 0.001}
    with pytest.raises(json.JSONDecodeError):
        json.loads(text_of(run, "configs/train.yaml"))


def test_log_image_takes_a_numpy_array_or_a_pil_image(run):
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    mlflow.log_image(array, artifact_file="images/from_numpy.png")
    mlflow.log_image(Image.fromarray(array), artifact_file="images/from_pil.png")
    for name in ("from_numpy", "from_pil"):
        image = mlflow.artifacts.load_image(f"runs:/{run.info.run_id}/images/{name}.png")
        np.testing.assert_array_equal(np.asarray(image), array)


# --- "artifact_path": a folder; the name comes from the local file ---------------------------


def test_log_artifact_path_is_a_folder_and_keeps_the_local_file(run, tmp_path):
    local = tmp_path / "outputs" / "report.txt"
    local.parent.mkdir()
    local.write_text("local copy kept")
    mlflow.log_artifact(str(local), artifact_path="reports")
    assert artifacts(run.info.run_id) == ["reports/report.txt"]
    assert local.read_text() == "local copy kept"


def test_log_artifact_without_artifact_path_goes_to_the_run_root(run, tmp_path):
    local = tmp_path / "report.txt"
    local.write_text("x")
    mlflow.log_artifact(str(local))
    assert artifacts(run.info.run_id) == ["report.txt"]


def test_temporary_directory_pattern_leaves_nothing_behind(run):
    with TemporaryDirectory() as tmp:
        p = Path(tmp) / "report.txt"
        p.write_text("temporary")
        mlflow.log_artifact(str(p), artifact_path="reports")
    assert not Path(tmp).exists()
    assert text_of(run, "reports/report.txt") == "temporary"


# --- "no local file" means: a temporary file, deleted again ----------------------------------

WATCH_WRITES = """
import sys
written = []
def watch(event, args):
    if event == "open" and isinstance(args[0], str) and args[1] and any(m in args[1] for m in "wax"):
        written.append(args[0])
sys.addaudithook(watch)
import mlflow, pandas as pd, numpy as np
mlflow.set_experiment("claims")
with mlflow.start_run():
    written.clear()
    mlflow.log_text("hello", artifact_file="reports/notes.md")
    mlflow.log_dict({"a": 1}, artifact_file="configs/c.json")
    mlflow.log_table(pd.DataFrame({"a": [1]}), artifact_file="tables/t.json")
    mlflow.log_image(np.zeros((2, 2, 3), dtype=np.uint8), artifact_file="images/i.png")
    print("\\n".join("WROTE " + path for path in written))
"""


def test_log_functions_write_a_temp_file_under_tmpdir_and_delete_it(tmp_path, stack, trainer_env):
    """Against the compose stack, so no file at all is expected in the working directory."""
    workdir, tmpdir = tmp_path / "work", tmp_path / "tmp"
    workdir.mkdir(), tmpdir.mkdir()
    env = dict(trainer_env, TMPDIR=str(tmpdir))
    result = subprocess.run(
        [sys.executable, "-c", WATCH_WRITES], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    written = [Path(line.removeprefix("WROTE ")) for line in result.stdout.splitlines() if line.startswith("WROTE ")]
    names = {p.name for p in written}
    assert {"notes.md", "c.json", "t.json", "i.png"} <= names
    assert all(p.is_relative_to(tmpdir) for p in written)
    assert list(workdir.iterdir()) == [] and list(tmpdir.iterdir()) == []


# --- where the bytes land --------------------------------------------------------------------


def test_artifact_uri_shape(run, mlflow_store, request):
    ids = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"
    if mlflow_store == "embedded":
        expected = f"{request.getfixturevalue('embedded_dir')}/mlruns/{ids}"
    else:
        expected = f"s3://mlflow-artifacts/{ids}"
    assert mlflow.get_artifact_uri() == expected
    assert mlflow.get_artifact_uri("reports/notes.md") == expected + "/reports/notes.md"


LOG_ONE_FILE = """
import mlflow
mlflow.set_experiment("claims")
with mlflow.start_run() as run:
    mlflow.log_text("x", artifact_file="x.txt")
print(f"{run.info.experiment_id}/{run.info.run_id}")
"""


def log_one_file(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Plain MLflow in its own process with `env`: one log_text, then print '<experiment id>/<run id>'."""
    return subprocess.run([sys.executable, "-c", LOG_ONE_FILE], env=env, capture_output=True, text=True, timeout=120)


def test_direct_s3_client_needs_credentials(stack, trainer_env):
    """With an s3:// artifact root the client, not the server, talks to S3."""
    result = log_one_file(
        {k: v for k, v in trainer_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    )
    assert result.returncode != 0
    assert "NoCredentialsError" in result.stderr or "Unable to locate credentials" in result.stderr


def test_direct_s3_client_uploads_to_its_own_endpoint(stack, trainer_env, tmp_path):
    """The server's MLFLOW_S3_ENDPOINT_URL plays no part: the bytes go where the client's points."""
    other_server, other_endpoint = start_s3_server(tmp_path)
    try:
        other = s3_server_client(other_endpoint)
        other.create_bucket(Bucket=stack.bucket)
        result = log_one_file(dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=other_endpoint))
        assert result.returncode == 0, result.stderr
        key = f"{result.stdout.split()[-1]}/artifacts/x.txt"
        assert [o["Key"] for o in other.list_objects_v2(Bucket=stack.bucket)["Contents"]] == [key]
        assert stack.keys(key) == []
    finally:
        other_server.stop()


def test_direct_s3_client_without_endpoint_would_go_to_amazon(stack, trainer_env):
    """Without MLFLOW_S3_ENDPOINT_URL boto3 heads for Amazon S3.

    Nothing leaves this machine: HTTPS goes through a local proxy that writes down
    which host the client asked for and hangs up.
    """
    asked = []
    with socket.create_server(("127.0.0.1", 0)) as proxy:
        proxy.settimeout(60)

        def record_and_hang_up():
            for _ in range(3):
                try:
                    conn, _ = proxy.accept()
                except OSError:
                    return
                with conn:
                    asked.append(conn.recv(1024).decode(errors="replace").split("\r\n")[0])

        listener = threading.Thread(target=record_and_hang_up, daemon=True)
        listener.start()
        env = {k: v for k, v in trainer_env.items() if k != "MLFLOW_S3_ENDPOINT_URL"}
        env.update(
            HTTPS_PROXY=f"http://127.0.0.1:{proxy.getsockname()[1]}",
            NO_PROXY="127.0.0.1,localhost",
            AWS_MAX_ATTEMPTS="1",
            AWS_DEFAULT_REGION="us-east-1",
        )
        result = log_one_file(env)
    assert result.returncode != 0
    assert asked and asked[0].startswith(f"CONNECT {stack.bucket}.s3.amazonaws.com:443 "), asked


# --- bad paths: only some stores refuse them -------------------------------------------------


EMBEDDED_ONLY = pytest.mark.parametrize("mlflow_store", ["embedded"], indirect=True)
S3_ONLY = pytest.mark.parametrize("mlflow_store", ["s3-direct"], indirect=True)


@EMBEDDED_ONLY
@pytest.mark.parametrize("bad_path", ["/reports/notes.md", "../escape.txt", "reports/../../x.txt"])
def test_bad_paths_refused_by_the_local_store(run, bad_path):
    with pytest.raises(MlflowException, match="Invalid artifact path"):
        mlflow.log_text("x", artifact_file=bad_path)


@S3_ONLY
def test_bad_paths_accepted_by_a_direct_s3_root(run, stack):
    """MLflow's S3 store checks no paths: an absolute one leaves the run, `..` stays literal."""
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"
    mlflow.log_text("absolute", artifact_file="/reports/notes.md")
    mlflow.log_text("dots", artifact_file="../escape.txt")
    keys = stack.keys()
    assert "/reports/notes.md" in keys  # at the bucket root, in no run at all
    assert f"{prefix}/../escape.txt" in keys
    assert artifacts(run.info.run_id) == ["../escape.txt"]


# --- large files ----------------------------------------------------------------------------


@S3_ONLY
def test_direct_s3_uploads_ignore_the_multipart_chunk_size(run, stack, tmp_path, monkeypatch):
    """In direct mode boto3's upload_file splits a large file itself, in 8 MiB parts:
    MLflow's MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE plays no part."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(12 << 20))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 << 20))
    mlflow.log_artifact(str(payload), artifact_path="large")
    key = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/large/payload.bin"
    etag = stack.s3().head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-2")  # 12 MiB in 8 MiB parts; 5 MiB parts would have made 3


# --- getting files back ----------------------------------------------------------------------


def test_download_artifacts_destinations(run, tmp_path, monkeypatch):
    mlflow.log_text("done!", artifact_file="reports/summary.txt")
    run_id = run.info.run_id
    monkeypatch.chdir(tmp_path)

    # A file into dst_path: dst_path/<file name>.
    got = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports/summary.txt", dst_path="downloads")
    assert Path(got) == (tmp_path / "downloads" / "summary.txt").resolve()

    # A folder into dst_path: the folder is kept.
    got = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports", dst_path="folder")
    assert (tmp_path / "folder" / "reports" / "summary.txt").read_text() == "done!"
    assert Path(got) == (tmp_path / "folder" / "reports").resolve()

    # No dst_path: a new temporary folder, which nobody cleans up for you.
    got = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports/summary.txt"))
    assert got.read_text() == "done!"
    assert not got.is_relative_to(tmp_path)
    assert got.exists()


# --- a run that fails ------------------------------------------------------------------------


def test_exception_in_start_run_marks_the_run_failed(mlflow_store):
    mlflow.set_experiment("claims")
    with pytest.raises(RuntimeError):
        with mlflow.start_run() as failed:
            raise RuntimeError("training crashed")
    assert mlflow.get_run(failed.info.run_id).info.status == "FAILED"


# --- models ----------------------------------------------------------------------------------


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[str]) -> list[str]:
        return model_input


def test_log_model_takes_name_and_stores_models_outside_run_artifacts(run):
    info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
    assert info.model_uri == f"models:/{info.model_id}" and info.model_id.startswith("m-")
    location = mlflow.get_logged_model(info.model_id).artifact_location
    assert location.endswith(f"{run.info.experiment_id}/models/{info.model_id}/artifacts")
    assert artifacts(run.info.run_id) == []
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.predict(["hi"]) == ["hi"]


def test_log_model_artifact_path_is_deprecated(run):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("mlflow.models.model")
    logger.addHandler(handler)
    try:
        mlflow.pyfunc.log_model(artifact_path="model", python_model=Echo(), pip_requirements=["mlflow"])
    finally:
        logger.removeHandler(handler)
    assert any("`artifact_path` is deprecated. Please use `name` instead." in r.getMessage() for r in records)
