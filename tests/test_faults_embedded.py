"""Faults of the embedded default (no tracking server): what stands where MLflow writes.

Without MLFLOW_TRACKING_URI the examples keep their runs in `mlflow.db` and `mlruns/` in the
working folder. Here that folder, or what is in it, is not what MLflow expects: read-only, a
name URIs escape or that is not UTF-8, a database that is a link, a pipe, locked, or from
another MLflow version; and the output closed or unable to show a name. As in
test_fault_matrix.py, each ends in the two lines of test_faults.MESSAGES, in seconds.
"""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow import MlflowClient

from support.faults import (
    PREFLIGHT,
    SCRIPTS,
    assert_one_clear_message,
    folder_for,
    read_only,
    run_all,
    run_and_time,
    run_id_in,
)
from support.stack import REPO, clean_env


def test_deleted_experiment_says_how_to_restore_it(tmp_path):
    """Deleted in the UI, the experiment keeps its name; the fix's command, pasted into a shell,
    brings it back, whatever the name holds (quotes and a '$' broke it before)."""
    database, name = f"sqlite:///{tmp_path}/mlflow.db", 'it\'s "v2" $HOME!\\x'
    client = MlflowClient(database)
    client.delete_experiment(client.create_experiment(name))
    env = clean_env({"MLFLOW_TRACKING_URI": database, "MLFLOW_EXPERIMENT_NAME": name})
    for result, seconds in run_all(env, tmp_path, entries=[PREFLIGHT, SCRIPTS[0]]).values():
        assert_one_clear_message(result, seconds, "deleted experiment", f"experiment '{name}' was deleted")
    fix = result.stderr.strip().splitlines()[-1]
    command = fix.split("restore it: python ")[1].split("; or set MLFLOW_EXPERIMENT_NAME")[0]
    done = subprocess.run(  # pasted into a shell
        ["bash", "-c", f"{shlex.quote(sys.executable)} {command}"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    result, _ = run_and_time(SCRIPTS[0], env, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("pause", [0, 0.3, 0.6])
def test_first_run_stopped_while_the_database_is_made(pause, tmp_path):
    """Ctrl+C while MLflow makes mlflow.db (about a second, on the first run in a folder) left a
    half-made database that every later run failed on. Now it is made under another name and
    put in place whole: the same command then works."""
    script = [sys.executable, str(REPO / SCRIPTS[0])]
    process = subprocess.Popen(script, cwd=tmp_path, env=clean_env({}), stderr=subprocess.PIPE, text=True)
    while not list(tmp_path.glob("mlflow.db*")) and process.poll() is None:
        time.sleep(0.01)
    time.sleep(pause)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 130) and "Traceback" not in stderr, stderr  # 130: stopped by Ctrl+C
    assert not list(tmp_path.glob("mlflow.db.*.new"))  # nothing half-made left behind
    result, _ = run_and_time(SCRIPTS[0], clean_env({}), tmp_path)
    assert result.returncode == 0, result.stderr


def test_first_runs_at_once_in_a_new_folder(tmp_path):
    """Three entry points started together where no mlflow.db exists yet: each used to make the
    tables at the same time (a half-made database, or a traceback); now one database wins whole."""
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda entry: run_and_time(entry, clean_env({}), tmp_path)[0], [*SCRIPTS, SCRIPTS[0]]))
    for result in results:
        assert result.returncode == 0, result.stderr


def test_read_only_working_folder_on_the_embedded_default(tmp_path):
    """No MLFLOW_TRACKING_URI: MLflow would create mlflow.db here, and retry for minutes."""
    folders = [folder_for(tmp_path, entry) for entry in (PREFLIGHT, *SCRIPTS)]
    results = run_all(clean_env({}), tmp_path, prefix=read_only(*folders))
    for result, seconds in results.values():
        assert_one_clear_message(result, seconds, "folder read-only", "mlflow.db", "Read-only file system")


