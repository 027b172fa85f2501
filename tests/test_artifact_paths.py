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
}
BAD_FOLDERS = {
    "/reports": "is absolute",
    "../reports": "contains '..'",
    "reports\\daily": "backslash",
    "": "is empty",
    "reports/report.txt": "looks like a file name",
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
