"""The tutorial's own text: its code blocks run as written, and its test links resolve."""

from __future__ import annotations

import code
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.upgrade_check import CLAIM_LINK, claims

from support.docs import NEED_A_RUN, PATTERNS, expected_output, pattern_blocks, printed, run_pattern
from support.examples import run_script
from support.stack import REPO, clean_env, readme_mlflow_ui

TUTORIALS = [REPO / "examples/02_artifacts/README.md", REPO / "examples/01_log_artifact/README.md"]
PATTERNS_README = TUTORIALS[0]
# Every page that states what MLflow does, with its proofs.
PAGES = [*TUTORIALS, REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The lesson is read in about 15 minutes: at 200 words a minute, 3,000 words.
LESSON_WORDS = 3000


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


def test_patterns_that_need_a_run_leave_the_prompt_open(tmp_path):
    """E and G pasted into `python -i` in an empty folder, before any run of run.py: each says
    to run run.py first as an exception, and the prompt comes back (SystemExit would end it)."""
    pasted = "".join(pattern_blocks()[letter] + "\n\n" for letter in NEED_A_RUN)
    result = subprocess.run(
        [sys.executable, "-i"], input=pasted + 'print("still here")\n', cwd=tmp_path, env=clean_env({}),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("still here")
    assert result.stderr.count("LookupError: no run 'artifact_examples' in experiment 02-artifacts yet") == 2


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


def test_patterns_run_pasted_into_an_empty_folder(tmp_path):
    """Each pattern saved as a file in an empty project folder of a learner's own, outside this
    repository (no `common` to import), run there without Docker. Before any run of run.py, E
    and G end with a LookupError that says to run run.py first (an exception, not an exit: pasted
    at a prompt, the session goes on), and the others run; after run.py, E and G run too. What
    they leave behind is ignored by git."""
    project = tmp_path / "my-project"
    project.mkdir()
    env = clean_env({})
    for letter in PATTERNS:
        result = run_pattern(letter, project, env)
        if letter in NEED_A_RUN:
            assert result.returncode == 1
            assert result.stderr.strip().splitlines()[-1] == (
                "LookupError: no run 'artifact_examples' in experiment 02-artifacts yet: "
                "run examples/02_artifacts/run.py first"
            )
        else:
            assert result.returncode == 0 and "Traceback" not in result.stderr, f"pattern {letter}: {result.stderr}"
    assert sorted(p.name for p in project.iterdir()) == ["mlflow.db", "mlruns", "outputs"]
    assert run_script("examples/02_artifacts/run.py", project, env).returncode == 0
    for letter in NEED_A_RUN:
        result = run_pattern(letter, project, env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, f"pattern {letter}: {result.stderr}"
    assert (project / "downloads/notes.md").read_text().startswith("# Training notes")
    assert all(git_ignores(p.name) for p in project.iterdir())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_proof_names_an_existing_test(page):
    """A proof is [`test_name`](path/to/test_file.py); a link to a test file in any other form
    is a mistake, and so is the old form, [✓](file "name")."""
    text = page.read_text()
    assert "[✓]" not in text
    links = CLAIM_LINK.findall(text)
    assert len(re.findall(r"\]\([^)]*tests/test_\w+\.py\)", text)) == len(links), "a link to a test file that is not a proof"
    for name, target in links:
        test_file = (page.parent / target).resolve()
        assert re.search(rf"^(async )?def {name}\(", test_file.read_text(), re.MULTILINE), f"{name} not in {target}"


def test_the_lesson_is_read_in_15_minutes():
    """At most LESSON_WORDS words, code blocks and proof lists included (as a reader meets them)."""
    words = len(PATTERNS_README.read_text().split())
    print(f"the lesson: {words} words, {words / 200:.1f} minutes at 200 words a minute")
    assert words <= LESSON_WORDS


def test_the_root_readme_stays_short():
    """About 150 lines: what a learner needs before the lesson, the rest folded or in docs/."""
    lines = len((REPO / "README.md").read_text().splitlines())
    print(f"README.md: {lines} lines")
    assert lines <= 165


def collected(*options: str) -> list[str]:
    """The test ids `pytest --collect-only` lists with `options`."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider", *options]
    listing = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    return [line for line in listing.splitlines() if "::" in line]


def test_the_quick_check_runs_the_lessons_proofs():
    """`pytest -m lesson` collects every test the lesson's proofs name, on MLflow's embedded
    default and the moto stack; SeaweedFS, the browser and Docker are left to the full run."""
    proofs = re.findall(r"\[`(test_\w+)`\]\(\.\./\.\./tests/(\w+)\.py\)", TUTORIALS[0].read_text())
    named = {(module, name) for name, module in proofs if module not in {"test_compose_docker", "test_seaweedfs", "test_ui"}}

    def in_quick_check(test_id: str) -> bool:
        module, name = Path(test_id.split("::")[0]).stem, test_id.split("::")[1].split("[")[0]
        return (module, name) in named and "seaweedfs" not in test_id

    assert collected("-m", "lesson") == [test_id for test_id in collected() if in_quick_check(test_id)]


def test_each_section_of_the_lesson_ends_with_its_proofs():
    """Sections 2 to 8 each close with a **Proofs:** list (the pages they link to hold the rest)."""
    sections = re.split(r"^## ", PATTERNS_README.read_text(), flags=re.MULTILINE)[1:]
    numbered = {section.split(")")[0]: section for section in sections if section[0].isdigit()}
    for number in "2345678":
        assert "**Proofs:**" in numbered[number], f"section {number}"


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
    """Every line of the excerpt is a line of the file; `# ...` marks lines left out."""
    readme = (REPO / "README.md").read_text()
    excerpt = readme.split("An excerpt of [docker-compose.yml](docker-compose.yml):")[1].split("```yaml\n")[1]
    compose_lines = set((REPO / "docker-compose.yml").read_text().splitlines())
    shown = [line for line in excerpt.split("```")[0].splitlines() if line.strip() != "# ..."]
    assert [line for line in shown if line not in compose_lines] == []


# How pytest prints the time: "9.87s", or "115.69s (0:01:55)" from a minute on.
SECONDS = r"[\d.]+s(?: \(\d+:\d\d:\d\d\))?"


def test_root_readme_test_output_has_the_form_pytest_prints(request):
    """The expected last lines of the test command, as pytest prints them (-ra): the reasons
    for skipped tests, each found in the tests, and the summary; when the whole suite is
    collected, passed and skipped add up to as many tests as there are."""
    shown = expected_output(REPO / "README.md", "Expected last lines").splitlines()
    assert re.fullmatch(r"=+ short test summary info =+", shown[0])
    skipped = 0
    # pytest prints a skip raised by a fixture at each test's own line: the README shows the
    # first of such lines and `...` for the rest.
    folded = shown[-2] == "..."
    for line in shown[1:-2] if folded else shown[1:-1]:
        reason = re.fullmatch(r"SKIPPED \[(\d+)\] (tests/\w+\.py):(\d+): (.+)", line)
        assert reason, line
        skipped += int(reason.group(1))
        # pytest names the line where the skipped test is defined (its decorator, if any).
        named = (REPO / reason.group(2)).read_text().splitlines()[int(reason.group(3)) - 1]
        assert named.startswith(("def test_", "@pytest.mark")), line
        assert any(reason.group(4) in test.read_text() for test in (REPO / "tests").rglob("*.py")), line
    summary = re.fullmatch(rf"=+ (\d+) passed(?:, (\d+) skipped)? in {SECONDS} =+", shown[-1])
    assert summary, shown[-1]
    assert int(summary.group(2) or 0) > skipped if folded else int(summary.group(2) or 0) == skipped
    total = int(summary.group(1)) + int(summary.group(2) or 0)
    options = request.config.option
    whole_suite = [Path(a).resolve() for a in request.config.args] == [REPO / "tests"]
    if whole_suite and not options.keyword and not options.markexpr:
        assert total == len(request.session.items), "update the README's expected test output"
