"""What the tutorial's "Going to production" section says: settings only, and a login."""

from __future__ import annotations

import collections
import re
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from support.docs import printed
from support.examples import EXPECTED_FILES, run_script
from support.stack import (
    API_PROBE,
    COMPOSE_FILE,
    REPO,
    Process,
    argument,
    clean_env,
    compose_environment,
    compose_service,
    free_port,
    http_status,
    tracking_server_command,
)

# The section's settings file, and the compose server's job-runner setting.
AUTH_CONFIG = REPO / "auth/basic_auth.ini"
JOBS = compose_service("mlflow")["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]

# The section's `.env` for managed services, as the tutorial shows it.
_SECTION = (REPO / "docs/production.md").read_text()
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


ADMIN = ("admin", "tutorial-admin-password")  # MLflow wants 12 characters or more


def test_the_same_env_settings_run_the_stack_on_other_services(stack, tmp_path):
    """The settings of MANAGED, with values for services that run here (this test session's
    PostgreSQL database and S3 server, and their real keys): the compose file's server and
    trainer, unedited, log run.py there."""
    pg_host, pg_port = stack.hosts["postgres:5432"].split(":")
    local = {
        "POSTGRES_HOST": pg_host, "POSTGRES_PORT": pg_port, "POSTGRES_USER": "mlflow", "POSTGRES_PASSWORD": "mlflow",
        "POSTGRES_DB": stack.database, "S3_ENDPOINT_URL": stack.s3_endpoint,
        "ARTIFACTS_ACCESS_KEY": stack.artifacts_key["AccessKeyId"],
        "ARTIFACTS_SECRET_KEY": stack.artifacts_key["SecretAccessKey"],
        "SERVER_ACCESS_KEY": stack.server_key["AccessKeyId"], "SERVER_SECRET_KEY": stack.server_key["SecretAccessKey"],
    }  # fmt: skip
    assert set(local) == set(MANAGED)
    hosts = {"mlflow:5000": f"127.0.0.1:{free_port()}"}  # where the published port would be
    command = tracking_server_command(hosts, stack.database, (COMPOSE_FILE,), local)
    assert argument(command, "--backend-store-uri").startswith(f"postgresql+psycopg2://mlflow:mlflow@{pg_host}:{pg_port}/")
    env = compose_environment("mlflow", hosts, (COMPOSE_FILE,), local)
    server = Process(command, clean_env(env), tmp_path / "server.log", tmp_path)
    uri = f"http://{hosts['mlflow:5000']}"
    try:
        server.wait_until(lambda: http_status(uri + API_PROBE) == 200, "mlflow server", 120)
        trainer = compose_environment("trainer", hosts, (COMPOSE_FILE,), local)
        result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=clean_env(trainer))
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    run = MlflowClient(stack.tracking_uri).get_run(printed(result.stdout, "run id"))  # in that database
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    assert stack.keys(prefix) == [prefix + path for path in EXPECTED_FILES]  # in that bucket


@pytest.fixture(scope="module")
def basic_auth(tmp_path_factory) -> tuple[str, Process]:
    """`mlflow server --app-name basic-auth` as the section shows it, on an embedded store,
    with two web workers (MLflow's default is four): its URL and its process."""
    workdir = tmp_path_factory.mktemp("basic-auth")
    port = free_port()
    env = clean_env(
        {
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "tutorial-test-key",
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
            "MLFLOW_AUTH_CONFIG_PATH": str(AUTH_CONFIG),
            # As the compose mlflow service has it: no job runner.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": JOBS,
        }
    )
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    args = [mlflow, "server", "--app-name", "basic-auth", "--port", str(port), "--workers", "2"]
    server = Process(args, env, workdir / "server.log", workdir)
    uri = f"http://127.0.0.1:{port}"
    try:
        server.wait_until(lambda: http_status(uri + API_PROBE) == 401, "basic-auth server", 120)
        yield uri, server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_auth_server(basic_auth) -> str:
    return basic_auth[0]


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
            "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        }
    )
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


