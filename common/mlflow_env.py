"""The small helper every example calls first: which experiment, and where do things go?

It only uses MLflow's own settings, read from the environment:

- no MLFLOW_TRACKING_URI: MLflow's embedded default, a SQLite file `mlflow.db`
  and an `mlruns/` artifact folder in the current directory;
- MLFLOW_TRACKING_URI=http://mlflow:5000 (the compose `trainer`) or any other
  server: runs go there, and artifacts go wherever that server says.

So the same example runs unchanged everywhere. It checks nothing: `python -m common.checks`
checks the set-up, and the examples' `with checked_setup(...)` does before they log.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import mlflow
from mlflow.entities import Experiment, Run

from common.checks.errors import is_server, without_passwords

# Where `mlflow ui` serves by default.
EMBEDDED_UI_URL = "http://127.0.0.1:5000"


def use_experiment(name: str) -> Experiment:
    """Make `name` the active experiment (created on first use), and say where things go."""
    # The proxied compose set-up (docker-compose.proxied.yml) sets MLFLOW_EXPERIMENT_NAME to an
    # experiment of its own, whose files go through the tracking server: it wins over `name`.
    experiment = mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", name))
    print(f"tracking URI   : {without_passwords(mlflow.get_tracking_uri())}")
    print(f"experiment     : {experiment.name} (id {experiment.experiment_id})")
    print(f"artifact root  : {experiment.artifact_location}")
    return experiment


def artifact_tree(run_id: str, folder: str | None = None) -> list[str]:
    """Every file of the run, as the artifact store lists it (not as we think we logged it).

    As MLflow lists it, unchanged: keys that another client wrote into the run's prefix with
    '//', '/./' or '/../' in them, or a '/' first, MLflow's listing leaves out, so they are
    not here either (and './x' is listed as 'x').
    """
    # A loop that lists each folder once, not recursion: a store can list a folder as its
    # own child (MLflow shows the S3 key 'a/./x' as a folder 'a' inside 'a'), and trees can be deep.
    files, listed = [], {folder}
    todo = list(reversed(mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=folder)))
    while todo:
        item = todo.pop()  # depth first, in the store's order
        if not item.is_dir:
            files.append(item.path)
        elif item.path not in listed:
            listed.add(item.path)
            todo += reversed(mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=item.path))
    return files


def artifacts_page(experiment_id: str, run_id: str) -> str:
    """The run's Artifacts tab, in the UI's "Model training" view.

    MLflow 3.17's UI opens runs in its GenAI view by default, where a run shows up as an
    evaluation and its Artifacts tab is several clicks away; workflowType switches the view.
    """
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifacts?workflowType=machine_learning"


def ui_link(run: Run) -> str:
    """Where to look at the run's artifacts in the MLflow UI."""
    page = artifacts_page(run.info.experiment_id, run.info.run_id)
    tracking_uri = mlflow.get_tracking_uri()
    if is_server(tracking_uri):
        # Inside compose the server is http://mlflow:5000, but a browser on the
        # host reaches it as http://localhost:5000: MLFLOW_UI_URL says which.
        base = os.environ.get("MLFLOW_UI_URL", tracking_uri)
        return without_passwords(f"{base.rstrip('/')}/{page}")
    # Embedded default: nothing is serving the UI yet. `mlflow ui` listens on port 5000
    # unless told otherwise; a learner who picks another port sets MLFLOW_UI_URL to match.
    base = embedded_ui_url()
    port = urlsplit(base).port
    command = "mlflow ui" if port == 5000 else f"mlflow ui --port {port}"
    return f"start `{command}` in this folder, then open {base}/{page}"


def embedded_ui_url() -> str:
    """MLFLOW_UI_URL if it is an http://host:port address, else where `mlflow ui` serves by default."""
    base = os.environ.get("MLFLOW_UI_URL", EMBEDDED_UI_URL).strip().rstrip("/")
    try:
        parts = urlsplit(base)
        if parts.scheme == "http" and parts.hostname and parts.port:
            return base
    except ValueError:  # a port that is not a number, or out of range
        pass
    return EMBEDDED_UI_URL


if __name__ == "__main__":  # the preflight's old name: python -m common.checks
    import runpy

    runpy.run_module("common.checks", run_name="__main__", alter_sys=True)
