"""Which Pythons run the README's first command? Tries each python3.X found on this machine.

    .venv/bin/python scripts/python_versions.py              # python3.10 ... python3.14 on PATH
    .venv/bin/python scripts/python_versions.py python3.12   # given ones

For each: a new virtual environment in a temporary folder, `pip install -r requirements.lock`,
then examples/02_artifacts/run.py on the embedded default in a fresh folder, exactly as the
README says. Prints a table (version, install, run, seconds, pip's last line on failure).
It takes minutes per Python (about 1.1 GB of packages each), so it is not part of the tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def try_python(python: str) -> tuple[str, str, str, float, str]:
    answer = subprocess.run([python, "--version"], capture_output=True, text=True)
    if answer.returncode != 0:  # a pyenv shim for a version that is not selected, say
        return python, "-", "-", 0.0, answer.stderr.strip()
    version = answer.stdout.split()[-1]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        venv, workdir = Path(tmp) / ".venv", Path(tmp) / "work"
        workdir.mkdir()
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        install = subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", "-r", str(REPO / "requirements.lock")],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            last = [line for line in install.stderr.splitlines() if line.startswith("ERROR")][-1:]
            return version, "fails", "-", time.monotonic() - started, " ".join(last)
        run = subprocess.run(
            [str(venv / "bin/python"), str(REPO / "examples/02_artifacts/run.py")],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        outcome = "works" if run.returncode == 0 else "fails"
        return (
            version,
            "works",
            outcome,
            time.monotonic() - started,
            run.stderr.strip()[-200:] if run.returncode else "",
        )


def main() -> None:
    pythons = sys.argv[1:] or [name for minor in range(10, 15) if (name := shutil.which(f"python3.{minor}"))]
    print("| Python | install | run.py | seconds | note |")
    print("|---|---|---|---:|---|")
    for python in pythons:
        version, install, run, seconds, note = try_python(python)
        print(f"| {version} | {install} | {run} | {seconds:.0f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
