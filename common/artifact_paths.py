"""One check for the artifact paths the examples hand to MLflow, before anything is uploaded.

MLflow checks paths only in some stores: the local folder refuses `/reports/notes.md` and
`../x`, but a direct s3:// artifact root writes them as they are, outside the run (see the
tutorial's safety checklist). These functions refuse them everywhere, naming the rule:

    mlflow.log_text(text, artifact_file=checked_file("reports/notes.md"))
    mlflow.log_artifact(local, artifact_path=checked_folder("reports"))
    mlflow.log_table(df, artifact_file=checked_table_file("tables/metrics.json"))
"""

from __future__ import annotations

import re

from common.checks import FixableError


class InvalidArtifactPath(FixableError, ValueError):
    """An artifact path that breaks one of the rules below."""


def checked_file(path: str, extensions: tuple[str, ...] = ()) -> str:
    """`artifact_file`: folders AND a file name inside the run, like 'reports/notes.md'."""
    _check_relative(path, "artifact_file", "reports/notes.md")
    name = path.rsplit("/", 1)[-1]
    if not name:
        raise InvalidArtifactPath(
            f"artifact_file '{path}' ends with '/', so it has no file name",
            f"name the file too, like '{path}notes.md'",
        )
    if "." not in name:
        raise InvalidArtifactPath(
            f"artifact_file '{path}' looks like a folder: artifact_file is the folder AND the file name",
            f"add the file name, like '{path}/notes.md' (for a folder, use log_artifact's artifact_path)",
        )
    if extensions and not name.endswith(extensions):
        raise InvalidArtifactPath(
            f"artifact_file '{path}' must end in {' or '.join(extensions)}",
            f"rename it, like '{path.rsplit('.', 1)[0]}{extensions[0]}'",
        )
    return path


def checked_table_file(path: str) -> str:
    """`artifact_file` for log_table: MLflow stores tables only as .json or .parquet."""
    return checked_file(path, extensions=(".json", ".parquet"))


def checked_folder(path: str) -> str:
    """`artifact_path`: a folder only, like 'reports'; the file name comes from the local file."""
    _check_relative(path.removesuffix("/"), "artifact_path", "reports")
    if re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", path):
        raise InvalidArtifactPath(
            f"artifact_path '{path}' looks like a file name: artifact_path is a folder only",
            "give the folder, like 'reports'; the file name comes from the local file",
        )
    return path


def _check_relative(path: str, argument: str, example: str) -> None:
    """Rules for every artifact path: relative, '/' between folders, no empty or '.'/'..' parts."""
    if not isinstance(path, str) or not path.strip():
        rule = "is empty"
    elif "\\" in path:
        rule = "contains a backslash, which MLflow keeps as part of a file name"
    elif path.startswith("/") or re.match(r"[A-Za-z]:", path):
        rule = "is absolute"
    elif ".." in path.split("/"):
        rule = "contains '..'"
    elif any(part in ("", ".") for part in path.split("/")[:-1]):
        rule = "contains an empty or '.' folder"
    else:
        return
    raise InvalidArtifactPath(
        f"{argument} {path!r} {rule}",
        f"use a relative path with '/' between folders, like '{example}'",
    )
