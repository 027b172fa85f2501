"""The MLflow UI: the README's `mlflow ui` serves the embedded store, and in a real headless
Chromium the UI shows what the tutorial promises, on both stores.

Driven by the same functions as scripts/screenshots.py, which makes the tutorial's pictures.
"""

from __future__ import annotations

import re
import urllib.request
from typing import NamedTuple

import pytest
from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

from scripts.screenshots import browser_page, find_chromium, open_artifacts, select, tree_node

from support.docs import printed
from support.examples import example, run_script, trainer_run
from support.services import service_missing
from support.stack import (
    API_PROBE,
    COMPOSE_FILE,
    clean_env,
    free_port,
    http_status,
    mlflow_ui,
    process_tree,
    readme_mlflow_ui,
)

FOLDERS = ["configs", "data", "images", "reports", "tables"]
FILES = ["train_config.json", "metrics.csv", "gradient.png", "notes.md", "metrics.json"]


class UiRun(NamedTuple):
    """A run of examples/02_artifacts/run.py and the MLflow UI that shows it."""

    url: str
    experiment_id: str
    run_id: str
    server_pid: int


@pytest.fixture(scope="module")
def embedded_ui(tmp_path_factory):
    """run.py on the embedded default in a fresh folder, then the README's `mlflow ui` there."""
    folder = tmp_path_factory.mktemp("embedded-ui")
    result = run_script("examples/02_artifacts/run.py", cwd=folder, env=clean_env({}))
    assert result.returncode == 0, result.stderr
    experiment_id = re.search(r"\(id (\d+)\)", printed(result.stdout, "experiment")).group(1)
    with mlflow_ui(folder, folder.with_suffix(".log")) as (url, ui):
        yield UiRun(url, experiment_id, printed(result.stdout, "run id"), ui.popen.pid)


def test_mlflow_ui_serves_the_embedded_store(embedded_ui):
    """The root README's `mlflow ui`, started in the folder run.py ran in."""
    url = f"{embedded_ui.url}/get-artifact?path=reports/notes.md&run_uuid={embedded_ui.run_id}"
    with urllib.request.urlopen(url) as answer:
        assert answer.read().decode() == example.NOTES


def test_mlflow_ui_runs_one_worker_and_no_job_runner(embedded_ui):
    """Without the README's settings, `mlflow ui` starts four web workers and a job runner."""
    assert MLFLOW_SERVER_ENABLE_JOB_EXECUTION.default is True
    settings, args = readme_mlflow_ui()
    assert settings == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} and args == ["ui", "--workers", "1"]
    processes = process_tree(embedded_ui.server_pid)
    assert not [command for command in processes if "mlflow.server.jobs" in command]
    # uvicorn starts its web workers through multiprocessing: with --workers 1 it starts none
    # (at most its resource tracker), with MLflow's default of 4 there would be four.
    assert len([command for command in processes if "multiprocessing" in command]) <= 1, processes


@pytest.fixture(scope="module")
def proxied_ui(proxied, proxied_run):
    """run.py in proxied mode (docker-compose.proxied.yml), and that tracking server's UI."""
    run, _ = proxied_run
    return UiRun(proxied.tracking_uri, run.info.experiment_id, run.info.run_id, proxied.server.popen.pid)


@pytest.fixture(scope="module")
def other_port_ui(stack, stack_run, tmp_path_factory):
    """The compose stack with MLFLOW_PORT=<another port> in .env: the server where the
    published port would be, and run.py in the trainer of that configuration."""
    port = str(free_port())
    workdir = tmp_path_factory.mktemp("other-port")
    with stack.other_server(workdir, (COMPOSE_FILE,), {"MLFLOW_PORT": port}) as moved:
        run, stdout = trainer_run(moved, workdir)
        yield moved, port, run, stdout


def test_one_port_setting_moves_the_browsers_way_in(other_port_ui):
    """MLFLOW_PORT sets the Host headers the server accepts and the link run.py prints."""
    moved, port, _, stdout = other_port_ui
    assert http_status(moved.tracking_uri + API_PROBE, host_header=f"localhost:{port}") == 200
    assert http_status(moved.tracking_uri + API_PROBE, host_header="localhost:5000") == 403
    link = printed(stdout, "open the UI")
    assert link.startswith(f"http://localhost:{port}/#/experiments/")


@pytest.fixture(params=["embedded", "s3-direct", "s3-proxied", "s3-other-port"])
def ui_run(request) -> UiRun:
    """The embedded store served by `mlflow ui`, or the compose stack's tracking server in
    direct mode (it reads the files from S3 with its read-only key) or in proxied mode."""
    if not find_chromium():
        service_missing("no Chromium found: apt-get install chromium, or set CHROMIUM to its path")
    if request.param == "embedded":
        return request.getfixturevalue("embedded_ui")
    if request.param == "s3-proxied":
        return request.getfixturevalue("proxied_ui")
    if request.param == "s3-other-port":  # the browser goes where run.py's link says
        moved, port, run, _ = request.getfixturevalue("other_port_ui")
        return UiRun(f"http://localhost:{port}", run.info.experiment_id, run.info.run_id, moved.server.popen.pid)
    stack = request.getfixturevalue("stack")
    run, _ = request.getfixturevalue("stack_run")
    return UiRun(stack.tracking_uri, run.info.experiment_id, run.info.run_id, stack.server.popen.pid)


def test_artifacts_tab_shows_what_run_py_logged(ui_run):
    with browser_page() as page:
        open_artifacts(page, ui_run.url, ui_run.experiment_id, ui_run.run_id)
        # The "Model training" view, where the link run.py prints leads: the breadcrumb says
        # Runs (MLflow 3.17's default GenAI view says Evaluations, and opens no Artifacts tab).
        page.get_by_role("link", name="Runs", exact=True).first.wait_for()
        assert page.get_by_role("link", name="Evaluations", exact=True).count() == 0
        # The five folders, then the five files once expanded.
        for folder in FOLDERS:
            assert tree_node(page, folder).is_visible()
        for folder in FOLDERS:
            tree_node(page, folder).click()
        for name in FILES:
            tree_node(page, name).wait_for()

        # A table: the frame's columns as table headers ("View as table").
        select(page, "tables/metrics.json")
        for column in ("epoch", "train_loss", "val_loss", "accuracy"):
            page.get_by_role("columnheader", name=column).wait_for()

        # An image: the 256 x 256 gradient.
        select(page, "images/gradient.png")
        image = page.locator("img[src^='blob:']").first
        image.wait_for()
        size = image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert size == [256, 256]

        # Markdown: the notes, rendered.
        select(page, "reports/notes.md")
        page.get_by_role("heading", name="Training notes").wait_for()
        assert re.search(r"Model: tiny-mlp, 3 epochs", page.content())
