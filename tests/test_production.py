"""What the tutorial's "Going to production" section says: settings only, and a login."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from conftest import run_script
from stack import API_PROBE, REPO, Process, clean_env, compose_service, free_port, http_status

# The section's settings file, and the compose server's job-runner setting.
AUTH_CONFIG = REPO / "auth/basic_auth.ini"
JOBS = compose_service("mlflow")["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]

# The section's `.env` for managed services, as the tutorial shows it.
_SECTION = (REPO / "examples/02_artifacts/README.md").read_text().split("## 10)")[1]
MANAGED = dict(re.findall(r"^\s*(\w+)=(.*)$", _SECTION.split("```text")[1].split("```")[0], re.MULTILINE))


def test_env_settings_point_the_stack_at_managed_services():
    """The same compose file with a `.env` holding MANAGED: no edit of docker-compose.yml."""
    assert MANAGED["POSTGRES_HOST"] == "db.example.com"
    command = compose_service("mlflow", variables=MANAGED)["command"]
    assert (
        "--backend-store-uri=postgresql+psycopg2://mlflow_prod:from-your-secret-store@db.example.com:6432/mlflow_prod"
        in command
    )
    for service, key in (("mlflow", "SERVER"), ("trainer", "ARTIFACTS")):
        env = compose_service(service, variables=MANAGED)["environment"]
        assert env["MLFLOW_S3_ENDPOINT_URL"] == "https://s3.amazonaws.com"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            MANAGED[f"{key}_ACCESS_KEY"],
            MANAGED[f"{key}_SECRET_KEY"],
        )


@pytest.fixture(scope="module")
def basic_auth_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth` as the section shows it, on an embedded store."""
    workdir = tmp_path_factory.mktemp("basic-auth")
    port = free_port()
    env = clean_env(
        {
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "tutorial-test-key",
            "MLFLOW_AUTH_ADMIN_PASSWORD": "tutorial-admin-pw",
            "MLFLOW_AUTH_CONFIG_PATH": str(AUTH_CONFIG),
            # As the compose mlflow service has it: no job runner.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": JOBS,
        }
    )
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    args = [mlflow, "server", "--app-name", "basic-auth", "--port", str(port), "--workers", "1"]
    server = Process(args, env, workdir / "server.log", workdir)
    uri = f"http://127.0.0.1:{port}"
    try:
        server.wait_until(lambda: http_status(uri + API_PROBE) == 401, "basic-auth server", 120)
        yield uri
    finally:
        server.stop()


def test_basic_auth_asks_for_a_login(basic_auth_server, tmp_path):
    result = run_script(
        "examples/02_artifacts/run.py", cwd=tmp_path, env=clean_env({"MLFLOW_TRACKING_URI": basic_auth_server})
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: the tracking server at {basic_auth_server} asks for a login (401)",
        "fix: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
    ]


def test_basic_auth_with_a_login_runs_the_example(basic_auth_server, tmp_path):
    env = clean_env(
        {
            "MLFLOW_TRACKING_URI": basic_auth_server,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": "tutorial-admin-pw",
        }
    )
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_auth_settings_cache_password_checks_and_hold_no_password(monkeypatch):
    """auth/basic_auth.ini, read as MLflow reads it: the cache MLflow leaves off is on."""
    from mlflow.server.auth.config import read_auth_config  # imports the whole server: only here

    monkeypatch.delenv("MLFLOW_AUTH_CONFIG_PATH", raising=False)
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    assert read_auth_config().auth_cache_ttl_seconds == 0  # MLflow's own settings
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(AUTH_CONFIG))
    ours = read_auth_config()
    assert ours.auth_cache_ttl_seconds == 60
    assert ours.admin_username == "admin" and ours.admin_password is None  # the password comes from the environment
