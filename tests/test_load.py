"""Several learners on one stack at once, and a tracking server restart."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import printed
from mlflow import MlflowClient
from stack import REPO
from test_examples import EXPECTED_FILES, check_contents

from common.mlflow_env import artifact_tree

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
