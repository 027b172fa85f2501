"""Run the compose stack's services as local processes, the way docker-compose.yml says.

No Docker engine is needed: the `mlflow` service's command and environment and the
`trainer` service's environment are read from docker-compose.yml, their `${VAR:-default}`
values take the defaults (as on a machine with no `.env`), and the compose host names are
mapped to local addresses:

    postgres:5432 -> a fresh database on a local PostgreSQL server
    minio:9000    -> moto's S3 API server on a free local port
    mlflow:5000   -> the tracking server on a free local port

A client that reaches the tracking server as 127.0.0.1:PORT sends that as its Host header,
where the compose trainer sends mlflow:5000; so that name is added to `--allowed-hosts`,
next to the ones the compose file lists. No test needs port 5000 itself: each test
session (each pytest-xdist worker) runs a stack of its own.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import psycopg2
import yaml
from psycopg2 import sql
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"

# ${VAR:-default} / ${VAR-default} / ${VAR} and the $$ escape, as Compose interpolates them.
_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(value, variables: dict[str, str]):
    """Fill in `${VAR:-default}` from `variables`, else the default (`$$` is a plain `$`)."""

    def fill(match):
        if match.group(0) == "$$":
            return "$"
        return variables.get(match.group(1)) or match.group(2) or ""

    if isinstance(value, str):
        return _COMPOSE_VARIABLE.sub(fill, value)
    if isinstance(value, list):
        return [_interpolate(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, variables) for k, v in value.items()}
    return value


PROXIED_FILE = REPO / "docker-compose.proxied.yml"


class _Override:
    """A value tagged `!override` in a compose file: it replaces instead of merging."""

    def __init__(self, value):
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it, with its `!override` tag."""


ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: _Override(
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_sequence(node)
    ),
)


def _merge(base: dict, extra: dict) -> dict:
    """The part of Compose's merge rules these files use: mappings merge key by key,
    anything else (a command, say) is replaced, and `!override` replaces a mapping too."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, _Override):
            merged[key] = value.value
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merge(base[key], value)
        else:
            merged[key] = value
    return merged


def compose_config(files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict:
    """`docker compose -f A -f B config`, without the defaults filled in."""
    config: dict = {}
    for path in files:
        config = _merge(config, yaml.load(path.read_text(), Loader=ComposeLoader))
    return config


def compose_service(name: str, files: tuple[Path, ...] = (COMPOSE_FILE,), variables: dict | None = None) -> dict:
    """One service of the compose file(s), `${VAR:-default}` filled in from `variables`
    (a `.env` file's settings); by default the defaults, as on a machine with no `.env`."""
    return _interpolate(compose_config(files)["services"][name], variables or {})


def map_hosts(value: str, hosts: dict[str, str]) -> str:
    """Replace compose host names in URLs (`http://mlflow:5000`, `...@postgres:5432/...`)."""
    for compose_host, local_host in hosts.items():
        value = re.sub(rf"(?:(?<=//)|(?<=@)){re.escape(compose_host)}\b", local_host, value)
    return value


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without MLflow/AWS settings, plus `extra`.

    AWS config files and the EC2 metadata lookup are switched off so that nothing
    from the developer's own AWS set-up (or the network) takes part in a test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Process:
    """A server process in its own process group, with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path):
        self.args, self.env, self.log, self.cwd = args, env, log, cwd
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.popen.returncode}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def process_tree(pid: int) -> list[str]:
    """The command lines of process `pid` and of all the processes it started, and they started."""
    table = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 2) for line in table.splitlines() if len(line.split(None, 2)) == 3]
    family = {pid}
    while grown := {int(child) for child, parent, _ in rows if int(parent) in family} - family:
        family |= grown
    return [args for child, _, args in rows if int(child) in family]


def http_status(url: str, host_header: str | None = None, timeout: float = 2) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def readme_mlflow_ui() -> tuple[dict[str, str], list[str]]:
    """The root README's `mlflow ui` command line: its settings and its arguments."""
    line = re.search(r"^(.*\.venv/bin/mlflow ui.*)$", (REPO / "README.md").read_text(), re.MULTILINE).group(1)
    words = shlex.split(line)
    cli = next(i for i, word in enumerate(words) if word.endswith("/mlflow"))
    return dict(word.split("=", 1) for word in words[:cli]), words[cli + 1 :]


@contextmanager
def mlflow_ui(folder: Path, log: Path):
    """The README's `mlflow ui`, running in `folder` on a free port (5000 may be the learner's
    own) until the block ends. Yields its URL and its process."""
    settings, args = readme_mlflow_ui()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    port = free_port()
    ui = Process([mlflow_cli, *args, "--port", str(port)], clean_env(settings), log, folder)
    try:
        url = f"http://127.0.0.1:{port}"
        ui.wait_until(lambda: http_status(url + API_PROBE) == 200, "mlflow ui", timeout=120)
        yield url, ui
    finally:
        ui.stop()


def start_s3_server(workdir: Path, env: dict[str, str] | None = None) -> tuple[Process, str]:
    """moto's S3 API server (server mode) on a free local port.

    Ready when the port accepts connections: an HTTP probe would count as one of the
    requests that INITIAL_NO_AUTH_ACTION_COUNT lets through unauthenticated.
    """
    port = free_port()
    server = Process(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env=clean_env(env or {}),
        log=workdir / f"moto-{port}.log",
        cwd=workdir,
    )
    server.wait_until(lambda: port_is_open("127.0.0.1", port), "moto S3 server", timeout=30)
    return server, f"http://127.0.0.1:{port}"


# The policy the compose create-bucket job gives MLflow's MinIO user.
ARTIFACTS_POLICY = REPO / "minio" / "mlflow-artifacts-policy.json"
ALLOW_EVERYTHING = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
# moto lets exactly this many requests through without keys (those of set_up_s3), then checks keys.
S3_SETUP_REQUESTS = 7


def s3_server_client(endpoint: str, service: str = "s3", key: dict | None = None):
    """A boto3 client for one of moto's servers; without `key`, one moto lets through
    unchecked (any server not started with INITIAL_NO_AUTH_ACTION_COUNT, or its first requests)."""
    key = key or {"AccessKeyId": "x", "SecretAccessKey": "x"}
    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name="us-east-1",
    )


