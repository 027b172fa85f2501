"""01 - Log a file you already have: write report.txt locally, then upload it.

Run it from the repository root:

    python examples/01_log_artifact/run.py

Unlike example 02, this one leaves a file on disk on purpose: outputs/report.txt.
"""

import sys
from pathlib import Path

import mlflow

# Let `python examples/01_log_artifact/run.py` import the shared helper from common/.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from common.checks import checked_setup  # noqa: E402
from common.mlflow_env import artifact_tree, ui_link, use_experiment  # noqa: E402

EXPERIMENT = "01-log-artifact"
RUN_NAME = "report_upload"


def main() -> None:
    # 1) Choose the experiment (created on first use).
    use_experiment(EXPERIMENT)

    # 2) Write a local file. It is relative to where you run the script; in the
    #    compose trainer that is /work, the project folder mounted from your host.
    report = Path("outputs") / "report.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text("accuracy: 0.81\n")

    # 3) Upload it: artifact_path is a FOLDER; the name comes from the local file.
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_artifact(str(report), artifact_path="reports")
        print(f"run id         : {run.info.run_id}")
        print("logged         : reports/report.txt (log_artifact)")

    # 4) The upload is a copy: the local file is still there.
    print(f"local file kept: {report} ({report.exists()})")
    print("artifact tree  :")
    for path in artifact_tree(run.info.run_id):
        print(f"  {path}")
    print(f"open the UI    : {ui_link(run)}")


if __name__ == "__main__":
    # Not part of the lesson: turns a set-up problem (a service down, a setting missing)
    # into one error:/fix: message (docs/troubleshooting.md). Plain `main()` works too.
    with checked_setup(EXPERIMENT):
        main()
