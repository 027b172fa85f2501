"""The rest of the fault matrix: servers that fail mid-run, mistyped settings, this machine (the
embedded default's own faults are in test_faults_embedded.py).

As in test_faults.py, each fault runs the three entry points at once (the preflight
`python -m common.checks` and both examples) with the compose trainer's environment and
one thing broken, and checks the two-line message. A fault that needs a misbehaving server
gets a FaultyServer on a free loopback port: a fake that answers every request the same way
(a web page, S3's 503 SlowDown), or a proxy in front of the real tracking server or S3 server
that passes requests through until the run has started, then fails them. The stack stays real.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from common.checks.settings import FAIL_FAST

from support.docs import printed
from support.faults import (
    MESSAGES,
    PREFLIGHT,
    SCRIPTS,
    FaultyServer,
    assert_one_clear_message,
    folder_for,
    read_only,
    run_all,
    run_and_time,
    run_id_in,
)
from support.services import POSTGRES_ADMIN_URL
from support.stack import REPO, clean_env, compose_environment, compose_service, free_port, fresh_database

# --- settings a learner can mistype ----------------------------------------------------------


@pytest.mark.parametrize("uri", ["http://", "htp:/x", "folder", "mlflow.db", "file:mlflow.db", "sqlite://mlflow.db",
                                 "SQLITE:///mlflow.db", "sqlite:mlflow.db"])  # fmt: skip
def test_mistyped_tracking_uri(uri, trainer_env, tmp_path):
    if uri == "folder":  # a bare absolute path, as if MLFLOW_TRACKING_URI could name the mlruns folder
        uri = str(tmp_path / "runs")
        fault, phrases = "folder as tracking uri", [f"MLFLOW_TRACKING_URI=sqlite:///{uri}/mlflow.db"]
    elif uri.endswith("mlflow.db"):  # the database without its scheme, or its scheme mistyped: the fix is the scheme
        fault = "database file as tracking uri" if uri in ("mlflow.db", "file:mlflow.db") else "sqlite near miss"
        phrases = ["fix: set MLFLOW_TRACKING_URI=sqlite:///mlflow.db"]
    else:
        fault, phrases = "bad tracking uri", [f"MLFLOW_TRACKING_URI={uri!r}"]
    for result, seconds in run_all(dict(trainer_env, MLFLOW_TRACKING_URI=uri), tmp_path).values():
        assert_one_clear_message(result, seconds, fault, *phrases)
    if uri.endswith("mlflow.db"):  # following the fix, run.py runs, and nothing else was left behind
        assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []
        fixed = dict(trainer_env, MLFLOW_TRACKING_URI="sqlite:///mlflow.db")
        (tmp_path / "fixed").mkdir()
        result, _ = run_and_time(SCRIPTS[0], fixed, tmp_path / "fixed")
        assert result.returncode == 0, result.stderr


def test_a_server_address_without_http(trainer_env, tmp_path):
    """`127.0.0.1:5000` or `http//127.0.0.1:5000`: read as a folder before, and the first fix
    offered made a database in a folder named '127.0.0.1:5000'. Now the fix is the address."""
    address = trainer_env["MLFLOW_TRACKING_URI"].removeprefix("http://").rstrip("/")
    for number, uri in enumerate((address, f"http//{address}")):
        (tmp_path / str(number)).mkdir()
        for result, seconds in run_all(dict(trainer_env, MLFLOW_TRACKING_URI=uri), tmp_path / str(number)).values():
            assert_one_clear_message(result, seconds, "server without scheme", f"fix: set MLFLOW_TRACKING_URI=http://{address}")
    (tmp_path / "fixed").mkdir()
    result, _ = run_and_time(SCRIPTS[0], dict(trainer_env, MLFLOW_TRACKING_URI=f"http://{address}"), tmp_path / "fixed")
    assert result.returncode == 0, result.stderr


def test_uppercase_scheme_is_the_same_server(stack, trainer_env, tmp_path):
    """MLflow takes HTTP:// for http://, and so do the checks: the run gets its UI link, and a
    server that fails mid-run is named as such (both were lost before)."""
    upper = stack.tracking_uri.replace("http://", "HTTP://")
    env = {name: value for name, value in trainer_env.items() if name != "MLFLOW_UI_URL"}
    result, _ = run_and_time(SCRIPTS[1], dict(env, MLFLOW_TRACKING_URI=upper), tmp_path)
    assert result.returncode == 0, result.stderr
    assert printed(result.stdout, "open the UI").startswith(f"{upper}/#/experiments/")
    with FaultyServer("500", stack.tracking_uri, armed_by="runs/create") as server:
        upper = server.url.replace("http://", "HTTP://")
        result, seconds = run_and_time(SCRIPTS[1], dict(env, MLFLOW_TRACKING_URI=upper), tmp_path)
    assert_one_clear_message(result, seconds, "server error", upper, "may stay RUNNING")


def test_web_page_where_the_tracking_server_should_be(trainer_env, tmp_path):
    with FaultyServer("web page") as web_server:  # a web server on the port, not MLflow
        results = run_all(dict(trainer_env, MLFLOW_TRACKING_URI=web_server.url), tmp_path)
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "not mlflow", web_server.url, "text/html")


def test_json_that_mlflow_does_not_send(trainer_env, tmp_path):
    """The checks' call passes, but something else answers the run's calls with a JSON 404: named as
    such, no longer a generic 'MLflow failed: RestException: INTERNAL_ERROR'."""
    with FaultyServer("404 not mlflow", trainer_env["MLFLOW_TRACKING_URI"], paths=("/api/2.0/mlflow/runs/",)) as server:
        env = dict(trainer_env, MLFLOW_TRACKING_URI=server.url)
        results = run_all(None, tmp_path, entries=SCRIPTS, env_of=dict.fromkeys(SCRIPTS, env))
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "foreign json", server.url, "{'detail': 'Not Found'}")


def test_experiment_name_too_long(trainer_env, tmp_path):
    """MLflow's own check allows 500 characters; its PostgreSQL column holds 256."""
    for result, seconds in run_all(dict(trainer_env, MLFLOW_EXPERIMENT_NAME="é" * 257), tmp_path).values():
        assert_one_clear_message(result, seconds, "long experiment name", "NAME is 257", "at most 256")


