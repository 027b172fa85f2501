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
    "": "is empty",
    "   ": "is empty",
    "reports/": "has no file name",
    "reports//notes.md": "empty or '.' folder",
    "./tables/metrics.json": "empty or '.' folder",
    ".": "empty or '.' folder",
    "reports/.": "empty or '.' folder",
    ".../notes.md": "starts with a folder named '..'",  # MLflow's local store refuses it
    "..x/notes.md": "starts with a folder named '..'",
    ".artifact.uploading.notes.md": "starting with '.artifact.uploading.'",  # reserved by MLflow's local store
    "reports/.artifact.uploading.x": "starting with '.artifact.uploading.'",
    " notes.md": "starts with a space",  # the local store lists it, and cannot download it
    "reports/ notes.md": "starts with a space",
    "notes\x00.md": r"contains '\\x00' \(U\+0000\)",
    "notes\n.md": r"\(U\+000A\)",
    "notes\t.md": r"\(U\+0009\)",
    "notes\x7f.md": r"\(U\+007F\)",
    "reports\\notes.md": "backslash",  # SeaweedFS stores it as '/'
    "notes#1.md": "contains '#', where a download cuts the name",
    "why?.md": r"contains '\?', where a download cuts the name",
    "notes%2E.md": "contains '%2E', which the embedded store decodes",
    "a%20b.txt": "contains '%20'",
    "x" * 198 + ".md": "name longer than 200 bytes",
    "é" * 99 + ".md": "name longer than 200 bytes",  # 201 bytes in UTF-8
    "/".join(["x" * 99] * 9) + ".md": "longer than 900 bytes",
    b"notes.md": r"is not text \(bytes\)",
}
BAD_FOLDERS = {
    "/reports": "is absolute",
    "../reports": "contains '..'",
    "": "is empty",
    "./": "empty or '.' folder",
    "reports/.": "empty or '.' folder",
    "reports//": "empty or '.' folder",
    "reports/2026//": "empty or '.' folder",
    "..0": "starts with a folder named '..'",
    " reports": "starts with a space",
    "reports\n": r"\(U\+000A\)",
    "reports\t2026": r"\(U\+0009\)",
    "reports\\daily": "backslash",
    "reports#1": "contains '#'",
    "reports%2F2026": "contains '%2F'",
    "/".join(["x" * 99] * 8): "longer than 699 bytes",  # 699 + '/' + a 200-byte file name = 900
}
# What every store here keeps and gives back (tests/test_artifact_paths_roundtrip.py logs each
# one and downloads it back); refused before, by rules no store needs.
ACCEPTED_FILES = [
    "Q&A.md",
    "notes [draft].md",
    "100%.png",
    "README",  # no extension
    "reports/LICENSE",
    "model.v2/weights.bin",
    "..notes.md",
    "notes.",
    "reports /notes.md",
    "notes:v2.md",
    "a*b|c<d>e\"f.md",
    "it's $5 {ok} ~ ^ ! ` ;.md",
    "CON.txt",
    "re\u0301sume\u0301.md",  # not NFC: another key than 'résumé.md', kept as it is
    "notes\u200b.md",
    "\u0301notes.md",
    "/".join("a" * 40) + ".md",
]
ACCEPTED_FOLDERS = ["model.v2", "reports/2026.01", "Q&A", "notes [draft]", "100%", "v1.", "aux"]


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
    assert checked_file("caf\xe9 \u2160.md") == "caf\xe9 \u2160.md"  # NFC, though not NFKC (U+2160 ROMAN NUMERAL ONE)


@pytest.mark.parametrize("path", ACCEPTED_FILES)
def test_checked_file_accepts_what_every_store_keeps(path):
    assert checked_file(path) == path


@pytest.mark.parametrize("path", ACCEPTED_FOLDERS)
def test_checked_folder_accepts_what_every_store_keeps(path):
    assert checked_folder(path) == path


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
