"""docker compose, for real: the tutorial's main path, run as a learner runs it.

`docker compose up -d --build`, run.py and the tutorial's patterns in the trainer, the UI in a
browser on the published port, the switch to proxied mode, `down` and `up` again, `down -v`.
On docker-compose.yml + docker-compose.seaweedfs.yml, and on docker-compose.yml alone (MinIO's
place taken by Silo's build) where its images can be pulled. How the stack is kept apart from
the learner's own, and what the stand-ins are: tests/support/docker_stack.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import mlflow
import pytest

from scripts.screenshots import browser_page, find_chromium, open_artifacts, tree_node

from support.docker_stack import PROXIED, STORES, ComposeStack, NoImages, docker_problem, run, running_stack
from support.docs import PATTERNS, expected_output, pattern_blocks, printed, same_form
from support.services import service_missing
from support.stack import REPO

ROOT_README = REPO / "README.md"
TUTORIAL = REPO / "examples/02_artifacts/README.md"
TROUBLESHOOTING = REPO / "docs/troubleshooting.md"
FOLDERS = ["configs", "data", "images", "reports", "tables"]

# The first test's set-up builds the stand-in images and the trainer's image; on a machine that
# has none of them yet that alone takes several minutes (pip installs MLflow in the image).
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module", params=list(STORES))
def compose(request, tmp_path_factory):
    """The stack of one object store, up in a copy of this repository (docker_stack.running_stack)."""
    problem = docker_problem()
    if problem:
        service_missing(f"Docker: {problem}")
    try:
        with running_stack(request.param, tmp_path_factory.mktemp(f"compose-{request.param}")) as stack:
            stack.store = request.param
            stack.runs = {}  # mode -> the run id run.py printed
            yield stack
    except NoImages as reason:
        pytest.skip(str(reason))


def use_mode(compose: ComposeStack, mode: str) -> None:
    """Direct (the store's files) or proxied (docker-compose.proxied.yml last), switched as the
    tutorial says: `docker compose -f ... up -d` with the other files, on the same volumes."""
    files = STORES[compose.store] + ([PROXIED] if mode == "proxied" else [])
    if compose.files != files:
        compose.up(files)


def tracking_client(compose: ComposeStack) -> mlflow.MlflowClient:
    """MLflow as your machine reaches the stack: http://127.0.0.1:MLFLOW_PORT."""
    return mlflow.MlflowClient(f"http://127.0.0.1:{compose.variables['MLFLOW_PORT']}")


def as_the_readme_shows(compose: ComposeStack, output: str) -> str:
    """Output with what differs by machine written as the README writes it: the published port
    (5000 unless MLFLOW_PORT moves it), the object store (minio:9000), run and experiment ids."""
    port = compose.variables["MLFLOW_PORT"]
    return same_form(output, {f"localhost:{port}": "localhost:5000", "seaweedfs:8333": "minio:9000"})


def trainer_command(readme_line: str) -> list[str]:
    """What a README command runs in the trainer: the words after `exec trainer`."""
    words = shlex.split(readme_line)
    return words[words.index("trainer") + 1 :]


def readme_command(path, pattern: str) -> str:
    """The first line of `path`'s code blocks that matches `pattern`."""
    return re.search(rf"^({pattern}.*)$", path.read_text(), re.MULTILINE).group(1).split("  #")[0].strip()


def test_up_starts_every_service_healthy(compose):
    """`docker compose ps`: the long-running services healthy, the trainer up, the bucket job done."""
    services = compose.ps()
    for name in ("postgres", compose.store, "mlflow"):
        assert services[name]["Health"] == "healthy", services[name]
    assert services["trainer"]["State"] == "running"
    assert services["create-bucket"]["State"] == "exited" and services["create-bucket"]["ExitCode"] == 0


def prints_what_the_page_shows(compose: ComposeStack, page, command: str, intro: str):
    """The page's first command matching `command`, run in the trainer in direct mode: it
    succeeds and prints the block after the page's paragraph starting with `intro`."""
    use_mode(compose, "direct")
    result = compose.exec("trainer", *trainer_command(readme_command(page, command)))
    assert result.returncode == 0, result.stderr
    assert as_the_readme_shows(compose, result.stdout) == same_form(expected_output(page, intro))
    return result


def test_run_py_in_the_trainer_prints_what_the_readme_shows(compose):
    command = r"docker compose exec trainer python examples/02_artifacts/run\.py"
    result = prints_what_the_page_shows(compose, ROOT_README, command, "Expected output in the trainer")
    # On stderr only MLflow's own note that it creates the experiment: no warnings (GitPython's
    # without git in the image, "uid not found" for a TRAINER_UID the image has no name for).
    assert [line for line in result.stderr.splitlines() if "Creating a new experiment" not in line] == []
    compose.runs["direct"] = printed(result.stdout, "run id")


def test_the_run_records_who_ran_which_commit(compose):
    """MLflow records the commit of the mounted folder (git is in the image) and the user."""
    run_id = compose.runs["direct"]
    tags = tracking_client(compose).get_run(run_id).data.tags
    head = run(["git", "rev-parse", "HEAD"], cwd=compose.folder).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.user"] == "learner"
    # A trainer whose uid does not own the folder (TRAINER_UID left at its default, say): git
    # still reads it, since the image marks /work safe.
    other = compose.exec("trainer", "git", "-C", "/work", "rev-parse", "HEAD", user="4321:4321")
    assert other.returncode == 0 and other.stdout.strip() == head, other.stderr


def test_preflight_in_the_trainer_prints_what_the_tutorial_shows(compose):
    prints_what_the_page_shows(
        compose, TROUBLESHOOTING, r"docker compose exec trainer python -m common\.", "Expected with Docker"
    )


def patterns_run_in_the_trainer(compose, mode):
    """Each pattern of section 6, pasted into `docker compose exec trainer python`."""
    use_mode(compose, mode)
    if mode not in compose.runs:  # E and G read a run of run.py
        result = compose.exec("trainer", "python", "examples/02_artifacts/run.py")
        assert result.returncode == 0, result.stderr
        compose.runs[mode] = printed(result.stdout, "run id")
    for letter in PATTERNS:
        result = compose.exec("trainer", "python", "-", stdin=pattern_blocks()[letter])
        assert result.returncode == 0, f"pattern {letter}:\n{result.stderr}"
        assert "Traceback" not in result.stderr


def ui_shows_the_run_in_the_training_view(compose, mode):
    """The link run.py prints, opened in Chromium on the port the stack publishes."""
    if not find_chromium():
        service_missing("no Chromium found: apt-get install chromium, or set CHROMIUM to its path")
    use_mode(compose, mode)
    result = compose.exec("trainer", "python", "examples/02_artifacts/run.py")
    assert result.returncode == 0, result.stderr
    link = printed(result.stdout, "open the UI")
    page_url, experiment_id, run_id = re.fullmatch(r"(http://localhost:\d+)/#/experiments/(\d+)/runs/(\w+)/.*", link).groups()
    assert page_url == f"http://localhost:{compose.variables['MLFLOW_PORT']}"
    with browser_page() as page:
        open_artifacts(page, page_url, experiment_id, run_id)
        page.get_by_role("link", name="Runs", exact=True).first.wait_for()
        for folder in FOLDERS:
            assert tree_node(page, folder).is_visible()
        tree_node(page, "reports").click()
        tree_node(page, "notes.md").click()
        page.get_by_role("heading", name="Training notes").wait_for()
        # Where the bytes are, as the UI says it: the bucket (direct) or the server's proxy (proxied).
        where = "s3://mlflow-artifacts/" if mode == "direct" else "mlflow-artifacts:/"
        assert where in page.content()


def networks_keep_each_service_to_what_it_needs(compose, mode):
    """Probed from inside the containers: the trainer never reaches PostgreSQL, and in
    proxied mode not the object store either; the server reaches all three."""
    use_mode(compose, mode)
    assert not resolves(compose, "trainer", "postgres")
    assert resolves(compose, "trainer", "mlflow")
    assert resolves(compose, "trainer", compose.store) == (mode == "direct")
    for host in ("postgres", compose.store):
        assert resolves(compose, "mlflow", host), host
    environment = compose.exec("trainer", "env").stdout
    assert ("AWS_SECRET_ACCESS_KEY=" in environment) == (mode == "direct")


def resolves(compose: ComposeStack, service: str, host: str) -> bool:
    return compose.exec(service, "getent", "hosts", host).returncode == 0


# Direct mode first, then the switch to proxied mode, as the tutorial goes.


def test_patterns_run_in_the_trainer(compose):
    patterns_run_in_the_trainer(compose, "direct")


def test_ui_shows_the_run_in_the_training_view(compose):
    ui_shows_the_run_in_the_training_view(compose, "direct")


def test_networks_keep_each_service_to_what_it_needs(compose):
    networks_keep_each_service_to_what_it_needs(compose, "direct")


def test_switch_to_proxied_mode(compose):
    """The tutorial's `docker compose -f docker-compose.yml -f docker-compose.proxied.yml up -d`,
    on the running stack: run.py logs to proxied mode's own experiment, through the server."""
    use_mode(compose, "proxied")
    services = compose.ps()
    for name in ("postgres", compose.store, "mlflow"):
        assert services[name]["Health"] == "healthy", services[name]
    result = compose.exec("trainer", "python", "examples/02_artifacts/run.py")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"02-artifacts-proxied \(id \d+\)", printed(result.stdout, "experiment"))
    assert printed(result.stdout, "artifact root").startswith("mlflow-artifacts:/")
    assert re.fullmatch(r"mlflow-artifacts:/\d+/\w{32}/artifacts", printed(result.stdout, "artifact URI"))
    compose.runs["proxied"] = printed(result.stdout, "run id")


