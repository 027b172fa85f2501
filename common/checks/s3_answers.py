"""What an S3 failure means: S3's error codes, and boto3's failures before any answer."""

from __future__ import annotations

import configparser
import json
import os
import re

from common.checks.errors import FixableError, _chain, _short, is_server
from common.checks.tracking import _tls_reason, _via_proxy


def _redirect_target(headers, s3_endpoint: str | None) -> str:
    """Where a redirect points: 'region eu-west-1, https://...', from its headers and S3's <Endpoint>."""
    headers = {name.lower(): value for name, value in headers.items()}
    region = headers.get("x-amz-bucket-region")
    places = [f"region {region}" if region else "", headers.get("location", ""), s3_endpoint or ""]
    return ", ".join(place for place in places if place)


def _s3_redirect(endpoint: str, bucket: str | None, status: int | None, target: str) -> FixableError:
    return FixableError(
        f"S3 at {endpoint} redirected the request for bucket '{bucket}'"
        + (f" (HTTP {status})" if status else "")
        + (f" to {target}" if target else " elsewhere"),
        "set MLFLOW_S3_ENDPOINT_URL to the S3 server itself, as scheme://host:port (http://minio:9000 inside "
        "docker compose); for Amazon S3, set AWS_DEFAULT_REGION to the bucket's region",
    )


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
    "RequestTimeTooSkewed": (
        "{endpoint} refused the request: this machine's clock is too far from the S3 server's",
        "set this machine's clock right (S3 allows 15 minutes), for example with NTP, then run again",
    ),
    "InvalidToken": (
        "{endpoint} does not accept the session token in AWS_SESSION_TOKEN",
        "unset AWS_SESSION_TOKEN (MinIO's access keys need none), or set the token that belongs to the key",
    ),
    "ExpiredToken": (
        "the session token in AWS_SESSION_TOKEN has expired for {endpoint}",
        "get new temporary credentials, or unset AWS_SESSION_TOKEN and use a key that needs none",
    ),
    "XMinioStorageFull": (
        "the S3 server at {endpoint} has no disk space left",
        "free space on the disk that holds the S3 server's data (the minio-data volume); waiting does not help",
    ),
}
_S3_LOG = "look at the S3 server's log (`docker compose logs minio`)"


