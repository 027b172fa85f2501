"""Checks of the files no Docker engine runs here: docker-compose.yml, Dockerfile, pins, CI."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from support.stack import (
    COMPOSE_FILE,
    PROXIED_FILE,
    REPO,
    SEAWEEDFS_FILE,
    argument,
    compose_config,
    compose_service,
    free_port,
)

SERVICES = yaml.safe_load(COMPOSE_FILE.read_text())["services"]  # docker-compose.yml as written
LONG_RUNNING = ["postgres", "minio", "mlflow"]


def tool(name: str) -> str:
    """A command-line tool installed next to this Python (requirements-test.txt)."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else shutil.which(name)


def test_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_merged_proxied_config_follows_the_compose_specification(tmp_path):
    """check-jsonschema cannot read the `!override` tag, so check what Compose would merge."""
    merged = tmp_path / "merged.json"
    merged.write_text(json.dumps(compose_config((COMPOSE_FILE, PROXIED_FILE))))
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(merged)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_only_the_locked_requirements():
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert installs == ["pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \\"]
    assert "COPY requirements.lock /tmp/requirements.lock" in dockerfile
    assert re.search(r"^USER 1000", dockerfile, re.MULTILINE)


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-test.txt"])
def test_requirements_pin_exact_versions(name):
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    for line in filter(None, lines):
        pin = r"[\w.\-]+(\[[\w,]+\])?==[\w.]+( ; .+)?"  # a platform marker may follow
        assert line == "-r requirements.txt" or re.fullmatch(pin, line), line


def locked(name: str) -> dict[str, str]:
    """{package: version} of a lock file (the same package may be locked per platform)."""
    text = (REPO / name).read_text()
    return {m[0]: m[1] for m in re.findall(r"^([\w.\-]+)==([\w.]+)", text, re.MULTILINE)}


def wanted(name: str) -> dict[str, str]:
    """{package: version} that a requirements file pins itself."""
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    pins = [re.match(r"([\w.\-]+)(?:\[[\w,]+\])?==([\w.]+)", line) for line in lines]
    return {pin[1].lower(): pin[2] for pin in pins if pin}


@pytest.mark.parametrize("name", ["requirements", "requirements-test"])
def test_lock_files_lock_what_the_requirements_pin(name):
    """The human-readable pins and the lock agree; every locked package has hashes."""
    lock = locked(f"{name}.lock")
    for package, version in wanted(f"{name}.txt").items():
        assert lock.get(package) == version, package
    text = (REPO / f"{name}.lock").read_text()
    assert all("--hash=sha256:" in entry for entry in re.split(r"\n(?=[\w.\-]+==)", text)[1:])


def test_test_lock_installs_the_same_versions_as_the_lock():
    runtime, test = locked("requirements.lock"), locked("requirements-test.lock")
    assert {package: test.get(package) for package in runtime} == runtime


def test_requirements_pin_the_mlflow_this_tutorial_describes():
    assert "mlflow[auth]==3.17.2" in (REPO / "requirements.txt").read_text().split()


# The repositories that no longer serve MinIO's images (the tutorial's "Which object store?"):
# Docker Hub's minio/minio and minio/mc (removed in September 2026), and quay.io's (401 to
# anonymous pulls).
GONE = ("minio/", "docker.io/minio/", "quay.io/minio/")
# The image the compose files build from the Dockerfile, named after the MLflow it pins.
BUILT = "mlflow-artifacts-tutorial:3.17.2"


