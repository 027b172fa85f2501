"""The tracking server as docker-compose.yml configures it."""

import pytest
from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION
from stack import API_PROBE, argument, compose_service, http_status, process_tree


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
    """What tests/stack.py changes in the compose command: where it listens, and one more
    allowed Host header, the local address that stands for mlflow:5000."""
    compose = compose_service("mlflow")["command"]
    assert argument(compose, "--allowed-hosts") == "mlflow:5000,localhost:5000,127.0.0.1:5000"
    allowed = argument(stack.server_command, "--allowed-hosts").split(",")
    assert allowed == ["mlflow:5000", "localhost:5000", "127.0.0.1:5000", stack.hosts["mlflow:5000"]]
    assert stack.tracking_uri == f"http://{stack.hosts['mlflow:5000']}"
    mapped = ("--host=", "--port=", "--backend-store-uri=", "--allowed-hosts=")
    unchanged = [arg for arg in compose if not arg.startswith(mapped)]
    assert [arg for arg in stack.server_command[1:] if arg in unchanged] == unchanged[1:]
