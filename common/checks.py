"""Checks that run before anything is logged, and the one message a failure ends in.

MLflow's own defaults retry a refused connection for minutes and end in a long traceback.
These checks ask the tracking server and the S3 artifact store one question each, with a
short timeout, and turn what can go wrong into a FixableError: one `error:` line (what
failed, with the address) and one `fix:` line (what to do). `exit_on_error()` prints it
and exits with status 1.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from contextlib import contextmanager
from urllib.parse import urlsplit

import mlflow
import requests

# How long a server may take to answer a check. MLflow's own default is minutes of retries.
CHECK_TIMEOUT = 5


class FixableError(Exception):
    """A problem with a known fix (a service down, a setting missing, a bad path): says both."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"error: {what}\nfix: {fix}")


def check_tracking_server(tracking_uri: str) -> str | None:
    """Raise FixableError unless the tracking store can be used; return the server's version."""
    if tracking_uri.startswith("file:"):
        raise FixableError(
            "this folder holds an old MLflow file store (./mlruns), so MLflow uses it instead of "
            "mlflow.db, and MLflow 3 no longer writes to it",
            "move it away (mv mlruns mlruns.old) or run from another folder; "
            "`mlflow migrate-filestore --help` explains how to keep the old runs",
        )
    if not tracking_uri.startswith(("http://", "https://")):
        return None  # a database file or URL: MLflow opens it itself
    auth = None
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    server = tracking_uri.rstrip("/")
    host = urlsplit(server).netloc
    try:
        answer = requests.get(
            f"{server}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=auth, timeout=CHECK_TIMEOUT
        )
    except requests.exceptions.ConnectionError as error:
        if "Name or service not known" in str(error) or "NameResolutionError" in str(error):
            raise FixableError(
                f"the tracking server name in {server} does not resolve on this machine",
                "inside docker compose use http://mlflow:5000; on your computer use http://localhost:5000",
            ) from None
        if isinstance(error, requests.exceptions.ConnectTimeout):
            raise _not_answering(server) from None
        raise FixableError(
            f"cannot reach the MLflow tracking server at {server} (connection refused)",
            "start it (`docker compose up -d`), or set MLFLOW_TRACKING_URI to a server that runs; "
            "unset it to use the embedded default (mlflow.db in this folder)",
        ) from None
    except requests.exceptions.Timeout:
        raise _not_answering(server) from None
    if answer.status_code == 403 and "Invalid Host header" in answer.text:
        raise FixableError(
            f"the tracking server at {server} refused the Host header '{host}' (403 Invalid Host header)",
            f"add {host} to the server's --allowed-hosts (in docker-compose.yml), or use an address it already accepts",
        )
    if answer.status_code == 401:
        raise FixableError(
            f"the tracking server at {server} asks for a login (401)",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
        )
    if answer.status_code != 200:
        raise FixableError(
            f"{server} answered HTTP {answer.status_code} to an MLflow API call",
            "check that MLFLOW_TRACKING_URI points at an MLflow tracking server",
        )
    try:
        return requests.get(f"{server}/version", auth=auth, timeout=CHECK_TIMEOUT).text.strip() or None
    except requests.exceptions.RequestException:
        return None


def _not_answering(server: str) -> FixableError:
    return FixableError(
        f"the MLflow tracking server at {server} did not answer within {CHECK_TIMEOUT} s",
        "look at its log (`docker compose logs mlflow`) and restart it (`docker compose restart mlflow`)",
    )


def check_artifact_store(location: str) -> str:
    """Raise FixableError unless this process can write to `location`; return what kind of store it is."""
    scheme = urlsplit(location).scheme
    if scheme in ("mlflow-artifacts", "http", "https"):
        return "proxied: uploads go through the tracking server"
    if scheme != "s3":
        return "local folder"
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    if not endpoint:
        raise FixableError(
            f"the artifact store is {location}, but MLFLOW_S3_ENDPOINT_URL is not set, "
            "so this process would upload to Amazon S3",
            "set MLFLOW_S3_ENDPOINT_URL=http://localhost:9000 (http://minio:9000 inside docker compose); "
            "for Amazon S3 itself, set MLFLOW_S3_ENDPOINT_URL=https://s3.amazonaws.com",
        )
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(connect_timeout=CHECK_TIMEOUT, read_timeout=CHECK_TIMEOUT, retries={"total_max_attempts": 1}),
    )
    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except (BotoCoreError, ClientError) as error:
        raise explain_s3_error(error, endpoint, bucket) from None
    return f"S3 direct: this process uploads to bucket {bucket} at {endpoint}"


# S3 error codes, as boto3 reports them, and what they mean for a learner.
_S3_CODES = {
    "NoSuchBucket": ("bucket '{bucket}' does not exist at {endpoint}", "create it: `docker compose up create-bucket`"),
    "InvalidAccessKeyId": (
        "{endpoint} does not know the access key in AWS_ACCESS_KEY_ID",
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the MinIO user's key and secret",
    ),
    "SignatureDoesNotMatch": (
        "{endpoint} rejected the secret key (AWS_SECRET_ACCESS_KEY) of AWS_ACCESS_KEY_ID",
        "set AWS_SECRET_ACCESS_KEY to the secret that belongs to AWS_ACCESS_KEY_ID",
    ),
    "AccessDenied": (
        "the S3 user in AWS_ACCESS_KEY_ID may not use bucket '{bucket}' at {endpoint}",
        "grant that user s3:ListBucket, s3:GetObject and s3:PutObject on the bucket, or use another key",
    ),
}


def explain_s3_error(error: Exception, endpoint: str | None, bucket: str | None) -> FixableError | None:
    """The FixableError for an S3 failure, or None when it is not one we can explain."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(error, NoCredentialsError):
        return FixableError(
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the MinIO user and password in docker compose)",
        )
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return FixableError(
            f"cannot reach the S3 endpoint {endpoint}",
            "start MinIO (`docker compose up -d minio`), or correct MLFLOW_S3_ENDPOINT_URL",
        )
    if isinstance(error, ReadTimeoutError):
        return FixableError(f"the S3 endpoint {endpoint} did not answer in time", "restart MinIO")
    # ClientError has a code; boto3's S3UploadFailedError only has it in its message.
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    if code is None:
        found = re.search(r"\((\w+)\)", str(error))
        code = found.group(1) if found else None
    if code in ("404", "NoSuchBucket"):
        code = "NoSuchBucket"
    if code in _S3_CODES:
        what, fix = _S3_CODES[code]
        return FixableError(what.format(bucket=bucket, endpoint=endpoint), fix)
    return None


@contextmanager
def exit_on_error():
    """Turn a set-up problem into one message and exit status 1.

    Anything else is a bug and keeps its traceback. With `--debug` on the command line,
    set-up problems show their traceback too.
    """
    try:
        yield
    except Exception as error:
        explained = error if isinstance(error, FixableError) else _explain(error)
        if explained is None:
            raise
        if "--debug" in sys.argv:
            traceback.print_exc()
        print(explained, file=sys.stderr)
        sys.exit(1)


def _explain(error: Exception) -> FixableError | None:
    """A FixableError for failures that surface in the middle of a run (an upload, say)."""
    try:
        artifact_uri = mlflow.last_active_run().info.artifact_uri
    except Exception:  # no run, or the tracking server is gone too
        artifact_uri = ""
    bucket = urlsplit(artifact_uri).netloc if artifact_uri.startswith("s3://") else "?"
    return explain_s3_error(error, os.environ.get("MLFLOW_S3_ENDPOINT_URL"), bucket)