def image_references() -> list[str]:
    """Every image the compose files and the Dockerfile name, as written."""
    files = [COMPOSE_FILE, PROXIED_FILE, SEAWEEDFS_FILE]
    images = [image for path in files for image in re.findall(r"^\s*image:\s*(\S+)", path.read_text(), re.MULTILINE)]
    return images + re.findall(r"^ARG PYTHON_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)


def test_every_image_is_pinned_by_digest_and_none_comes_from_a_repository_that_is_gone():
    """A tag can be moved or deleted; a digest names the same bytes for good. The image built
    here from the Dockerfile is the one exception: it is named after the MLflow it pins."""
    images = image_references()
    assert len(images) == 8 and BUILT in images
    for image in images:
        assert image == BUILT or re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), image
        assert not image.startswith(GONE), image
    assert BUILT == f"mlflow-artifacts-tutorial:{locked('requirements.lock')['mlflow']}"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_healthcheck(name):
    assert SERVICES[name]["healthcheck"]["test"]


def test_minio_healthcheck_uses_the_images_own_client():
    # Silo's image bundles MinIO's client as `mc`; `mc ready local` waits, compose's timeout ends it.
    assert SERVICES["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert SERVICES["minio"]["healthcheck"]["timeout"] == "5s"


@pytest.mark.parametrize("name", SERVICES)
def test_depends_on_waits_for_health_or_completion(name):
    for condition in (SERVICES[name].get("depends_on") or {}).values():
        assert condition["condition"] in ("service_healthy", "service_completed_successfully")


def test_postgres_is_not_published_and_other_ports_only_on_loopback():
    assert "ports" not in SERVICES["postgres"]
    for service in SERVICES.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_bucket_job_creates_the_bucket_only_if_missing():
    command = " ".join(SERVICES["create-bucket"]["command"])
    bucket = argument(compose_service("mlflow")["command"], "--default-artifact-root")
    assert f"mc mb --ignore-existing local/{bucket.removeprefix('s3://').strip('/')}" in command


def test_trainer_runs_the_server_image_with_the_project_mounted():
    trainer = SERVICES["trainer"]
    assert trainer["image"] == SERVICES["mlflow"]["image"]
    assert trainer["working_dir"] == "/work" and trainer["volumes"] == [".:/work"]
    assert trainer["command"] == ["sleep", "infinity"]


def test_backend_uri_names_the_installed_postgres_driver():
    """With SQLAlchemy 2.1 a bare postgresql:// means psycopg 3, which is not installed."""
    uri = make_url(argument(compose_service("mlflow")["command"], "--backend-store-uri"))
    assert uri.get_dialect().driver == "psycopg2"
    assert make_url("postgresql://u@h/db").get_dialect().driver == "psycopg"
    assert "psycopg2-binary==" in (REPO / "requirements.txt").read_text()


def test_allowed_hosts_is_a_closed_list():
    hosts = argument(compose_service("mlflow")["command"], "--allowed-hosts").split(",")
    assert hosts == ["mlflow:5000", "localhost:5000", "127.0.0.1:5000"]


def test_security_middleware_is_never_disabled():
    text = COMPOSE_FILE.read_text() + PROXIED_FILE.read_text() + SEAWEEDFS_FILE.read_text()
    assert "--disable-security-middleware" not in text
    assert "MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE" not in text
    assert "*" not in argument(compose_service("mlflow")["command"], "--allowed-hosts")


def test_no_secrets_but_the_documented_development_defaults():
    """Every `${VAR:-default}` has its default written in .env.example, and no credential is a literal."""
    text = COMPOSE_FILE.read_text() + PROXIED_FILE.read_text() + SEAWEEDFS_FILE.read_text()
    documented = dict(re.findall(r"^(\w+)=(.*)$", (REPO / ".env.example").read_text(), re.MULTILINE))
    for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", text):
        assert documented[name] == default, name
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY|_USER$", name):
                assert re.fullmatch(r"\$\{\w+:-[^}]*\}", str(value)), f"{name}: {value}"


def test_env_file_is_ignored_by_git():
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0


def test_env_example_documents_every_compose_variable():
    used = set(
        re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text() + PROXIED_FILE.read_text() + SEAWEEDFS_FILE.read_text())
    )
    documented = set(re.findall(r"^(\w+)=", (REPO / ".env.example").read_text(), re.MULTILINE))
    assert used == documented
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_missing_postgres_fails_in_ci_and_skips_elsewhere(tmp_path):
    """A stack test on a machine without PostgreSQL: skipped for a learner, failed in CI."""
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    outcomes = {}
    for ci in ("", "true"):
        env = dict(os.environ, TEST_POSTGRES_URL=closed, CI=ci)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-n",
                "0",
                "--basetemp",
                str(tmp_path / (ci or "no-ci")),
                "tests/test_tracking_server.py::test_server_runs_in_direct_mode",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcomes[ci] = result.returncode, result.stdout
    assert outcomes[""][0] == 0 and "1 skipped" in outcomes[""][1]
    assert outcomes["true"][0] == 1 and "1 error" in outcomes["true"][1]
    assert "PostgreSQL does not answer" in outcomes["true"][1]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    command = re.search(r"```bash\n(python3 -m venv \.venv && .*pytest.*)\n```", readme).group(1)
    assert command in (REPO / ".ci/run").read_text()