def set_up_s3(endpoint: str, bucket: str, user: str) -> tuple[dict, dict]:
    """What the compose create-bucket job does on MinIO, done on moto.

    A root user (MinIO's root account), the bucket, and `user` with the repository's
    bucket-only policy. Returns the access keys moto made for root and for `user`.
    """
    iam = s3_server_client(endpoint, "iam")
    iam.create_user(UserName="root")
    iam.put_user_policy(UserName="root", PolicyName="everything", PolicyDocument=ALLOW_EVERYTHING)
    root = iam.create_access_key(UserName="root")["AccessKey"]
    s3_server_client(endpoint).create_bucket(Bucket=bucket)
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="mlflow-artifacts", PolicyDocument=ARTIFACTS_POLICY.read_text())
    return root, iam.create_access_key(UserName=user)["AccessKey"]


def with_key(env: dict[str, str], key: dict) -> dict[str, str]:
    """`env` with an access key moto made (moto picks key ids itself; compose names the user)."""
    return dict(env, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])


# What the compose `mlflow` service's healthcheck calls: a real API endpoint behind the Host check.
API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


def tracking_server_command(hosts: dict[str, str], database: str, files=(COMPOSE_FILE,)) -> list[str]:
    """The compose `mlflow` service's command, pointed at local services and a fresh database,
    listening where `hosts` maps mlflow:5000."""
    address, _, port = hosts["mlflow:5000"].partition(":")
    args = []
    for arg in compose_service("mlflow", files)["command"]:
        option, _, value = arg.partition("=")
        if option == "--host":
            arg = f"--host={address}"  # loopback only while testing; compose binds all interfaces
        elif option == "--port":
            arg = f"--port={port}"
        elif option == "--backend-store-uri":
            url = make_url(map_hosts(value, hosts)).set(database=database)
            arg = f"{option}={url.render_as_string(hide_password=False)}"
        elif option == "--allowed-hosts":
            # Each allowed compose name also as the local address that stands for it.
            allowed = value.split(",")
            arg = f"{option}={','.join(allowed + [hosts[h] for h in allowed if h in hosts])}"
        else:
            arg = map_hosts(arg, hosts)
        args.append(arg)
    # The `mlflow` executable of the environment running the tests.
    return [str(Path(sys.executable).with_name(args[0])), *args[1:]]


def compose_environment(service: str, hosts: dict[str, str], files=(COMPOSE_FILE,)) -> dict[str, str]:
    """A service's `environment:` from the compose file(s) with host names mapped."""
    return {k: map_hosts(str(v), hosts) for k, v in compose_service(service, files)["environment"].items()}


def argument(command: list[str], option: str) -> str:
    """The value of `--option=value` in a command line."""
    return next(arg.partition("=")[2] for arg in command if arg.startswith(f"{option}="))


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used at `admin_url`, or None when it answers."""
    try:
        psycopg2.connect(admin_url, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        return str(error).strip()
    return None


# Any fixed number: every set-up that may create a role takes this lock first (see ensure_role).
_ROLE_LOCK = 0x6D6C666C6F77  # "mlflow"


def ensure_role(admin, name: str, password: str | None) -> None:
    """Create the login role `name` unless it exists, safely from any number of processes at once.

    "Look, then create" alone races: two test processes (or two suites on one server) both
    see no role, and the second CREATE ROLE fails. A PostgreSQL advisory lock, held for the
    look and the create, lets one set-up in at a time, across every connection to the server.
    """
    with admin.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (_ROLE_LOCK,))
        try:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)), (password,))
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_ROLE_LOCK,))


@contextmanager
def fresh_database(admin_url: str):
    """A new database for one session, owned by the user docker-compose.yml's backend URI names
    (created if missing, as the postgres image does); dropped afterwards. Yields (host:port, name)."""
    compose_url = make_url(argument(compose_service("mlflow")["command"], "--backend-store-uri"))
    owner, password = compose_url.username, compose_url.password
    database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_url, connect_timeout=3)
    admin.autocommit = True
    try:
        ensure_role(admin, owner, password)
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner)))
        yield f"{admin.info.host}:{admin.info.port}", database
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        admin.close()


def trainer_environment(hosts: dict[str, str], key: dict, files=(COMPOSE_FILE,)) -> dict[str, str]:
    """The compose trainer's environment, hosts mapped; its S3 key (if it has one) is `key`."""
    env = compose_environment("trainer", hosts, files)
    return with_key(env, key) if "AWS_ACCESS_KEY_ID" in env else env