REQUEST_LINE = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD) /\S* HTTP/[\d.]+" (\d{3})')


def test_run_py_makes_about_40_requests(basic_auth, tmp_path):
    """Counted in the server's access log, on the server as the section starts it (artifacts
    go through it too). Each request is a password check; with the cache, one per worker and minute."""
    uri, server = basic_auth
    env = clean_env({"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]})
    before = len(server.log.read_text().splitlines())
    began = time.monotonic()
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path, env=env)
    seconds = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    time.sleep(1)  # the last access-log line
    requests_made = [line for line in server.log.read_text().splitlines()[before:] if REQUEST_LINE.search(line)]
    print(f"\nrun.py against the basic-auth server: {len(requests_made)} HTTP requests, {seconds:.1f} s")
    assert 35 <= len(requests_made) <= 50, requests_made


def new_user(uri: str) -> tuple[str, str]:
    name, password = f"learner-{uuid.uuid4().hex[:8]}", "first-password-1234"
    answer = requests.post(f"{uri}/api/2.0/mlflow/users/create", json={"username": name, "password": password},
                           auth=ADMIN, timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return name, password


def answers(uri: str, login: tuple[str, str], stop=None, most: int = 100) -> collections.Counter:
    """The statuses of GET requests, each on a new connection, so that the kernel hands them
    to either worker; up to `most`, or until `stop(statuses)` says enough."""
    statuses = collections.Counter()
    for _ in range(most):
        answer = requests.get(uri + API_PROBE, auth=login, headers={"Connection": "close"}, timeout=10)
        statuses[answer.status_code] += 1
        if stop and stop(statuses):
            break
    return statuses


def test_a_changed_password_works_on_other_workers_until_the_cache_expires(basic_auth):
    """auth/basic_auth.ini's cache, with two workers: the worker that changed the password
    forgets the old one at once, the other keeps taking it until its entry is 60 s old."""
    uri, _ = basic_auth
    name, old = new_user(uri)
    cached_at = time.monotonic()
    warm = answers(uri, (name, old), most=30)  # each worker checks the password once, then caches it
    assert warm == {200: 30}
    change = requests.patch(f"{uri}/api/2.0/mlflow/users/update-password",
                            json={"username": name, "password": "second-password-5678"}, auth=ADMIN, timeout=10)  # fmt: skip
    assert change.status_code == 200, change.text
    after_change = answers(uri, (name, old), stop=lambda s: s[200] and s[401])
    print(f"\nold password, after the change: {dict(after_change)}")
    assert after_change[200] and after_change[401], after_change  # one worker still takes it, one does not
    time.sleep(max(0.0, cached_at + 61 - time.monotonic()))
    after_a_minute = answers(uri, (name, old), most=30)
    print(f"old password, 60 s after it was cached: {dict(after_a_minute)}")
    assert after_a_minute == {401: 30}


def test_a_deleted_user_is_refused_on_every_worker_at_once(basic_auth):
    """The other worker still knows the password, but then finds no such user: 404, not 200."""
    uri, _ = basic_auth
    name, password = new_user(uri)
    assert answers(uri, (name, password), most=30) == {200: 30}
    delete = requests.delete(f"{uri}/api/2.0/mlflow/users/delete", json={"username": name}, auth=ADMIN, timeout=10)
    assert delete.status_code == 200, delete.text
    after = answers(uri, (name, password), stop=lambda s: s[401] and s[404])
    print(f"\ndeleted user, right after: {dict(after)}")
    assert set(after) == {401, 404}, after  # 401 where it was deleted, 404 on the other worker
    write = requests.post(f"{uri}/api/2.0/mlflow/experiments/create", json={"name": f"by-{name}"},
                          auth=(name, password), timeout=10)  # fmt: skip
    assert write.status_code in (401, 404)


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
