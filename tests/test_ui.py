"""The MLflow UI in a real headless Chromium shows what the tutorial promises.

Driven by the same functions as scripts/screenshots.py, which makes the tutorial's pictures.
"""

from __future__ import annotations

import re

import pytest
from conftest import UiRun, service_missing

from scripts.screenshots import browser_page, find_chromium, open_artifacts, select, tree_node

FOLDERS = ["configs", "data", "images", "reports", "tables"]
FILES = ["train_config.json", "metrics.csv", "gradient.png", "notes.md", "metrics.json"]


@pytest.fixture(params=["embedded", "s3-direct"])
def ui_run(request) -> UiRun:
    """The embedded store served by `mlflow ui`, or the compose stack's tracking server."""
    if not find_chromium():
        service_missing("no Chromium found: apt-get install chromium, or set CHROMIUM to its path")
    if request.param == "embedded":
        return request.getfixturevalue("embedded_ui")
    stack = request.getfixturevalue("stack")
    run, _ = request.getfixturevalue("stack_run")
    return UiRun(stack.tracking_uri, run.info.experiment_id, run.info.run_id)


def test_artifacts_tab_shows_what_run_py_logged(ui_run):
    with browser_page() as page:
        open_artifacts(page, *ui_run)
        # The five folders, then the five files once expanded.
        for folder in FOLDERS:
            assert tree_node(page, folder).is_visible()
        for folder in FOLDERS:
            tree_node(page, folder).click()
        for name in FILES:
            tree_node(page, name).wait_for()

        # A table: the frame's columns as table headers ("View as table").
        select(page, "tables/metrics.json")
        for column in ("epoch", "train_loss", "val_loss", "accuracy"):
            page.get_by_role("columnheader", name=column).wait_for()

        # An image: the 256 x 256 gradient.
        select(page, "images/gradient.png")
        image = page.locator("img[src^='blob:']").first
        image.wait_for()
        size = image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        assert size == [256, 256]

        # Markdown: the notes, rendered.
        select(page, "reports/notes.md")
        page.get_by_role("heading", name="Training notes").wait_for()
        assert re.search(r"Model: tiny-mlp, 3 epochs", page.content())