def test_folder_with_a_space_under_a_read_only_folder(tmp_path):
    """MLflow's default names the database as a URI ('my%20work/mlflow.db'); the check read that
    literally and refused a writable folder whose parent is read-only (/Users/Jane Doe, say)."""
    parent, elsewhere = tmp_path / "parent", tmp_path / "elsewhere"
    work = parent / "my work"
    work.mkdir(parents=True)
    elsewhere.mkdir()
    prefix = read_only(parent)  # then a writable folder mounted at 'my work', and run there
    there = f" && mount --bind {shlex.quote(str(elsewhere))} {shlex.quote(str(work))} && cd {shlex.quote(str(work))}"
    prefix[4] = prefix[4].replace(" && exec", there + " && exec")
    result, _ = run_and_time(SCRIPTS[0], clean_env({}), tmp_path, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "mlflow.db").is_file()
    # Where the parent is writable, MLflow made an empty 'my%20work' folder beside it: no more.
    result, _ = run_and_time(SCRIPTS[0], clean_env({}), work)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in parent.iterdir()) == ["my work"]


def test_folders_whose_names_uris_escape(tmp_path):
    """'100% done' and 'a#b?c' as working folders: runs land there and nothing stray appears
    beside them. A database folder with a % that does not exist yet (MLflow would make its
    escaped name, then retry for minutes): the message says to make it first."""
    for name in ("100% done", "a#b?c"):
        (tmp_path / name).mkdir()
        result, _ = run_and_time(SCRIPTS[1], clean_env({}), tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert {path.name for path in (tmp_path / name).iterdir()} >= {"mlflow.db", "mlruns"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["100% done", "a#b?c"]
    for folder in ("pct%dir", "at@dir"):  # MLflow would make 'pct%25dir' or 'at%40dir'
        database = f"sqlite:///{tmp_path}/{folder.replace('%', '%25')}/a.db"
        result, seconds = run_and_time(SCRIPTS[1], clean_env({"MLFLOW_TRACKING_URI": database}), tmp_path)
        assert_one_clear_message(result, seconds, "escaped folder", f"mkdir -p {tmp_path}/{folder}")


def test_folder_whose_name_holds_an_escape(tmp_path):
    """A working folder named 'x%20y': MLflow 3.17 reads the artifact root ./mlruns as a URI and
    put the run's files in 'x y/mlruns', a folder beside this one. Refused before anything is made."""
    folder = tmp_path / "x%20y"
    folder.mkdir()
    result, seconds = run_and_time(SCRIPTS[0], clean_env({}), folder)
    assert_one_clear_message(result, seconds, "escape in folder", "'%20'", f"{tmp_path}/x y/mlruns")
    assert [path.name for path in tmp_path.iterdir()] == ["x%20y"] and not any(folder.iterdir())


def test_database_made_by_another_mlflow(tmp_path):
    """mlflow.db made by a newer MLflow (a schema revision this one does not know) or an older one:
    MLflow's own message says to upgrade both ('mlflow db upgrade', which cannot downgrade)."""
    made = run_and_time(SCRIPTS[1], clean_env({}), tmp_path)[0]
    assert made.returncode == 0, made.stderr
    for revision, fault in (("ffffffffffff", "newer database"), ("cbc13b556ace", "older database")):  # 3.17: dc11669786a5
        with sqlite3.connect(tmp_path / "mlflow.db") as database:
            database.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        result, seconds = run_and_time(SCRIPTS[0], clean_env({}), tmp_path)
        assert_one_clear_message(result, seconds, fault, revision, f"{tmp_path}/mlflow.db")


def test_output_closed_before_the_run_ends(tmp_path):
    """`python examples/02_artifacts/run.py | head -1`: head stops reading after the first line, and
    the next print raised BrokenPipeError ('the operating system failed'). Two lines, the run FAILED."""
    command = f"{shlex.quote(sys.executable)} {REPO / SCRIPTS[0]} | head -1; exit ${{PIPESTATUS[0]}}"
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=clean_env({}), capture_output=True, text=True, timeout=120)
    result.args = [SCRIPTS[0]]
    assert result.stdout.startswith("tracking URI   :") and len(result.stdout.splitlines()) == 1
    assert_one_clear_message(result, time.monotonic() - started, "output closed")
    assert "Exception ignored" not in result.stderr
    # Where it stops depends on when head exits: before the run starts (the second line already),
    # or in it; then the run is FAILED and named. Never a run left RUNNING or FINISHED.
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
    assert [run.info.status for run in runs] in ([], ["FAILED"]), runs
    if runs:
        assert run_id_in(result, "is marked FAILED") == runs[0].info.run_id


def test_what_stands_where_the_embedded_default_writes(tmp_path):
    """mlflow.db a link to nothing or a pipe (minutes of SQLite retries, or a hang, before),
    /dev/null (a generic 'disk I/O error'), mlruns a file ('not writable' before), and a folder
    whose name is not UTF-8 (a traceback from MLflow's default URI before)."""
    cases = {"dangling": "database link", "fifo": "database not a file", "devnull": "database not a file",
             "mlruns file": "file in the way", b"not utf-8 \xff": "folder not utf-8",
             "a line end\nfix: forged": "file in the way"}  # a line end in a name stays in the error: line
    # fmt: skip
    folders = {kind: tmp_path / os.fsdecode(kind) for kind in cases}
    for folder in folders.values():
        folder.mkdir()
    (folders["dangling"] / "mlflow.db").symlink_to(tmp_path / "nowhere/mlflow.db")
    os.mkfifo(folders["fifo"] / "mlflow.db")
    (folders["devnull"] / "mlflow.db").symlink_to("/dev/null")
    for kind in ("mlruns file", "a line end\nfix: forged"):
        (folders[kind] / "mlruns").write_text("not a folder")
    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(lambda kind: run_and_time(SCRIPTS[0], clean_env({}), folders[kind]), cases)))
    for kind, fault in cases.items():
        assert_one_clear_message(*results[kind], fault)
    assert "`mv $'" in results["a line end\nfix: forged"][0].stderr  # bash's $'...\n...' pastes right