def test_disk_full_and_a_file_in_the_way(trainer_env, tmp_path):
    """Example 01 writes outputs/report.txt: once to a full disk (/dev/full), once where
    `outputs` is a file. Each is named as what it is."""
    full, blocked = tmp_path / "full", tmp_path / "blocked"
    (full / "outputs").mkdir(parents=True)
    (full / "outputs/report.txt").symlink_to("/dev/full")  # every write: ENOSPC
    blocked.mkdir()
    (blocked / "outputs").write_text("not a folder")
    result, seconds = run_and_time(SCRIPTS[1], trainer_env, full)
    assert_one_clear_message(result, seconds, "disk full")  # a failed write names no file
    result, seconds = run_and_time(SCRIPTS[1], trainer_env, blocked)
    assert_one_clear_message(result, seconds, "file in the way", "outputs")


def test_proxied_server_that_cannot_reach_its_store(proxied, proxied_run, tmp_path):
    """Proxied mode with the bucket gone: the server answers 500 to every artifact call (here a
    proxy in front of it does). Before, the preflight said ready and run.py blamed a closed
    connection; now all three say where to look."""
    with FaultyServer("500", proxied.tracking_uri, paths=("/api/2.0/mlflow-artifacts/",)) as server:
        env = dict(clean_env(proxied.trainer_env), MLFLOW_TRACKING_URI=server.url)
        for result, seconds in run_all(env, tmp_path).values():
            assert_one_clear_message(result, seconds, "proxied store failing", server.url)


def run_one_fault_each(faults, trainer_env, tmp_path):
    """Three faults at once, one for each entry point: they all start with the same checks
    (checked_setup's), so one entry point per fault is enough. `faults` lists, per entry point,
    (settings, the fault's MESSAGES key, phrases); each result is checked against its fault."""
    entries = [PREFLIGHT, *SCRIPTS]
    # No proxy from this machine's environment: only the one a fault sets.
    env = {k: v for k, v in trainer_env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env_of = {entry: dict(env, **settings) for entry, (settings, _, _) in zip(entries, faults)}
    results = run_all(None, tmp_path, env_of=env_of)
    for entry, (_, fault, phrases) in zip(entries, faults):
        result, seconds = results[entry]
        assert_one_clear_message(result, seconds, fault, *phrases)
        assert "Traceback" not in result.stderr
    return results


def test_tracking_uri_mlflow_cannot_open(trainer_env, tmp_path):
    """A database URL whose driver is not installed (raw ModuleNotFoundError before), a scheme
    alone (called a folder before), an SQLite folder (110 s of retries before) and a file that is
    not SQLite: each named, before MLflow opens it."""
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("not a database")
    folder = tmp_path / "runs"
    folder.mkdir()
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": "postgresql://mlflow:secret@127.0.0.1:5432/mlflow"}, "no database driver",
             ["'psycopg'", "postgresql+psycopg2://mlflow:***@127.0.0.1:5432/mlflow"]),
            ({"MLFLOW_TRACKING_URI": "mysql://mlflow:secret@127.0.0.1/mlflow"}, "no database driver", ["'MySQLdb'"]),
            ({"MLFLOW_TRACKING_URI": "databricks"}, "scheme alone", ["no DATABRICKS_HOST"]),
        ],
        dict(trainer_env, HOME=str(tmp_path)),  # no ~/.databrickscfg
        tmp_path,
    )  # fmt: skip
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": f"sqlite:///{folder}"}, "sqlite folder", [f"sqlite:///{folder}/mlflow.db"]),
            ({"MLFLOW_TRACKING_URI": f"sqlite:///{not_sqlite}"}, "not sqlite", [str(not_sqlite)]),
            ({"MLFLOW_TRACKING_URI": "sqlite"}, "scheme alone", ["'sqlite'"]),
        ],
        trainer_env,
        tmp_path,
    )


def test_database_that_does_not_answer(trainer_env, tmp_path):
    """MLFLOW_TRACKING_URI naming a PostgreSQL server that is down: MLflow retried for 108 s, then
    a generic message. Its password is not shown."""
    database = f"postgresql+psycopg2://mlflow:DbSecret1@127.0.0.1:{free_port()}/mlflow"
    for result, seconds in run_all(dict(trainer_env, MLFLOW_TRACKING_URI=database), tmp_path).values():
        assert_one_clear_message(result, seconds, "database down", "mlflow:***@127.0.0.1", "Connection refused")
        assert "DbSecret1" not in result.stdout + result.stderr
    # A server that answers, and a database it does not have: not "start the database".
    missing = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql:", "postgresql+psycopg2:") + "/no_such_db"
    result, seconds = run_and_time(PREFLIGHT, dict(trainer_env, MLFLOW_TRACKING_URI=missing), tmp_path)
    assert result.returncode == 1 and "fix: create the database (no_such_db)" in result.stderr, result.stderr