def test_patterns_run_in_the_proxied_trainer(compose):
    patterns_run_in_the_trainer(compose, "proxied")


def test_ui_shows_the_proxied_run_in_the_training_view(compose):
    ui_shows_the_run_in_the_training_view(compose, "proxied")


def test_proxied_networks_keep_the_trainer_from_the_object_store(compose):
    networks_keep_each_service_to_what_it_needs(compose, "proxied")


# A client on your machine, outside the compose networks, in proxied mode. It asks the server
# (GET /api/3.0/mlflow/server-info) whether to move files through presigned S3 URLs unless
# MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD / _UPLOAD say; a server whose store is S3 says yes,
# and signs the URLs for ITS S3 address, which only the compose networks know.
HOST_CLIENT = """
import os, sys, tempfile, mlflow
run_id = sys.argv[1]
if sys.argv[2] == "download":
    print(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/reports/notes.md", dst_path=tempfile.mkdtemp()))
else:  # a 12 MiB file, above the multipart threshold of 5 MiB set below (MLflow's default: 500 MiB)
    big = os.path.join(tempfile.mkdtemp(), "big.bin")
    with open(big, "wb") as file:
        file.write(os.urandom(12 * 1024 * 1024))
    mlflow.MlflowClient().log_artifact(run_id, big, "big")
    print("uploaded")
"""


