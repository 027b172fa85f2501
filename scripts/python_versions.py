"""Which Pythons run the README's first command? Tries each python3.X found on this machine.

    .venv/bin/python scripts/python_versions.py              # python3.10 ... python3.14 on PATH
    .venv/bin/python scripts/python_versions.py python3.12   # given ones
    .venv/bin/python scripts/python_versions.py forky:python3.14   # a Debian release's Python, in Docker

For each: a new virtual environment in a temporary folder, `pip install -r requirements.lock`,
then examples/02_artifacts/run.py on the embedded default in a fresh folder, exactly as the
README says. Prints a table (version, install, run, seconds, pip's last line on failure).
It takes about a minute per Python (about 210 MB of packages each), so it is not part of the tests.

`RELEASE:PYTHON` runs the same command in a container of that Debian release with its PYTHON
(Debian 14, "forky", has python3.14), for a Python this machine does not have. The container
is made from Debian's packages, as the tests make their stand-in images (tests/support/docker_stack.py):
it needs a Docker engine, mmdebstrap, and this machine's Debian package sources.
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


# The README's first command, with PYTHON for python3, run in a copy of the repository.
IN_CONTAINER = """
set -e
cp -r /repository /tmp/tutorial && cd /tmp/tutorial
"$PYTHON" --version
started=$(date +%s)
if ! ("$PYTHON" -m venv .venv && .venv/bin/pip install -q -r requirements.lock) > /tmp/install.log 2>&1; then
    echo "install fails $(( $(date +%s) - started )) $(grep ^ERROR /tmp/install.log | tail -1)"; exit 0
fi
if .venv/bin/python examples/02_artifacts/run.py > /tmp/run.log 2>&1; then result=works; else result=fails; fi
echo "install works $(( $(date +%s) - started )) $result $(tail -c 200 /tmp/run.log | tr '\n' ' ')"
"""


def try_in_debian(release: str, python: str) -> tuple[str, str, str, float, str]:
    """The README's command with `python` in a container of Debian `release` (built from its packages)."""
    import ssl

    sys.path.insert(0, str(REPO / "tests"))
    from support.docker_stack import _rootfs

    image = _rootfs(release, [python, f"{python}-venv", "ca-certificates"])
    with tempfile.TemporaryDirectory() as tmp:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
        for name in filter(None, listed.stdout.split("\0")):
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, Path(tmp) / name)
        paths = ssl.get_default_verify_paths()
        ca_bundle = Path(paths.cafile or paths.openssl_cafile).resolve()  # as this machine reaches PyPI
        result = subprocess.run(
            ["docker", "run", "--rm", "-e", f"PYTHON={python}", "-e", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
             "-v", f"{tmp}:/repository:ro", "-v", f"{ca_bundle}:/etc/ssl/certs/ca-certificates.crt:ro",
             image, "sh", "-c", IN_CONTAINER],
            capture_output=True, text=True,
        )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or len(lines) < 2:
        return f"{release}:{python}", "-", "-", 0.0, (result.stderr or result.stdout).strip()[-200:]
    version = lines[0].split()[-1]
    _, install, seconds, *rest = lines[1].split(" ", 3)
    if install == "fails":
        return version, "fails", "-", float(seconds), " ".join(rest)
    run, *note = " ".join(rest).split(" ", 1)
    return version, "works", run, float(seconds), note[0] if run == "fails" and note else ""


def main() -> None:
    pythons = sys.argv[1:] or [name for minor in range(10, 15) if (name := shutil.which(f"python3.{minor}"))]
    print("| Python | install | run.py | seconds | note |")
    print("|---|---|---|---:|---|")
    for python in pythons:
        if ":" in python:
            version, install, run, seconds, note = try_in_debian(*python.split(":", 1))
        else:
            version, install, run, seconds, note = try_python(python)
        print(f"| {version} | {install} | {run} | {seconds:.0f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
