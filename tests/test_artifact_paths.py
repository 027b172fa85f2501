"""common/artifact_paths.py: bad artifact paths are refused before anything is uploaded."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import mlflow
import pytest

from common.artifact_paths import InvalidArtifactPath, checked_file, checked_folder, checked_table_file

BAD_FILES = {
    "/reports/notes.md": "is absolute",
    "C:/reports/notes.md": "is absolute",
    "../escape.txt": "contains '..'",
    "reports/../../x.txt": "contains '..'",
    "reports\\notes.md": "backslash",
    "": "is empty",
    "   ": "is empty",
    "reports/": "has no file name",
    "reports": "looks like a folder",
    "reports//notes.md": "empty or '.' folder",
    "./tables/metrics.json": "empty or '.' folder",
    ".": "empty or '.' folder",
    "reports/.": "empty or '.' folder",
    ".../notes.md": "starts or ends with a dot or a space",
    "..notes.md": "starts or ends with a dot",  # MLflow's local store refuses paths starting with '..'
    ".artifact.uploading.notes.md": "starts or ends with a dot",  # reserved by MLflow's local store
    "notes.": "starts or ends with a dot",  # Windows drops a trailing dot
    " notes.md": "starts or ends with a dot or a space",
    "reports /notes.md": "starts or ends with a dot or a space",
    "notes\x00.md": r"contains '\\x00' \(U\+0000\)",
    "notes\n.md": r"\(U\+000A\)",
    "notes\u200b.md": r"\(U\+200B\)",  # zero-width space: invisible
    "notes:v2.md": r"\(U\+003A\)",  # not allowed in Windows file names
    "notes%2E.md": r"\(U\+0025\)",  # the tracking server decodes it
    "x" * 198 + ".md": "name longer than 200 bytes",
    "é" * 99 + ".md": "name longer than 200 bytes",  # 201 bytes in UTF-8
    "/".join(["x" * 99] * 9) + ".md": "longer than 900 bytes",
    "/".join("a" * 33) + ".md": "has 33 names; at most 32",  # each folder costs artifact_tree a listing
    # Names Windows keeps for devices: a download there fails.
    "CON": "Windows keeps for a device",
    "reports/con.txt": "Windows keeps for a device",
    "Nul.tar.gz": "Windows keeps for a device",
    "LPT9.md": "Windows keeps for a device",
    "com¹.json": "Windows keeps for a device",
    # Not in Unicode NFC: the same name to the eye, another key to S3.
    "re\u0301sume\u0301.md": r"not in Unicode NFC form, 're\\u0301sume\\u0301.md'.*\nfix: write it as 'résumé.md'",
    "\u212a.md": r"not in Unicode NFC.*\nfix: write it as 'K.md'",  # KELVIN SIGN, NFC 'K'
    # Default-ignorable: shown as nothing, though letters or marks.
    "notes\u034f.md": r"\(U\+034F\)",
    "notes\ufe0f.md": r"\(U\+FE0F\)",
    "\u3164.md": r"\(U\+3164\)",
    "\u115f\u1160.md": r"\(U\+115F\)",
    "notes\uffa0.md": r"\(U\+FFA0\)",
    "notes\u180b.md": r"\(U\+180B\)",
    "notes\u180f.md": r"\(U\+180F\)",
    "notes\u17b4.md": r"\(U\+17B4\)",
    "notes\U000e0100.md": r"\(U\+E0100\)",
    "notes\U000e0041.md": r"\(U\+E0041\)",  # TAG LATIN CAPITAL LETTER A
    # Combining marks with nothing to combine with.
    "\u0301notes.md": "starts with a combining mark",
    "reports/\u0301\u0302.md": "starts with a combining mark",
    b"notes.md": r"is not text \(bytes\)",
}
BAD_FOLDERS = {
    "/reports": "is absolute",
    "../reports": "contains '..'",
    "reports\\daily": "backslash",
    "": "is empty",
    "reports/report.txt": "looks like a file name",
    "./": "empty or '.' folder",
    "reports/.": "empty or '.' folder",
    "reports//": "empty or '.' folder",
    "reports/2026//": "empty or '.' folder",
    "..0": "starts or ends with a dot",
    "v1.": "starts or ends with a dot",
    "reports\n": r"\(U\+000A\)",
    "reports\t2026": r"\(U\+0009\)",
    "/".join(["x" * 99] * 8): "longer than 699 bytes",  # 699 + '/' + a 200-byte file name = 900
    "/".join("a" * 32): "has 32 names; at most 31",  # room for the file name
    "aux": "Windows keeps for a device",
    "caf\u0065\u0301": "not in Unicode NFC",
}


@pytest.mark.parametrize("path, rule", BAD_FILES.items())
def test_checked_file_refuses(path, rule):
    with pytest.raises(InvalidArtifactPath, match=rule) as refused:
        checked_file(path)
    assert str(refused.value).startswith("error: ") and "\nfix: " in str(refused.value)


@pytest.mark.parametrize("path, rule", BAD_FOLDERS.items())
def test_checked_folder_refuses(path, rule):
    with pytest.raises(InvalidArtifactPath, match=rule):
        checked_folder(path)


@pytest.mark.parametrize("path", ["tables/metrics.csv", "tables/metrics.txt"])
def test_checked_table_file_refuses_other_extensions(path):
    with pytest.raises(InvalidArtifactPath, match=r"must end in \.json or \.parquet"):
        checked_table_file(path)


def test_good_paths_pass_unchanged():
    assert checked_file("reports/notes.md") == "reports/notes.md"
    assert checked_file("notes.md") == "notes.md"
    assert checked_folder("data") == "data"
    assert checked_folder("reports/2026") == "reports/2026"
    assert checked_folder("reports/") == "reports"  # one trailing '/' is dropped: MLflow stores 'reports/x'
    assert checked_file("résumé (final) v1.2.md") == "résumé (final) v1.2.md"
    assert checked_file("图表/结果.json") == "图表/结果.json"
    assert checked_file("é" * 98 + ".md") == "é" * 98 + ".md"  # 199 bytes
    assert checked_table_file("tables/metrics.json") == "tables/metrics.json"
    assert checked_table_file("tables/metrics.parquet") == "tables/metrics.parquet"
    assert checked_file("/".join("a" * 31) + ".md") == "/".join("a" * 31) + ".md"  # 32 names
    assert checked_file("CONSOLE.txt") == "CONSOLE.txt"  # only the device names themselves
    assert checked_file("caf\xe9 \u2160.md") == "caf\xe9 \u2160.md"  # NFC, though not NFKC (U+2160 ROMAN NUMERAL ONE)


def test_path_objects_are_taken_as_their_text():
    """pathlib paths used to be refused as 'is empty'; a Windows path is taken with '/'."""
    assert checked_file(Path("reports/notes.md")) == "reports/notes.md"
    assert checked_file(PureWindowsPath("reports\\notes.md")) == "reports/notes.md"
    assert checked_folder(Path("reports")) == "reports"
    with pytest.raises(InvalidArtifactPath, match="is absolute"):
        checked_file(Path("/reports/notes.md"))


def test_names_that_differ_only_in_case_both_pass():
    """One path at a time cannot see it: 'Report.txt' and 'report.txt' are two files in every
    store, but one on macOS and Windows folders, where a download keeps only one."""
    assert checked_file("Report.txt") == "Report.txt" and checked_file("report.txt") == "report.txt"



def test_invalid_artifact_path_is_a_value_error():
    assert issubclass(InvalidArtifactPath, ValueError)


@pytest.mark.parametrize("mlflow_store", ["s3-direct"], indirect=True)
def test_refused_paths_leave_the_bucket_as_it_was(mlflow_store, stack):
    """Against the direct S3 root, where MLflow alone would write the absolute and '..' keys
    (test_bad_paths_accepted_by_a_direct_s3_root)."""
    mlflow.set_experiment("claims")
    before = stack.keys()
    with mlflow.start_run():
        for path in BAD_FILES:
            with pytest.raises(InvalidArtifactPath):
                mlflow.log_text("x", artifact_file=checked_file(path))
        for path in BAD_FOLDERS:
            with pytest.raises(InvalidArtifactPath):
                mlflow.log_artifact(__file__, artifact_path=checked_folder(path))
    assert stack.keys() == before
