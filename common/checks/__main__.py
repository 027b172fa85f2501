"""The preflight: check the set-up without logging anything, and say where things will go.

    python -m common.checks [experiment name]     (from the repository root; --debug for a traceback)

The same checks as `with checked_setup(...)` in the examples, then what they found: the
tracking URI, the experiment, its artifact root and what kind of store that is; whether S3
keys are set (never their values); and, without a tracking server, whether the address
`mlflow ui` will serve on is free.
"""

from __future__ import annotations

import os
import re
import sys
import threading

import mlflow
import requests

from common.checks.errors import is_server, without_passwords
from common.checks.setup import checked_setup
from common.mlflow_env import embedded_ui_url

DEFAULT_EXPERIMENT = "02-artifacts"


def main(argv: list[str]) -> None:
    names = [arg for arg in argv[1:] if arg != "--debug"]
    with checked_setup(names[0] if names else DEFAULT_EXPERIMENT) as found:
        experiment = found.experiment
        version = f" (MLflow {found.version})" if found.version else ""
        print(f"tracking URI   : {without_passwords(mlflow.get_tracking_uri())}{version}")
        print(f"experiment     : {experiment.name} (id {experiment.experiment_id})")
        print(f"artifact root  : {experiment.artifact_location}")
        print(f"artifact store : {found.store}")
        if experiment.artifact_location.startswith("s3://"):
            # Whether this process has S3 credentials; their values are never printed.
            present = ", ".join(
                f"{name} {'set' if os.environ.get(name) else 'not set'}"
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            )
            print(f"S3 credentials : {present}")
        if not is_server(mlflow.get_tracking_uri()):
            print(f"UI address     : {ui_address()}")
        print("ready          : yes")


def ui_address() -> str:
    """Whether the address `mlflow ui` will serve on is free, and if not, what answers there.

    A port already taken makes `mlflow ui` fail, while the browser keeps showing whatever
    holds the port (on macOS, port 5000 belongs to the AirPlay Receiver). The look takes at
    most 3 s, however slowly whatever is there answers.
    """
    base = embedded_ui_url()
    wanted = os.environ.get("MLFLOW_UI_URL", "").strip().rstrip("/")
    note = f" (MLFLOW_UI_URL={wanted!r} is not an http://host:port address, so this is the default)"
    note = note if wanted and wanted != base else ""
    found: list[str] = []
    look = threading.Thread(target=lambda: found.append(_what_answers(base)), daemon=True)
    look.start()
    look.join(timeout=3)
    what = found[0] if found else "is taken: something there answers too slowly; {other}"
    other = "start `mlflow ui --port 5001` and set MLFLOW_UI_URL=http://127.0.0.1:5001"
    return f"{base} {what.replace('{other}', other)}{note}"


def _what_answers(base: str) -> str:
    with requests.Session() as session:
        session.trust_env = False  # ask the port itself, never an HTTP proxy from the environment
        try:
            answer = session.get(f"{base}/version", timeout=2, stream=True)
            body = answer.raw.read(64, decode_content=True).decode(errors="replace").strip()
        except requests.exceptions.SSLError:
            return "is taken by a program that speaks TLS; {other}"
        except requests.exceptions.ConnectionError:
            return "is free for `mlflow ui`"
        except (requests.exceptions.RequestException, OSError):
            return "is taken: something accepts connections there but does not answer; {other}"
    if answer.ok and re.fullmatch(r"\d+\.\d+\.\d+\S*", body):
        return f"already answers: MLflow {body} (an `mlflow ui` you started, or another server)"
    server = answer.headers.get("Server", "no Server header")
    return f"is taken by a program that is not MLflow (HTTP {answer.status_code}, {server}); {{other}}"


if __name__ == "__main__":
    main(sys.argv)
