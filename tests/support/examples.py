"""The examples, run as a learner runs them, and what run.py logs."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from PIL import Image

from support.docs import printed
from support.stack import REPO, clean_env


def run_script(script: str, cwd: Path, env: dict[str, str], args: list[str] = ()) -> subprocess.CompletedProcess:
    """Run an example as a learner would: `python examples/.../run.py`, in its own process."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def trainer_run(stack, workdir: Path):
    """examples/02_artifacts/run.py in the trainer of `stack` (a Stack, or one seen through
    another server): the run it made, and what it printed."""
    result = run_script("examples/02_artifacts/run.py", cwd=workdir, env=clean_env(stack.trainer_env))
    assert result.returncode == 0, result.stderr
    return mlflow.MlflowClient(stack.tracking_uri).get_run(printed(result.stdout, "run id")), result.stdout


EXPECTED_FILES = [
    "configs/train_config.json",
    "data/metrics.csv",
    "images/gradient.png",
    "reports/notes.md",
    "tables/metrics.json",
]


def load_example():
    """examples/02_artifacts/run.py as a module, for the values it logs."""
    spec = importlib.util.spec_from_file_location("artifacts_example", REPO / "examples/02_artifacts/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


def check_contents(read) -> None:
    """Each of the five artifacts holds what run.py logged. `read(path)` gives its bytes."""
    assert read("reports/notes.md").decode() == example.NOTES
    assert json.loads(read("configs/train_config.json")) == example.CONFIG
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(read("data/metrics.csv"))), example.make_metrics())
    # log_table stores pandas' "split" layout without the index.
    table = json.loads(read("tables/metrics.json"))
    assert set(table) == {"columns", "data"}
    assert table["columns"] == list(example.make_metrics().columns)
    pd.testing.assert_frame_equal(pd.DataFrame(**table), example.make_metrics())
    image = Image.open(io.BytesIO(read("images/gradient.png")))
    assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), example.make_gradient())
