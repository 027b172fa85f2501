"""What run.py adds to MLflow's own start-up, on a warm embedded store.

    .venv/bin/python benchmarks/startup.py [--rounds 9]

In a temporary folder: one run of each to create the store, then alternating runs of
`python examples/02_artifacts/run.py` and of a bare MLflow run (`import mlflow;
mlflow.set_experiment("02-artifacts"); with mlflow.start_run(): pass`), timing each whole
process. Prints both medians and their ratio (target: run.py at most 1.1x the bare run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE = 'import mlflow\nmlflow.set_experiment("02-artifacts")\nwith mlflow.start_run():\n    pass\n'
COMMANDS = {
    "run.py": [sys.executable, str(REPO / "examples/02_artifacts/run.py")],
    "bare MLflow run": [sys.executable, "-c", BARE],
}


def seconds(command: list[str], cwd: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as folder:
        for command in COMMANDS.values():  # warm-up: creates mlflow.db and the experiment
            seconds(command, folder, env)
        for _ in range(rounds):  # alternate, so that both see the same machine load
            for name, command in COMMANDS.items():
                times[name].append(seconds(command, folder, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name:<16}: median {median:.2f} s over {rounds} runs (min {min(times[name]):.2f} s)")
    print(f"ratio           : {medians['run.py'] / medians['bare MLflow run']:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
