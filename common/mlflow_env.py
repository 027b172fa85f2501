"""The small helper every example calls first.

It only uses MLflow's own settings, read from the environment:

- no MLFLOW_TRACKING_URI: MLflow's embedded default, a SQLite file `mlflow.db`
  and an `mlruns/` artifact folder in the current directory;
- MLFLOW_TRACKING_URI=http://mlflow:5000 (the compose `trainer`) or any other
  server: runs go there, and artifacts go wherever that server says.

So the same example runs unchanged everywhere.
"""

from __future__ import annotations

import os

import mlflow
from mlflow.entities import Experiment, Run


def set_experiment(name: str) -> Experiment:
    """Make `name` the active experiment (creating it if needed) and say where things go."""
    experiment = mlflow.set_experiment(name)
    print(f"tracking URI   : {mlflow.get_tracking_uri()}")
    print(f"experiment     : {experiment.name} (id {experiment.experiment_id})")
    print(f"artifact root  : {experiment.artifact_location}")
    return experiment


def artifact_tree(run_id: str, folder: str | None = None) -> list[str]:
    """Every file of the run, as the artifact store lists it (not as we think we logged it)."""
    files = []
    for item in mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=folder):
        if item.is_dir:
            files += artifact_tree(run_id, item.path)
        else:
            files.append(item.path)
    return files


def ui_link(run: Run) -> str:
    """Where to look at the run in the MLflow UI."""
    page = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    tracking_uri = mlflow.get_tracking_uri()
    if tracking_uri.startswith(("http://", "https://")):
        # Inside compose the server is http://mlflow:5000, but a browser on the
        # host reaches it as http://localhost:5000: MLFLOW_UI_URL says which.
        base = os.environ.get("MLFLOW_UI_URL", tracking_uri)
        return f"{base.rstrip('/')}/{page}"
    # Embedded default: nothing is serving the UI yet.
    return f"start `mlflow ui` in this folder, then open http://127.0.0.1:5000/{page}"
