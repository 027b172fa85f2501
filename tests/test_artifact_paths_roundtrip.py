"""Every path common/artifact_paths.py accepts comes back unchanged, from every store.

Property-based (hypothesis): for arbitrary strings, and for near-valid paths built from
names so that many are accepted, the check either raises InvalidArtifactPath or the path
round-trips: the key lands under the run's prefix and nowhere else, artifact_tree lists
exactly it, and download_artifacts gives back the same bytes. On every store of
`mlflow_store` (the embedded SQLite + mlruns/, the direct S3 stacks) and on the proxied stack.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse, urlunparse

import mlflow
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.artifact_paths import InvalidArtifactPath, checked_file, checked_folder
from common.mlflow_env import artifact_tree

from support.stack import clean_env

# --- Candidate paths --------------------------------------------------------------------

# Paths built from names of characters a path may hold (letters, marks and digits of any
# script, spaces and signs, '%' and '#' among them), so that about half are accepted; a third of
# them get one odd piece inserted anywhere: any short string (st.text() gives every code point
# but lone surrogates, which no file name can hold), '/', '.', '..', a backslash, a drive, NUL,
# the prefix MLflow's local store keeps for its own temporary files.
NAME_CHARACTER = st.one_of(
    st.characters(categories=["L", "M", "N"]), st.sampled_from(" ._-()+,=@&[]%!$'`;~{}^*:\"<>|\\#?")
)
NAME = st.text(NAME_CHARACTER, min_size=1, max_size=10)
# Names of 1- to 4-byte characters, on both sides of the 200-byte limit.
LONG_NAME = st.builds(
    lambda char, size: char * (size // len(char.encode())),
    st.sampled_from(["a", "é", "图", "𝔸"]),
    st.integers(150, 250),
)
FOLDER = st.lists(st.one_of(NAME, NAME, NAME, LONG_NAME), min_size=1, max_size=4).map("/".join)
EXTENSION = st.sampled_from([".txt", ".json", ".md", ".tar.gz"])
ODD = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["", "/", "//", ".", "..", " ", "\\", "C:", "c:/", "\x00", ".artifact.uploading.", "\udce9"]),
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9+.-]{0,5}: ?\Z"),  # a name that starts like an address: 'Notes: ', 'http:'
    st.sampled_from(["http:", "https:", "file:", "git:", "HTTP:", "Notes: "]),
)


def with_odd_pieces(paths):
    def insert(path, index, odd):
        return path[:index] + odd + path[index:]

    return st.one_of(paths, paths, st.builds(insert, paths, st.integers(0, 40), ODD))


# Any string at all, surrogates included (a file name os.listdir could not decode holds them).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
file_candidates = with_odd_pieces(st.builds(lambda folder, extension: folder + extension, FOLDER, EXTENSION))
folder_candidates = with_odd_pieces(st.builds(lambda folder, end: folder + end, FOLDER, st.sampled_from(["", "", "/"])))


def accepted(check, candidate: str) -> str | None:
    """What `check` returns, or None when it refuses the path (with the error:/fix: message)."""
    try:
        path = check(candidate)
    except InvalidArtifactPath as refused:
        assert str(refused).startswith("error: ") and "\nfix: " in str(refused)
        event("refused")  # shown by pytest --hypothesis-show-statistics
        return None
    event("accepted")
    return path


# --- Without a store: more examples, rules checked independently of the module -----------


def looks_safe(path: str, folder: str) -> bool:
    """The rules, said another way (`folder`: the path's folder part): what no store mangles."""
    names = path.split("/")
    return (
        posixpath.normpath(path) == path  # no empty, '.' or '..' names, no trailing '/'
        and not PurePosixPath(path).is_absolute()
        and path.encode(errors="replace") == path.encode(errors="surrogatepass")  # UTF-8 text
        and all(urlunparse(urlparse(name)) == name for name in names)  # urllib gives each name back as it is
        and not any(re.fullmatch(r"[A-Za-z]:", name) for name in folder.split("/"))  # no folder 'c:'
        and not ("'" in names[0] and folder)  # MLflow's listing of a first folder with a ' fails
        and not folder.startswith("..")
        and not re.search(r"[\x00-\x1f\x7f#?\\]|%[0-9A-Fa-f]{2}", path)
        and not any(name.startswith((" ", ".artifact.uploading.")) for name in names)
        and all(len(name.encode()) <= 200 for name in names)
        and len(path.encode()) <= 900
    )


@settings(max_examples=500, deadline=None, database=None)
@given(candidate=st.one_of(file_candidates, ANY_TEXT))
def test_checked_file_accepts_only_safe_paths(candidate):
    path = accepted(checked_file, candidate)
    if path is not None:
        folder, _, name = path.rpartition("/")
        assert path == candidate and looks_safe(path, folder)
        assert not folder or name != folder.rpartition("/")[2]  # no file named as its folder


@settings(max_examples=500, deadline=None, database=None)
@given(candidate=st.one_of(folder_candidates, ANY_TEXT))
def test_checked_folder_accepts_only_safe_paths(candidate):
    path = accepted(checked_folder, candidate)
    if path is not None:
        assert path == candidate.removesuffix("/") and looks_safe(path, path)
        # Room for '/' and a 200-byte file name under the 900 bytes of a whole path.
        assert len(path.encode()) <= 900 - 201
        assert checked_folder(path) == path  # what it returns passes again, unchanged


# --- On real stores: fewer examples, each in a run of its own ------------------------------

# An accepted example costs a run, an upload, listings and a download (0.3-1 s); 10 examples
# for each of the 8 tests (4 stores), a third to a half of them accepted, take about 15 s.
ON_A_STORE = settings(
    max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BODY = "round trip: é 图 \n".encode()


class Store:
    """One store: the experiment the tests log to, and all its keys (listed before and after an upload)."""

    def __init__(self, name: str, stack=None, folder: Path | None = None):
        self.name, self.stack, self.folder = name, stack, folder
        self.root = "proxied/" if name == "proxied" else ""  # the proxied server's --artifacts-destination
        self.experiment_id = mlflow.set_experiment(f"artifact-paths-{name}").experiment_id

    def keys(self) -> set[str]:
        if self.stack:
            return set(self.stack.keys())
        mlruns = self.folder / "mlruns"
        return {str(p.relative_to(mlruns)) for p in mlruns.rglob("*") if p.is_file()}


@pytest.fixture
def store(mlflow_store, request) -> Store:
    if mlflow_store == "embedded":
        return Store("embedded", folder=request.getfixturevalue("embedded_dir"))
    return Store(mlflow_store, stack=request.getfixturevalue("s3_stack"))


@pytest.fixture
def proxied_store(proxied, monkeypatch) -> Store:
    """This process's MLflow client as the proxied trainer: no S3 settings at all."""
    for name in [n for n in os.environ if n.startswith(("MLFLOW_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in clean_env(proxied.trainer_env).items():
        if name.startswith("MLFLOW_") and name != "MLFLOW_EXPERIMENT_NAME":
            monkeypatch.setenv(name, value)
    # The proxied trainer's environment downloads through the server, not from S3 directly
    # (MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD in docker-compose.proxied.yml).
    assert os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "false"
    mlflow.set_tracking_uri(proxied.tracking_uri)
    yield Store("proxied", stack=proxied)
    mlflow.set_tracking_uri(None)


def round_trip(store: Store, log, stored_as) -> None:
    """Log into a new run; exactly one new key, under the run's prefix; listed; same bytes back."""
    client = mlflow.MlflowClient()
    run_id = client.create_run(store.experiment_id).info.run_id
    before = store.keys()
    log(client, run_id)
    assert store.keys() - before == {f"{store.root}{store.experiment_id}/{run_id}/artifacts/{stored_as}"}
    assert artifact_tree(run_id) == [stored_as]
    with tempfile.TemporaryDirectory() as downloads:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=stored_as, dst_path=downloads)
        assert Path(local).read_bytes() == BODY
    # Also in every folder that holds it, and in the whole run.
    folders = stored_as.split("/")[:-1]
    for depth in range(len(folders) + 1):
        folder = "/".join(folders[:depth]) or None
        with tempfile.TemporaryDirectory() as downloads:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=folder, dst_path=downloads)
            inside = stored_as[len(folder) + 1 :] if folder else stored_as
            assert Path(local, inside).read_bytes() == BODY, (folder, stored_as)


def file_round_trips(store: Store, candidate: str) -> None:
    path = accepted(checked_file, candidate)
    if path is not None:
        round_trip(store, lambda client, run_id: client.log_text(run_id, BODY.decode(), path), path)


def folder_round_trips(store: Store, candidate: str) -> None:
    folder = accepted(checked_folder, candidate)
    if folder is not None:
        with tempfile.TemporaryDirectory() as local:
            payload = Path(local, "payload.bin")
            payload.write_bytes(BODY)

            def log(client, run_id):
                client.log_artifact(run_id, str(payload), folder)

            round_trip(store, log, f"{folder}/payload.bin")


# Names refused before by rules no store needs: each logged and downloaded back, on every store.
ACCEPTED = [
    "Q&A.md", "notes [draft].md", "100%.png", "README", "model.v2/weights.bin", "..notes.md", "notes.",
    "reports /notes.md", "notes:v2.md", 'a*b|c<d>e"f.md', "it's $5 {ok} ~ ^ ! ` ;.md",
    "CON.txt", "re\u0301sume\u0301.md", "notes\u200b.md", "\u0301notes.md", "/".join("a" * 40) + ".md",
    "notes: draft.md", "c:x.md", "reports/c:", "s3:x.md", "x:y/z.md", "notes/it's.md", "data/data.csv", "a/a/b",
]  # fmt: skip


def accepted_names_round_trip(store: Store) -> None:
    for path in ACCEPTED:
        assert checked_file(path) == path
        round_trip(store, lambda client, run_id: client.log_text(run_id, BODY.decode(), path), path)
    with tempfile.TemporaryDirectory() as local:
        payload = Path(local, "payload.bin")
        payload.write_bytes(BODY)
        folder = checked_folder("model.v2")
        round_trip(store, lambda client, run_id: client.log_artifact(run_id, str(payload), folder), f"{folder}/payload.bin")


def test_accepted_names_round_trip(store):
    accepted_names_round_trip(store)


def test_accepted_names_round_trip_proxied(proxied_store):
    accepted_names_round_trip(proxied_store)


@ON_A_STORE
@given(candidate=file_candidates)
def test_checked_file_round_trips(store, candidate):
    file_round_trips(store, candidate)


@ON_A_STORE
@given(candidate=folder_candidates)
def test_checked_folder_round_trips(store, candidate):
    folder_round_trips(store, candidate)


@ON_A_STORE
@given(candidate=file_candidates)
def test_checked_file_round_trips_proxied(proxied_store, candidate):
    file_round_trips(proxied_store, candidate)


@ON_A_STORE
@given(candidate=folder_candidates)
def test_checked_folder_round_trips_proxied(proxied_store, candidate):
    folder_round_trips(proxied_store, candidate)


# --- artifact_tree ends on any tree a store can hold ----------------------------------------


@pytest.mark.parametrize("mlflow_store", ["s3-direct"], indirect=True)
def test_artifact_tree_ends_on_any_tree(mlflow_store, s3_stack):
    """Keys no accepted path writes, put straight into S3 (by another client): MLflow lists
    'a/./x.txt' and 'b//y.txt' as a folder 'a' (or 'b') inside itself, which used to recurse for
    minutes. (Deep trees: artifact_tree is a loop; a tree deeper than Python's 1,000 frames takes
    too long to list here.) And MLflow's listing, which artifact_tree keeps as it is, never shows
    those keys, nor 'c/../w.txt' or '/v.txt'; './z.txt' it shows as 'z.txt'."""
    client = mlflow.MlflowClient()
    experiment_id = mlflow.set_experiment("artifact-tree").experiment_id
    run_id = client.create_run(experiment_id).info.run_id
    prefix = f"{experiment_id}/{run_id}/artifacts/"
    for key in ["ok.txt", "a/./x.txt", "b//y.txt", "./z.txt", "c/../w.txt", "/v.txt", "d/" * 5 + "deep.txt"]:
        s3_stack.s3().put_object(Bucket=s3_stack.bucket, Key=prefix + key, Body=b"x")
    started = time.monotonic()
    files = artifact_tree(run_id)
    print(f"artifact_tree: {files} in {time.monotonic() - started:.1f} s")
    assert len(s3_stack.keys(prefix)) == 7
    assert sorted(files) == ["d/" * 5 + "deep.txt", "ok.txt", "z.txt"]



def test_a_file_named_as_its_folder_is_lost_from_the_proxied_listing(proxied_store):
    """Why checked_file refuses 'data/data': through the tracking server, MLflow's client takes a
    folder that holds one file of the folder's own name for that file, and lists nothing."""
    client = mlflow.MlflowClient()
    run_id = client.create_run(proxied_store.experiment_id).info.run_id
    client.log_text(run_id, "x", "data/data")
    client.log_text(run_id, "x", "other/data")
    assert client.list_artifacts(run_id, "data") == []
    assert artifact_tree(run_id) == ["other/data"]  # data/data is stored, and not listed