def networks(files, service: str) -> set[str]:
    return set(compose_config(files)["services"][service].get("networks", []))


@pytest.mark.parametrize(
    "files, s3",
    [
        ((COMPOSE_FILE,), "minio"),
        ((COMPOSE_FILE, PROXIED_FILE), "minio"),
        ((COMPOSE_FILE, SEAWEEDFS_FILE), "seaweedfs"),
        ((COMPOSE_FILE, SEAWEEDFS_FILE, PROXIED_FILE), "seaweedfs"),
    ],
    ids=["direct", "proxied", "seaweedfs-direct", "seaweedfs-proxied"],
)
def test_each_service_joins_only_the_networks_it_needs(files, s3):
    """No engine runs here, so the isolation is checked on the merged configuration: the
    trainer never reaches PostgreSQL, and reaches the object store only in direct mode."""
    services = compose_config(files)["services"]
    assert all(service.get("networks") for service in services.values())
    assert not networks(files, "trainer") & networks(files, "postgres")
    direct = PROXIED_FILE not in files
    assert bool(networks(files, "trainer") & networks(files, s3)) == direct
    for other in ("postgres", s3, "trainer"):
        assert networks(files, "mlflow") & networks(files, other), other
    assert networks(files, "create-bucket") & networks(files, s3)


def test_trainer_runs_as_the_user_named_in_env():
    assert SERVICES["trainer"]["user"] == "${TRAINER_UID:-1000}:${TRAINER_GID:-1000}"
    assert compose_service("trainer", variables={"TRAINER_UID": "501", "TRAINER_GID": "20"})["user"] == "501:20"
    assert compose_service("trainer")["environment"]["HOME"] == "/tmp"  # writable for any uid


@pytest.mark.parametrize("files", [(COMPOSE_FILE,), (COMPOSE_FILE, PROXIED_FILE)], ids=["direct", "proxied"])
def test_mlflow_port_is_one_setting_for_the_whole_stack(files):
    """The published port, the Host headers for a browser, and the trainer's links; the
    healthcheck and the trainer use mlflow:5000 inside, whatever the setting."""
    moved = {"MLFLOW_PORT": "5001"}
    server, trainer = compose_service("mlflow", files, moved), compose_service("trainer", files, moved)
    assert [(p["host_ip"], p["published"], p["target"]) for p in server["ports"]] == [("127.0.0.1", "5001", 5000)]
    assert argument(server["command"], "--allowed-hosts") == "mlflow:5000,localhost:5001,127.0.0.1:5001"
    assert trainer["environment"]["MLFLOW_UI_URL"] == "http://localhost:5001"
    assert trainer["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "http://mlflow:5000/" in server["healthcheck"]["test"][-1]


def test_no_test_module_imports_another():
    """Shared test tools live in tests/support/: no test file imports another test file or
    conftest.py, so each reads on its own and moving a test never breaks a neighbour."""
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(("test_", "conftest")), f"{path.relative_to(REPO)} imports {module}"
