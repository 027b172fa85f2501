"""Checks of the artifact store: a local folder, the tracking server (proxied mode), or S3.

For S3, one question with a short timeout (list the bucket); where one answer hides another
(Amazon S3 says NoSuchBucket before it looks at the key), the check asks again and names both,
the key first. What S3's answers mean is in s3_answers.py.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import requests

from common.checks.database import _check_writable
from common.checks.errors import FixableError, _password_in, _short, is_server, is_setup_problem
from common.checks.s3_answers import _redirect_target, _s3_answer, _s3_redirect, explain_s3_error
from common.checks.settings import CHECK_TIMEOUT, S3_FAIL_FAST, _in_time, check_setting
from common.checks.tracking import _as_mlflow_does


def check_artifact_store(location: str) -> str:
    """Raise FixableError unless this process can write to `location`; return what kind of store it is."""
    # log_text, log_dict, log_table and log_image write a temporary file first, wherever the store.
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise FixableError(
            "no folder for temporary files is writable (Python tried TMPDIR, /tmp, /var/tmp, /usr/tmp "
            "and the current folder)",
            "set TMPDIR to a folder you can write to, like TMPDIR=$HOME/tmp (create it first)",
        ) from None
    scheme = urlsplit(location).scheme
    if scheme in ("mlflow-artifacts", "http", "https"):
        if scheme == "mlflow-artifacts":
            _check_server_serves_artifacts(location)
        return "proxied: uploads go through the tracking server"
    if scheme != "s3":
        _check_writable(Path(location.removeprefix("file://")), f"the artifact folder {location}")
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
    check_setting("MLFLOW_S3_ENDPOINT_URL")
    problem = _endpoint_problem(endpoint)
    if problem:
        raise FixableError(
            f"MLFLOW_S3_ENDPOINT_URL={endpoint!r} is not an address boto3 can use ({problem})",
            "write it with http:// and the port, and nothing after the port, "
            "like http://localhost:9000 (http://minio:9000 inside docker compose)",
        )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        check_setting(name, secret=True)  # else S3 would only say the key is unknown, or the signature wrong
    try:  # MLflow reads it only at the first upload, mid-run
        _check_upload_args(os.environ.get("MLFLOW_S3_UPLOAD_EXTRA_ARGS") or "{}")
    except ValueError as error:
        raise FixableError(
            f"MLFLOW_S3_UPLOAD_EXTRA_ARGS is not JSON boto3 can use ({_short(str(error))})",
            'write it as a JSON object, like MLFLOW_S3_UPLOAD_EXTRA_ARGS=\'{"ServerSideEncryption": "AES256"}\', '
            "or unset it",
        ) from None
    bundle = os.environ.get("AWS_CA_BUNDLE")
    if bundle and urlsplit(endpoint).scheme == "https" and not Path(bundle).exists():
        raise FixableError(  # else a TLS failure that names no setting
            f"AWS_CA_BUNDLE names {bundle}, and there is no such file", "set AWS_CA_BUNDLE to your server's CA file, or unset it"
        )
    attempts = os.environ.get("AWS_MAX_ATTEMPTS")
    if attempts is not None and not (re.fullmatch(r"\s*\+?\d+\s*", attempts) and int(attempts) >= 1):  # as int()
        raise FixableError(
            f"AWS_MAX_ATTEMPTS={attempts!r} is not a number of attempts boto3 can read",
            "set AWS_MAX_ATTEMPTS to a whole number, like 2 (1: no retry), or unset it",
        )
    import boto3
    import botocore.exceptions
    import botocore.session
    from botocore.config import Config

    # botocore's default client config: merged into every S3 client this process makes from now on.
    defaults = {k: v for k, v in S3_FAIL_FAST.items() if not (k == "retries" and "AWS_MAX_ATTEMPTS" in os.environ)}
    session = botocore.session.get_session()
    session.set_default_client_config(Config(**defaults))
    boto3.setup_default_session(botocore_session=session)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(connect_timeout=CHECK_TIMEOUT, read_timeout=CHECK_TIMEOUT, retries={"total_max_attempts": 1}),
        )
        _in_time(
            lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1),
            botocore.exceptions.ReadTimeoutError(endpoint_url=endpoint),
        )
    except RecursionError:  # botocore follows some redirects back to the same address, again and again
        raise _s3_redirect(endpoint, bucket, *_redirect_of(endpoint, bucket)) from None
    except Exception as error:
        if not is_setup_problem(error):
            raise
        explained = explain_s3_error(error, endpoint, bucket)
        if _s3_answer(error)[0] == "NoSuchBucket":
            explained = _and_the_key(s3, explained, endpoint, bucket)
        raise explained from error  # --debug shows the cause
    return f"S3 direct: this process uploads to bucket {bucket} at {endpoint}"


def _check_upload_args(setting: str) -> None:
    """Raise ValueError unless `setting` (MLFLOW_S3_UPLOAD_EXTRA_ARGS) is a JSON object that boto3
    takes for an upload: keys it allows, values of the type and, where S3 lists them, of the
    values its API model names (an ACL of 'nonsense' would get a 500 from S3, mid-run)."""
    import botocore.session
    from boto3.s3.transfer import S3Transfer
    from botocore.validate import ParamValidator

    extra = json.loads(setting)
    if not isinstance(extra, dict):
        raise ValueError("not an object {...}")
    unknown = sorted(set(extra) - set(S3Transfer.ALLOWED_UPLOAD_ARGS))
    if unknown:
        raise ValueError(f"boto3 takes no {', '.join(unknown)}; it takes {', '.join(S3Transfer.ALLOWED_UPLOAD_ARGS)}")
    put_object = botocore.session.get_session().get_service_model("s3").operation_model("PutObject").input_shape
    for key, value in extra.items():
        texts = value.values() if key == "Metadata" and isinstance(value, dict) else [value]
        odd = next((c for text in texts if isinstance(text, str) for c in text if not (c.isascii() and c.isprintable())), None)
        if odd:  # boto3 sends them as HTTP headers
            raise ValueError(f"{key} holds {odd!r}: S3 takes printable ASCII only in it (an HTTP header)")
        allowed = getattr(put_object.members.get(key), "enum", None)
        if allowed and value not in allowed:
            raise ValueError(f"{key} takes one of {', '.join(allowed)}, not {value!r}")
    known = {key: value for key, value in extra.items() if key in put_object.members}
    report = ParamValidator().validate({"Bucket": "bucket", "Key": "key", **known}, put_object)
    if report.has_errors():
        raise ValueError(report.generate_report())


def _check_server_serves_artifacts(location: str) -> None:
    """Raise FixableError if the experiment's files live behind a tracking server (proxied
    mode) but this server runs with --no-serve-artifacts (an experiment made in proxied mode,
    used with the direct set-up: MLflow itself would only answer HTTP 503, for minutes), or if
    the server cannot list the store behind it."""
    server = mlflow.get_tracking_uri().rstrip("/")
    if not is_server(server):
        return
    listing = f"{server}/api/2.0/mlflow-artifacts/artifacts"
    try:
        answer = _in_time(
            lambda: requests.get(listing, params={"path": ""}, **_as_mlflow_does()), requests.Timeout(listing)
        )
    except requests.exceptions.RequestException:
        return  # the tracking check has just reached the server; MLflow's own call will say what fails
    if answer.status_code == 503 and "--no-serve-artifacts" in answer.text:
        raise FixableError(
            f"this experiment keeps its files behind the tracking server ({location}), as in proxied mode, "
            f"but the server at {server} runs with --no-serve-artifacts (the direct set-up)",
            "use the set-up the experiment was made in: add -f docker-compose.proxied.yml to the docker compose "
            "command; or, in direct mode, unset MLFLOW_EXPERIMENT_NAME (02-artifacts-proxied is proxied mode's)",
        )
    if answer.status_code >= 500:  # proxied mode: the server's own S3 calls fail (a missing bucket, say)
        raise FixableError(
            f"the tracking server at {server} could not list the artifact store it serves for {location} "
            f"(HTTP {answer.status_code})",
            "look at its log (`docker compose logs mlflow`): NoSuchBucket there means the bucket is missing "
            "(`docker compose up create-bucket`); AccessDenied or a key error, the server's S3 settings",
        )


def _endpoint_problem(endpoint: str) -> str | None:
    """Why MLFLOW_S3_ENDPOINT_URL is no address boto3 can use, or None."""
    if _password_in(endpoint) or "@" in endpoint.split("://", 1)[-1].split("/", 1)[0]:
        return "it holds a user name or password: boto3 takes the keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as error:  # a port out of range or not a number, a broken IPv6 address
        return str(error).lower()
    if parts.scheme not in ("http", "https"):
        return "it does not start with http:// or https://"
    if not parts.hostname or port == 0:
        return "no host name" if not parts.hostname else "port 0"
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    if not (is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)):
        return "boto3 takes host names of letters, digits, '-' and '.', at most 63 characters between dots"
    if parts.path.strip("/") or parts.query or parts.fragment:
        # boto3 puts the bucket after the address itself: '/minio' would be taken for the bucket.
        return f"it goes on after the address with {endpoint[len(parts.scheme) + 3 + len(parts.netloc):]!r}"
    return None


def _and_the_key(s3, no_bucket: FixableError, endpoint: str, bucket: str) -> FixableError:
    """An S3 server may say NoSuchBucket before it checks the key (moto and SeaweedFS check the
    key first; others are not known here): ask once more, about no bucket at all, so that a
    wrong key is named too, and first."""
    try:
        s3.list_buckets()
    except Exception as error:  # AccessDenied: the key is known, just not allowed to list buckets
        if _s3_answer(error)[0] in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            key = explain_s3_error(error, endpoint, bucket)
            return FixableError(
                f"{key.what}, and bucket '{bucket}' does not exist there either",
                f"{key.fix}; and create the bucket: `docker compose up create-bucket`",
            )
    return no_bucket


def _redirect_of(endpoint: str, bucket: str) -> tuple[int | None, str]:
    """Where S3 redirects a request for the bucket: asked once more, without following it."""
    try:
        answer = requests.get(f"{endpoint}/{bucket}", allow_redirects=False, timeout=CHECK_TIMEOUT)
    except requests.exceptions.RequestException:
        return None, ""
    endpoint = re.search(r"<Endpoint>([^<]+)</Endpoint>", answer.text)
    return answer.status_code, _redirect_target(answer.headers, endpoint and endpoint.group(1))
