"""What the READMEs and docs/ show, read as the tests compare it with what really runs: expected
output blocks, the lesson's patterns, the commands of docs/object-stores.md."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from support.stack import REPO

PATTERNS_README = REPO / "examples/02_artifacts/README.md"


def printed(stdout: str, label: str) -> str:
    """The value an example printed after `label :`."""
    return re.search(rf"^{label}\s*: (.+)$", stdout, re.MULTILINE).group(1)


def expected_output(readme: Path, intro: str) -> str:
    """The ```text block that follows the README paragraph starting with `intro`."""
    after = readme.read_text().split(intro, 1)[1]
    return re.search(r"```text\n(.*?)```", after, re.DOTALL).group(1)


def same_form(output: str, replacements: dict[str, str] | None = None) -> str:
    """Output with what changes from run to run made alike: run ids, experiment ids, log times;
    and each key of `replacements` (a folder, a local address) written as its value."""
    for real, shown in (replacements or {}).items():
        output = output.replace(real, shown)
    output = re.sub(r"\b[0-9a-f]{32}\b", "<run id>", output)
    output = re.sub(r"(\(id |mlruns/|mlflow-artifacts/|experiments/)\d+", r"\1<id>", output)
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "<time> ", output, flags=re.MULTILINE)


def pattern_blocks() -> dict[str, str]:
    """{"A": code, ...}: the first python block under each "### (X)" heading of section 6."""
    section = PATTERNS_README.read_text().split("## 6) Patterns")[1].split("\n## ")[0]
    blocks = {}
    for heading in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        letter = re.match(r"\((\w)\)", heading).group(1)
        blocks[letter] = re.search(r"```python\n(.*?)```", heading, re.DOTALL).group(1)
    return blocks


PATTERNS = ["A", "B", "C", "D", "E", "F", "G", "H"]
# Patterns that read the runs of run.py, and stop with one sentence before there is one.
NEED_A_RUN = ["E", "G"]


def run_pattern(letter: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Pattern `letter` saved as a file in `cwd` and run there, as a learner does in a project
    of their own: nothing of this repository is importable (no `common`)."""
    script = cwd.parent / f"pattern_{letter.lower()}.py"
    script.write_text(pattern_blocks()[letter])
    env = {name: value for name, value in env.items() if name != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def gc_command(store: str) -> list[str]:
    """The `mlflow gc` line of docs/object-stores.md for the embedded store, the compose stack, or (store
    "proxied") the compose stack in proxied mode."""
    page = (REPO / "docs/object-stores.md").read_text()
    block = page.split("## Deleting for good")[1].split("```bash\n")[1].split("```")[0]
    lines = [line for line in block.splitlines() if "mlflow gc" in line]
    line = next(
        line
        for line in lines
        if ("docker compose" in line) == (store != "embedded") and ("proxied" in line) == (store == "proxied")
    )
    words = shlex.split(line.split("#")[0])
    start = next(i for i, word in enumerate(words) if word.endswith("mlflow") and words[i + 1 : i + 2] == ["gc"])
    return words[start:]
