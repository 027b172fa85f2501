"""`python -m common.checks`: where things will go, and whether each part answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.docs import expected_output, printed, same_form
from support.stack import REPO, clean_env, free_port

TROUBLESHOOTING = REPO / "docs/troubleshooting.md"


def preflight(env, cwd):
    """The preflight command, run from the repository root as the tutorial says."""
    return subprocess.run(
        [sys.executable, "-m", "common.checks"],
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
    # The tutorial shows this output, local addresses written as the compose names.
    compose_names = {local: name for name, local in stack.hosts.items()}
    assert same_form(out, compose_names) == same_form(expected_output(TROUBLESHOOTING, "Expected with Docker"))


def test_preflight_on_the_embedded_default(tmp_path):
    # A free port stands for 5000, which may be taken on this machine.
    ui_url = f"http://127.0.0.1:{free_port()}"
    result = preflight(clean_env({"MLFLOW_UI_URL": ui_url}), tmp_path)
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "tracking URI") == f"sqlite:///{tmp_path}/mlflow.db"
    assert printed(result.stdout, "artifact store") == "local folder"
    assert "S3" not in result.stdout  # no S3 in use, nothing to say about it
    shown = expected_output(TROUBLESHOOTING, "Expected without Docker")
    real = same_form(result.stdout, {str(tmp_path): "/home/you/mlflow-artifacts", ui_url: "http://127.0.0.1:5000"})
    assert real == same_form(shown)


class NotMlflow(BaseHTTPRequestHandler):
    """Answers like macOS's AirPlay Receiver on port 5000: 403, and its own Server header."""

    def version_string(self):  # the Server header
        return "AirTunes/860.7.1"

    def do_GET(self):
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def not_mlflow():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_preflight_says_what_holds_the_ui_port(stack, not_mlflow, tmp_path):
    """Without a tracking server, the preflight looks at the address `mlflow ui` will use."""

    def ui_line(ui_url):
        result = preflight(clean_env({"MLFLOW_UI_URL": ui_url}), tmp_path)
        assert result.returncode == 0, result.stderr  # a taken port does not stop logging
        return printed(result.stdout, "UI address")

    free = f"http://127.0.0.1:{free_port()}"
    assert ui_line(free) == f"{free} is free for `mlflow ui`"
    assert ui_line(stack.tracking_uri) == (
        f"{stack.tracking_uri} already answers: MLflow 3.17.2 (an `mlflow ui` you started, or another server)"
    )
    assert ui_line(not_mlflow) == (
        f"{not_mlflow} is taken by a program that is not MLflow (HTTP 403, AirTunes/860.7.1); "
        "start `mlflow ui --port 5001` and set MLFLOW_UI_URL=http://127.0.0.1:5001"
    )
    # Something that accepts and never answers: the look gives up in seconds.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        assert ui_line(address).startswith(f"{address} is taken: something")
        assert time.monotonic() - started < 30  # a hang guard; it takes about 3 s plus start-up
    # Not an http://host:port address: said, and the default looked at instead.
    assert ui_line("http://127.0.0.1:99999").endswith(
        "(MLFLOW_UI_URL='http://127.0.0.1:99999' is not an http://host:port address, so this is the default)"
    )


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
