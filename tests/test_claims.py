"""Every behaviour examples/02_artifacts/README.md states, shown on real stores.

Most tests run three times: on MLflow's embedded default (SQLite + ./mlruns) and on the
compose stack (tracking server + PostgreSQL + S3, direct uploads) with each S3 server,
moto and SeaweedFS. Test names say the claim; the README's sections name the tests.
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
from boto3.exceptions import S3UploadFailedError
from mlflow.exceptions import MlflowException
from PIL import Image

from common.mlflow_env import artifact_tree

from support.docs import gc_command
from support.stack import (
    S3_STACKS,
    clean_env,
    gc_in_the_mlflow_container,
    run_mlflow_cli,
    s3_server_client,
    start_s3_server,
)


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


def test_backslash_is_no_folder_separator_for_mlflow(run, mlflow_store):
    """MLflow passes a backslash on as it is; the store decides what it means."""
    mlflow.log_text("x", artifact_file="reports\\notes.md")
    if mlflow_store == "s3-seaweedfs":
        assert artifacts(run.info.run_id) == ["reports/notes.md"]  # SeaweedFS makes it a folder
    else:
        assert artifacts(run.info.run_id) == ["reports\\notes.md"]  # one file, a backslash in its name


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


def test_log_table_appends_with_the_union_of_the_columns(run):
    """New columns are added, missing values become null, and an integer column with a null becomes floats."""
    mlflow.log_table(pd.DataFrame({"epoch": [1]}), artifact_file="tables/mixed.json")
    mlflow.log_table(pd.DataFrame({"loss": [0.5]}), artifact_file="tables/mixed.json")
    assert json.loads(text_of(run, "tables/mixed.json")) == {
        "columns": ["epoch", "loss"],
        "data": [[1.0, None], [None, 0.5]],
    }


def test_log_table_compares_paths_as_written(run):
    """Whether a table exists is decided on the path as written: './tables/t.json' is not
    'tables/t.json' to log_table, so it does not append; the store then writes the same file."""
    mlflow.log_table(pd.DataFrame({"epoch": [1]}), artifact_file="tables/t.json")
    mlflow.log_table(pd.DataFrame({"epoch": [2]}), artifact_file="./tables/t.json")
    assert json.loads(text_of(run, "tables/t.json"))["data"] == [[2]]  # replaced, not appended to
    assert artifacts(run.info.run_id) == ["tables/t.json"]


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
    # .yml is YAML too; any other extension gets JSON, .YAML in capitals too.
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.yml")
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.txt")
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/upper.YAML")
    assert text_of(run, "configs/train.yml") == "lr: 0.001\n"
    assert json.loads(text_of(run, "configs/train.txt")) == {"lr": 0.001}
    assert json.loads(text_of(run, "configs/upper.YAML")) == {"lr": 0.001}


def test_log_image_takes_a_numpy_array_or_a_pil_image(run):
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    mlflow.log_image(array, artifact_file="images/from_numpy.png")
    mlflow.log_image(Image.fromarray(array), artifact_file="images/from_pil.png")
    for name in ("from_numpy", "from_pil"):
        image = mlflow.artifacts.load_image(f"runs:/{run.info.run_id}/images/{name}.png")
        np.testing.assert_array_equal(np.asarray(image), array)


def test_log_image_stores_the_format_the_extension_names(run):
    """PNG for .png; the same array to .jpg is a JPEG, and a name without an extension is refused."""
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    mlflow.log_image(array, artifact_file="images/a.png")
    mlflow.log_image(array, artifact_file="images/a.jpg")
    formats = {}
    for name in ("a.png", "a.jpg"):
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=f"images/{name}")
        with Image.open(local) as image:
            formats[name] = image.format
    assert formats == {"a.png": "PNG", "a.jpg": "JPEG"}
    with pytest.raises(ValueError, match="unknown file extension"):
        mlflow.log_image(array, artifact_file="images/no_extension")


def test_log_dict_reads_the_extension_as_written(run):
    """Only lower-case .yaml and .yml give YAML: .YAML is written as JSON."""
    mlflow.log_dict({"a": 1}, "configs/upper.YAML")
    assert json.loads(text_of(run, "configs/upper.YAML")) == {"a": 1}


def test_log_image_takes_grey_rgba_and_float_arrays(run):
    """H x W and H x W x 1 become greyscale, H x W x 4 keeps its alpha, floats in [0, 1] are scaled to 0-255."""
    shapes = {"grey": (4, 4), "grey1": (4, 4, 1), "rgba": (4, 4, 4)}
    for name, shape in shapes.items():
        mlflow.log_image(np.full(shape, 200, dtype=np.uint8), artifact_file=f"images/{name}.png")
    mlflow.log_image(np.full((4, 4, 3), 0.5), artifact_file="images/float.png")
    load = lambda name: mlflow.artifacts.load_image(f"runs:/{run.info.run_id}/images/{name}.png")  # noqa: E731
    assert [load(name).mode for name in ("grey", "grey1", "rgba", "float")] == ["L", "L", "RGBA", "RGB"]
    assert np.asarray(load("float")).max() == 127


# --- getting files back into Python ---------------------------------------------------------


def test_load_functions_read_artifacts_back(run):
    """The counterparts of the log_* functions, on a runs:/ URI."""
    mlflow.log_text("# Notes", artifact_file="reports/notes.md")
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.json")
    mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), artifact_file="images/black.png")
    uri = f"runs:/{run.info.run_id}"
    assert mlflow.artifacts.load_text(f"{uri}/reports/notes.md") == "# Notes"
    assert mlflow.artifacts.load_dict(f"{uri}/configs/train.json") == {"lr": 0.001}
    assert mlflow.artifacts.load_image(f"{uri}/images/black.png").size == (4, 4)


def test_load_dict_reads_json_only(run):
    """log_dict writes YAML for .yaml, but load_dict cannot read it back (MLflow 3.17.2)."""
    mlflow.log_dict({"lr": 0.001}, artifact_file="configs/train.yaml")
    with pytest.raises(MlflowException, match="Unable to form a JSON object"):
        mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/configs/train.yaml")
    assert yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/configs/train.yaml")) == {"lr": 0.001}


def test_load_table_reads_one_table_across_runs(run):
    """mlflow.load_table joins the same table file of several runs; extra_columns says which row came from where."""
    mlflow.log_table(pd.DataFrame({"epoch": [1], "loss": [0.9]}), artifact_file="tables/metrics.json")
    with mlflow.start_run(nested=True) as second:
        mlflow.log_table(pd.DataFrame({"epoch": [1], "loss": [0.7]}), artifact_file="tables/metrics.json")
    both = mlflow.load_table("tables/metrics.json", run_ids=[run.info.run_id, second.info.run_id], extra_columns=["run_id"])
    assert len(both) == 2
    assert dict(zip(both["run_id"], both["loss"].round(6))) == {run.info.run_id: 0.9, second.info.run_id: 0.7}


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
S3_ONLY = pytest.mark.parametrize("mlflow_store", ["s3-direct", "s3-seaweedfs"], indirect=True)


@EMBEDDED_ONLY
@pytest.mark.parametrize("bad_path", ["/reports/notes.md", "../escape.txt", "reports/../../x.txt"])
def test_bad_paths_refused_by_the_local_store(run, bad_path):
    with pytest.raises(MlflowException, match="Invalid artifact path"):
        mlflow.log_text("x", artifact_file=bad_path)


@S3_ONLY
def test_bad_paths_on_a_direct_s3_root_are_left_to_the_s3_server(run, s3_stack):
    """MLflow's S3 store checks no paths: it hands them to the S3 server as object keys, and
    what happens then is the server's choice. Both servers let the absolute path leave the run."""
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"
    mlflow.log_text("absolute", artifact_file="/reports/notes.md")
    if s3_stack.s3_server.kind == "moto":
        mlflow.log_text("dots", artifact_file="../escape.txt")
        keys = s3_stack.keys()
        assert "/reports/notes.md" in keys  # at the bucket root, in no run at all
        assert f"{prefix}/../escape.txt" in keys  # the literal `..`, inside the run's prefix
        assert artifacts(run.info.run_id) == ["../escape.txt"]
    else:
        # SeaweedFS drops the leading slash, and refuses `.` and `..` segments.
        with pytest.raises(S3UploadFailedError, match="InvalidRequest"):
            mlflow.log_text("dots", artifact_file="../escape.txt")
        keys = s3_stack.keys()
        assert "reports/notes.md" in keys  # at the bucket root, in no run at all
        assert [key for key in keys if ".." in key] == []
        assert artifacts(run.info.run_id) == []


