"""Checks for artifact paths that come from users (a form, a config file, a command line),
before anything is logged: a refused path raises InvalidArtifactPath, an error:/fix: pair.

    mlflow.log_text(text, artifact_file=checked_file(name_from_the_user))
    mlflow.log_artifact(local, artifact_path=checked_folder(folder_from_the_user))
    mlflow.log_table(df, artifact_file=checked_table_file(name_from_the_user))

A path written in the code itself needs none of this: the examples write plain strings.

A path is text (a pathlib path is taken as its '/' form) with '/' between names. Refused is only
what a store here breaks on, as measured with MLflow 3.17.2 (tests/test_artifact_paths_roundtrip.py
logs every accepted path and downloads it back, from the embedded store, S3 direct and proxied):

- empty, absolute ('/x') or with a '..' name: a direct S3 root writes it outside the run;
- a name that urllib reads as an address and writes back changed: letters and ':' with a capital
  letter before the ':' ('C:x.md', 'Notes: draft.md'), or a scheme urllib writes with '//'
  ('http:x.md', 'file:x.md'): the embedded store downloads the changed name instead, so the
  download fails, or gives the bytes of 'notes: draft.md' if that exists too;
- a byte that is not UTF-8 text (from a file name that was not, held as a surrogate);
- an empty or '.' name ('a//b', './a'): S3 keeps the key, but MLflow's listing leaves it out;
- a folder part that starts with '..' ('..x/y.md'): the embedded store refuses it;
- a ' in the first folder ("it's/x.md"): MLflow's listing of that folder fails on every store;
- a folder named like a Windows drive ('c:/x.md'): the embedded store will not download it
  with its folder or the whole run (MLflow reads 'c:/x.md' as absolute there, on Linux too);
- a name that starts with '.artifact.uploading.': the embedded store keeps those for itself;
- a name that starts with a space: the embedded store lists it, and cannot download it;
- a control character (tab, newline, DEL): the download fails; S3 refuses a newline;
- a backslash: SeaweedFS stores it as '/' ('a\\b.md' becomes the folder 'a' and the file 'b.md');
- '#' or '?': the download cuts the name there;
- '%' and two hex digits ('a%20b.txt'): the embedded store downloads 'a b.txt', which is not there;
- a name over 200 bytes of UTF-8: boto3 downloads it under a longer temporary name, which the
  file system refuses;
- a path over 900 bytes: an S3 key holds 1,024, and MLflow puts up to 63 in front of the path;
- checked_file: a file named as its folder ('data/data'): in proxied mode, MLflow lists nothing in
  a folder that holds only that file (checked_folder cannot see the file's name: keep the two apart);
- checked_file: a path that ends with '/' (no file name); checked_table_file: a name that does
  not end in .json or .parquet, or holds one of " ' , : [ ] { } (log_table refuses those), or
  non-ASCII letters (mlflow.load_table cannot find it).

Anything else is accepted: 'Q&A.md', 'notes [draft].md', '100%.png', 'README' (no extension),
a folder 'model.v2'. One thing no check of one path can see: 'Report.txt' and 'report.txt' are
two files in every store, but one in a folder on macOS or Windows, where a download keeps one.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePath
from urllib.parse import urlparse, urlunparse

from common.checks.errors import FixableError

# Lengths count UTF-8 bytes, as file systems and S3 do ('é' is 2 bytes, '图' 3).
# One file or folder name: file systems allow 255 (ext4, APFS, NTFS...), but a download
# first writes a temporary file named with a suffix (boto3 adds '.' + 8 characters: a
# 247-byte name of 'é's fails to download from a direct S3 root): leave room for it.
MAX_NAME_BYTES = 200
# An S3 key holds at most 1,024 bytes, and MLflow puts up to 63 in front of the path:
# '<experiment id>/<run id>/artifacts/' = 19 digits + 32 hex + 9 + 3 slashes.
# 900 leaves 61 more for the artifact root's own folder (like 'proxied/' in proxied mode).
MAX_PATH_BYTES = 900
# The names MLflow's local artifact store keeps for the files it is writing.
UPLOADING = ".artifact.uploading."
# What log_table refuses in its artifact_file (MlflowClient._check_artifact_file_string).
TABLE_FORBIDDEN = "\"',:[]{}"


class InvalidArtifactPath(FixableError, ValueError):
    """An artifact path that breaks one of the rules above."""


def checked_file(path: str | os.PathLike, extensions: tuple[str, ...] = ()) -> str:
    """`artifact_file`: folders AND a file name inside the run, like 'reports/notes.md'."""
    path = _as_text(path)
    if isinstance(path, str) and path.strip() and path.endswith("/"):
        _refuse("artifact_file", path, "ends with '/', so it has no file name", f"name the file too, like {_example(path + 'notes.md')!r}")
    _check_path(path, "artifact_file", "reports/notes.md", MAX_PATH_BYTES, is_file=True)
    folder, _, name = path.rpartition("/")
    if folder and name == folder.rpartition("/")[2]:
        rule = (
            f"names a file as its folder, {name!r}: in proxied mode MLflow's listing takes a folder that holds only "
            "that file for the file itself, and lists, downloads and shows nothing of it"
        )
        _refuse("artifact_file", path, rule, f"rename the file or the folder, like {_example(f'{path}.txt')!r}")
    if extensions and not name.endswith(extensions):
        stem = name.rsplit(".", 1)[0] if "." in name else name
        renamed = f"{folder}/{stem}{extensions[0]}" if folder else f"{stem}{extensions[0]}"
        _refuse("artifact_file", path, f"must end in {' or '.join(extensions)}", f"rename it, like {_example(renamed)!r}")
    return path


def _example(path: str) -> str:
    """`path` as an example in a fix, if it passes the rules itself; else one that does."""
    try:
        _check_path(path, "artifact_file", "reports/notes.md", MAX_PATH_BYTES, is_file=True)
        return path
    except InvalidArtifactPath:
        return "reports/notes.md"


def checked_table_file(path: str | os.PathLike) -> str:
    """`artifact_file` for log_table: MLflow stores tables only as .json or .parquet, refuses
    some characters in their names, and cannot load back a name with non-ASCII letters."""
    path = checked_file(path, extensions=(".json", ".parquet"))
    for char in TABLE_FORBIDDEN:
        if char in path:
            _refuse("artifact_file", path, f"contains {char!r}, which log_table refuses", f"remove the {char!r}")
    if not path.isascii():
        rule = (
            "holds non-ASCII characters: log_table logs it, but mlflow.load_table cannot find it (MLflow "
            "writes the name escaped in the run's tag mlflow.loggedArtifacts and searches for it as written)"
        )
        _refuse("artifact_file", path, rule, "use ASCII letters, digits, '-', '_' and '.' in a table's name")
    return path


def checked_folder(path: str | os.PathLike) -> str:
    """`artifact_path`: a folder only, like 'reports'; the file name comes from the local file.

    One trailing '/' is allowed and dropped: the path returned is the one MLflow stores.
    """
    path = _as_text(path)
    # log_artifact adds '/' and the local file's name (up to MAX_NAME_BYTES): leave room for it.
    _check_path(path, "artifact_path", "reports", MAX_PATH_BYTES - MAX_NAME_BYTES - 1, is_file=False)
    return path.removesuffix("/")


def _as_text(path):
    """A pathlib path as text with '/' (also a Windows path); other path objects as text."""
    if isinstance(path, PurePath):
        return path.as_posix()
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def _check_path(path: str, argument: str, example: str, max_bytes: int, is_file: bool) -> None:
    """The rules every artifact path follows (see the top of this file)."""
    relative = f"use a relative path with '/' between folders, like '{example}'"
    if not isinstance(path, str):
        _refuse(argument, path, f"is not text ({type(path).__name__})", relative)
    if not path.strip():
        _refuse(argument, path, "is empty", relative)
    try:
        path.encode()
    except UnicodeEncodeError as error:  # a byte a file name held that was not UTF-8 (a surrogate)
        char = path[error.start]
        _refuse(argument, path, f"holds {char!r}, a byte that is not UTF-8 text, which MLflow cannot write", "remove it")
    if path.startswith("/"):
        _refuse(argument, path, "is absolute: a direct S3 root would write it outside the run", relative)
    names = path.removesuffix("/").split("/")  # a folder's one trailing '/' (a file's is refused before)
    if ".." in names:
        _refuse(argument, path, "contains '..': a direct S3 root would write it outside the run", relative)
    if "" in names or "." in names:
        _refuse(argument, path, "contains an empty or '.' folder, which MLflow's listing leaves out", relative)
    folder = path.rpartition("/")[0] if is_file else path
    if "'" in names[0] and (folder or not is_file):
        rule = f"has a ' in its first folder, {names[0]!r}, and MLflow's listing of that folder fails (Invalid filter string)"
        _refuse(argument, path, rule, "remove the '")
    if folder.startswith(".."):
        _refuse(argument, path, "starts with a folder named '..', which the embedded store refuses", relative)
    drive = next((name for name in folder.split("/") if re.fullmatch(r"[A-Za-z]:", name)), None)
    if drive:  # MLflow checks each path it downloads: 'c:/x.md' is absolute on Windows
        rule = f"has a folder named like a Windows drive, {drive!r}, which the embedded store will not download from"
        _refuse(argument, path, rule, f"rename the folder, like {drive[0]!r}")
    control = re.search(r"[\x00-\x1f\x7f]", path)
    if control:
        char = control.group(0)
        _refuse(argument, path, f"contains {char!r} (U+{ord(char):04X}), which a download loses", "remove it")
    if "\\" in path:
        _refuse(argument, path, "contains a backslash, which SeaweedFS stores as '/'", relative)
    for char in "#?":
        if char in path:
            _refuse(argument, path, f"contains {char!r}, where a download cuts the name", f"remove the {char!r}")
    escape = re.search(r"%[0-9A-Fa-f]{2}", path)
    if escape:
        _refuse(
            argument,
            path,
            f"contains {escape.group(0)!r}, which the embedded store decodes, so the download fails",
            "write the character itself, or another one, instead of '%' and two hex digits",
        )
    for name in names:
        if name.startswith(UPLOADING):
            _refuse(argument, path, f"has a name starting with {UPLOADING!r}, which the embedded store keeps", "rename it")
        if name.startswith(" "):
            rule = f"has a name that starts with a space, {name!r}, which the embedded store cannot download"
            _refuse(argument, path, rule, "remove the space from the start of the name")
        as_address = urlunparse(urlparse(name))
        if as_address != name:
            rule = (
                f"has a name, {name!r}, that the embedded store reads as an address (as {as_address!r}), "
                "so downloading it, or a folder that holds it, fails"
            )
            _refuse(argument, path, rule, f"remove the ':', like {name.replace(':', ' -', 1)!r}")
        if len(name.encode()) > MAX_NAME_BYTES:
            rule = f"has a name longer than {MAX_NAME_BYTES} bytes, which an S3 download cannot write"
            _refuse(argument, path, rule, "shorten it")
    if len(path.removesuffix("/").encode()) > max_bytes:
        _refuse(argument, path, f"is longer than {max_bytes} bytes (S3 keys hold 1,024)", "shorten it, or use fewer folders")


def _refuse(argument: str, path, rule: str, fix: str):
    """Raise the error naming the rule broken; a long path is shortened in the message."""
    shown = repr(path if not isinstance(path, str) or len(path) <= 60 else path[:60] + "...")
    raise InvalidArtifactPath(f"{argument} {shown} {rule}", fix)
