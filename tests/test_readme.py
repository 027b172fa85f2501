"""The tutorial's own text: its code blocks run as written, and its test links resolve."""

from __future__ import annotations

import code
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import expected_output, printed
from stack import REPO, clean_env, readme_mlflow_ui

from scripts.upgrade_check import CLAIM_LINK, claims

TUTORIALS = [REPO / "examples/02_artifacts/README.md", REPO / "examples/01_log_artifact/README.md"]
PATTERNS_README = TUTORIALS[0]


def pattern_blocks() -> dict[str, str]:
    """{"A": code, ...}: the first python block under each "### (X)" heading of section 6."""
    section = PATTERNS_README.read_text().split("## 6) Common patterns")[1].split("\n## ")[0]
    blocks = {}
    for heading in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        letter = re.match(r"\((\w)\)", heading).group(1)
        blocks[letter] = re.search(r"```python\n(.*?)```", heading, re.DOTALL).group(1)
    return blocks


PATTERNS = ["A", "B", "C", "D", "E", "F", "G", "H"]
# Patterns that read the runs of run.py, and stop with one sentence before there is one.
NEED_A_RUN = ["E", "G"]


def test_section_6_has_patterns_a_to_h():
    assert list(pattern_blocks()) == PATTERNS


class PastedIntoPython(code.InteractiveConsole):
    """Python's interactive prompt, reading a pasted block line by line, running nothing."""

    def runcode(self, compiled):
        pass

    def showsyntaxerror(self, filename=None, **kwargs):
        self.syntax_errors += 1


@pytest.mark.parametrize("letter", PATTERNS)
def test_patterns_can_be_pasted_into_the_interactive_prompt(letter):
    """`.venv/bin/python` or `docker compose exec trainer python`, then paste: the prompt ends a
    block at the first blank line, and a statement right after an indented block is an error."""
    prompt = PastedIntoPython()
    prompt.syntax_errors = 0
    for line in [*pattern_blocks()[letter].splitlines(), ""]:
        prompt.push(line)
    assert prompt.syntax_errors == 0


def run_pattern(letter: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Pattern `letter` pasted into Python at the repository root, as a learner does (where
    `common` is importable), but working in `cwd`, so that what it leaves behind can be seen."""
    return subprocess.run(
        [sys.executable, "-c", pattern_blocks()[letter]],
        cwd=cwd,
        env=dict(env, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("letter", PATTERNS)
def test_readme_pattern_runs(letter, stack, stack_run, trainer_env, tmp_path):
    """Each pattern, pasted into Python in the compose trainer (here: its environment)."""
    result = run_pattern(letter, tmp_path, trainer_env)
    assert result.returncode == 0, result.stderr
    if letter == "B":
        assert (tmp_path / "outputs/report.txt").read_text() == "local copy kept"
    elif letter == "D":
        assert re.fullmatch(r"s3://mlflow-artifacts/\d+/\w+/artifacts", printed(result.stdout, "artifact URI"))
    elif letter == "E":
        run, _ = stack_run
        assert (tmp_path / "downloads/notes.md").read_text().startswith("# Training notes")
        assert printed(result.stdout, "downloaded to") == str(tmp_path / "downloads/notes.md")
    elif letter == "G":
        assert printed(result.stdout, "notes") == "# Training notes"
        assert printed(result.stdout, "image") == "(256, 256)"
        assert re.fullmatch(r"\d+ rows from (\d+) runs", printed(result.stdout, "table"))
    elif letter == "H":
        assert printed(result.stdout, "still stored") == "['reports']"
    else:
        assert list(tmp_path.iterdir()) == []  # A and C leave nothing in the working directory
    # What a pattern leaves in the working directory (the repository root, for a learner)
    # is never offered to git.
    assert [p.name for p in tmp_path.iterdir() if not git_ignores(p.name)] == []


def git_ignores(name: str) -> bool:
    """Whether the repository's .gitignore lists `name` (a top-level file or folder)."""
    entries = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()]
    return name in entries or f"{name}/" in entries


