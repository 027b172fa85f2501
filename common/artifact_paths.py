"""One check for the artifact paths the examples hand to MLflow, before anything is uploaded.

MLflow checks paths only in some stores: the local folder refuses `/reports/notes.md` and
`../x`, but a direct s3:// artifact root writes them as they are, outside the run (see the
tutorial's safety checklist). So these functions do not hunt for bad forms; they accept
only paths that every store stores, lists and gives back unchanged, and name the rule
any other path breaks:

    mlflow.log_text(text, artifact_file=checked_file("reports/notes.md"))
    mlflow.log_artifact(local, artifact_path=checked_folder("reports"))
    mlflow.log_table(df, artifact_file=checked_table_file("tables/metrics.json"))

An accepted path is a string (a pathlib.Path is taken as its '/' form), relative, with '/'
between at most MAX_NAMES names, and each name (a folder or the file):
- is made of letters, marks and digits of any script, spaces and the SIGNS below, but no
  invisible ones (Unicode's Default_Ignorable_Code_Point set, like U+3164 HANGUL FILLER or a
  variation selector: a name that looks like another, or like nothing);
- is in Unicode NFC, the form macOS, Windows and most keyboards write: 'é' as one character,
  not 'e' + a combining accent (the same name to a reader, another key to S3), no Kelvin sign;
- does not start with a combining mark (it would join the '/' before it);
- is not empty, and does not start or end with a dot or a space;
- is not a name Windows keeps for devices (CON, PRN, AUX, NUL, COM1, LPT1..., also CON.txt):
  downloading it there fails;
- is at most MAX_NAME_BYTES long, and the whole path at most MAX_PATH_BYTES.
Anything else is refused, even what some stores keep: a short list is easy to trust.
One thing no check of one path can see: 'Report.txt' and 'report.txt' are two files in every
store, but one in a folder on macOS or Windows, so a download there keeps only one of them.
What it keeps out, as seen with MLflow 3.17.2: control characters (tab and newline vanish or
fail), '%' ('a%2Fb.txt' becomes 'a/b.txt' in proxied mode), '#' and '?' (the name is cut
there), a leading space (listed without it), '\\' (kept inside a name), a leading dot
(the local store refuses '..x/' and '.artifact.uploading.*'); also ':' '*' '"' '<' '>' '|'
and a trailing dot or space, which Windows file names cannot hold, and invisible format
characters.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import PurePath

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
# Listing a run's tree asks the store once per folder (0.1-0.2 s each, for a whole run
# through the tracking server): 447 nested folders took 95 s. 32 names keep that short.
MAX_NAMES = 32

# Names Windows keeps for devices, with any extension ('CON.txt'), in any case.
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{kind}{n}" for kind in ("COM", "LPT") for n in "0123456789¹²³"}
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): shown as nothing. The
# letters and marks among them pass the category test below; the rest are format characters.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


class InvalidArtifactPath(FixableError, ValueError):
    """An artifact path that breaks one of the rules above."""


def checked_file(path: str | os.PathLike, extensions: tuple[str, ...] = ()) -> str:
    """`artifact_file`: folders AND a file name inside the run, like 'reports/notes.md'."""
    path = _as_text(path)
    if isinstance(path, str) and path.strip() and path.endswith("/"):
        _refuse(
            "artifact_file", path, "ends with '/', so it has no file name", f"name the file too, like '{path}notes.md'"
        )
    _check_path(path, "artifact_file", "reports/notes.md", MAX_PATH_BYTES, MAX_NAMES)
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


def checked_table_file(path: str | os.PathLike) -> str:
    """`artifact_file` for log_table: MLflow stores tables only as .json or .parquet."""
    return checked_file(path, extensions=(".json", ".parquet"))


def checked_folder(path: str | os.PathLike) -> str:
    """`artifact_path`: a folder only, like 'reports'; the file name comes from the local file.

    One trailing '/' is allowed and dropped: the path returned is the one MLflow stores.
    """
    path = _as_text(path)
    # log_artifact adds '/' and the local file's name (up to MAX_NAME_BYTES): leave room for it.
    _check_path(path, "artifact_path", "reports", MAX_PATH_BYTES - MAX_NAME_BYTES - 1, MAX_NAMES - 1)
    path = path.removesuffix("/")
    if re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", path):
        _refuse(
            "artifact_path",
            path,
            "looks like a file name: artifact_path is a folder only",
            "give the folder, like 'reports'; the file name comes from the local file",
        )
    return path


def _as_text(path):
    """A pathlib path as text with '/' (also a Windows path); other path objects as text."""
    if isinstance(path, PurePath):
        return path.as_posix()
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def _check_path(path: str, argument: str, example: str, max_bytes: int, max_names: int) -> None:
    """The rules every artifact path follows (see the top of this file)."""
    relative = f"use a relative path with '/' between folders, like '{example}'"
    if not isinstance(path, str):
        _refuse(argument, path, f"is not text ({type(path).__name__})", relative)
    if not path.strip():
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
    if len(names) > max_names:
        _refuse(argument, path, f"has {len(names)} names; at most {max_names} are allowed", "use fewer folders")
    for name in names:
        for char in name:
            if char not in SIGNS and unicodedata.category(char)[0] not in "LMN" or _ignorable(char):
                _refuse(argument, path, f"contains {char!r} (U+{ord(char):04X})", f"use only {ALLOWED}")
        if not unicodedata.is_normalized("NFC", name):
            nfc = unicodedata.normalize("NFC", name)
            # ascii() shows the difference the eye cannot see: 'e\u0301' against '\xe9'.
            rule = f"has a name not in Unicode NFC form, {ascii(name)}"
            _refuse(argument, path, rule, f"write it as {nfc!r} ({ascii(nfc)})")
        if unicodedata.category(name[0]).startswith("M"):
            rule = f"has a name that starts with a combining mark (U+{ord(name[0]):04X})"
            _refuse(argument, path, rule, "start the name with a letter or a digit")
        stem, dot, extension = name.partition(".")
        if stem.rstrip(" ").upper() in WINDOWS_DEVICES:
            rule = f"has a name Windows keeps for a device, {name!r}"
            _refuse(argument, path, rule, f"rename it, like '{stem}_file{dot}{extension}'")
        if name != name.strip(". "):
            rule = f"has a name that starts or ends with a dot or a space, {name!r}"
            _refuse(argument, path, rule, "remove the dot or space from the start and end of the name")
        if len(name.encode()) > MAX_NAME_BYTES:
            _refuse(argument, path, f"has a name longer than {MAX_NAME_BYTES} bytes", "shorten it")
    if len(path.removesuffix("/").encode()) > max_bytes:
        _refuse(argument, path, f"is longer than {max_bytes} bytes", "shorten it, or use fewer folders")


def _ignorable(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in DEFAULT_IGNORABLE)


def _refuse(argument: str, path, rule: str, fix: str):
    """Raise the error naming the rule broken; a long path is shortened in the message."""
    shown = repr(path if not isinstance(path, str) or len(path) <= 60 else path[:60] + "...")
    raise InvalidArtifactPath(f"{argument} {shown} {rule}", fix)