def test_password_in_the_tracking_uri_is_never_shown(stack, trainer_env, tmp_path):
    """Printed as the tracking URI, in the UI link, and by MLflow itself ("View run at", outside
    docker compose) before: now ***, whatever it holds (a quote, a '/'), also in a database URL
    and in an error line."""
    hidden = ("MLFLOW_UI_URL", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")  # as without docker compose
    env = {name: value for name, value in trainer_env.items() if name not in hidden}
    uri = stack.tracking_uri.replace("http://", "http://learner:s3cr'et@")
    result, _ = run_and_time(SCRIPTS[1], dict(env, MLFLOW_TRACKING_URI=uri), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "s3cr'et" not in result.stdout + result.stderr
    assert printed(result.stdout, "tracking URI").startswith("http://learner:***@")
    result, _ = run_and_time(SCRIPTS[1], dict(env, MLFLOW_UI_URL="http://admin:Pa/s$s@localhost:5000"), tmp_path)
    assert printed(result.stdout, "open the UI").startswith("http://admin:***@localhost:5000/#/experiments/")
    endpoint = trainer_env["MLFLOW_S3_ENDPOINT_URL"].replace("http://", 'http://minio:Pa/ss"w0rd@')
    result, _ = run_and_time(PREFLIGHT, dict(env, MLFLOW_S3_ENDPOINT_URL=endpoint), tmp_path)
    assert result.returncode == 1 and "holds a user name or password" in result.stderr, result.stderr
    assert "Pa/s" not in result.stdout + result.stderr
    with fresh_database(POSTGRES_ADMIN_URL) as (address, database):  # trust: any password gets in
        uri = f"postgresql+psycopg2://mlflow:pa/s's\"x@{address}/{database}"
        result, _ = run_and_time(PREFLIGHT, clean_env({"MLFLOW_TRACKING_URI": uri}), tmp_path)
        assert result.returncode == 0, result.stderr
        assert printed(result.stdout, "tracking URI") == f"postgresql+psycopg2://mlflow:***@{address}/{database}"
        client = MlflowClient(uri)
        client.delete_experiment(client.get_experiment_by_name("02-artifacts").experiment_id)
        result, _ = run_and_time(PREFLIGHT, clean_env({"MLFLOW_TRACKING_URI": uri}), tmp_path)
    # The fix's command reads the address from MLFLOW_TRACKING_URI: no password in it to print.
    assert "was deleted" in result.stderr and "client = mlflow.MlflowClient();" in result.stderr, result.stderr
    assert "pa/s" not in result.stdout + result.stderr
    uri = stack.tracking_uri.replace("http://", 'http://learner:s/cr"e\'t@')  # no address at all, for requests
    result, _ = run_and_time(PREFLIGHT, dict(env, MLFLOW_TRACKING_URI=uri), tmp_path)
    assert result.returncode == 1 and "learner:***@" in result.stderr, result.stderr
    for written in ("s/cr", "cr\"e", "\\'t"):
        assert written not in result.stdout + result.stderr


def test_s3_settings_boto3_cannot_use(trainer_env, tmp_path):
    """Each named by its setting, no longer 'S3 answered with an error' (or 'may not use the
    bucket', for an endpoint with a path)."""
    secret = trainer_env["AWS_SECRET_ACCESS_KEY"]
    endpoint = trainer_env["MLFLOW_S3_ENDPOINT_URL"]
    run_one_fault_each(
        [
            ({"AWS_PROFILE": "nowhere"}, "aws profile", ["AWS_PROFILE='nowhere'"]),
            ({"AWS_SECRET_ACCESS_KEY": f"{secret[:8]}\n{secret[8:]}"}, "odd character", ["AWS_SECRET_ACCESS_KEY"]),
            ({"AWS_DEFAULT_REGION": "us east"}, "region name", ["AWS_DEFAULT_REGION='us east'"]),
        ],
        trainer_env,
        tmp_path,
    )
    run_one_fault_each(
        [
            ({"MLFLOW_S3_ENDPOINT_URL": endpoint.replace("http:", "https:")}, "s3 tls", ["WRONG_VERSION_NUMBER"]),
            ({"MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:99999"}, "s3 endpoint not an address", ["port out of range"]),
            ({"MLFLOW_S3_ENDPOINT_URL": f"{endpoint}/minio"}, "s3 endpoint not an address", ["'/minio'"]),
        ],
        trainer_env,
        tmp_path,
    )


def test_settings_with_a_line_end_quotes_or_spaces(trainer_env, tmp_path):
    """What a .env file saved on Windows (CRLF), `set X="..."` in cmd, or a copy slips into a
    setting: named, with the value shown (a URL is no secret), before MLflow or boto3 use it."""
    tracking, endpoint = trainer_env["MLFLOW_TRACKING_URI"], trainer_env["MLFLOW_S3_ENDPOINT_URL"]
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": tracking + "\r"}, "odd character", ["MLFLOW_TRACKING_URI contains '\\r'"]),
            ({"MLFLOW_S3_ENDPOINT_URL": endpoint + "\n"}, "odd character", ["MLFLOW_S3_ENDPOINT_URL contains '\\n'"]),
            ({"MLFLOW_TRACKING_URI": f'"{tracking}"'}, "quoted setting", [f"without the quotes: {tracking}"]),
        ],
        trainer_env,
        tmp_path,
    )
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": tracking + " "}, "spaces around", ["MLFLOW_TRACKING_URI"]),
            ({"MLFLOW_EXPERIMENT_NAME": "demo\r"}, "odd character", ["MLFLOW_EXPERIMENT_NAME"]),
            ({"MLFLOW_S3_ENDPOINT_URL": f"'{endpoint}'"}, "quoted setting", [f"without the quotes: {endpoint}"]),
        ],
        trainer_env,
        tmp_path,
    )


