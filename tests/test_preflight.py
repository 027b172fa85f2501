"""`python -m common.mlflow_env`: where things will go, and whether each part answers."""

from __future__ import annotations

import subprocess
import sys

from conftest import printed
from stack import REPO, clean_env, free_port


def preflight(env, cwd):
    """The preflight command, run from the repository root as the tutorial says."""
    return subprocess.run(
        [sys.executable, "-m", "common.mlflow_env"],
        cwd=cwd,
        env=dict(env, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_preflight_on_the_compose_stack(stack, trainer_env, tmp_path):
    result = preflight(trainer_env, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert printed(out, "tracking URI") == f"{stack.tracking_uri} (MLflow 3.17.2)"
    assert printed(out, "experiment").startswith("02-artifacts (id ")
    assert printed(out, "artifact root").startswith(f"s3://{stack.bucket}/")
    assert printed(out, "artifact store") == (
        f"S3 direct: this process uploads to bucket {stack.bucket} at {trainer_env['MLFLOW_S3_ENDPOINT_URL']}"
    )
    assert printed(out, "S3 credentials") == "AWS_ACCESS_KEY_ID set, AWS_SECRET_ACCESS_KEY set"
    assert printed(out, "ready") == "yes"
    # Credentials are named, never shown.
    assert trainer_env["AWS_SECRET_ACCESS_KEY"] not in out + result.stderr


def test_preflight_on_the_embedded_default(tmp_path):
    result = preflight(clean_env({}), tmp_path)
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "tracking URI") == f"sqlite:///{tmp_path}/mlflow.db"
    assert printed(result.stdout, "artifact store") == "local folder"


def test_preflight_fails_with_the_same_message_as_the_examples(trainer_env, tmp_path):
    address = f"http://127.0.0.1:{free_port()}"
    result = preflight(dict(trainer_env, MLFLOW_TRACKING_URI=address), tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: cannot reach the MLflow tracking server at {address} (connection refused)",
        "fix: start it (`docker compose up -d`), or set MLFLOW_TRACKING_URI to a server that runs; "
        "unset it to use the embedded default (mlflow.db in this folder)",
    ]
    assert "Traceback" not in result.stderr
