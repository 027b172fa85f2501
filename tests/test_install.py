"""What the root README says the install costs, measured by scripts/install_size.py.

The download: the wheels `pip install -r requirements.lock` fetches on this machine (pip's dry
run resolves the lock; the index tells each file's size). The disk: a fresh venv plus the
files of exactly those packages, counted in this environment (the tests' venv holds more
packages, from requirements-test.lock; they are not counted). Both within 25% of the README's
figures, whose sentence reads "... downloads about N MB of packages ... about M MB on disk ...".
"""

from __future__ import annotations

import re
import subprocess

import pytest

from scripts import install_size

from support.services import service_missing
from support.stack import REPO

README = (REPO / "README.md").read_text()


def stated(pattern: str) -> float:
    """A size the README states, in bytes (MB and GB as pip counts them, 10^6 and 10^9)."""
    found = re.search(pattern, " ".join(README.split()))
    if not found:
        pytest.fail(f"the README has no sentence matching {pattern!r}", pytrace=False)
    number, unit = float(found.group(1)), found.group(2)
    return number * {"MB": 1e6, "GB": 1e9}[unit]


@pytest.fixture(scope="module")
def figures() -> install_size.Figures:
    try:
        measured = install_size.measure()
    except subprocess.CalledProcessError as error:  # no way to the package index
        service_missing(f"pip's dry run of requirements.lock failed: {error.stderr.strip()[-300:]}")
    print(f"\ndownload : {measured.wheel_count} wheels, {install_size.megabytes(measured.download_bytes)}")
    print(f"installed: {install_size.megabytes(measured.installed_bytes)} ({measured.how})")
    return measured


def test_the_readme_states_the_download_within_25_percent(figures):
    said = stated(r"downloads about ([\d.]+) (MB|GB)")
    assert 0.75 * figures.download_bytes <= said <= 1.25 * figures.download_bytes, (
        f"README: {said / 1e6:.0f} MB; measured {install_size.megabytes(figures.download_bytes)}"
    )


def test_the_readme_states_the_venv_size_within_25_percent(figures):
    said = stated(r"about ([\d.]+) (MB|GB) (?:of disk|on disk)")
    assert 0.75 * figures.installed_bytes <= said <= 1.25 * figures.installed_bytes, (
        f"README: {said / 1e6:.0f} MB; measured {install_size.megabytes(figures.installed_bytes)}"
    )
