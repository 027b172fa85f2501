"""Web pages of other origins and the tracking server (MLflow 3.17.2, mlflow/server/security_utils.py).

Two things stand between a web page and the API. The server answers 403 to POST, PUT, PATCH and
DELETE whose Origin header it does not accept, whatever the body. And MLflow takes only
`Content-Type: application/json`, which a browser sends to another origin only after asking
(a preflight OPTIONS request) and being told yes (Access-Control-Allow-Origin). These tests
send both kinds of request, with the Origin header a browser would add, to a real `mlflow server`.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import requests

from support.stack import API_PROBE, Process, clean_env, free_port, http_status

BLOCKED = "Cross-origin request blocked"
LOCAL_ORIGINS = [
    "http://localhost:5000",
    "http://localhost:8080",
    "https://localhost:8443",
    "http://127.0.0.1:1234",
    "https://127.0.0.1",
    "http://[::1]:3000",
    "https://[::1]:9999",
]
OTHER_ORIGINS = ["https://evil.example", "http://mlflow.example:5000", "http://192.168.1.10:5000", "null"]


def create_experiment(uri: str, origin: str) -> requests.Response:
    """What a page at `origin` sends to create an experiment."""
    return requests.post(
        f"{uri}/api/2.0/mlflow/experiments/create",
        json={"name": f"from-{uuid.uuid4().hex}"},
        headers={"Origin": origin},
        timeout=10,
    )


def preflight(uri: str, origin: str) -> str | None:
    """What a browser asks before that POST: the origin the server's answer allows, if any."""
    answer = requests.options(
        f"{uri}/api/2.0/mlflow/experiments/create",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
        timeout=10,
    )  # fmt: skip
    return answer.headers.get("Access-Control-Allow-Origin")


def experiment_names(uri: str) -> set[str]:
    answer = requests.post(f"{uri}/api/2.0/mlflow/experiments/search", json={"max_results": 1000}, timeout=10)
    return {experiment["name"] for experiment in answer.json()["experiments"]}


@pytest.mark.parametrize("origin", OTHER_ORIGINS)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_server_refuses_state_changes_from_other_origins(stack, origin, method):
    """The compose server: 403 before any handler runs, whatever the path under /api/."""
    answer = requests.request(
        method,
        f"{stack.tracking_uri}/api/2.0/mlflow/experiments/create",
        json={"name": "never-made"},
        headers={"Origin": origin},
        timeout=10,
    )
    assert (answer.status_code, answer.text) == (403, BLOCKED)
    assert "never-made" not in experiment_names(stack.tracking_uri)


def test_reads_from_other_origins_are_answered_but_not_shared_with_the_page(stack):
    """A GET is not refused; the browser keeps the answer from the page (no Allow-Origin header)."""
    answer = requests.get(stack.tracking_uri + API_PROBE, headers={"Origin": "https://evil.example"}, timeout=10)
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("origin", LOCAL_ORIGINS)
def test_the_server_never_refuses_a_localhost_origin(stack, origin):
    """localhost, 127.0.0.1 and [::1], any port, http or https: the server's own check lets a
    request from there create an experiment, without the server being told anything."""
    assert "--cors-allowed-origins" not in " ".join(stack.server_command)
    before = experiment_names(stack.tracking_uri)
    answer = create_experiment(stack.tracking_uri, origin)
    assert answer.status_code == 200, answer.text
    assert len(experiment_names(stack.tracking_uri) - before) == 1


@pytest.mark.parametrize("origin", LOCAL_ORIGINS + OTHER_ORIGINS)
def test_preflight_lets_pages_on_http_localhost_send_json(stack, origin):
    """The preflight answer allows every http:// page on localhost, 127.0.0.1 or [::1], any port;
    a browser on an https:// localhost page, or on another origin, stops before the POST."""
    allowed = preflight(stack.tracking_uri, origin)
    if origin.startswith("http://") and origin in LOCAL_ORIGINS:
        assert allowed == origin
    else:
        assert allowed is None


@pytest.fixture(scope="module")
def server_with_allowed_origin(tmp_path_factory):
    """`mlflow server --cors-allowed-origins https://app.example`, on an embedded store."""
    workdir = tmp_path_factory.mktemp("cors")
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    args = [mlflow, "server", "--port", str(port), "--workers", "1", f"--backend-store-uri=sqlite:///{workdir}/mlflow.db",
            "--cors-allowed-origins", "https://app.example"]  # fmt: skip
    server = Process(args, clean_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}), workdir / "server.log", workdir)
    uri = f"http://127.0.0.1:{port}"
    try:
        server.wait_until(lambda: http_status(uri + API_PROBE) == 200, "mlflow server", 120)
        yield uri
    finally:
        server.stop()


@pytest.mark.parametrize(
    "origin, status",
    [
        ("https://app.example", 200),  # the one added
        ("http://localhost:8080", 200),  # still there: the option adds, it does not replace
        ("https://127.0.0.1:8443", 200),
        ("http://app.example", 403),  # the whole origin counts, scheme included
        ("https://evil.example", 403),
    ],
)
def test_cors_allowed_origins_only_adds_origins(server_with_allowed_origin, origin, status):
    answer = create_experiment(server_with_allowed_origin, origin)
    assert answer.status_code == status, answer.text
    if origin in ("https://app.example", "http://localhost:8080"):  # and a browser is told yes
        assert preflight(server_with_allowed_origin, origin) == origin
