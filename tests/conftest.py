"""Fixtures: the real services every test talks to, each started once per test process.

- `stack`: PostgreSQL + moto's S3 server + `mlflow server`, configured from docker-compose.yml.
- `embedded_dir`: a folder holding MLflow's embedded default store (SQLite + mlruns/).
- `mlflow_store`: points this test process's MLflow client at one of the two.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import mlflow
import pytest

from support.docker_stack import compose_problem
from support.examples import trainer_run
from support.services import POSTGRES_ADMIN_URL, service_missing
from support.stack import COMPOSE_FILE, PROXIED_FILE, REPO, S3_STACKS, clean_env, local_stack, postgres_problem

# pytest-xdist hands whole modules to the test processes in collection order
# (--no-loadscope-reorder in pytest.ini): the longest go first, so the processes end together.
LONGEST_FIRST = [
    "test_compose_docker",
    "test_fault_matrix",
    "test_faults_embedded",
    "test_faults_s3",
    "test_faults",
    "test_claims",
    "test_seaweedfs",
    "test_ui",
    "test_load",
    "test_production",
    "test_artifact_paths_roundtrip",
    "test_mlflow_ui",
]

# The quick check (`pytest -m lesson`): the tests the lesson's sections name, on MLflow's
# embedded default and the moto stack. The same proofs on SeaweedFS, in a browser and in
# Docker (which builds and starts the whole compose stack) run in the full suite only.
LESSON = REPO / "examples/02_artifacts/README.md"
NOT_IN_THE_QUICK_CHECK = {"test_compose_docker", "test_seaweedfs", "test_ui"}


def lesson_proofs() -> set[tuple[str, str]]:
    """(module, test name) of every proof the lesson names."""
    found = re.findall(r"\[`(test_\w+)`\]\(\.\./\.\./tests/(\w+)\.py\)", LESSON.read_text())
    return {(module, name) for name, module in found if module not in NOT_IN_THE_QUICK_CHECK}


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.module.__name__
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module keeps its own order
    proofs = lesson_proofs()
    for item in items:
        on_seaweedfs = "seaweedfs" in getattr(getattr(item, "callspec", None), "id", "")
        if (item.module.__name__, getattr(item, "originalname", item.name)) in proofs and not on_seaweedfs:
            item.add_marker(pytest.mark.lesson)


def _local_stack(s3: str, tmp_path_factory):
    problem = compose_problem()
    if problem:  # Compose itself reads the compose files for the stack
        service_missing(f"Docker Compose: {problem}")
    problem = postgres_problem(POSTGRES_ADMIN_URL)
    if problem:
        service_missing(
            f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}: {problem}. "
            "Start PostgreSQL, or set TEST_POSTGRES_URL to an admin connection URL."
        )
    with local_stack(tmp_path_factory.mktemp(f"stack-{s3}"), POSTGRES_ADMIN_URL, s3) as running:
        yield running


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The compose stack as local processes, moto standing in for MinIO; once per test
    session (see tests/support/stack.py)."""
    yield from _local_stack("moto", tmp_path_factory)


@pytest.fixture(scope="session")
def seaweedfs_stack(tmp_path_factory):
    """The same, with docker-compose.seaweedfs.yml on top: SeaweedFS instead of MinIO."""
    yield from _local_stack("seaweedfs", tmp_path_factory)


@pytest.fixture(scope="session")
def trainer_env(stack) -> dict[str, str]:
    """The environment `docker compose exec trainer ...` gives a command, for a subprocess here."""
    return clean_env(stack.trainer_env)


@pytest.fixture(scope="session")
def stack_run(stack, tmp_path_factory):
    """examples/02_artifacts/run.py, run once with the compose trainer's environment."""
    return trainer_run(stack, tmp_path_factory.mktemp("trainer"))


@pytest.fixture(scope="session")
def proxied(stack, stack_run, tmp_path_factory):
    """The stack seen through a second tracking server, as docker-compose.yml +
    docker-compose.proxied.yml configure it, on the same database and S3 server
    (stack_run: direct mode came first, as for a learner who switches)."""
    with stack.other_server(tmp_path_factory.mktemp("proxied"), (COMPOSE_FILE, PROXIED_FILE)) as seen_through_it:
        yield seen_through_it


@pytest.fixture(scope="session")
def proxied_run(proxied, tmp_path_factory):
    """examples/02_artifacts/run.py, run once in the proxied trainer."""
    return trainer_run(proxied, tmp_path_factory.mktemp("proxied-trainer"))


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """One folder for MLflow's embedded default store, shared by the tests that use it."""
    return tmp_path_factory.mktemp("embedded")


# The stores a claim is checked on: MLflow's embedded default, and the compose stack in
# direct mode with each S3 server (moto standing in for MinIO; SeaweedFS).
STORES = ["embedded", "s3-direct", "s3-seaweedfs"]


@pytest.fixture(params=STORES)
def mlflow_store(request, monkeypatch):
    """Point this process's MLflow client at the embedded store or at a compose stack.

    The S3 settings are the trainer's, put into this process's environment, where
    boto3 reads them. Yields the store's name.
    """
    if request.param == "embedded":
        folder = request.getfixturevalue("embedded_dir")
        monkeypatch.chdir(folder)  # the embedded default's artifacts go to ./mlruns
        mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    else:
        stack = request.getfixturevalue(S3_STACKS[request.param])
        for name, value in clean_env(stack.trainer_env).items():
            if name.startswith(("MLFLOW_", "AWS_")):
                monkeypatch.setenv(name, value)
        # boto3's default session reads the AWS_* keys once, at its first client; the two
        # S3 servers have different keys, so start a new session that reads these.
        boto3.setup_default_session()
        mlflow.set_tracking_uri(stack.tracking_uri)
    try:
        yield request.param
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


@pytest.fixture
def s3_stack(mlflow_store, request):
    """The compose stack behind an S3 `mlflow_store`."""
    return request.getfixturevalue(S3_STACKS[mlflow_store])
