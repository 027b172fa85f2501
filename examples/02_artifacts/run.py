"""02 - Artifacts: log text, a dict, a CSV, a table and an image to one MLflow run.

Run it from the repository root:

    python examples/02_artifacts/run.py

The numbered steps below match "run.py step by step" in README.md next to this file.
"""

import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import mlflow
import numpy as np
import pandas as pd

# Let `python examples/02_artifacts/run.py` import the shared helper from common/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common.checks import checked_setup  # noqa: E402
from common.mlflow_env import artifact_tree, ui_link, use_experiment  # noqa: E402

EXPERIMENT = "02-artifacts"
RUN_NAME = "artifact_examples"

NOTES = """# Training notes

- Model: tiny-mlp, 3 epochs
- Validation loss went down every epoch (see `tables/metrics.json`).
"""

CONFIG = {"model": "tiny-mlp", "learning_rate": 0.001, "batch_size": 64, "epochs": 3, "seed": 42}


def make_metrics() -> pd.DataFrame:
    """A small per-epoch metrics frame, as a training loop would produce it."""
    return pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [0.92, 0.61, 0.45],
            "val_loss": [0.95, 0.70, 0.58],
            "accuracy": [0.61, 0.74, 0.81],
        }
    )


def make_gradient(size: int = 256) -> np.ndarray:
    """A size x size RGB image: red grows to the right, green grows downwards."""
    ramp = np.linspace(0, 255, size).astype(np.uint8)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:, :, 0] = ramp[np.newaxis, :]
    image[:, :, 1] = ramp[:, np.newaxis]
    image[:, :, 2] = 128
    return image


def main() -> None:
    # 1) Choose the experiment (created on first use).
    use_experiment(EXPERIMENT)
    metrics = make_metrics()

    # 2) Start the run. If anything below raises, MLflow marks the run FAILED.
    with mlflow.start_run(run_name=RUN_NAME) as run:
        print(f"run id         : {run.info.run_id}")
        print(f"artifact URI   : {mlflow.get_artifact_uri()}")

        # 3) Text: artifact_file is the path AND the file name inside the run.
        mlflow.log_text(NOTES, artifact_file="reports/notes.md")
        print("logged         : reports/notes.md (log_text)")

        # 4) A dict: the extension (.json / .yaml) picks the format.
        mlflow.log_dict(CONFIG, artifact_file="configs/train_config.json")
        print("logged         : configs/train_config.json (log_dict)")

        # 5) A file you write yourself: log_artifact takes a local file and a
        #    FOLDER (artifact_path); the file name comes from the local file.
        #    The temporary folder is deleted on exit, so nothing stays behind.
        with TemporaryDirectory() as tmp:
            csv_file = Path(tmp) / "metrics.csv"
            metrics.to_csv(csv_file, index=False)
            mlflow.log_artifact(str(csv_file), artifact_path="data")
        print("logged         : data/metrics.csv (log_artifact)")

        # 6) A table: stored as JSON the UI can show as a table.
        #    Careful: logging to the same file again APPENDS rows.
        mlflow.log_table(metrics, artifact_file="tables/metrics.json")
        print("logged         : tables/metrics.json (log_table)")

        # 7) An image: a numpy uint8 array (or a PIL image) becomes a PNG.
        mlflow.log_image(make_gradient(), artifact_file="images/gradient.png")
        print("logged         : images/gradient.png (log_image)")

    # 8) Read back what really landed in the artifact store.
    print("artifact tree  :")
    for path in artifact_tree(run.info.run_id):
        print(f"  {path}")
    print(f"open the UI    : {ui_link(run)}")


if __name__ == "__main__":
    # Not part of the lesson: turns a set-up problem (a service down, a setting missing)
    # into one error:/fix: message (docs/troubleshooting.md). Plain `main()` works too.
    with checked_setup(EXPERIMENT):
        main()