# --- large files ----------------------------------------------------------------------------


@S3_ONLY
def test_direct_s3_uploads_ignore_the_multipart_chunk_size(run, s3_stack, tmp_path, monkeypatch):
    """In direct mode boto3's upload_file splits a large file itself, in 8 MiB parts:
    MLflow's MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE plays no part."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(12 << 20))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 << 20))
    mlflow.log_artifact(str(payload), artifact_path="large")
    key = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/large/payload.bin"
    etag = s3_stack.s3().head_object(Bucket=s3_stack.bucket, Key=key)["ETag"].strip('"')
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


# --- cleaning up ------------------------------------------------------------------------------


@pytest.mark.parametrize("mlflow_store", ["embedded", "s3-direct", "s3-seaweedfs"], indirect=True)
def test_delete_run_keeps_the_files_and_gc_removes_them(run, mlflow_store, request):
    """mlflow.delete_run only marks the run deleted; `mlflow gc`, run as the tutorial says
    (in the compose stack: in the mlflow container, with the server's S3 key), removes the run
    and asks the store to delete its files, but does not check the answer. SeaweedFS gives the
    server no delete permission, and moto's batch delete refuses even a user with
    s3:DeleteObject: there the files stay, and gc says nothing about it."""
    mlflow.log_text("bye", artifact_file="reports/old.txt")
    run_id = run.info.run_id
    mlflow.end_run()
    mlflow.delete_run(run_id)
    assert artifacts(run_id) == ["reports/old.txt"]  # still there
    done = run_gc(mlflow_store, request)
    assert done.returncode == 0 and f"Run with ID {run_id} has been permanently deleted." in done.stdout, done.stderr
    with pytest.raises(MlflowException):
        mlflow.get_run(run_id)
    left = artifacts_after_gc(mlflow_store, request, run)
    assert left == ([] if mlflow_store == "embedded" else [f"{run.info.experiment_id}/{run_id}/artifacts/reports/old.txt"])


@pytest.mark.parametrize("mlflow_store", ["s3-seaweedfs"], indirect=True)
def test_gc_removes_the_files_with_a_key_that_may_delete(run, s3_stack, request):
    """The same gc with the trainer's read-write key (SeaweedFS's Write covers deletes)."""
    mlflow.log_text("bye", artifact_file="reports/old.txt")
    mlflow.end_run()
    mlflow.delete_run(run.info.run_id)
    done = run_gc("s3-seaweedfs", request, key=s3_stack.artifacts_key)
    assert done.returncode == 0, done.stderr
    assert artifacts_after_gc("s3-seaweedfs", request, run) == []


def run_gc(store: str, request, key: dict | None = None) -> subprocess.CompletedProcess:
    """The gc line of docs/object-stores.md, in the folder of mlflow.db or as in the mlflow container."""
    if store != "embedded":
        return gc_in_the_mlflow_container(request.getfixturevalue(S3_STACKS[store]), gc_command(store), key=key)
    return run_mlflow_cli(gc_command(store), clean_env({}), request.getfixturevalue("embedded_dir"))


def artifacts_after_gc(store: str, request, run) -> list[str]:
    """What is left of the run's files, looked up in the store itself (the run is gone)."""
    if store == "embedded":
        folder = request.getfixturevalue("embedded_dir") / "mlruns" / run.info.experiment_id / run.info.run_id
        return [str(p) for p in folder.rglob("*") if p.is_file()]
    stack = request.getfixturevalue(S3_STACKS[store])
    return stack.keys(f"{run.info.experiment_id}/{run.info.run_id}/")
