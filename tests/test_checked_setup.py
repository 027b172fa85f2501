"""checked_setup changes the process for its block only, and a learner's own mistake stays theirs.

Real processes: a small script runs a learner's own code under `with checked_setup(...)`, then
more of their own code after it (a loop), on MLflow's embedded store in a temporary folder.
After the block, the process is as it was: a stop signal does what it does to any Python
program, a child process gets the signal dispositions its parent had, `nohup` still protects
against SIGHUP, and os.environ, the two hooks and boto3's default session are the ones from
before. Inside it, MLflow's own error for a learner's mistake keeps its message and traceback.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from common.checks.settings import FAIL_FAST

from support.stack import REPO, clean_env

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")

LEARNER = """
import json, os, signal, subprocess, sys, threading, time
import boto3, mlflow
from common.checks import checked_setup

STOPS = [getattr(signal, name) for name in %(stops)r]


def state():
    return {
        "environ": dict(os.environ),
        "excepthook": sys.excepthook,
        "unraisablehook": sys.unraisablehook,
        "boto3 session": boto3.DEFAULT_SESSION,
        "handlers": {int(s): signal.getsignal(s) for s in STOPS},
    }


def child_ignores():
    status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
    return next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))


def another_thread():
    os.environ["SET_BY_A_THREAD"] = "1"


def own_handler(signum, frame):
    pass


before, ignored_before = state(), child_ignores()
thread = threading.Timer(0.05, another_thread)  # while the checks run
thread.start()
with checked_setup("learner") as checked:
    if "own handler" in sys.argv:  # the block's own: it stays
        signal.signal(signal.SIGUSR2, own_handler)
    with mlflow.start_run() as run:
        print("run", run.info.run_id, flush=True)
        if "mistake" in sys.argv:
            mlflow.log_metric("acc", "high")
        if "missing file" in sys.argv:
            mlflow.log_artifact("missing.csv")
        if "absolute path" in sys.argv:
            mlflow.log_text("x", artifact_file="/etc/x.txt")
        if "open a missing file" in sys.argv:
            open("data/train.csv")
        if "a run already active" in sys.argv:
            mlflow.start_run()
        if "a name too long" in sys.argv:
            mlflow.log_text("x", artifact_file="a" * 300 + ".txt")
        if "a file as a folder" in sys.argv:
            mlflow.log_text("x", artifact_file="a/b.txt")
            mlflow.log_text("x", artifact_file="a/b.txt/c.txt")
        if "wait inside" in sys.argv:
            print("waiting inside", flush=True)
            time.sleep(60)
    thread.join()
    boto3.setup_default_session()  # changed inside the block: put back too
    os.environ["SET_INSIDE"] = "1"  # the block's own change: it stays
