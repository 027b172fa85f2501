"""How much the README's install command downloads, and how much it puts on disk.

    .venv/bin/python scripts/install_size.py            # quick: nothing is downloaded or installed
    .venv/bin/python scripts/install_size.py --fresh    # installs requirements.lock into a new venv

The README's command is `python3 -m venv .venv && .venv/bin/pip install -r requirements.lock`.

Download: `pip install --dry-run --ignore-installed --report` resolves requirements.lock for
this machine's Python and platform as that command would (the lock is universal: markers
pick the wheels), without downloading a wheel; each wheel's size is then asked of the index
(a HEAD request, or the file itself for a local index). The hashes in the lock fix which file
that is, so any index that serves it serves the same bytes.

Installed: a venv as `python3 -m venv` makes it (with pip), measured, plus the files pip
installed for each of those packages, as listed in their RECORD files, in THIS environment.
This environment may hold more than requirements.lock (the tests' venv is made from
requirements-test.lock): only the packages the dry run names are counted, so the figure is
that of a venv made from requirements.lock. `--fresh` makes that venv for real instead
(pip's cache makes a second run quick) and measures it whole. Sizes are as `du` counts them:
the disk blocks the files take.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"


@dataclass
class Wheel:
    name: str
    version: str
    url: str
    size: int  # bytes


def resolve(lock: Path = LOCK, python: str = sys.executable) -> list[dict]:
    """pip's installation report for `pip install -r lock` into an empty venv: what it would fetch."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--report", str(report), "-r", str(lock)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return json.loads(report.read_text())["install"]


def file_size(url: str) -> int:
    """The size of a wheel at `url`: a local file's, or what the index answers to HEAD."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return os.path.getsize(unquote(parsed.path))
    request = urllib.request.Request(url.split("#")[0], method="HEAD")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return int(answer.headers["Content-Length"])


def wheels(lock: Path = LOCK) -> list[Wheel]:
    """Every file `pip install -r lock` downloads on this machine, with its size."""
    return [
        Wheel(item["metadata"]["name"], item["metadata"]["version"], item["download_info"]["url"],
              file_size(item["download_info"]["url"]))
        for item in resolve(lock)
    ]  # fmt: skip


def on_disk(path: Path) -> int:
    """What `du` counts for one file: its disk blocks."""
    return path.lstat().st_blocks * 512


def tree_size(folder: Path) -> int:
    return sum(on_disk(Path(root) / name) for root, dirs, files in os.walk(folder) for name in files + dirs)


def empty_venv_size() -> int:
    """A venv as `python3 -m venv .venv` makes it: the interpreter's links, pip, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "venv", f"{folder}/venv"], check=True, capture_output=True)
        return tree_size(Path(folder) / "venv")


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_size(packages: dict[str, str]) -> tuple[int, list[str]]:
    """The files pip installed here for `packages` ({name: version}; their RECORD files), on
    disk. Returns the size, and the packages not installed here at that version."""
    wanted = {_key(name): version for name, version in packages.items()}
    seen, counted = set(), set()
    for dist in metadata.distributions():
        key = _key(dist.metadata["Name"])
        if wanted.get(key) != dist.version or key in seen:
            continue
        seen.add(key)
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                counted.add(path)
                if path.suffix == ".py":  # pip compiles it on install; RECORD may not list the .pyc
                    counted.update(path.parent.glob(f"__pycache__/{path.stem}.*.pyc"))
    total = sum(on_disk(path) for path in counted)
    return total, sorted(f"{name}=={version}" for name, version in wanted.items() if name not in seen)


def fresh_venv_size(lock: Path = LOCK) -> int:
    """`python3 -m venv` + `pip install -r lock`, for real, in a temporary folder: its size."""
    with tempfile.TemporaryDirectory() as folder:
        venv = Path(folder) / ".venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(lock)], check=True)
        return tree_size(venv)


@dataclass
class Figures:
    wheel_count: int
    download_bytes: int
    installed_bytes: int
    how: str


def measure(fresh: bool = False) -> Figures:
    files = wheels()
    download = sum(wheel.size for wheel in files)
    if fresh:
        return Figures(len(files), download, fresh_venv_size(), "a fresh venv, installed")
    packages, missing = installed_size({wheel.name: wheel.version for wheel in files})
    if missing:
        raise SystemExit(f"not installed in this environment: {', '.join(missing)}; use --fresh")
    return Figures(len(files), download, empty_venv_size() + packages, "an empty venv + RECORD files here")


def megabytes(size: int) -> str:
    """In MB as pip counts them (10^6 bytes), and in MiB as `du -h` does."""
    return f"{size / 1e6:.0f} MB ({size / 2**20:.0f} MiB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true", help="install requirements.lock into a new venv and measure it")
    figures = measure(parser.parse_args().fresh)
    print(f"download : {figures.wheel_count} wheels, {megabytes(figures.download_bytes)}")
    print(f"installed: {megabytes(figures.installed_bytes)} ({figures.how})")


if __name__ == "__main__":
    main()
