"""The tutorial's own text: its code blocks run as written, and its test links resolve."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import printed
from stack import REPO, readme_mlflow_ui

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


def test_section_6_has_patterns_a_to_e():
    assert list(pattern_blocks()) == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize("letter", ["A", "B", "C", "D", "E"])
def test_readme_pattern_runs(letter, stack, stack_run, trainer_env, tmp_path):
    """Each pattern, pasted into Python in the compose trainer (here: its environment)."""
    result = subprocess.run(
        [sys.executable, "-c", pattern_blocks()[letter]],
        cwd=tmp_path,
        env=trainer_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    if letter == "B":
        assert (tmp_path / "outputs/report.txt").read_text() == "local copy kept"
    elif letter == "D":
        assert re.fullmatch(r"s3://mlflow-artifacts/\d+/\w+/artifacts", printed(result.stdout, "artifact URI"))
    elif letter == "E":
        run, _ = stack_run
        assert (tmp_path / "downloads/notes.md").read_text().startswith("# Training notes")
        assert printed(result.stdout, "downloaded to") == str(tmp_path / "downloads/notes.md")
    else:
        assert list(tmp_path.iterdir()) == []  # A and C leave nothing in the working directory


@pytest.mark.parametrize("readme", TUTORIALS, ids=lambda p: p.parent.name)
def test_every_claim_link_names_an_existing_test(readme):
    links = CLAIM_LINK.findall(readme.read_text())
    assert links
    for name, target in links:
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
