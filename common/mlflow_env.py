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
import re
import sys
import threading
from urllib.parse import urlsplit

import mlflow
import requests
from mlflow.entities import Experiment, Run

from common.checks import (
    check_artifact_store,
    check_experiment_name,
    check_tracking_server,
    exit_on_error,
    is_server,
    without_passwords,
)

# Where `mlflow ui` serves by default.
EMBEDDED_UI_URL = "http://127.0.0.1:5000"


def set_experiment(name: str) -> Experiment:
    """Check that everything answers, make `name` the active experiment, and say where things go.

    MLFLOW_EXPERIMENT_NAME, when set, wins over `name` (the proxied compose set-up uses it).
    """
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or name
    check_experiment_name(name)
    version = check_tracking_server(mlflow.get_tracking_uri())
    experiment = mlflow.set_experiment(name)
    store = check_artifact_store(experiment.artifact_location)
    print(f"tracking URI   : {without_passwords(mlflow.get_tracking_uri())}" + (f" (MLflow {version})" if version else ""))
    print(f"experiment     : {experiment.name} (id {experiment.experiment_id})")
    print(f"artifact root  : {experiment.artifact_location}")
    print(f"artifact store : {store}")
    return experiment


def artifact_tree(run_id: str, folder: str | None = None) -> list[str]:
    """Every file of the run, as the artifact store lists it (not as we think we logged it).

    As MLflow lists it, unchanged: keys that another client wrote into the run's prefix with
    '//', '/./' or '/../' in them, or a '/' first, MLflow's listing leaves out, so they are
    not here either (and './x' is listed as 'x'). The examples' checked paths never write them.
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


def ui_address() -> str:
    """Whether the address `mlflow ui` will serve on is free, and if not, what answers there.

    A port already taken makes `mlflow ui` fail, while the browser keeps showing whatever
    holds the port (on macOS, port 5000 belongs to the AirPlay Receiver). The look takes at
    most 3 s, however slowly whatever is there answers.
    """
    base = embedded_ui_url()
    wanted = os.environ.get("MLFLOW_UI_URL", "").strip().rstrip("/")
    note = f" (MLFLOW_UI_URL={wanted!r} is not an http://host:port address, so this is the default)"
    note = note if wanted and wanted != base else ""
    found: list[str] = []
    look = threading.Thread(target=lambda: found.append(_what_answers(base)), daemon=True)
    look.start()
    look.join(timeout=3)
    what = found[0] if found else "is taken: something there answers too slowly; {other}"
    other = "start `mlflow ui --port 5001` and set MLFLOW_UI_URL=http://127.0.0.1:5001"
    return f"{base} {what.replace('{other}', other)}{note}"


def _what_answers(base: str) -> str:
    with requests.Session() as session:
        session.trust_env = False  # ask the port itself, never an HTTP proxy from the environment
        try:
            answer = session.get(f"{base}/version", timeout=2, stream=True)
            body = answer.raw.read(64, decode_content=True).decode(errors="replace").strip()
        except requests.exceptions.SSLError:
            return "is taken by a program that speaks TLS; {other}"
        except requests.exceptions.ConnectionError:
            return "is free for `mlflow ui`"
        except (requests.exceptions.RequestException, OSError):
            return "is taken: something accepts connections there but does not answer; {other}"
    if answer.ok and re.fullmatch(r"\d+\.\d+\.\d+\S*", body):
        return f"already answers: MLflow {body} (an `mlflow ui` you started, or another server)"
    server = answer.headers.get("Server", "no Server header")
    return f"is taken by a program that is not MLflow (HTTP {answer.status_code}, {server}); {{other}}"


if __name__ == "__main__":
    # Preflight: python -m common.mlflow_env [experiment name]
    with exit_on_error():
        experiment = set_experiment(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--debug" else "02-artifacts")
        if experiment.artifact_location.startswith("s3://"):
            # Whether this process has S3 credentials; their values are never printed.
            present = ", ".join(
                f"{name} {'set' if os.environ.get(name) else 'not set'}"
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            )
            print(f"S3 credentials : {present}")
        if not is_server(mlflow.get_tracking_uri()):
            print(f"UI address     : {ui_address()}")
        print("ready          : yes")
