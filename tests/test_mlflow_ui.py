"""The root README's `mlflow ui` command against plain `mlflow ui`: what each starts, and what
happens when the port is taken. Speeds are printed (run with -s to see them), never asserted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from support.stack import API_PROBE, Process, clean_env, free_port, http_status, process_tree, readme_mlflow_ui

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def is_python(command: str) -> bool:
    return Path(command.split()[0]).name.startswith("python")


def start(settings: dict[str, str], args: list[str], folder: Path) -> tuple[Process, str, float]:
    """`mlflow <args> --port <free port>` with `settings`, in `folder`; returns it once the
    API answers, its URL, and the seconds that took."""
    port = free_port()
    began = time.monotonic()
    ui = Process([MLFLOW, *args, "--port", str(port)], clean_env(settings), folder / f"ui-{port}.log", folder)
    url = f"http://127.0.0.1:{port}"
    ui.wait_until(lambda: http_status(url + API_PROBE) == 200, "mlflow ui", timeout=180)
    return ui, url, time.monotonic() - began


def python_processes(ui: Process, settle: float = 20) -> list[str]:
    """The Python processes of `ui`'s tree, once their number has stayed the same for 5 s
    (the job runner starts its own after the web server answers)."""
    deadline, last, since = time.monotonic() + settle + 5, None, time.monotonic()
    while time.monotonic() < deadline:
        now = [command for command in process_tree(ui.popen.pid) if is_python(command)]
        if last is None or len(now) != len(last):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 5:
            break
        time.sleep(0.5)
    return last


def test_readme_command_starts_two_python_processes_plain_mlflow_ui_many_more(tmp_path):
    """README: `MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --workers 1`. Plain `mlflow ui`
    adds three more web workers and MLflow 3's job runner."""
    settings, args = readme_mlflow_ui()
    figures = {}
    for name, (env, argv) in {"README's command": (settings, args), "plain mlflow ui": ({}, ["ui"])}.items():
        folder = tmp_path / name.replace(" ", "-").replace("'", "")
        folder.mkdir()
        ui, url, seconds = start(env, argv, folder)
        try:
            processes = python_processes(ui)
            answers = []
            for _ in range(5):
                began = time.monotonic()
                assert requests.get(url + "/health", timeout=60).status_code == 200
                answers.append(time.monotonic() - began)
            figures[name] = processes, seconds, sorted(answers)[2]
        finally:
            ui.stop()
    for name, (processes, seconds, health) in figures.items():
        print(f"\n{name}: {len(processes)} Python processes, API answered after {seconds:.1f} s, "
              f"/health in {health * 1000:.0f} ms (median of 5)")  # fmt: skip
        print("  " + "\n  ".join(processes))
    readme, plain = figures["README's command"][0], figures["plain mlflow ui"][0]
    assert len(readme) == 2, readme
    assert not [command for command in readme if "mlflow.server.jobs" in command or "huey" in command]
    assert len(plain) >= 10, plain
    assert [command for command in plain if "huey" in command or "jobs" in command], plain


@pytest.fixture
def taken_port():
    """A port something else listens on, as AirPlay Receiver holds 5000 on macOS."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("variant", ["README's command", "plain mlflow ui"])
def test_mlflow_ui_on_a_taken_port_stops_with_address_already_in_use_and_status_0(variant, taken_port, tmp_path):
    """It says `address already in use` on stderr, but ends with exit status 0: a script that
    starts it cannot tell from the status that it failed."""
    settings, args = readme_mlflow_ui() if variant == "README's command" else ({}, ["ui"])
    began = time.monotonic()
    ended = subprocess.run(
        [MLFLOW, *args, "--port", str(taken_port)],
        cwd=tmp_path, env=clean_env(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - began
    print(f"\n{variant} on a taken port: exit status {ended.returncode} after {seconds:.1f} s")
    print("  " + "\n  ".join((ended.stdout + ended.stderr).strip().splitlines()[-6:]))
    assert "address already in use" in ended.stderr.lower(), ended.stderr
    assert ended.returncode == 0
    # Nothing of it is left running: the holder still answers on the port, alone.
    assert not [line for line in os.popen("ps -eo args=").read().splitlines() if f"--port {taken_port}" in line]
