"""Checks that run before anything is logged, and the one message a failure ends in.

MLflow's own defaults retry a refused connection for minutes and end in a long traceback.
These checks ask the tracking server and the artifact store one question each, with a short
timeout, and turn what can go wrong into a FixableError: one `error:` line (what failed, with
the address or setting) and one `fix:` line (what to do).

    from common.checks import checked_setup

    with checked_setup("02-artifacts"):   # setup.py: the one call that changes the process
        main()

    python -m common.checks [experiment]  # __main__.py: check the set-up, log nothing

One module per concern: errors.py (the error type, passwords kept out of messages, shell
quoting), settings.py (settings in the environment), tracking.py and database.py (the tracking
server, SQLite and other databases), s3.py and s3_answers.py (the artifact store), runs.py (the
run a failure interrupted), stops.py (Ctrl+C and other signals), explain.py (an exception turned
into a FixableError), setup.py (checked_setup). Importing any of them changes nothing in the
process: only checked_setup does, for its block.
"""


def __getattr__(name: str):
    # `from common.checks import checked_setup` without loading MLflow for who imports only
    # common.checks.errors (common/artifact_paths.py).
    if name in ("checked_setup", "check_setup"):
        from common.checks import setup

        return getattr(setup, name)
    raise AttributeError(f"module 'common.checks' has no attribute {name!r}")