def test_settings_mlflow_or_boto3_cannot_read(trainer_env, tmp_path):
    """Each raised a ValueError (or a JSON error) with a traceback, some only mid-run; now each is
    named before anything is logged."""
    cyrillic = trainer_env["MLFLOW_S3_ENDPOINT_URL"].replace("127.0.0.1", "l\u043ecalhost")  # an о, not an o
    run_one_fault_each(
        [
            ({"MLFLOW_HTTP_REQUEST_TIMEOUT": "5s"}, "mlflow setting", ["MLFLOW_HTTP_REQUEST_TIMEOUT='5s'", "a whole number"]),
            ({"MLFLOW_TRACKING_INSECURE_TLS": "yes"}, "mlflow setting", ["true or false"]),
            ({"AWS_MAX_ATTEMPTS": "abc"}, "aws attempts", ["AWS_MAX_ATTEMPTS='abc'"]),
        ],
        trainer_env,
        tmp_path,
    )
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": "http://[::1"}, "bad tracking uri", ["Invalid IPv6 URL"]),
            ({"MLFLOW_S3_ENDPOINT_URL": cyrillic}, "s3 endpoint not an address", ["boto3 takes host names of"]),
            ({"MLFLOW_S3_UPLOAD_EXTRA_ARGS": "notjson"}, "upload args", ["MLFLOW_S3_UPLOAD_EXTRA_ARGS"]),
        ],
        trainer_env,
        tmp_path,
    )  # fmt: skip


def test_tracking_uri_that_goes_on_after_the_address(stack, trainer_env, tmp_path):
    """A query or a fragment after the server's address: MLflow appends its API paths to the whole
    text, so the server saw '/' and answered its web page ('another program listens there' before)."""
    server = stack.tracking_uri
    run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": f"{server}?x=1"}, "tracking uri query", ["'?x=1'", f"={server}"]),
            ({"MLFLOW_TRACKING_URI": f"{server}/#runs"}, "tracking uri query", ["'#runs'", f"={server}/"]),
            ({"MLFLOW_TRACKING_URI": f"{server}?token=Hunter2Secret"}, "tracking uri query", ["'?token=***'"]),
        ],
        trainer_env,
        tmp_path,
    )


def test_boto3_settings_it_cannot_read(trainer_env, tmp_path):
    """AWS_* settings botocore refuses when it makes a client: 'S3 answered with an error' before,
    though S3 was never asked. A credentials file it cannot read is named, its lines never shown
    (they may hold a key). An ACL S3 does not know, or a value of the wrong type, in
    MLFLOW_S3_UPLOAD_EXTRA_ARGS: S3's 500 mid-run before, the run FAILED."""
    credentials = tmp_path / "credentials"
    credentials.write_text("aws_secret_access_key = NotAHeaderButASecret\n[default]\n")
    results = run_one_fault_each(
        [
            ({"AWS_RETRY_MODE": "weird"}, "boto3 setting", ["AWS_RETRY_MODE='weird'", "InvalidRetryModeError"]),
            ({"AWS_REQUEST_CHECKSUM_CALCULATION": "bogus"}, "boto3 setting", ["AWS_REQUEST_CHECKSUM_CALCULATION='bogus'"]),
            ({"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}, "boto3 setting",
             [f"AWS_SHARED_CREDENTIALS_FILE='{credentials}'", "no section headers"]),
        ],
        trainer_env,
        tmp_path,
    )  # fmt: skip
    assert "NotAHeaderButASecret" not in results[SCRIPTS[1]][0].stderr
    config = tmp_path / "config"  # ~/.aws/config, as the tests name it (they keep this machine's own out)
    config.write_text("[default]\nretry_mode = standrad\n")  # a typo in the file, no setting
    run_one_fault_each(
        [
            ({"AWS_STS_REGIONAL_ENDPOINTS": "bogus"}, "boto3 setting", ["AWS_STS_REGIONAL_ENDPOINTS='bogus'"]),
            ({"AWS_CONFIG_FILE": str(config)}, "boto3 config", ["standrad", f"files ({config}, /dev/null)"]),
            ({"MLFLOW_S3_UPLOAD_EXTRA_ARGS": '{"ChecksumAlgorithm": "CRC32C"}'}, "boto3 upload args",
             ["botocore[crt]", "is marked FAILED"]),  # boto3 needs another package for it, at the first upload
        ],
        trainer_env,
        tmp_path,
    )  # fmt: skip
    https = trainer_env["MLFLOW_S3_ENDPOINT_URL"].replace("http:", "https:")
    run_one_fault_each(
        [
            ({"MLFLOW_S3_UPLOAD_EXTRA_ARGS": '{"ACL": "nonsense"}'}, "upload args", ["ACL takes one of private,"]),
            ({"MLFLOW_S3_UPLOAD_EXTRA_ARGS": '{"Metadata": {"owner": "José"}}'}, "upload args", ["printable ASCII only"]),
            ({"MLFLOW_S3_ENDPOINT_URL": https, "AWS_CA_BUNDLE": "/nowhere/ca.pem"}, "ca file",
             ["AWS_CA_BUNDLE names /nowhere/ca.pem", "set AWS_CA_BUNDLE"]),
        ],
        trainer_env,
        tmp_path,
    )  # fmt: skip


def test_a_proxy_that_refuses_large_uploads(stack, trainer_env, proxied, tmp_path):
    """nginx in front of S3, or in front of the tracking server in proxied mode, answers 413 to
    an upload over its limit (1 MB by default): named as such, and the run is FAILED."""
    (tmp_path / "direct").mkdir()
    (tmp_path / "proxied").mkdir()
    with (
        FaultyServer("413 too large", stack.s3_endpoint, methods={"PUT"}, keep_host=True) as s3,
        FaultyServer("413 too large", proxied.tracking_uri, methods={"PUT"}) as tracking,
    ):
        direct = dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=s3.url)
        result, seconds = run_and_time(SCRIPTS[0], direct, tmp_path / "direct")
        assert_one_clear_message(result, seconds, "s3 too large", s3.url, "reports/notes.md")
        failed = [run_id_in(result, "is marked FAILED")]
        via_server = dict(clean_env(proxied.trainer_env), MLFLOW_TRACKING_URI=tracking.url)
        result, seconds = run_and_time(SCRIPTS[0], via_server, tmp_path / "proxied")
        assert_one_clear_message(result, seconds, "tracking too large", tracking.url)
        failed.append(run_id_in(result, "is marked FAILED"))
    for run_id in failed:
        assert MlflowClient(stack.tracking_uri).get_run(run_id).info.status == "FAILED"


