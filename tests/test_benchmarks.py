"""The benchmark script still runs (its figures are for people, not for assertions)."""

from __future__ import annotations

import subprocess
import sys

from support.stack import REPO


def test_artifact_logging_benchmark_runs_against_a_given_stack(stack, trainer_env):
    """The `--tracking-uri` form, as against the compose stack, at the smallest size."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/artifact_logging.py"),
            "--tracking-uri",
            stack.tracking_uri,
            "--s3-endpoint",
            stack.s3_endpoint,
            "--sizes",
            "1KiB",
        ],
        env=trainer_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 1KiB |")]
    assert len(rows) == 4
