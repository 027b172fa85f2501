"""The tracking server as docker-compose.yml configures it."""

import pytest
import requests
from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

from support.stack import API_PROBE, argument, compose_service, http_status, process_tree


@pytest.mark.parametrize("host", ["mlflow:5000", "localhost:5000", "127.0.0.1:5000"])
def test_allowed_hosts_admit_the_trainer_and_a_browser_on_the_host(stack, host):
    assert http_status(stack.tracking_uri + API_PROBE, host_header=host) == 200


@pytest.mark.parametrize("host", ["evil.example:5000", "mlflow:8080", "localhost"])
def test_allowed_hosts_refuse_any_other_host_header(stack, host):
    # The whole Host header counts, port included.
    assert http_status(stack.tracking_uri + API_PROBE, host_header=host) == 403


def test_health_endpoint_skips_the_host_check(stack):
    """Why the compose healthcheck calls a real API endpoint instead of /health."""
    assert http_status(stack.tracking_uri + "/health", host_header="evil.example:5000") == 200


def test_compose_healthcheck_calls_the_api_probe():
    assert API_PROBE in " ".join(compose_service("mlflow")["healthcheck"]["test"])


def test_server_runs_in_direct_mode(stack):
    assert argument(stack.server_command, "--default-artifact-root") == "s3://mlflow-artifacts/"


def test_server_starts_no_job_runner(stack):
    """MLflow 3 starts a job runner for GenAI jobs unless told not to; docker-compose.yml does."""
    assert MLFLOW_SERVER_ENABLE_JOB_EXECUTION.default is True
    assert compose_service("mlflow")["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert not [args for args in process_tree(stack.server.popen.pid) if "mlflow.server.jobs" in args]


def test_tests_run_the_compose_command_with_its_host_mapped(stack):
    """What tests/support/stack.py changes in the compose command: where it listens, and one more
    allowed Host header, the local address that stands for mlflow:5000."""
    compose = compose_service("mlflow")["command"]
    assert argument(compose, "--allowed-hosts") == "mlflow:5000,localhost:5000,127.0.0.1:5000"
    allowed = argument(stack.server_command, "--allowed-hosts").split(",")
    assert allowed == ["mlflow:5000", "localhost:5000", "127.0.0.1:5000", stack.hosts["mlflow:5000"]]
    assert stack.tracking_uri == f"http://{stack.hosts['mlflow:5000']}"
    mapped = ("--host=", "--port=", "--backend-store-uri=", "--allowed-hosts=")
    unchanged = [arg for arg in compose if not arg.startswith(mapped)]
    assert [arg for arg in stack.server_command[1:] if arg in unchanged] == unchanged[1:]


def test_direct_mode_serves_no_artifact_proxy(stack):
    """--no-serve-artifacts: nobody can write files onto the server's own disk through it."""
    assert "--no-serve-artifacts" in stack.server_command
    answer = requests.put(
        f"{stack.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/anything/x.txt", data=b"x", timeout=10
    )
    assert answer.status_code == 503
    assert not list(stack.server.cwd.glob("mlartifacts/**/x.txt"))


def test_direct_mode_ui_lists_and_previews_artifacts_with_the_servers_read_only_key(stack, stack_run):
    """The UI's own requests, answered by the server from S3 with the key it holds."""
    run, _ = stack_run
    listing = requests.get(
        f"{stack.tracking_uri}/ajax-api/2.0/mlflow/artifacts/list",
        params={"run_uuid": run.info.run_id, "path": "reports"},
        timeout=10,
    )
    assert [f["path"] for f in listing.json()["files"]] == ["reports/notes.md"]
    preview = requests.get(
        f"{stack.tracking_uri}/get-artifact",
        params={"run_uuid": run.info.run_id, "path": "reports/notes.md"},
        timeout=10,
    )
    assert preview.text.startswith("# Training notes")


@pytest.mark.parametrize(
    "origin, status",
    [
        ("http://localhost:5000", 200),
        ("http://localhost:8080", 200),
        ("http://127.0.0.1:1234", 200),
        ("https://evil.example", 403),
    ],
)
def test_mlflow_takes_state_changes_from_every_localhost_origin(stack, origin, status):
    """MLflow 3.17.2 lets any page served from localhost, on any port, send POSTs: its
    should_block_cors_request (mlflow/server/security_utils.py) never blocks a localhost
    origin, and --cors-allowed-origins can only add origins to that. Other origins are
    refused. So the compose file sets no --cors-allowed-origins: it would not narrow this."""
    assert "--cors-allowed-origins" not in " ".join(stack.server_command)
    answer = requests.post(
        f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search",
        json={"max_results": 1},
        headers={"Origin": origin},
        timeout=10,
    )
    assert answer.status_code == status
    if status == 200:
        assert answer.headers["Access-Control-Allow-Origin"] == origin


def test_any_client_can_upload_small_files_to_a_server_folder(stack, tmp_path):
    """--no-serve-artifacts closes the proxy, not the UI's upload endpoint: an experiment with
    a folder of the server's disk as artifact location takes files there (MLflow 3.17.2)."""
    api = f"{stack.tracking_uri}/api/2.0/mlflow"
    folder = tmp_path / "on-the-servers-disk"
    experiment = requests.post(
        f"{api}/experiments/create",
        json={"name": f"disk-{tmp_path.name}", "artifact_location": str(folder)},
        timeout=10,
    )
    run = requests.post(f"{api}/runs/create", json={"experiment_id": experiment.json()["experiment_id"]}, timeout=10)
    run_id = run.json()["run"]["info"]["run_id"]
    upload = requests.post(
        f"{stack.tracking_uri}/ajax-api/2.0/mlflow/upload-artifact",
        params={"run_uuid": run_id, "path": "sub/x.txt"},
        data=b"written by any client",
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert upload.status_code == 200, upload.text
    assert (folder / run_id / "artifacts/sub/x.txt").read_bytes() == b"written by any client"
