"""common/artifact_paths.py: bad artifact paths are refused before anything is uploaded."""

from __future__ import annotations

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