def start_tracking_server(hosts: dict[str, str], database: str, key: dict, workdir: Path, files=(COMPOSE_FILE,)):
    """The compose `mlflow` service as a local process (ready once Stack.wait_for_server returns)."""
    command = tracking_server_command(hosts, database, files)
    env = with_key(compose_environment("mlflow", hosts, files), key)
    log = workdir / f"mlflow-server-{argument(command, '--port')}.log"
    return Process(command, clean_env(env), log, workdir)


@dataclass
class Stack:
    """The running stack, and what a test or benchmark needs to reach it."""

    tracking_uri: str  # where this machine reaches the tracking server
    s3_endpoint: str
    bucket: str
    trainer_env: dict[str, str]  # the compose trainer's environment: hosts and keys mapped
    server: Process  # the tracking server
    root_key: dict  # the S3 server's all-powerful user, as MinIO's root account
    artifacts_key: dict  # the bucket-only user's key, which mlflow and trainer use
    hosts: dict[str, str]  # compose host names -> local addresses
    database: str  # the fresh PostgreSQL database

    @property
    def server_command(self) -> list[str]:
        return self.server.args

    def client(self, service: str = "s3", key: dict | None = None):
        """A boto3 client for the S3 server: with the services' bucket-only key, or with `key`."""
        return s3_server_client(self.s3_endpoint, service, key or self.artifacts_key)

    def s3(self):
        return self.client("s3")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def wait_for_server(self) -> None:
        self.server.wait_until(lambda: http_status(self.tracking_uri + API_PROBE) == 200, "mlflow server", 120)

    def restart_server(self) -> None:
        self.server.stop()
        self.server.start()
        self.wait_for_server()

    @contextmanager
    def other_server(self, workdir: Path, files=(COMPOSE_FILE,)):
        """A second tracking server, configured by the compose file(s) `files`, on the same
        database and S3 server but its own port; yields this stack as seen through it."""
        hosts = dict(self.hosts, **{"mlflow:5000": f"127.0.0.1:{free_port()}"})
        server = start_tracking_server(hosts, self.database, self.artifacts_key, workdir, files)
        try:
            other = replace(
                self,
                tracking_uri=f"http://{hosts['mlflow:5000']}",
                trainer_env=trainer_environment(hosts, self.artifacts_key, files),
                server=server,
                hosts=hosts,
            )
            other.wait_for_server()
            yield other
        finally:
            server.stop()


@contextmanager
def local_stack(workdir: Path, postgres_admin_url: str):
    """PostgreSQL database + moto S3 + `mlflow server`, as docker-compose.yml configures them."""
    with fresh_database(postgres_admin_url) as (postgres_address, database):
        s3_server, s3_endpoint = start_s3_server(workdir, {"INITIAL_NO_AUTH_ACTION_COUNT": str(S3_SETUP_REQUESTS)})
        server = None
        try:
            hosts = {
                "postgres:5432": postgres_address,
                "minio:9000": s3_endpoint.removeprefix("http://"),
                "mlflow:5000": f"127.0.0.1:{free_port()}",
            }
            # The bucket job in docker-compose.yml creates the bucket of --default-artifact-root,
            # and the user whose name the mlflow and trainer services use as AWS_ACCESS_KEY_ID.
            root_artifacts = argument(compose_service("mlflow")["command"], "--default-artifact-root")
            bucket = root_artifacts.removeprefix("s3://").split("/")[0]
            user = compose_service("trainer")["environment"]["AWS_ACCESS_KEY_ID"]
            root_key, artifacts_key = set_up_s3(s3_endpoint, bucket, user)
            server = start_tracking_server(hosts, database, artifacts_key, workdir)
            running = Stack(
                f"http://{hosts['mlflow:5000']}",
                s3_endpoint,
                bucket,
                trainer_environment(hosts, artifacts_key),
                server,
                root_key,
                artifacts_key,
                hosts,
                database,
            )
            running.wait_for_server()
            yield running
        finally:
            if server:
                server.stop()
            s3_server.stop()