def test_a_ca_file_that_is_not_there_a_password_in_the_address_a_folder_in_the_way(trainer_env, tmp_path):
    """A CA file setting naming no file (an 'operating system' failure before), a password in
    MLFLOW_TRACKING_URI (printed in the message before), a folder where example 01 writes its file."""
    (folder_for(tmp_path, SCRIPTS[1]) / "outputs/report.txt").mkdir(parents=True)
    server = f"http://learner:s3cret@127.0.0.1:{free_port()}"
    results = run_one_fault_each(
        [
            ({"MLFLOW_TRACKING_URI": "https://127.0.0.1:1", "MLFLOW_TRACKING_SERVER_CERT_PATH": "/nowhere/ca.pem"},
             "ca file", ["MLFLOW_TRACKING_SERVER_CERT_PATH names /nowhere/ca.pem"]),
            ({"MLFLOW_TRACKING_URI": server}, "server down", ["http://learner:***@127.0.0.1:"]),
            ({}, "folder in the way", ["outputs/report.txt"]),
        ],
        trainer_env,
        tmp_path,
    )  # fmt: skip
    assert "s3cret" not in results[SCRIPTS[0]][0].stderr


def test_s3_redirects_throttles_and_other_regions(trainer_env, tmp_path):
    """A redirect (a RecursionError traceback in botocore before), 429 (a generic error before),
    a region MinIO does not expect."""
    with (
        FaultyServer("301 PermanentRedirect") as moved,
        FaultyServer("302 elsewhere") as elsewhere,
        FaultyServer("429 SlowDown") as busy,
        FaultyServer("400 wrong region") as region,
    ):
        run_one_fault_each(
            [
                ({"MLFLOW_S3_ENDPOINT_URL": moved.url}, "s3 redirect", [moved.url, "HTTP 301", "region eu-west-1"]),
                ({"MLFLOW_S3_ENDPOINT_URL": elsewhere.url}, "s3 redirect", ["https://s3.example.com/mlflow-artifacts"]),
                ({"MLFLOW_S3_ENDPOINT_URL": busy.url}, "s3 busy", ["answered 429 SlowDown (too many requests)"]),
            ],
            trainer_env,
            tmp_path,
        )
        # A proxy in HTTP_PROXY that does not answer: before the tracking server, before S3.
        proxy = f"http://127.0.0.1:{free_port()}"
        s3_by_name = trainer_env["MLFLOW_S3_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
        run_one_fault_each(
            [
                ({"MLFLOW_S3_ENDPOINT_URL": region.url, "AWS_DEFAULT_REGION": "eu-west-1"}, "s3 region",
                 ["AWS_DEFAULT_REGION='eu-west-1'", "AWS_DEFAULT_REGION=us-east-1"]),
                ({"HTTP_PROXY": proxy}, "proxy down", [f"HTTP_PROXY={proxy}", trainer_env["MLFLOW_TRACKING_URI"]]),
                ({"HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1", "MLFLOW_S3_ENDPOINT_URL": s3_by_name}, "proxy down",
                 [s3_by_name, "add localhost to NO_PROXY"]),
            ],
            trainer_env,
            tmp_path,
        )  # fmt: skip


def test_s3_clock_token_and_full_disk(trainer_env, tmp_path):
    """Three S3 answers that the generic fix (check the endpoint and the keys) sent the wrong way."""
    with FaultyServer("403 clock") as clock, FaultyServer("400 token") as token, FaultyServer("507 full") as full:
        run_one_fault_each(
            [
                ({"MLFLOW_S3_ENDPOINT_URL": clock.url}, "s3 clock", [clock.url]),
                ({"MLFLOW_S3_ENDPOINT_URL": token.url, "AWS_SESSION_TOKEN": "junk"}, "s3 token", [token.url]),
                ({"MLFLOW_S3_ENDPOINT_URL": full.url}, "s3 full", [full.url]),
            ],
            trainer_env,
            tmp_path,
        )


def test_s3_listing_fails_mid_run(stack, trainer_env, tmp_path):
    """log_table lists the run's folder: S3 failing that was blamed on the tracking server
    ('MLflow (http://...) failed'), since MLflow wraps S3's error in its own."""
    with FaultyServer("503 SlowDown", stack.s3_endpoint, methods={"GET"}, keep_host=True, armed_by="notes.md") as s3:
        result, seconds = run_and_time(SCRIPTS[0], dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=s3.url), tmp_path)
    assert_one_clear_message(result, seconds, "s3 failing", f"S3 at {s3.url} answered 503 SlowDown", "marked FAILED")


