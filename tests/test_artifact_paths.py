"""common/artifact_paths.py: bad artifact paths are refused before anything is uploaded."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

import mlflow
import pandas as pd
import pytest

from common.artifact_paths import InvalidArtifactPath, checked_file, checked_folder, checked_table_file

BAD_FILES = {
    "/reports/notes.md": "is absolute",
    "C:/reports/notes.md": "named like a Windows drive, 'C:'",
    "it's/notes.md": "has a ' in its first folder",  # MLflow's listing of 'it's' fails
    "data/data": "names a file as its folder",  # proxied: listing 'data' gives nothing
    "x/data/data.json/data.json": "names a file as its folder",
    "c:/reports/notes.md": "named like a Windows drive, 'c:'",  # not with its folder, nor the whole run
    "x/d:/notes.md": "named like a Windows drive, 'd:'",
    "Notes: draft.md": "reads as an address",  # the embedded store downloads 'notes: draft.md'
    "C:x.md": "reads as an address",
    "http:x.md": "reads as an address",  # ... 'http:///x.md'
    "file:x.md": "reads as an address",
    "reports/Notes: x.md": "reads as an address",
    "x/Z:x/y.md": "reads as an address",  # downloading the folder 'x/Z:x' fails
    "caf\udce9.md": "not UTF-8 text",  # a byte os.listdir could not decode
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
    "Zx:": "reads as an address",
    "it's": "has a ' in its first folder",
    "z:": "named like a Windows drive",  # a file goes under it
    "reports/HTTP:": "reads as an address",
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
    "notes: draft.md",  # lower case before the ':': urllib writes it back as it is
    "c:x.md",
    "reports/c:",  # a file named so: MLflow reads only a folder 'c:' as a drive
    "a*b|c<d>e\"f.md",
    "it's $5 {ok} ~ ^ ! ` ;.md",  # at the top: MLflow lists the run's top without a filter
    "notes/it's $5 {ok} ~ ^ ! ` ;.md",
    "data/data.csv",
    "a/a/b",
    "CON.txt",
    "re\u0301sume\u0301.md",  # not NFC: another key than 'résumé.md', kept as it is
    "notes\u200b.md",
    "\u0301notes.md",
    "/".join("a" * 40) + ".md",
]
ACCEPTED_FOLDERS = ["model.v2", "reports/2026.01", "Q&A", "notes [draft]", "100%", "v1.", "aux", "notes/it's", "a/a"]


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


BAD_TABLES = {
    "tables/a,b.json": "contains ',', which log_table refuses",
    "tables/v:2.json": "contains ':', which log_table refuses",
    "tables/[x].json": "contains '\\[', which log_table refuses",
    "tables/métriques.json": "non-ASCII characters: log_table logs it, but mlflow.load_table cannot find it",
    "tables/图.json": "non-ASCII",
}


@pytest.mark.parametrize("path, rule", BAD_TABLES.items())
def test_checked_table_file_refuses_what_log_table_or_load_table_cannot_take(path, rule):
    with pytest.raises(InvalidArtifactPath, match=rule):
        checked_table_file(path)


@pytest.mark.parametrize("mlflow_store", ["embedded", "s3-direct"], indirect=True)
def test_what_log_table_and_load_table_do_with_those_names(mlflow_store, request):
    """MLflow's own behaviour, which the rules above follow: log_table refuses some characters
    before it logs; a non-ASCII name it logs, and load_table, which searches the run's tag
    mlflow.loggedArtifacts for the name as written (the tag holds it escaped), does not find it."""
    if mlflow_store != "embedded":
        request.getfixturevalue("s3_stack")
    mlflow.set_experiment("tables")
    frame = pd.DataFrame({"epoch": [1, 2]})
    with mlflow.start_run() as run:
        for path in [p for p in BAD_TABLES if p.isascii()]:
            with pytest.raises(ValueError, match="forbidden character"):
                mlflow.log_table(frame, artifact_file=path)
        mlflow.log_table(frame, artifact_file="tables/métriques.json")
        mlflow.log_table(frame, artifact_file="tables/metrics.json")
    assert "tables/métriques.json" in [f.path for f in mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="tables")]
    assert len(mlflow.load_table("tables/metrics.json", run_ids=[run.info.run_id])) == 2
    with pytest.raises(mlflow.exceptions.MlflowException, match="No runs found with the corresponding table artifact"):
        mlflow.load_table("tables/métriques.json", run_ids=[run.info.run_id])
    assert '"path": "tables/m\\u00e9triques.json"' in mlflow.get_run(run.info.run_id).data.tags["mlflow.loggedArtifacts"]
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/tables/métriques.json")["data"] == [[1], [2]]


@pytest.mark.parametrize("mlflow_store", ["embedded"], indirect=True)
def test_the_embedded_store_cannot_download_a_name_read_as_an_address(mlflow_store, tmp_path):
    """The rule for names like 'Notes: draft.md': MLflow's embedded store logs them, then reads
    the name as an address (urllib writes 'Notes:' back as 'notes:') and finds no such file, one
    by one or in a folder that holds it; or, once 'notes: draft.md' exists, gives that file.
    And a folder 'c:', which MLflow's download takes for a Windows drive (an absolute path)."""
    mlflow.set_experiment("addresses")
    with mlflow.start_run() as run:
        for path in ["Notes: draft.md", "x/Z:/y.md", "http:x.md", "c:/x.md"]:
            mlflow.log_text("upper", artifact_file=path)

    def download(path):
        return Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=path, dst_path=str(tmp_path)))

    for path in ["Notes: draft.md", "x/Z:", "http:x.md"]:
        with pytest.raises(mlflow.exceptions.MlflowException, match="Failed to download artifacts"):
            download(path)
    with pytest.raises(mlflow.exceptions.MlflowException, match="Failed to download artifacts from path 'c:'"):
        download("c:")
    assert download("c:/x.md").read_text() == "upper"  # one by one it comes back
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_text("lower", artifact_file="notes: draft.md")
    assert download("notes: draft.md").read_text() == "lower"
    assert download("Notes: draft.md").read_text() == "lower"  # not the file logged under that name


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


@pytest.mark.parametrize("mlflow_store", ["embedded", "s3-direct"], indirect=True)
def test_mlflows_listing_fails_under_a_first_folder_with_a_quote(mlflow_store, request):
    """Why "it's/x.md" is refused: MLflow looks for a logged model named as the first folder
    with a filter string it does not quote, and the listing fails, on every store."""
    if mlflow_store != "embedded":
        request.getfixturevalue("s3_stack")
    mlflow.set_experiment("quotes")
    with mlflow.start_run() as run:
        mlflow.log_text("x", artifact_file="it's/x.md")
        mlflow.log_text("x", artifact_file="notes/it's.md")
    with pytest.raises(mlflow.exceptions.MlflowException, match="Invalid filter string"):
        mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="it's")
    assert [f.path for f in mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="notes")] == ["notes/it's.md"]


def test_the_docs_list_the_rules_the_check_follows():
    """docs/artifact-paths.md lists the rules as the module's docstring does, word for word."""
    import common.artifact_paths

    rules = common.artifact_paths.__doc__.split("S3 direct and proxied):\n\n", 1)[1].split("\n\nAnything else")[0]
    page = (Path(__file__).parents[1] / "docs/artifact-paths.md").read_text()
    assert rules in page
