"""Look at a run the way a learner does: the MLflow UI in a real (headless) Chromium.

The browser test (tests/test_ui.py) and the tutorial's pictures use the same functions, so
the pictures show what the test checks. Regenerate the pictures from a fresh run with:

    .venv/bin/python scripts/screenshots.py

It starts the compose stack (docker-compose.yml + docker-compose.seaweedfs.yml, as the tests
start it: tests/support/docker_stack.py), runs examples/02_artifacts/run.py in the trainer, opens the
link it prints, and writes PNG files to examples/02_artifacts/screenshots/. It needs a Docker
engine with Compose v2, and Debian's (or any) Chromium: `apt-get install chromium`, or set
CHROMIUM to its path.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import urllib.request
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
    from support.docker_stack import running_stack

    with tempfile.TemporaryDirectory() as tmp, running_stack("seaweedfs", Path(tmp) / "repository") as stack:
        # A real run in the compose trainer, as the tutorial's main path makes it.
        out = stack.exec("trainer", "python", "examples/02_artifacts/run.py")
        if out.returncode != 0:
            sys.exit(out.stderr)
        link = re.search(r"^open the UI\s*: (\S+)", out.stdout, re.MULTILINE).group(1)
        ui_url, experiment_id, run_id = re.fullmatch(r"(http://[^/]+)/#/experiments/(\d+)/runs/(\w+)/.*", link).groups()
        with browser_page() as page:
            pictures = take_screenshots(page, ui_url, experiment_id, run_id, PICTURES)
        # The logged image itself, as stored in the bucket (served by the tracking server).
        gradient = PICTURES / "gradient.png"
        with urllib.request.urlopen(f"{ui_url}/get-artifact?path=images/gradient.png&run_uuid={run_id}") as answer:
            gradient.write_bytes(answer.read())
    for picture in [*pictures, gradient]:
        print(f"wrote {picture.relative_to(REPO)} ({picture.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