def test_wrong_key_and_missing_bucket_are_both_named(stack, trainer_env, tmp_path):
    """Amazon S3 says NoSuchBucket before it looks at the key: the message used to name the bucket
    only, and the wrong key came next time. Here a proxy answers NoSuchBucket for the bucket, as
    Amazon S3 does, and passes the rest to the real S3 server, which checks keys."""
    env = dict(trainer_env, AWS_ACCESS_KEY_ID="AKIAWRONGKEY00000000")
    with FaultyServer("404 NoSuchBucket", stack.s3_endpoint, keep_host=True, paths=(f"/{stack.bucket}",)) as s3:
        results = run_all(dict(env, MLFLOW_S3_ENDPOINT_URL=s3.url), tmp_path)
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "key and bucket", "does not know the access key", stack.bucket)
        error = result.stderr.splitlines()[-2]
        assert error.index("access key") < error.index("bucket")  # the key first


# --- servers that fail ------------------------------------------------------------------------


def test_s3_answers_503_to_everything(trainer_env, tmp_path):
    with FaultyServer("503 SlowDown") as s3:
        results = run_all(dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=s3.url), tmp_path)
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "s3 failing", f"S3 at {s3.url} answered 503 SlowDown")


@pytest.mark.parametrize("fault, message", [("500", "server error"), ("drop", "server closed")])
def test_tracking_server_fails_mid_run(fault, message, stack, trainer_env, tmp_path):
    """The run has started when the server fails: it stays RUNNING, and the message says how to
    close it. Run as said once the server is back, that command marks it FAILED."""
    # Each its own proxy: the preflight's fails after the check, the examples' once the run exists.
    entries = {PREFLIGHT: "experiments/search", **{script: "runs/create" for script in SCRIPTS}}
    proxies = {entry: FaultyServer(fault, stack.tracking_uri, armed_by=armed_by) for entry, armed_by in entries.items()}
    try:
        envs = {entry: dict(trainer_env, MLFLOW_TRACKING_URI=proxy.url) for entry, proxy in proxies.items()}
        results = run_all(None, tmp_path, env_of=envs)
        client = MlflowClient(stack.tracking_uri)
        for entry, (result, seconds) in results.items():
            assert_one_clear_message(result, seconds, message, proxies[entry].url)
            if entry == PREFLIGHT:
                assert "RUNNING" not in result.stderr  # no run started
                continue
            error, fix = MESSAGES["run left running"]
            assert error in result.stderr.splitlines()[-2] and fix in result.stderr.splitlines()[-1]
            run_id = run_id_in(result, "may stay RUNNING")
            assert client.get_run(run_id).info.status == "RUNNING"  # the message is true
            # The server is back: the command in the message closes the run.
            proxies[entry].heal()
            command = shlex.split(result.stderr.split("if it is still RUNNING: ")[1])
            assert command[:2] == ["python", "-c"]
            subprocess.run([sys.executable, *command[1:]], env=trainer_env, cwd=tmp_path, check=True, timeout=60)
            assert client.get_run(run_id).info.status == "FAILED"
    finally:
        for proxy in proxies.values():
            proxy.__exit__()


def test_servers_that_send_a_byte_at_a_time(trainer_env, tmp_path):
    """A tracking server or S3 server that sends its answer a byte every 0.2 s: each read is in
    time, so the per-read timeouts never fire (the preflight took 71 s). The checks give each
    request 5 s in all."""
    with FaultyServer("dribble") as tracking, FaultyServer("dribble") as s3:
        run_one_fault_each(
            [
                ({"MLFLOW_TRACKING_URI": tracking.url}, "server silent", [tracking.url]),
                ({"MLFLOW_S3_ENDPOINT_URL": s3.url}, "s3 silent", [s3.url]),
                ({"MLFLOW_TRACKING_URI": tracking.url}, "server silent", [tracking.url]),
            ],
            trainer_env,
            tmp_path,
        )


