"""How often MLflow's client asks a tracking server that fails, counted at a real HTTP server.

The server answers every request with 503, as a proxy does while the tracking server behind it
is down. The pauses between attempts are set to 0 here, so that counting takes a second; what
they would add up to by default is computed with urllib3's own Retry, which MLflow uses, and
printed (run with -rA to see it).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
    MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
)
from urllib3.util.retry import Retry

from support.stack import clean_env, compose_service


class Unavailable(BaseHTTPRequestHandler):
    requests: list[str] = []

    def answer(self):
        Unavailable.requests.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def failing_server():
    Unavailable.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", Unavailable.requests
    finally:
        server.shutdown()
        server.server_close()


CALL = "import mlflow; mlflow.MlflowClient().search_experiments()"


def attempts(uri: str, seen: list[str], **settings: str) -> int:
    """How many requests one MLflow call sends to `uri` before it gives up."""
    env = clean_env({"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
                     "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", **settings})  # fmt: skip
    done = subprocess.run([sys.executable, "-c", CALL], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    return len([request for request in seen if "experiments/search" in request])


def default_pauses() -> list[float]:
    """The pauses between attempts with MLflow's defaults (jitter left out: it adds up to 1 s each)."""
    retry = Retry(total=MLFLOW_HTTP_REQUEST_MAX_RETRIES.default, backoff_factor=MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default)
    pauses = []
    while True:
        try:
            retry = retry.increment(method="GET", url="/")
        except Exception:  # MaxRetryError: no attempt left
            return pauses
        pauses.append(retry.get_backoff_time())


def test_mlflow_retries_a_failed_call_7_times_by_default(failing_server):
    uri, seen = failing_server
    count = attempts(uri, seen)
    pauses = default_pauses()
    print(f"\nby default: {count} attempts; pauses between them {pauses} s, {sum(pauses):.0f} s in all, "
          f"plus up to {MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.default:.0f} s jitter each")  # fmt: skip
    assert count == 1 + 7
    assert len(pauses) == 7 and sum(pauses) >= 180  # minutes before the error


def test_the_compose_trainers_setting_makes_it_one_retry(failing_server):
    uri, seen = failing_server
    setting = compose_service("trainer")["environment"]["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert attempts(uri, seen, MLFLOW_HTTP_REQUEST_MAX_RETRIES=setting) == 1 + 1


PUT = """
import boto3
s3 = boto3.client("s3", endpoint_url=__import__("sys").argv[1], region_name="us-east-1",
                  aws_access_key_id="a", aws_secret_access_key="b")
print(s3.meta.config.read_timeout)
s3.put_object(Bucket="mlflow-artifacts", Key="x.txt", Body=b"x")
"""


def test_boto3_tries_three_times_and_waits_60_s_for_each_answer(failing_server):
    """boto3's defaults, which MLflow's S3 uploads use: an S3 server that answers 503 gets the
    request three times; the wait for each answer is 60 s (read, not measured: 3 minutes)."""
    uri, seen = failing_server
    done = subprocess.run([sys.executable, "-c", PUT, uri], env=clean_env({}), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "503" in done.stderr, done.stderr
    assert done.stdout.split() == ["60"]
    assert len([request for request in seen if request.startswith("PUT /mlflow-artifacts/x.txt")]) == 3
