"""Which of the tutorial's claims still hold on another MLflow version?

    .venv/bin/python scripts/upgrade_check.py            # the newest MLflow that installs
    .venv/bin/python scripts/upgrade_check.py 3.18.0     # a given version

Every claim in the tutorials and docs pages names its proof, a link whose text is the test's
name: [`test_name`](path/to/test_file.py) (docs/maintainers.md, "Proofs"). This runs
those tests twice against the same real servers the suite starts (PostgreSQL must be
running, as for the tests): once here, on the pinned MLflow, and once in a throwaway
virtual environment with the candidate MLflow and everything else as pinned. It prints a
table: claim, holds on the pinned version, holds on the candidate. It never changes a pin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = [REPO / "README.md", *sorted((REPO / "examples").glob("*/README.md")), *sorted((REPO / "docs").glob("*.md"))]
# [`test_name`](path/to/test_file.py): the test's name as the link's text, its file as the target.
CLAIM_LINK = re.compile(r"\[`(test_\w+)`\]\(([^ )#]+\.py)\)")
PINNED = re.search(r"^mlflow(\[\w+\])?==([\w.]+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)


def claims() -> dict[str, Path]:
    """{test name: test file} for every claim link in the tutorials."""
    found = {}
    for readme in TUTORIALS:
        for name, target in CLAIM_LINK.findall(readme.read_text()):
            found[name] = (readme.parent / target).resolve()
    return found


def run_claims(python: str, report: Path) -> dict[str, bool]:
    """Run the claim tests with `python`; {claim: every case passed}."""
    node_ids = [f"{path.relative_to(REPO)}::{name}" for name, path in claims().items()]
    subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *node_ids],
        cwd=REPO,
    )
    held: dict[str, bool] = {}
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name").split("[")[0]
        failed = any(child.tag in ("failure", "error", "skipped") for child in case)
        held[name] = held.get(name, True) and not failed
    return held


def newest_versions() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "mlflow"], capture_output=True, text=True, check=True
    ).stdout
    return re.search(r"Available versions: (.*)", out).group(1).split(", ")


def why_it_does_not_install(pip_output: str) -> str:
    """pip's reason, in one line: the package it cannot find and the one that asks for it
    (mlflow 3.18.0 asks for an mlflow-tracing the package index does not serve yet)."""
    wanted = re.search(r"satisfies the requirement (\S+) \(from ([^)]+)\)", pip_output)
    if wanted:
        return f"pip finds no {wanted.group(1)}, which {wanted.group(2)} requires"
    missing = re.search(r"No matching distribution found for (\S+)", pip_output)
    if missing:
        return f"pip finds no {missing.group(1)}"
    errors = [line.removeprefix("ERROR: ") for line in pip_output.splitlines() if line.startswith("ERROR")]
    return errors[-1] if errors else "pip failed (run it again without -q to see why)"


def install_candidate(venv: Path, versions: list[str]) -> tuple[str | None, list[str]]:
    """Install the first of `versions` that installs, with the other pins unchanged. Returns it
    (None if none does) and why each one before it did not."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = str(venv / "bin" / "pip")
    failures = []
    for version in versions:
        pins = (
            (REPO / "requirements.txt")
            .read_text()
            .replace(PINNED.group(0), f"mlflow{PINNED.group(1) or ''}=={version}")
        )
        requirements = venv / "requirements.txt"
        requirements.write_text(pins)
        test_requirements = venv / "requirements-test.txt"
        test_requirements.write_text((REPO / "requirements-test.txt").read_text())
        print(f"installing mlflow {version} in {venv} ...", flush=True)
        result = subprocess.run([pip, "install", "-q", "-r", str(test_requirements)], cwd=venv, capture_output=True, text=True)
        if result.returncode == 0:
            return version, failures
        failures.append(f"mlflow {version}: {why_it_does_not_install(result.stdout + result.stderr)}")
        print(f"{failures[-1]}; trying the next one", flush=True)
    return None, failures


def main() -> None:
    pinned_version = PINNED.group(2)
    asked = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        # Newest first; stop at the pinned version, which is known to install.
        newest = newest_versions()
        candidates = asked or newest[: newest.index(pinned_version) + 1]
        candidate, failures = install_candidate(Path(tmp) / "venv", candidates)
        if candidate is None:
            sys.exit(f"error: none of {', '.join(candidates)} installs here\n" + "\n".join(failures))
        print(f"claims on the pinned mlflow {pinned_version} ...", flush=True)
        pinned = run_claims(sys.executable, Path(tmp) / "pinned.xml")
        print(f"claims on mlflow {candidate} ...", flush=True)
        tried = run_claims(str(Path(tmp) / "venv" / "bin" / "python"), Path(tmp) / "candidate.xml")
    print(f"\n| claim | mlflow {pinned_version} (pinned) | mlflow {candidate} |")
    print("|---|---|---|")
    for name in claims():
        mark = {True: "holds", False: "**broken**", None: "not run"}
        print(f"| {name} | {mark[pinned.get(name)]} | {mark[tried.get(name)]} |")
    broken = [name for name in claims() if pinned.get(name) and not tried.get(name)]
    print(f"\n{len(claims())} claims; {len(broken)} hold on {pinned_version} but not on {candidate}.")


if __name__ == "__main__":
    main()