def explain_s3_error(error: Exception, endpoint: str | None, bucket: str | None) -> FixableError:
    """The FixableError for an S3 failure: a known code or connection problem, else what S3 answered."""
    # boto3 wraps some failures (an upload's ClientError) in an error that keeps only the text.
    text = " ".join(str(e) for e in _chain(error))
    names = {type(e).__name__ for e in _chain(error)}

    def via_proxy(explained: FixableError) -> FixableError:  # for the failures a proxy can cause
        return _via_proxy(explained, endpoint, text, boto=True) if is_server(endpoint or "") else explained

    if "NoCredentialsError" in names:
        return FixableError(
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the MinIO user and password in docker compose)",
        )
    if "ProfileNotFound" in names:
        files = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        return FixableError(
            f"AWS_PROFILE={os.environ.get('AWS_PROFILE')!r} names a profile that is not in {files}",
            "unset AWS_PROFILE (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are enough), "
            "or create that profile: `aws configure --profile <name>`",
        )
    if "InvalidRegionError" in names:
        return FixableError(
            f"AWS_DEFAULT_REGION={os.environ.get('AWS_DEFAULT_REGION')!r} is not a region name boto3 accepts",
            "set AWS_DEFAULT_REGION to a region like us-east-1 (the one your S3 server expects), or unset it",
        )
    if "SSLError" in names:
        return via_proxy(
            FixableError(
                f"TLS (https) with the S3 endpoint {endpoint} failed: {_tls_reason(text)}",
                "if the server speaks plain HTTP (MinIO and SeaweedFS in docker compose do), write http:// in "
                "MLFLOW_S3_ENDPOINT_URL; for a certificate of your own, set AWS_CA_BUNDLE to its CA file",
            )
        )
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ProxyConnectionError"} or (
        "Could not connect to the endpoint" in text
    ):
        return via_proxy(
            FixableError(
                f"cannot reach the S3 endpoint {endpoint}",
                "start MinIO (`docker compose up -d minio`), or correct MLFLOW_S3_ENDPOINT_URL",
            )
        )
    if "ReadTimeoutError" in names or "Read timeout on endpoint" in text:
        return via_proxy(
            FixableError(f"the S3 endpoint {endpoint} did not answer in time", f"{_S3_LOG} and restart MinIO")
        )
    if "ConnectionClosedError" in names or "Connection was closed before" in text:
        return via_proxy(
            FixableError(
                f"the S3 endpoint {endpoint} closed the connection without an answer (stopped or restarting?)",
                f"{_S3_LOG}, restart it (`docker compose restart minio`), then run the same command again",
            )
        )
    code, status, said, operation, response = _s3_answer(error)
    if code in _S3_CODES:
        what, fix = _S3_CODES[code]
        return FixableError(what.format(bucket=bucket, endpoint=endpoint), fix)
    if status in (301, 302, 303, 307, 308) or code in ("PermanentRedirect", "TemporaryRedirect", "Redirect"):
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        target = _redirect_target(headers, response.get("Error", {}).get("Endpoint"))
        return _s3_redirect(endpoint, bucket, status, target)
    expected = response.get("Error", {}).get("Region") or re.search(r"expecting '([\w-]+)'", said or "")
    if expected and code in ("AuthorizationHeaderMalformed", "InvalidRegion", "IllegalLocationConstraintException"):
        expected = expected if isinstance(expected, str) else expected.group(1)
        region = os.environ.get("AWS_DEFAULT_REGION")
        return FixableError(
            f"S3 at {endpoint} expects the region {expected!r}, and this process signs its requests for "
            + (f"AWS_DEFAULT_REGION={region!r}" if region else "boto3's default (AWS_DEFAULT_REGION is not set)"),
            f"set AWS_DEFAULT_REGION={expected}",
        )
    key = re.search(r"Failed to upload .* to (.*): An error occurred", text, re.DOTALL)
    if status == 413 or code == "EntityTooLarge":  # from a proxy in front of S3: boto3 sends 8 MB at most
        return FixableError(
            f"S3 at {endpoint} refused an upload as too large (HTTP 413"
            + (f" {code})" if code else ")") + (f" for {key.group(1)!r}" if key else ""),
            "a proxy in front of the S3 server limits the size of a request: raise its limit to 16 MB or more "
            "(nginx: client_max_body_size 16m); boto3 sends a file over 8 MB in parts of 8 MB",
        )
    if not code and not status:  # no answer from S3 at all: boto3 stopped before it sent the request
        cause = _chain(error)[-1]
        said = str(cause)
        if isinstance(cause, configparser.Error):  # an AWS config file it cannot read: never quote its lines (keys)
            source = getattr(cause, "source", None) or "an AWS config file"
            said = said.splitlines()[0] + ("" if source in said.splitlines()[0] else f" (in '{source}')")
        settings = _aws_settings_in(said)
        try:
            extra = dict(json.loads(os.environ.get("MLFLOW_S3_UPLOAD_EXTRA_ARGS") or "{}"))
        except (ValueError, TypeError):
            extra = {}
        if not settings and any(name in said or str(value) in said for name, value in extra.items()):
            settings = ["MLFLOW_S3_UPLOAD_EXTRA_ARGS"]  # what boto3 adds to every upload
        return FixableError(
            f"boto3 could not send a request to S3 at {endpoint}: {type(cause).__name__}: {_short(said)}",
            f"correct or unset {' and '.join(settings)}, then run again"
            if settings
            else "check the AWS_* settings (`env | grep ^AWS_` lists them) and the AWS config files ("
            + ", ".join(os.environ.get(name, default) for name, default in _AWS_FILES)
            + "), then run again; add --debug to see where it failed",
        )
    answer = " ".join(str(part) for part in (status, code) if part)
    busy = status == 429 or code == "TooManyRequests"
    answer += " (too many requests)" if busy else ""
    what = f"S3 at {endpoint} answered {answer}" + (f" to {operation}" if operation else "")
    what += f" for {key.group(1)!r}" if key else ""
    what += f": {_short(said)}" if said and said != code else ""
    if status == 404:
        fix = (
            "not a missing bucket (S3 says NoSuchBucket for that): S3 refused or could not find the key; "
            "remove control characters (a newline, a tab) from the artifact path, and check that "
            "MLFLOW_S3_ENDPOINT_URL is the S3 server the tracking server uses"
        )
    elif busy:
        fix = f"the S3 server is busy (too many requests): wait a minute, then run the same command again; {_S3_LOG}"
    elif (status or 0) >= 500 or code in ("SlowDown", "InternalError", "ServiceUnavailable"):
        fix = f"the S3 server is failing or overloaded: {_S3_LOG}, wait, then run the same command again"
    else:
        fix = f"check MLFLOW_S3_ENDPOINT_URL and the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; {_S3_LOG}"
    explained = FixableError(what, fix)
    return explained if code else via_proxy(explained)  # with an S3 error code, S3 itself answered


# The files boto3 reads its settings and keys from, and where they are unless set otherwise.
_AWS_FILES = (("AWS_CONFIG_FILE", "~/.aws/config"), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))


def _aws_settings_in(text: str) -> list[str]:
    """The AWS_* settings that are set and that `text` names, by botocore's name for them or by
    value: 'Invalid value provided to "mode": "weird"' names AWS_RETRY_MODE='weird'. Never a key."""
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES as SETTINGS

    known = {variable: name for name, (_, variables, *_) in SETTINGS.items()
             for variable in ([variables] if isinstance(variables, str) else variables or [])}  # fmt: skip
    named, lowered = [], text.lower()
    for variable, value in sorted(os.environ.items()):
        if not variable.startswith("AWS_") or not value or re.search("KEY|SECRET|TOKEN", variable):
            continue
        name = known.get(variable, variable.removeprefix("AWS_").lower())
        said = (name, name.replace("_", " "), f'"{value}"', f"'{value}'", f"got {value}", f": {value}.")
        if any(words.lower() in lowered for words in said) or (len(value) > 2 and f" {value} " in text):
            named.append(f"{variable}={value!r}")
    return named


def _s3_answer(error: BaseException) -> tuple[str | None, int | None, str | None, str | None, dict]:
    """What S3 answered, as far as the error tells: code, HTTP status, message, operation, whole answer."""
    text = " ".join(str(e) for e in _chain(error))
    # ClientError has S3's answer as a dict; other errors' `response` may be None or missing.
    response = next((e.response for e in _chain(error) if isinstance(getattr(e, "response", None), dict)), {})
    code = response.get("Error", {}).get("Code")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    said = response.get("Error", {}).get("Message")
    found = re.search(r"An error occurred \(([\w.-]+)\) when calling the (\w+) operation[^:]*: ?(.*)", text)
    if found:
        code, operation, said = code or found.group(1), found.group(2), said or found.group(3)
    else:
        operation = getattr(error, "operation_name", None)
    if code and code.isdigit():  # a bare status code, no S3 error code (a HEAD, or a server that is not S3)
        status, code = int(code), None
    return code, status, said, operation, response