def test_database_locked_by_another_program(tmp_path):
    """Another program holds a write lock on mlflow.db (a database browser with unsaved changes):
    'sqlalchemy failed: OperationalError', and a fix that sent the learner to the settings."""
    made = run_and_time(SCRIPTS[1], clean_env({}), tmp_path)[0]
    assert made.returncode == 0, made.stderr
    holder = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a write lock: MLflow waited 23 s for it and logged tracebacks
    try:
        result, seconds = run_and_time(SCRIPTS[0], clean_env({}), tmp_path)
    finally:
        holder.close()
    assert_one_clear_message(result, seconds, "database locked", f"{tmp_path}/mlflow.db")
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr  # and nothing MLflow logged
    assert run_and_time(SCRIPTS[0], clean_env({}), tmp_path)[0].returncode == 0  # once it is free


def test_names_the_output_or_the_locale_cannot_encode(tmp_path):
    """An experiment name the output's encoding cannot show (PYTHONIOENCODING=ascii, a file on
    Windows) failed the run with a traceback; now it is printed escaped. Under a locale that cannot
    decode it, the setting was said to hold a line end."""
    env = clean_env({"MLFLOW_EXPERIMENT_NAME": "Expérience", "PYTHONIOENCODING": "ascii"})
    result, _ = run_and_time(SCRIPTS[0], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "experiment     : Exp\\xe9rience (id 1)" in result.stdout
    env = clean_env({"MLFLOW_EXPERIMENT_NAME": "Expérience", "LC_ALL": "C", "PYTHONUTF8": "0"})
    result, seconds = run_and_time(SCRIPTS[0], env, tmp_path)
    assert_one_clear_message(result, seconds, "setting not text", "MLFLOW_EXPERIMENT_NAME", "PYTHONUTF8=1")
    env.pop("MLFLOW_EXPERIMENT_NAME")
    result, seconds = run_and_time(PREFLIGHT, env, tmp_path, "Expérience")  # the name as an argument
    assert_one_clear_message(result, seconds, "setting not text", "the experiment name", "PYTHONUTF8=1")
    result, seconds = run_and_time(PREFLIGHT, clean_env({}), tmp_path, "two\nlines")
    assert_one_clear_message(result, seconds, "odd character", "the experiment name 'two\\nlines'")