after = state()
print("same", json.dumps({key: before[key] == after[key] for key in before if key != "environ"}), flush=True)
changed = {k: v for k, v in after["environ"].items() if before["environ"].get(k) != v}
print("environ", json.dumps([changed, sorted(set(before["environ"]) - set(after["environ"]))]), flush=True)
print("experiment", checked.experiment.experiment_id, flush=True)
print("SIGUSR2 handler", getattr(signal.getsignal(signal.SIGUSR2), "__name__", "?"), flush=True)
print("tracking uri", json.dumps([mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")]), flush=True)
print("child ignores", json.dumps([ignored_before, child_ignores()]), flush=True)
if "child run" in sys.argv:  # a child process started after the block logs where this process does
    child = "import mlflow; print(mlflow.start_run().info.experiment_id)"
    print("child experiment", subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout, flush=True)
if "loop" in sys.argv:  # the learner's own loop, after the block
    print("looping", flush=True)
    for _ in range(600):
        time.sleep(0.1)
    print("loop ended", flush=True)
""" % {"stops": STOP_SIGNALS}


def default_signals():
    """In the child, before Python starts: every stop signal at its default, whatever the test runner set."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def start(tmp_path, *args, prefix=()):
    return subprocess.Popen(
        [*prefix, sys.executable, "-c", LEARNER, *args],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(REPO)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def read_until(process, start_of_line: str) -> list[str]:
    """The lines `process` printed, up to the one that starts with `start_of_line`."""
    lines = []
    while not (lines and lines[-1].startswith(start_of_line)):
        line = process.stdout.readline()
        assert line, f"ended before {start_of_line!r}: {lines} {process.communicate()[1]}"
        lines.append(line)
    return lines


def run_status(tmp_path, run_id: str) -> str:
    return mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).info.status


def printed(result, label: str):
    """The JSON (or text) the learner's script printed after `label`."""
    line = result.stdout.split(f"\n{label} ", 1)[1].splitlines()[0]
    return json.loads(line) if line[:1] in "[{" else line


def run_learner(folder, *args, env=None):
    return subprocess.run(
        [sys.executable, "-c", LEARNER, *args], cwd=folder, env=env or clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True, text=True, timeout=120, preexec_fn=default_signals,
    )  # fmt: skip


def test_the_process_is_as_before_after_the_block(tmp_path):
    result = run_learner(tmp_path, "child run")
    assert result.returncode == 0, result.stderr
    assert printed(result, "same") == {"excepthook": True, "unraisablehook": True, "boto3 session": True, "handlers": True}
    # The environment: what the code in the block and another thread (while the checks ran) set
    # stays theirs, and so does MLFLOW_EXPERIMENT_ID, which mlflow.set_experiment sets for child processes.
    experiment = printed(result, "experiment")
    assert printed(result, "environ") == [
        {"SET_INSIDE": "1", "SET_BY_A_THREAD": "1", "MLFLOW_EXPERIMENT_ID": experiment}, []
    ]
    assert printed(result, "child experiment") == experiment
    # A child started after the block ignores what one started before it ignores (no stop signal).
    before, after = printed(result, "child ignores")
    assert before == after
    stop_bits = sum(1 << (getattr(signal, name) - 1) for name in STOP_SIGNALS)
    assert int(after, 16) & stop_bits == 0


def test_a_handler_the_block_sets_stays(tmp_path):
    """checked_setup puts back only its own signal handlers: one the block set is the block's."""
    result = run_learner(tmp_path, "own handler")
    assert result.returncode == 0, result.stderr
    assert printed(result, "same")["handlers"] is False  # SIGUSR2's is the block's own now
    assert printed(result, "SIGUSR2 handler") == "own_handler"


def test_what_the_checks_set_for_a_tracking_server_is_undone(trainer_env, tmp_path):
    """Against a tracking server the checks set MLflow's timeout and retries for the block (and
    keep the server's address out of MLflow's own output when it holds a password): after it,
    they are gone."""
    env = {k: v for k, v in trainer_env.items() if k not in FAIL_FAST}
    result = run_learner(tmp_path, env=clean_env(dict(env, PYTHONPATH=str(REPO))))
    assert result.returncode == 0, result.stderr
    changed, removed = printed(result, "environ")
    assert set(changed) == {"SET_INSIDE", "SET_BY_A_THREAD", "MLFLOW_EXPERIMENT_ID"} and removed == []


def test_the_tracking_uri_the_checks_set_is_undone(tmp_path):
    """In a folder whose name MLflow writes escaped ('my work' as 'my%20work'), the checks point
    MLflow at ./mlflow.db for the block; after it, MLflow's default is back."""
    folder = tmp_path / "my work"
    folder.mkdir()
    result = run_learner(folder)
    assert result.returncode == 0, result.stderr
    default = subprocess.run(
        [sys.executable, "-c", "import mlflow; print(mlflow.get_tracking_uri())"], cwd=folder,
        env=clean_env({}), capture_output=True, text=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert printed(result, "tracking uri") == [default, None]
    assert (folder / "mlflow.db").is_file()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_learners_own_loop_after_the_block_stops(stop, tmp_path):
    """Ctrl+C gets Python's own KeyboardInterrupt; `kill` (SIGTERM) ends it as any program."""
    process = start(tmp_path, "loop")
    run_id = read_until(process, "run")[-1].split()[1]
    read_until(process, "looping")
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    assert "loop ended" not in stdout
    if stop == signal.SIGINT:
        assert process.returncode in (130, -signal.SIGINT) and "KeyboardInterrupt" in stderr, stderr
    else:
        assert process.returncode == -signal.SIGTERM, stderr  # a shell says 143
    assert "error:" not in stderr
    assert run_status(tmp_path, run_id) == "FINISHED"


def test_timeout_stops_the_learners_own_loop(tmp_path):
    """`timeout 300 python ...`, its time made up at once when the block has ended and the loop
    runs (GNU timeout takes a SIGALRM as its timer running out): it sends SIGTERM, which ends
    the command; timeout then says 124."""
    process = start(tmp_path, "loop", prefix=("timeout", "300"))
    read_until(process, "looping")
    process.send_signal(signal.SIGALRM)  # to timeout itself
    stdout, stderr = process.communicate(timeout=60)
    assert "loop ended" not in stdout and "error:" not in stderr, stdout + stderr
    assert process.returncode == 124, stderr  # timeout's own status: it had to stop the command


def test_nohup_still_protects_against_sighup(tmp_path):
    """nohup starts the command with SIGHUP ignored: a closed terminal must not stop it, in the
    block or after it (checked_setup leaves an ignored signal ignored)."""
    process = start(tmp_path, "loop", "wait inside", prefix=("nohup",))
    run_id = read_until(process, "run")[-1].split()[1]
    read_until(process, "waiting inside")
    process.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)  # inside the block: the run ends FAILED, exit 143
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and f"error: stopped by SIGTERM (run {run_id} is marked FAILED)" in stderr
    # After the block.
    process = start(tmp_path, "loop", prefix=("nohup",))
    read_until(process, "looping")
    process.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert process.poll() is None, process.communicate()
    process.kill()
    process.communicate(timeout=60)


LEARNERS_MISTAKES = {
    "mistake": r"mlflow.exceptions.MlflowException: Invalid value \"high\" for parameter 'value' supplied: .*",
    "missing file": r"FileNotFoundError: \[Errno 2\] No such file or directory: 'missing.csv'",
    "absolute path": r"mlflow.exceptions.MlflowException: Invalid artifact path: '/etc'\. .*",
    "a file as a folder": r"NotADirectoryError: \[Errno 20\] Not a directory: '.*/artifacts/a/b.txt/c.txt'",
    "open a missing file": r"FileNotFoundError: \[Errno 2\] No such file or directory: 'data/train.csv'",
    "a run already active": r"Exception: Run with UUID \w+ is already active\. .*",
    "a name too long": r"OSError: \[Errno 36\] File name too long: .*",
}


# The two the lesson names; the others are in the troubleshooting page (and out of the quick check).
LESSONS_MISTAKES = ["mistake", "missing file"]


@pytest.mark.parametrize("mistake", LESSONS_MISTAKES)
def test_a_learners_mistake_keeps_mlflows_message_and_traceback(mistake, tmp_path):
    """A mistake in the code's own call (a metric that is no number, a file that is not there)
    is the code's, not the set-up's: no error:/fix: pair, Python's traceback with MLflow's whole
    message, the run FAILED."""
    assert_keeps_its_traceback(mistake, tmp_path)


@pytest.mark.parametrize("mistake", [m for m in LEARNERS_MISTAKES if m not in LESSONS_MISTAKES])
def test_more_mistakes_of_the_learners_own_keep_their_tracebacks(mistake, tmp_path):
    """An artifact path MLflow refuses, a file used as a folder, the code's own open() of a
    missing file, a run started inside another, a name too long: the same."""
    assert_keeps_its_traceback(mistake, tmp_path)


def assert_keeps_its_traceback(mistake: str, tmp_path) -> None:
    process = start(tmp_path, mistake)
    stdout, stderr = process.communicate(timeout=120)
    run_id = stdout.split("run ", 1)[1].split()[0]
    assert process.returncode == 1
    assert "Traceback (most recent call last)" in stderr
    assert re.fullmatch(LEARNERS_MISTAKES[mistake], stderr.strip().splitlines()[-1]), stderr
    assert "error:" not in stderr and "fix:" not in stderr
    assert run_status(tmp_path, run_id) == "FAILED"


def test_ctrl_c_inside_the_block(tmp_path):
    process = start(tmp_path, "wait inside")
    run_id = read_until(process, "run")[-1].split()[1]
    read_until(process, "waiting inside")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-2:] == [
        f"error: stopped with Ctrl+C (run {run_id} is marked FAILED)",
        "fix: run the same command again when you want to",
    ]
    assert run_status(tmp_path, run_id) == "FAILED"


IMPORTS = """
import atexit, json, os, pkgutil, signal, sys, importlib
# The libraries the helpers use, first: what they do at import is theirs.
import boto3, botocore.session, mlflow, requests, sqlalchemy, urllib3


def state():
    return {
        "environ": dict(os.environ),
        "handlers": {int(s): repr(signal.getsignal(s)) for s in signal.valid_signals() if signal.getsignal(s) is not None},
        "hooks": [repr(sys.excepthook), repr(sys.unraisablehook), repr(sys.displayhook)],
        "boto3 session": repr(boto3.DEFAULT_SESSION),
        "atexit": atexit._ncallbacks(),
        "streams": [sys.stdout.errors, sys.stderr.errors],
    }


before = state()
import common.mlflow_env, common.checks, common.artifact_paths
import common.checks.__main__ as preflight  # noqa: F401 (its main() runs only as a command)
for module in pkgutil.iter_modules(common.checks.__path__):
    importlib.import_module(f"common.checks.{module.name}")
after = state()
print(json.dumps({key: before[key] == after[key] for key in before}))
"""


def test_importing_the_helpers_changes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS], cwd=tmp_path, env=clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == dict.fromkeys(
        ["environ", "handlers", "hooks", "boto3 session", "atexit", "streams"], True
    )


PROMPT = """import sys, time, mlflow
from common.checks import checked_setup
with checked_setup("learner"):
    with mlflow.start_run() as run:
        print("waiting inside", run.info.run_id, flush=True)
        time.sleep(60)

"""


def test_at_an_interactive_prompt_nothing_ends_the_session(tmp_path):
    """`python -i`, the block typed at the prompt: Ctrl+C inside it, then a set-up problem (a
    tracking server that is not there). Each comes back as an exception at the prompt, as plain
    Python's would, the run FAILED; the session goes on."""
    process = subprocess.Popen(
        [sys.executable, "-i", "-u"], cwd=tmp_path, env=clean_env({"PYTHONPATH": str(REPO)}),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals,
    )  # fmt: skip
    process.stdin.write(PROMPT)
    process.stdin.flush()
    run_id = read_until(process, "waiting inside")[-1].split()[2]
    process.send_signal(signal.SIGINT)
    refused = 'import os; os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"\n' + PROMPT
    stdout, stderr = process.communicate(refused + 'print("still here")\n', timeout=120)
    assert process.returncode == 0, stderr
    assert stdout.strip().endswith("still here"), stdout
    assert f"KeyboardInterrupt: stopped with Ctrl+C (run {run_id} is marked FAILED)" in stderr
    assert "FixableError: error: cannot reach the MLflow tracking server at http://127.0.0.1:9" in stderr
    assert run_status(tmp_path, run_id) == "FAILED"


def test_python_i_with_a_script_keeps_the_session(tmp_path):
    """`python -i run.py`: a set-up problem comes back as an exception, and the prompt follows."""
    script = tmp_path / "learner.py"
    script.write_text(PROMPT)
    result = subprocess.run(
        [sys.executable, "-i", str(script)], input='print("still here")\n', cwd=tmp_path, capture_output=True, text=True,
        env=clean_env({"PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip().endswith("still here"), result.stderr
    assert "FixableError: error: cannot reach the MLflow tracking server" in result.stderr
    assert "SystemExit" not in result.stderr


def test_the_path_check_does_not_load_mlflow(tmp_path):
    """docs/artifact-paths.md: common/artifact_paths.py needs only its error type. Importing it
    loads no MLflow (which takes a second and sets a variable of its own in the environment)."""
    check = "import sys, common.artifact_paths; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=clean_env({"PYTHONPATH": str(REPO)}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
