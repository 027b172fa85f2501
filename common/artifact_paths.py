"""One check for the artifact paths the examples hand to MLflow, before anything is uploaded.

MLflow checks paths only in some stores: the local folder refuses `/reports/notes.md` and
`../x`, but a direct s3:// artifact root writes them as they are, outside the run (see the
tutorial's safety checklist). So these functions do not hunt for bad forms; they accept
only paths that every store stores, lists and gives back unchanged, and name the rule
any other path breaks:

    mlflow.log_text(text, artifact_file=checked_file("reports/notes.md"))
    mlflow.log_artifact(local, artifact_path=checked_folder("reports"))
    mlflow.log_table(df, artifact_file=checked_table_file("tables/metrics.json"))

An accepted path is relative, with '/' between names, and each name (a folder or the file):
- is made of letters, marks and digits of any script, spaces and the SIGNS below;
- is not empty, and does not start or end with a dot or a space;
- is at most MAX_NAME_BYTES long, and the whole path at most MAX_PATH_BYTES.
Anything else is refused, even what some stores keep: a short list is easy to trust.
What it keeps out, as seen with MLflow 3.17.2: control characters (tab and newline vanish or
fail), '%' ('a%2Fb.txt' becomes 'a/b.txt' in proxied mode), '#' and '?' (the name is cut
there), a leading space (listed without it), '\\' (kept inside a name), a leading dot
(the local store refuses '..x/' and '.artifact.uploading.*'); also ':' '*' '"' '<' '>' '|'
and a trailing dot or space, which Windows file names cannot hold, and invisible format
characters.
"""

from __future__ import annotations

import re
import unicodedata

from common.checks import FixableError

SIGNS = " ._-()+,=@"
ALLOWED = "letters, digits, spaces and . _ - ( ) + , = @"

# Lengths count UTF-8 bytes, as file systems and S3 do ('é' is 2 bytes, '图' 3).
# One file or folder name: file systems allow 255 (ext4, APFS, NTFS...), but a download
# first writes a temporary file named with a suffix (boto3 adds '.' + 8 characters: a
# 247-byte name of 'é's fails to download from a direct S3 root): leave room for it.
MAX_NAME_BYTES = 200
# An S3 key holds at most 1,024 bytes, and MLflow puts up to 63 in front of the path:
# '<experiment id>/<run id>/artifacts/' = 19 digits + 32 hex + 9 + 3 slashes.
# 900 leaves 61 more for the artifact root's own folder (like 'proxied/' in proxied mode).
MAX_PATH_BYTES = 900


class InvalidArtifactPath(FixableError, ValueError):
    """An artifact path that breaks one of the rules above."""


def checked_file(path: str, extensions: tuple[str, ...] = ()) -> str:
    """`artifact_file`: folders AND a file name inside the run, like 'reports/notes.md'."""
    if isinstance(path, str) and path.strip() and path.endswith("/"):
        _refuse(
            "artifact_file", path, "ends with '/', so it has no file name", f"name the file too, like '{path}notes.md'"
        )
    _check_path(path, "artifact_file", "reports/notes.md", MAX_PATH_BYTES)
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        _refuse(
            "artifact_file",
            path,
            "looks like a folder: artifact_file is the folder AND the file name",
            f"add the file name, like '{path}/notes.md' (for a folder, use log_artifact's artifact_path)",
        )
    if extensions and not name.endswith(extensions):
        _refuse(
            "artifact_file",
            path,
            f"must end in {' or '.join(extensions)}",
            f"rename it, like '{path.rsplit('.', 1)[0]}{extensions[0]}'",
        )
    return path


def checked_table_file(path: str) -> str:
    """`artifact_file` for log_table: MLflow stores tables only as .json or .parquet."""
    return checked_file(path, extensions=(".json", ".parquet"))


def checked_folder(path: str) -> str:
    """`artifact_path`: a folder only, like 'reports'; the file name comes from the local file.

    One trailing '/' is allowed and dropped: the path returned is the one MLflow stores.
    """
    # log_artifact adds '/' and the local file's name (up to MAX_NAME_BYTES): leave room for it.
    _check_path(path, "artifact_path", "reports", MAX_PATH_BYTES - MAX_NAME_BYTES - 1)
    path = path.removesuffix("/")
    if re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", path):
        _refuse(
            "artifact_path",
            path,
            "looks like a file name: artifact_path is a folder only",
            "give the folder, like 'reports'; the file name comes from the local file",
        )
    return path


def _check_path(path: str, argument: str, example: str, max_bytes: int) -> None:
    """The rules every artifact path follows (see the top of this file)."""
    relative = f"use a relative path with '/' between folders, like '{example}'"
    if not isinstance(path, str) or not path.strip():
        _refuse(argument, path, "is empty", relative)
    if "\\" in path:
        _refuse(argument, path, "contains a backslash, which MLflow keeps as part of a file name", relative)
    if path.startswith("/") or re.match(r"[A-Za-z]:(/|$)", path):
        _refuse(argument, path, "is absolute", relative)
    names = path.removesuffix("/").split("/")  # a folder's one trailing '/' (a file's is refused before)
    if ".." in names:
        _refuse(argument, path, "contains '..'", relative)
    if "" in names or "." in names:
        _refuse(argument, path, "contains an empty or '.' folder", relative)
    for name in names:
        for char in name:
            if char not in SIGNS and unicodedata.category(char)[0] not in "LMN":
                _refuse(argument, path, f"contains {char!r} (U+{ord(char):04X})", f"use only {ALLOWED}")
        if name != name.strip(". "):
            rule = f"has a name that starts or ends with a dot or a space, {name!r}"
            _refuse(argument, path, rule, "remove the dot or space from the start and end of the name")
        if len(name.encode()) > MAX_NAME_BYTES:
            _refuse(argument, path, f"has a name longer than {MAX_NAME_BYTES} bytes", "shorten it")
    if len(path.removesuffix("/").encode()) > max_bytes:
        _refuse(argument, path, f"is longer than {max_bytes} bytes", "shorten it, or use fewer folders")


def _refuse(argument: str, path, rule: str, fix: str):
    """Raise the error naming the rule broken; a long path is shortened in the message."""
    shown = repr(path if not isinstance(path, str) or len(path) <= 60 else path[:60] + "...")
    raise InvalidArtifactPath(f"{argument} {shown} {rule}", fix)
