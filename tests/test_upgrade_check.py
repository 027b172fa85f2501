"""scripts/upgrade_check.py: a candidate MLflow that cannot be installed is named with pip's reason."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile

from scripts.upgrade_check import why_it_does_not_install


def wheel(folder, name: str, version: str, requires: str) -> None:
    """A wheel that holds nothing but its metadata: `name` `version`, requiring `requires`."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: {requires}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(text.encode())}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


def test_a_candidate_whose_dependency_is_not_served_is_named(tmp_path):
    """As with mlflow 3.18.0, which requires an mlflow-tracing==3.18.0 the index did not serve
    (2026-12-03): real pip, on a package index of one wheel."""
    index = tmp_path / "index"
    index.mkdir()
    wheel(index, "mlflow", "9.9.9", "mlflow-tracing==9.9.9")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-index", "--find-links", str(index),
         "--dest", str(tmp_path / "out"), "mlflow==9.9.9"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert pip.returncode != 0
    assert why_it_does_not_install(pip.stdout + pip.stderr) == "pip finds no mlflow-tracing==9.9.9, which mlflow requires"