def test_server_too_slow_to_start_the_run(stack, trainer_env, tmp_path):
    """The server starts the run after the client's 5 s: MLflow asks again, and the server may
    start a second one. Neither id ever reaches the client, so the message cannot name them;
    it says so, and its command closes the RUNNING runs this process started."""
    experiment = "slow-start"
    with FaultyServer("slow", stack.tracking_uri, paths=("/api/2.0/mlflow/runs/create",)) as server:
        env = dict(trainer_env, MLFLOW_TRACKING_URI=server.url, MLFLOW_EXPERIMENT_NAME=experiment)
        result, seconds = run_and_time(SCRIPTS[1], env, tmp_path)
        assert_one_clear_message(result, seconds, "server silent", "may have started the run anyway")
        time.sleep(9)  # the server finishes what it was asked
        client = MlflowClient(stack.tracking_uri)
        experiment_id = client.get_experiment_by_name(experiment).experiment_id
        assert {run.info.status for run in client.search_runs([experiment_id])} == {"RUNNING"}
        server.heal()
        command = shlex.split(result.stderr.split("mark them FAILED: ")[1])
        subprocess.run([sys.executable, *command[1:]], env=trainer_env, cwd=tmp_path, check=True, timeout=60)
        assert {run.info.status for run in client.search_runs([experiment_id])} == {"FAILED"}


def test_tracking_server_hangs_mid_run_without_the_compose_settings(stack, trainer_env, tmp_path):
    """Without Docker nothing sets MLFLOW_HTTP_REQUEST_TIMEOUT: the checks set the trainer's
    values unless told otherwise, and a server that stops answering costs seconds, not minutes."""
    compose_trainer = compose_environment("trainer", {})
    assert {name: compose_trainer[name] for name in FAIL_FAST} == FAIL_FAST  # one set of values
    env = {name: value for name, value in trainer_env.items() if not name.startswith("MLFLOW_HTTP_REQUEST_")}
    with FaultyServer("hang", stack.tracking_uri, armed_by="runs/create") as hung:
        result, seconds = run_and_time(SCRIPTS[0], dict(env, MLFLOW_TRACKING_URI=hung.url), tmp_path)
    assert_one_clear_message(result, seconds, "server silent", hung.url)


def test_server_that_cannot_say_how_the_run_ended(stack, trainer_env, tmp_path):
    """S3 fails an upload, `with mlflow.start_run()` closes the run, and then the tracking server
    cannot say how the run ended (runs/get fails). The message used to say nothing of the run;
    now it names it and gives the command, which changes nothing if the run is closed already."""
    with (
        FaultyServer("503 SlowDown", stack.s3_endpoint, methods={"PUT"}, keep_host=True) as s3,
        FaultyServer("500", stack.tracking_uri, armed_by="runs/update", paths=("/api/2.0/mlflow/runs/get",)) as server,
    ):
        env = dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=s3.url, MLFLOW_TRACKING_URI=server.url)
        result, seconds = run_and_time(SCRIPTS[1], env, tmp_path)
        assert_one_clear_message(result, seconds, "s3 failing", "may stay RUNNING", "if it is still RUNNING")
        run_id = run_id_in(result, "may stay RUNNING")
        client = MlflowClient(stack.tracking_uri)
        assert client.get_run(run_id).info.status == "FAILED"  # the `with` block had closed it
        server.heal()  # the server answers again: the command runs, and the run stays FAILED
        command = shlex.split(result.stderr.split("if it is still RUNNING: ")[1])
        subprocess.run([sys.executable, *command[1:]], env=trainer_env, cwd=tmp_path, check=True, timeout=60)
        assert client.get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize(
    "fault, message", [("503 SlowDown", "s3 failing"), ("drop", "s3 closed"), ("hang", "s3 silent")]
)
def test_s3_fails_mid_run(fault, message, stack, trainer_env, tmp_path):
    """S3 lists (the preflight passes) but fails every upload: the run is marked FAILED. An upload
    that never gets an answer costs two 10 s waits (checks.S3_FAIL_FAST), not boto3's three minutes."""
    with FaultyServer(fault, stack.s3_endpoint, methods={"PUT"}, keep_host=True) as s3:
        results = run_all(dict(trainer_env, MLFLOW_S3_ENDPOINT_URL=s3.url), tmp_path)
    preflight, _ = results.pop(PREFLIGHT)
    assert preflight.returncode == 0 and printed(preflight.stdout, "ready") == "yes", preflight.stderr
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, message, s3.url)
        run_id = run_id_in(result, "is marked FAILED")
        assert MlflowClient(stack.tracking_uri).get_run(run_id).info.status == "FAILED"


