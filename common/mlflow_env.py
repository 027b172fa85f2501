"""The small helper every example calls first: where do things go?

It only uses MLflow's own settings, read from the environment:

- no MLFLOW_TRACKING_URI: MLflow's embedded default, a SQLite file `mlflow.db`
  and an `mlruns/` artifact folder in the current directory;
- MLFLOW_TRACKING_URI=http://mlflow:5000 (the compose `trainer`) or any other
  server: runs go there, and artifacts go wherever that server says.

So the same example runs unchanged everywhere. Before anything is logged, the checks in
common/checks.py make sure the tracking server and the artifact store answer.

Check your set-up without logging anything:

    python -m common.mlflow_env
"""

from __future__ import annotations

import os
import sys

import mlflow
from mlflow.entities import Experiment, Run

from common.checks import check_artifact_store, check_tracking_server, exit_on_error


def set_experiment(name: str) -> Experiment:
    """Check that everything answers, make `name` the active experiment, and say where things go.

    MLFLOW_EXPERIMENT_NAME, when set, wins over `name` (the proxied compose set-up uses it).
    """
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or name
    version = check_tracking_server(mlflow.get_tracking_uri())
    experiment = mlflow.set_experiment(name)
    store = check_artifact_store(experiment.artifact_location)
    print(f"tracking URI   : {mlflow.get_tracking_uri()}" + (f" (MLflow {version})" if version else ""))
    print(f"experiment     : {experiment.name} (id {experiment.experiment_id})")
    print(f"artifact root  : {experiment.artifact_location}")
    print(f"artifact store : {store}")
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


if __name__ == "__main__":
    # Preflight: python -m common.mlflow_env [experiment name]
    with exit_on_error():
        set_experiment(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--debug" else "02-artifacts")
        # Whether the S3 credentials are there; their values are never printed.
        present = ", ".join(
            f"{name} {'set' if os.environ.get(name) else 'not set'}"
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        )
        print(f"S3 credentials : {present}")
        print("ready          : yes")
