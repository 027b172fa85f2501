"""Several learners on one stack at once, and a tracking server restart."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from common.mlflow_env import artifact_tree

from support.docs import printed
from support.examples import EXPECTED_FILES, check_contents
from support.stack import REPO

LEARNERS = 8


@pytest.mark.parametrize("mlflow_store", ["s3-direct"], indirect=True)  # this process lists S3 too
def test_concurrent_runs_then_server_restart(mlflow_store, stack, trainer_env, tmp_path):
    # Start all eight at the same moment, then wait for each.
    learners = [
        subprocess.Popen(
            [sys.executable, str(REPO / "examples/02_artifacts/run.py")],
            cwd=tmp_path,
            env=trainer_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(LEARNERS)
    ]
    outputs = [learner.communicate(timeout=300) for learner in learners]
    assert [learner.returncode for learner in learners] == [0] * LEARNERS, [err for _, err in outputs]
    run_ids = [printed(out, "run id") for out, _ in outputs]
    assert len(set(run_ids)) == LEARNERS

    client = MlflowClient(stack.tracking_uri)
    s3 = stack.s3()
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        # Exactly this run's five files under its own prefix: nothing of another run.
        prefix = f"{run.info.experiment_id}/{run_id}/artifacts/"
        assert stack.keys(prefix) == [prefix + path for path in EXPECTED_FILES]
        check_contents(lambda path: s3.get_object(Bucket=stack.bucket, Key=prefix + path)["Body"].read())

    # PostgreSQL and the bucket are the source of truth: a new server process sees everything.
    stack.restart_server()
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert sorted(artifact_tree(run_id)) == EXPECTED_FILES


def test_run_py_requests_to_the_tracking_server_in_direct_mode(stack, trainer_env, tmp_path):
    """Counted in the compose server's access log: in direct mode the files go to S3, so the
    server gets fewer requests than a server that takes the files too (see test_production.py)."""
    before = len(stack.server.log.read_text().splitlines())
    result = subprocess.run([sys.executable, str(REPO / "examples/02_artifacts/run.py")], cwd=tmp_path,
                            env=trainer_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    time.sleep(1)  # the access log's last lines
    lines = stack.server.log.read_text().splitlines()[before:]
    made = [line for line in lines if re.search(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD) /\S* HTTP', line)]
    print(f"\nrun.py against the compose server, direct mode: {len(made)} HTTP requests")
    assert 20 <= len(made) <= 40, made