def test_a_key_s3_refuses_is_not_called_a_missing_bucket(stack, trainer_env, tmp_path):
    """S3 (moto here) answers 404 to a key with a newline: the key, not the bucket, is wrong.
    The examples' path checks refuse such a path first, so this logs it with MLflow directly."""
    log_a_newline = (
        "import mlflow\n"
        "from common.checks import checked_setup\n"
        "with checked_setup('fault-matrix'):\n"
        "    mlflow.set_experiment('fault-matrix')\n"
        "    with mlflow.start_run():\n"
        "        mlflow.log_text('x', artifact_file='reports/notes\\n.md')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", log_a_newline],
        cwd=tmp_path,
        env=dict(trainer_env, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_clear_message(result, 0, "s3 key refused", "reports/notes\\n.md")
    assert "does not exist" not in "".join(result.stderr.splitlines()[-2:])
    assert MlflowClient(stack.tracking_uri).get_run(run_id_in(result, "is marked FAILED")).info.status == "FAILED"


# --- this machine -----------------------------------------------------------------------------


def test_no_writable_temp_folder(trainer_env, tmp_path):
    """log_text and friends write a temporary file first: TMPDIR, /tmp, /var/tmp and the
    working folder are all read-only (Python's list of places to try)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: /tmp can only be made read-only with a mount")
    folders = [folder_for(tmp_path, entry) for entry in (PREFLIGHT, *SCRIPTS)]
    places = [path for path in ("/tmp", "/var/tmp", "/usr/tmp") if os.path.isdir(path)]
    prefix = read_only(*map(Path, places), tmp_path, *folders)
    for result, seconds in run_all(dict(trainer_env, TMPDIR=str(tmp_path)), tmp_path, prefix=prefix).values():
        assert_one_clear_message(result, seconds, "no temp folder")


# --- the handler itself -------------------------------------------------------------------------

# Raised inside checked_setup, one after the other, in a process of its own.
RAISE_EACH = """
import contextlib, io, json, sys
import botocore.exceptions, mlflow, requests
from common.checks import checked_setup

errors = {
    "requests, response None": requests.exceptions.InvalidURL("No host supplied"),
    "S3 code nobody knows": botocore.exceptions.ClientError(
        {"Error": {"Code": "Teapot", "Message": "I am a teapot"}, "ResponseMetadata": {"HTTPStatusCode": 418}},
        "PutObject",
    ),
    "S3 without a response": botocore.exceptions.ClientError({}, "PutObject"),
    "S3 token expired": botocore.exceptions.ClientError(
        {"Error": {"Code": "ExpiredToken", "Message": "The provided token has expired."}}, "PutObject"
    ),
    "MLflow, two lines": mlflow.MlflowException("first line\\nsecond line"),
    "the OS": PermissionError(13, "Permission denied", "/some/file"),
    "too many open files": OSError(24, "Too many open files", "/tmp/tmpabc"),
    "a bug in our code": KeyError("oops"),
}
# The embedded database is made once first: MLflow's own lines about making it stay out of
# the output compared below.
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), checked_setup("fault-matrix"):
    pass
outcome = {}
for name, error in errors.items():
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), checked_setup("fault-matrix"):
            raise error
    except SystemExit as exit:
        outcome[name] = [exit.code, stderr.getvalue()]
    except Exception as kept:
        outcome[name] = ["raised", type(kept).__name__]
# The generic fix, in the preflight: not "check what `python -m common.checks` prints" again.
sys.argv[0] = "common/checks/__main__.py"
try:
    with contextlib.redirect_stderr(stderr := io.StringIO()), checked_setup("fault-matrix"):
        raise mlflow.MlflowException("something new")
except SystemExit as exit:
    outcome["MLflow, in the preflight"] = [exit.code, stderr.getvalue()]
print(json.dumps(outcome))
"""


def test_checked_setup_never_crashes(tmp_path):
    """A set-up problem of any shape gets its two lines; only a bug in our code keeps its traceback."""
    result = subprocess.run(
        [sys.executable, "-c", RAISE_EACH],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome.pop("a bug in our code") == ["raised", "KeyError"]
    for name, (code, stderr) in outcome.items():
        lines = stderr.strip().splitlines()
        assert code == 1 and [line.split(":")[0] for line in lines] == ["error", "fix"], (name, stderr)
    assert "answered 418 Teapot to PutObject: I am a teapot" in outcome["S3 code nobody knows"][1]
    assert "first line second line" in outcome["MLflow, two lines"][1]
    assert "python -m common.checks" in outcome["MLflow, two lines"][1]
    assert "compare your settings with the troubleshooting table" in outcome["MLflow, in the preflight"][1]
    assert "`ulimit -n 4096`" in outcome["too many open files"][1]
    assert "has expired" in outcome["S3 token expired"][1] and "get new temporary credentials" in outcome["S3 token expired"][1]


# --- MLflow's telemetry -----------------------------------------------------------------------

TELEMETRY_PROBE = """
import os, threading, mlflow
mlflow.set_experiment("fault-matrix")
with mlflow.start_run():  # MLflow's first telemetry record: its threads would start now
    print(sorted(t.name for t in threading.enumerate() if "Telemetry" in t.name))
    print("_MLFLOW_TELEMETRY_SESSION_ID" in os.environ)
"""


# What MLflow 3.17 also reads as "do not track" (mlflow/telemetry/utils.py): pytest's own
# variable, CI runners'. Removed, so that only MLFLOW_DISABLE_TELEMETRY decides.
NOT_TRACKING_HINTS = (
    "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "JENKINS_URL", "TRAVIS", "TF_BUILD",
    "BUILDKITE", "TEAMCITY_VERSION", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "CLOUD_RUN_EXECUTION",
    "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME", "RUNBOT_WORKER_ID", "DO_NOT_TRACK",
)  # fmt: skip


def test_mlflow_telemetry_is_off_in_the_stack(trainer_env, tmp_path):
    """MLflow 3.17's telemetry thread deletes an environment variable while requests reads the
    environment, which fails an MLflow call now and then (KeyError '_MLFLOW_TELEMETRY_SESSION_ID').
    The compose services and the tests switch it off."""
    for service in ("mlflow", "trainer"):
        assert compose_service(service)["environment"]["MLFLOW_DISABLE_TELEMETRY"] == "true"
    # (Not probed with telemetry on: that would send usage data out of this machine.)
    env = {k: v for k, v in trainer_env.items() if k not in NOT_TRACKING_HINTS}
    probe = subprocess.run(
        [sys.executable, "-c", TELEMETRY_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.stdout.splitlines()[:2] == ["[]", "False"], probe.stdout + probe.stderr
