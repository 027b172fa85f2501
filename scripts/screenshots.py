"""Look at a run the way a learner does: the MLflow UI in a real (headless) Chromium.

The browser test (tests/test_ui.py) and the tutorial's pictures use the same functions, so
the pictures show what the test checks. Regenerate the pictures from a fresh run with:

    .venv/bin/python scripts/screenshots.py

It runs examples/02_artifacts/run.py on the embedded default in a temporary folder, serves
it with `mlflow ui`, and writes PNG files to examples/02_artifacts/screenshots/. It needs
Debian's (or any) Chromium: `apt-get install chromium`, or set CHROMIUM to its path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from common.mlflow_env import artifacts_page  # noqa: E402

PICTURES = REPO / "examples" / "02_artifacts" / "screenshots"

# What a closed network and a root user need: no sandbox, no GPU, no calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser_page():
    """A page in a fresh headless Chromium (Playwright gives it a new, empty profile)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1200, "height": 720})
        finally:
            browser.close()


def open_artifacts(page: Page, ui_url: str, experiment_id: str, run_id: str) -> None:
    """The run's Artifacts tab, where the link run.py prints leads, with the side panel of
    MLflow's assistant closed."""
    page.goto(f"{ui_url}/{artifacts_page(experiment_id, run_id)}")
    page.get_by_test_id("artifact-tree-node").first.wait_for(timeout=30_000)
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def tree_node(page: Page, name: str):
    return page.get_by_test_id("artifact-tree-node").filter(has_text=re.compile(rf"^{re.escape(name)}$"))


def select(page: Page, path: str) -> None:
    """Click through the tree to `path` ('tables/metrics.json'), expanding folders on the way."""
    *folders, file_name = path.split("/")
    for folder in folders:
        if not tree_node(page, file_name).count():
            tree_node(page, folder).click()
    tree_node(page, file_name).click()


def take_screenshots(page: Page, ui_url: str, experiment_id: str, run_id: str, folder: Path) -> list[Path]:
    """The three pictures the tutorial shows: the expanded tree, the table, the image."""
    folder.mkdir(parents=True, exist_ok=True)
    open_artifacts(page, ui_url, experiment_id, run_id)
    for name in ("reports", "configs", "data", "tables", "images"):
        tree_node(page, name).click()
    pictures = [folder / "artifact-tree.png", folder / "table-preview.png", folder / "image-preview.png"]
    select(page, "reports/notes.md")
    page.get_by_role("heading", name="Training notes").wait_for()
    page.screenshot(path=pictures[0])
    select(page, "tables/metrics.json")
    page.get_by_role("columnheader", name="train_loss").wait_for()
    page.screenshot(path=pictures[1])
    select(page, "images/gradient.png")
    page.locator("img[src^='blob:']").first.wait_for()
    page.screenshot(path=pictures[2])
    return pictures


def main() -> None:
    if not find_chromium():
        sys.exit("error: no Chromium found\nfix: apt-get install chromium, or set CHROMIUM=/path/to/chromium")
    sys.path.insert(0, str(REPO / "tests"))
    from stack import clean_env, mlflow_ui

    with tempfile.TemporaryDirectory() as tmp:
        # A real run, on the embedded default.
        out = subprocess.run(
            [sys.executable, str(REPO / "examples/02_artifacts/run.py")],
            cwd=tmp,
            env=clean_env({}),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        run_id = re.search(r"^run id\s*: (\w+)", out, re.MULTILINE).group(1)
        experiment_id = re.search(r"^experiment\s*: .* \(id (\d+)\)", out, re.MULTILINE).group(1)
        # The README's `mlflow ui`, in the folder the run was made in.
        with mlflow_ui(Path(tmp), Path(tmp + ".log")) as (ui_url, _), browser_page() as page:
            pictures = take_screenshots(page, ui_url, experiment_id, run_id, PICTURES)
        Path(tmp + ".log").unlink(missing_ok=True)
        # The logged image itself, as stored.
        gradient = PICTURES / "gradient.png"
        shutil.copy(Path(tmp) / "mlruns" / experiment_id / run_id / "artifacts/images/gradient.png", gradient)
    for picture in [*pictures, gradient]:
        print(f"wrote {picture.relative_to(REPO)} ({picture.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
