"""Fixtures: the real services every test talks to, each started once per test process.

- `stack`: PostgreSQL + moto's S3 server + `mlflow server`, configured from docker-compose.yml.
- `embedded_dir`: a folder holding MLflow's embedded default store (SQLite + mlruns/).
- `mlflow_store`: points this test process's MLflow client at one of the two.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from stack import (
    REPO,
    clean_env,
    local_stack,
    postgres_problem,
)

# A PostgreSQL role that may create databases and roles. On a learner's machine,
# set TEST_POSTGRES_URL to reach another server.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


# pytest-xdist hands whole modules to the test processes in collection order
# (--no-loadscope-reorder in pytest.ini): the longest go first, so the processes end together.
LONGEST_FIRST = ["test_faults_s3", "test_faults", "test_load", "test_claims", "test_ui", "test_production"]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.module.__name__
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order


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
def stack(tmp_path_factory):
    """The compose stack as local processes, once per test session (see tests/stack.py)."""
    problem = postgres_problem(POSTGRES_ADMIN_URL)
    if problem:
        service_missing(
            f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}: {problem}. "
            "Start PostgreSQL, or set TEST_POSTGRES_URL to an admin connection URL."
        )
    with local_stack(tmp_path_factory.mktemp("stack"), POSTGRES_ADMIN_URL) as running:
        yield running


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