def host_client(compose: ComposeStack, action: str, **settings: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MLFLOW_", "AWS_"))}
    env.update(
        MLFLOW_TRACKING_URI=f"http://localhost:{compose.variables['MLFLOW_PORT']}",
        MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE=str(5 * 1024 * 1024),
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        **settings,
    )
    return subprocess.run(
        [sys.executable, "-c", HOST_CLIENT, compose.runs["proxied"], action],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("action, setting", [
    ("download", "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"),
    ("upload", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"),
])  # fmt: skip
def test_a_client_outside_the_stack_needs_the_proxy_settings(compose, action, setting):
    """Without the setting, the client is sent to the object store's compose name, which does not
    resolve on your machine (every download; uploads from the multipart threshold on); with it
    set to false, the file goes through the tracking server, as the proxied trainer's do."""
    use_mode(compose, "proxied")
    unset = host_client(compose, action, MLFLOW_LOGGING_LEVEL="DEBUG")
    assert unset.returncode != 0
    assert re.search(rf"Failed to resolve \W*{compose.store}\b", unset.stderr), unset.stderr  # quotes escaped, or not
    if action == "download":
        # ... and MLflow blames the path: its own message hides the cause, which only its DEBUG log shows.
        assert unset.stderr.strip().splitlines()[-1] == (
            "mlflow.exceptions.MlflowException: Failed to download artifacts from path 'notes.md', "
            "please ensure that the path is correct."
        )
    through_the_server = host_client(compose, action, **{setting: "false"})
    assert through_the_server.returncode == 0, through_the_server.stderr


def test_down_and_up_keep_the_runs_and_their_files(compose):
    """`docker compose down` (without -v), then `up`: the volumes keep runs and artifacts."""
    for mode in ("direct", "proxied"):
        assert mode in compose.runs
    compose.down(volumes=False)
    compose.up()  # in proxied mode, where the tests before left it
    for mode in ("proxied", "direct"):
        use_mode(compose, mode)
        run_id = compose.runs[mode]
        read = f"import mlflow; print(mlflow.artifacts.load_text('runs:/{run_id}/reports/notes.md'), end='')"
        result = compose.exec("trainer", "python", "-c", read)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("# Training notes"), mode


def test_down_v_starts_again_from_nothing(compose):
    """`docker compose down -v` (the README's tear-down) deletes the volumes: the next `up`
    starts empty, and run.py works again."""
    compose.down(volumes=True)
    compose.up()  # in direct mode, where the test before left it
    names = [experiment.name for experiment in tracking_client(compose).search_experiments()]
    assert names == ["Default"]
    result = compose.exec("trainer", "python", "examples/02_artifacts/run.py")
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "experiment").endswith("(id 1)")
