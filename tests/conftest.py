"""Fixtures: the real services every test talks to, each started once per test session.

- `stack`: PostgreSQL + moto's S3 server + `mlflow server`, configured from docker-compose.yml.
- `embedded_dir`: a folder holding MLflow's embedded default store (SQLite + mlruns/).
- `mlflow_store`: points this test process's MLflow client at one of the two.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import boto3
import mlflow
import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url
from stack import (
    API_PROBE,
    REPO,
    S3_SETUP_REQUESTS,
    Process,
    argument,
    clean_env,
    compose_environment,
    compose_service,
    free_port,
    http_status,
    port_is_open,
    set_up_s3,
    start_s3_server,
    tracking_server_command,
    with_key,
)

# A PostgreSQL role that may create databases and roles. On a learner's machine,
# set TEST_POSTGRES_URL to reach another server.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(message: str):
    """Skip on a learner's machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run_script(script: str, cwd: Path, env: dict[str, str], args: list[str] = ()) -> subprocess.CompletedProcess:
    """Run an example as a learner would: `python examples/.../run.py`, in its own process."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="session")
def postgres_database():
    """A fresh database, owned by the user that docker-compose.yml's backend URI names."""
    try:
        admin = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3)
    except psycopg2.OperationalError as error:
        service_missing(
            f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}: {str(error).strip()}. "
            "Start PostgreSQL, or set TEST_POSTGRES_URL to an admin connection URL."
        )
    compose_url = make_url(argument(compose_service("mlflow")["command"], "--backend-store-uri"))
    owner, password = compose_url.username, compose_url.password
    database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(owner)), (password,))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))
    yield f"{admin.info.host}:{admin.info.port}", database
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    admin.close()


@dataclass
class Stack:
    tracking_uri: str  # where the test process reaches the tracking server
    s3_endpoint: str
    bucket: str
    trainer_env: dict[str, str]  # the compose trainer's environment: hosts and keys mapped
    server: Process  # the tracking server
    root_key: dict  # the S3 server's all-powerful user, as MinIO's root account
    artifacts_key: dict  # the bucket-only user's key, which mlflow and trainer use
    hosts: dict[str, str]  # compose host names -> local addresses
    database: str  # the fresh PostgreSQL database

    @property
    def server_command(self) -> list[str]:
        return self.server.args

    def client(self, service: str = "s3", key: dict | None = None):
        """A boto3 client for the S3 server: with the trainer's key, or with `key`."""
        env = with_key(self.trainer_env, key) if key else self.trainer_env
        return boto3.client(
            service,
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def s3(self):
        return self.client("s3")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def wait_for_server(self) -> None:
        self.server.wait_until(lambda: http_status(self.tracking_uri + API_PROBE) == 200, "mlflow server", 120)

    def restart_server(self) -> None:
        self.server.stop()
        self.server.start()
        self.wait_for_server()


@pytest.fixture(scope="session")
def stack(postgres_database, tmp_path_factory):
    postgres_address, database = postgres_database
    workdir = tmp_path_factory.mktemp("stack")
    if port_is_open("127.0.0.1", 5000):
        pytest.fail(
            "Port 5000 is taken. The tests run the tracking server on 127.0.0.1:5000, the port "
            "docker-compose.yml uses; stop whatever listens there (maybe `mlflow ui`).",
            pytrace=False,
        )
    s3_server, s3_endpoint = start_s3_server(workdir, {"INITIAL_NO_AUTH_ACTION_COUNT": str(S3_SETUP_REQUESTS)})
    hosts = {
        "postgres:5432": postgres_address,
        "minio:9000": s3_endpoint.removeprefix("http://"),
        "mlflow:5000": "127.0.0.1:5000",
    }
    command = tracking_server_command(hosts, database)
    # The bucket job in docker-compose.yml creates the bucket of --default-artifact-root,
    # and the user whose name the mlflow and trainer services use as AWS_ACCESS_KEY_ID.
    bucket = argument(command, "--default-artifact-root").removeprefix("s3://").split("/")[0]
    trainer_env = compose_environment("trainer", hosts)
    root_key, artifacts_key = set_up_s3(s3_endpoint, bucket, user=trainer_env["AWS_ACCESS_KEY_ID"])
    server_env = with_key(compose_environment("mlflow", hosts), artifacts_key)
    server = Process(command, clean_env(server_env), workdir / "mlflow-server.log", workdir)
    stack = Stack(
        "http://127.0.0.1:5000",
        s3_endpoint,
        bucket,
        with_key(trainer_env, artifacts_key),
        server,
        root_key,
        artifacts_key,
        hosts,
        database,
    )
    try:
        stack.wait_for_server()
        yield stack
    finally:
        server.stop()
        s3_server.stop()


@pytest.fixture(scope="session")
def trainer_env(stack) -> dict[str, str]:
    """The environment `docker compose exec trainer ...` gives a command, for a subprocess here."""
    return clean_env(stack.trainer_env)


def printed(stdout: str, label: str) -> str:
    """The value an example printed after `label :`."""
    return re.search(rf"^{label}\s*: (.+)$", stdout, re.MULTILINE).group(1)


@pytest.fixture(scope="session")
def stack_run(stack, trainer_env, tmp_path_factory):
    """examples/02_artifacts/run.py, run once with the compose trainer's environment."""
    result = run_script("examples/02_artifacts/run.py", cwd=tmp_path_factory.mktemp("trainer"), env=trainer_env)
    assert result.returncode == 0, result.stderr
    run = mlflow.MlflowClient(stack.tracking_uri).get_run(printed(result.stdout, "run id"))
    return run, result.stdout


class UiRun(NamedTuple):
    """A run of examples/02_artifacts/run.py and the MLflow UI that shows it."""

    url: str
    experiment_id: str
    run_id: str


@pytest.fixture(scope="session")
def embedded_ui(tmp_path_factory):
    """run.py on the embedded default in a fresh folder, then the README's `mlflow ui` there."""
    folder = tmp_path_factory.mktemp("embedded-ui")
    result = run_script("examples/02_artifacts/run.py", cwd=folder, env=clean_env({}))
    assert result.returncode == 0, result.stderr
    port = free_port()  # the README's default, 5000, belongs to the stack's server here
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    ui = Process([mlflow_cli, "ui", "--port", str(port)], clean_env({}), folder.with_suffix(".log"), folder)
    try:
        url = f"http://127.0.0.1:{port}"
        ui.wait_until(lambda: http_status(url + API_PROBE) == 200, "mlflow ui", timeout=120)
        experiment_id = re.search(r"\(id (\d+)\)", printed(result.stdout, "experiment")).group(1)
        yield UiRun(url, experiment_id, printed(result.stdout, "run id"))
    finally:
        ui.stop()


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """One folder for MLflow's embedded default store, shared by the tests that use it."""
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(params=["embedded", "s3-direct"])
def mlflow_store(request, monkeypatch):
    """Point this process's MLflow client at the embedded store or at the compose stack.

    The S3 settings are the trainer's, put into this process's environment, where
    boto3 reads them. Yields the store's name.
    """
    if request.param == "embedded":
        folder = request.getfixturevalue("embedded_dir")
        monkeypatch.chdir(folder)  # the embedded default's artifacts go to ./mlruns
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    else:
        stack = request.getfixturevalue("stack")
        for name, value in clean_env(stack.trainer_env).items():
            if name.startswith(("MLFLOW_", "AWS_")):
                monkeypatch.setenv(name, value)
        mlflow.set_tracking_uri(stack.tracking_uri)
    try:
        yield request.param
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
