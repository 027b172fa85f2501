"""The two examples, run as a learner runs them, checked against what the stores hold."""

from __future__ import annotations

import re
import shutil

import mlflow
import pytest
from mlflow import MlflowClient

from common.mlflow_env import ui_link

from support.docs import expected_output, printed, same_form
from support.examples import EXPECTED_FILES, check_contents, run_script
from support.stack import REPO, clean_env


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    """run.py in a fresh folder with no MLflow settings at all: the embedded default."""
    workdir = tmp_path_factory.mktemp("learner")
    result = run_script("examples/02_artifacts/run.py", cwd=workdir, env=clean_env({}))
    assert result.returncode == 0, result.stderr
    return workdir, result.stdout, result.stderr


def test_embedded_run_logs_exactly_five_artifacts(embedded_run):
    workdir, stdout, _ = embedded_run
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    experiment = client.get_experiment_by_name("02-artifacts")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "artifact_examples"
    assert run.info.status == "FINISHED"
    # The embedded default keeps artifacts in ./mlruns/<experiment id>/<run id>/artifacts.
    artifacts = workdir / "mlruns" / experiment.experiment_id / run.info.run_id / "artifacts"
    assert printed(stdout, "artifact URI") == str(artifacts)
    on_disk = sorted(p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file())
    assert on_disk == EXPECTED_FILES
    check_contents(lambda path: (artifacts / path).read_bytes())


def test_embedded_run_prints_what_the_store_holds(embedded_run):
    workdir, stdout, _ = embedded_run
    assert printed(stdout, "tracking URI") == f"sqlite:///{workdir}/mlflow.db"
    tree = stdout.split("artifact tree  :\n")[1].split("open the UI")[0].split()
    assert tree == EXPECTED_FILES
    assert "mlflow ui" in printed(stdout, "open the UI")


def test_embedded_run_leaves_only_the_store_in_the_working_directory(embedded_run):
    workdir, _, _ = embedded_run
    assert sorted(p.name for p in workdir.iterdir()) == ["mlflow.db", "mlruns"]


def test_stack_run_uploads_five_objects_to_the_bucket(stack, stack_run):
    run, stdout = stack_run
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    assert printed(stdout, "artifact URI") == f"s3://{stack.bucket}/{prefix.rstrip('/')}"
    assert stack.keys(prefix) == [prefix + path for path in EXPECTED_FILES]
    assert run.info.run_name == "artifact_examples" and run.info.status == "FINISHED"
    s3 = stack.s3()
    check_contents(lambda path: s3.get_object(Bucket=stack.bucket, Key=prefix + path)["Body"].read())


@pytest.mark.parametrize("mlflow_store", ["s3-direct"], indirect=True)  # this process downloads from S3
def test_stack_run_downloads_identical_bytes(mlflow_store, stack, stack_run, tmp_path):
    run, _ = stack_run
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path))
    assert local == str(tmp_path)
    s3 = stack.s3()
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    for path in EXPECTED_FILES:
        stored = s3.get_object(Bucket=stack.bucket, Key=prefix + path)["Body"].read()
        assert (tmp_path / path).read_bytes() == stored


def test_stack_run_links_to_the_ui_on_the_host(stack_run):
    run, stdout = stack_run
    assert printed(stdout, "open the UI") == (
        f"http://localhost:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        "/artifacts?workflowType=machine_learning"
    )
    # MLflow's own link would name the server as the trainer sees it: switched off.
    assert "View run" not in stdout


def test_example_01_uploads_report_and_keeps_the_local_file(tmp_path):
    result = run_script("examples/01_log_artifact/run.py", cwd=tmp_path, env=clean_env({}))
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("01-log-artifact")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "report_upload" and run.info.status == "FINISHED"
    artifacts = tmp_path / "mlruns" / experiment.experiment_id / run.info.run_id / "artifacts"
    assert [p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()] == ["reports/report.txt"]
    # The upload is a copy: the file written in the working directory stays.
    assert (tmp_path / "outputs" / "report.txt").read_text() == (artifacts / "reports/report.txt").read_text()


# --- the expected outputs the READMEs show come from real runs ----------------------------

# Where the READMEs' expected outputs say the project folder is.
README_FOLDER = "/home/you/mlflow-artifacts"


def test_root_readme_shows_a_real_first_run_without_docker(embedded_run):
    """The terminal output of the README's first command, after pip's: MLflow's INFO lines on
    stderr (it creates mlflow.db and the experiment), then run.py's own. A `...` line stands for
    the lines the README shows for the trainer (the five files), here checked as well."""
    workdir, stdout, stderr = embedded_run
    real = same_form(stderr + stdout, {str(workdir): README_FOLDER}).splitlines()
    shown = same_form(expected_output(REPO / "README.md", "Expected output (after pip's")).splitlines()
    head, tail = shown[: shown.index("...")], shown[shown.index("...") + 1 :]
    assert real[: len(head)] == head and real[len(real) - len(tail) :] == tail
    trainer = same_form(expected_output(REPO / "README.md", "Expected output in the trainer")).splitlines()
    middle = [line for line in trainer if line.startswith(("logged", "artifact tree", "  "))]
    assert real[len(head) : len(real) - len(tail)] == middle


def test_root_readme_shows_a_real_run_in_the_trainer(stack, stack_run):
    """The compose run as the trainer prints it: local addresses written as the compose names."""
    _, stdout = stack_run
    compose_names = {local: name for name, local in stack.hosts.items()}
    shown = expected_output(REPO / "README.md", "Expected output in the trainer")
    assert same_form(stdout, compose_names) == same_form(shown)


def test_example_01_readme_shows_a_real_run_after_example_02(embedded_run, tmp_path):
    """Example 01, run where the root README's command already ran (mlflow.db exists)."""
    workdir, _, _ = embedded_run
    shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
    result = run_script("examples/01_log_artifact/run.py", cwd=tmp_path, env=clean_env({}))
    assert result.returncode == 0, result.stderr
    shown = expected_output(REPO / "examples/01_log_artifact/README.md", "Expected output")
    assert same_form(result.stderr + result.stdout, {str(tmp_path): README_FOLDER}) == same_form(shown)


def test_embedded_run_links_to_the_ui_port_the_learner_chose(embedded_run, monkeypatch):
    """Port 5000 taken: the root README starts `mlflow ui --port 5001` and sets MLFLOW_UI_URL
    to match, and the link the examples print follows it."""
    readme = (REPO / "README.md").read_text()
    port = re.search(r"\.venv/bin/mlflow ui .*--port (\d+)$", readme, re.MULTILINE).group(1)
    ui_url = re.search(r"^\s*MLFLOW_UI_URL=(\S+) \.venv/bin/python examples/02_artifacts/run\.py$", readme, re.MULTILINE)
    assert ui_url.group(1) == f"http://127.0.0.1:{port}"

    workdir, _, _ = embedded_run
    monkeypatch.setenv("MLFLOW_UI_URL", ui_url.group(1))
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    try:
        (run,) = mlflow.search_runs(experiment_names=["02-artifacts"], output_format="list")
        assert ui_link(run) == (
            f"start `mlflow ui --port {port}` in this folder, then open "
            f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            "/artifacts?workflowType=machine_learning"
        )
    finally:
        mlflow.set_tracking_uri(None)