def test_pattern_e_before_any_run_says_what_to_run(tmp_path):
    """Every pattern without Docker, in a folder with no run of run.py yet: E and G stop with
    one sentence, no traceback; the others run. What they leave behind is ignored by git."""
    for letter in PATTERNS:
        result = run_pattern(letter, tmp_path, clean_env({}))
        if letter in NEED_A_RUN:
            assert result.returncode == 1
            assert "Traceback" not in result.stderr
            assert result.stderr.strip().splitlines()[-1] == (
                "no run 'artifact_examples' in experiment 02-artifacts yet: run examples/02_artifacts/run.py first"
            )
        else:
            assert result.returncode == 0, f"pattern {letter}: {result.stderr}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db", "mlruns", "outputs"]
    assert all(git_ignores(p.name) for p in tmp_path.iterdir())


@pytest.mark.parametrize("readme", TUTORIALS, ids=lambda p: p.parent.name)
def test_every_claim_link_names_an_existing_test(readme):
    text = readme.read_text()
    links = CLAIM_LINK.findall(text)
    assert links
    assert text.count("[✓]") == len(links), "a ✓ link not of the form [✓](path/to/test_file.py \"test_name\")"
    for target, name in links:
        test_file = (readme.parent / target).resolve()
        assert re.search(rf"^def {name}\(", test_file.read_text(), re.MULTILINE), f"{name} not in {target}"


def test_every_claim_test_is_cited_by_a_tutorial():
    """tests/test_claims.py holds claims only: one no tutorial cites names a claim that is gone."""
    defined = re.findall(r"^def (test_\w+)\(", (REPO / "tests/test_claims.py").read_text(), re.MULTILINE)
    cited = claims()
    assert [name for name in defined if name not in cited] == []


def test_pictures_exist_and_stay_small():
    text = PATTERNS_README.read_text()
    pictures = [PATTERNS_README.parent / p for p in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)]
    assert {p.name for p in pictures} == {"artifact-tree.png", "table-preview.png", "gradient.png", "image-preview.png"}
    assert sum(p.stat().st_size for p in pictures) < 500_000


def test_tutorial_starts_the_ui_as_the_root_readme_does():
    settings, args = readme_mlflow_ui()
    command = " ".join([*(f"{name}={value}" for name, value in settings.items()), ".venv/bin/mlflow", *args])
    assert command in PATTERNS_README.read_text()


def test_root_readme_compose_excerpt_is_in_docker_compose_yml():
    readme = (REPO / "README.md").read_text()
    excerpt = readme.split("An excerpt of [docker-compose.yml](docker-compose.yml):")[1].split("```yaml\n")[1]
    compose_lines = set((REPO / "docker-compose.yml").read_text().splitlines())
    assert [line for line in excerpt.split("```")[0].splitlines() if line not in compose_lines] == []


# How pytest prints the time: "9.87s", or "115.69s (0:01:55)" from a minute on.
SECONDS = r"[\d.]+s(?: \(\d+:\d\d:\d\d\))?"


def test_root_readme_test_output_has_the_form_pytest_prints(request):
    """The expected last lines of the test command: progress as pytest-xdist prints it (the
    percentage rounded down), the summary adding up, and, when the whole suite is collected,
    as many tests as there are."""
    readme = (REPO / "README.md").read_text()
    shown = expected_output(REPO / "README.md", "Expected last lines").splitlines()
    workers = re.fullmatch(r"created: (\d+)/\1 workers", shown[0]).group(1)
    total = int(re.fullmatch(rf"{workers} workers \[(\d+) items\]", shown[1]).group(1))
    assert shown[2] == ""
    done = 0
    for line in shown[3:-1]:
        marks, percent = re.fullmatch(r"([.s]+) +\[ *(\d+)%\]", line).groups()
        done += len(marks)
        assert int(percent) == done * 100 // total, line
    assert done == total
    summary = re.fullmatch(rf"=+ {total} passed in {SECONDS} =+", shown[-1])
    assert summary, shown[-1]
    # Without Chromium: the UI tests' own skip message, and the same total.
    without = expected_output(REPO / "README.md", "and the end reads").splitlines()
    reason = re.fullmatch(r"SKIPPED \[\d+\] tests/test_ui\.py:\d+: (.+)", without[1]).group(1)
    assert f'service_missing("{reason}")' in (REPO / "tests/test_ui.py").read_text()
    skipped = int(re.search(r"SKIPPED \[(\d+)\]", without[1]).group(1))
    assert f"the last line counts `{total - skipped} passed, {skipped} skipped`" in " ".join(readme.split())
    options = request.config.option
    whole_suite = [Path(a).resolve() for a in request.config.args] == [REPO / "tests"]
    if whole_suite and not options.keyword and not options.markexpr:
        assert total == len(request.session.items), "update the README's expected test output"
