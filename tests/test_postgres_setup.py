"""The tests' PostgreSQL set-up (tests/support/stack.py) works when many test processes start at once.

pytest-xdist starts one process per core, and two learners (or CI beside a developer) may
run the suite on one PostgreSQL server at the same time. Each process creates the role
docker-compose.yml names if it is missing, and a database of its own. Here several
processes do that at the same instant, as forked processes released by one barrier.
"""

from __future__ import annotations

import multiprocessing
import uuid

import psycopg2
import pytest
from psycopg2 import sql

from support.services import POSTGRES_ADMIN_URL, service_missing
from support.stack import ensure_role, fresh_database, postgres_problem

PROCESSES = 6


@pytest.fixture(scope="module")
def admin():
    problem = postgres_problem(POSTGRES_ADMIN_URL)
    if problem:
        service_missing(f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}: {problem}")
    connection = psycopg2.connect(POSTGRES_ADMIN_URL)
    connection.autocommit = True
    yield connection
    connection.close()


def _all_at_once(work) -> list[str]:
    """Run `work()` in PROCESSES processes released together; what each reports ('ok' or the error)."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()

    def worker():
        barrier.wait()
        try:
            results.put(work())
        except Exception as error:  # reported to the test, which shows it
            results.put(repr(error))

    processes = [context.Process(target=worker) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    return outcomes


def test_a_role_never_seen_is_created_once_from_many_processes_at_once(admin):
    """The role check-then-create used to fail in all but one process (UniqueViolation)."""
    role = f"mlflow_race_{uuid.uuid4().hex[:8]}"  # a role this server has never seen

    def create_role():
        connection = psycopg2.connect(POSTGRES_ADMIN_URL)
        connection.autocommit = True
        try:
            ensure_role(connection, role, "secret")
        finally:
            connection.close()
        return "ok"

    try:
        assert _all_at_once(create_role) == ["ok"] * PROCESSES
        with admin.cursor() as cur:
            cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
            assert cur.fetchall() == [(True,)]
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_many_sessions_set_up_their_own_database_at_once(admin):
    """What each test process does first, from several processes at once: each gets its own
    database, and each database is gone afterwards."""

    def set_up_and_tear_down():
        with fresh_database(POSTGRES_ADMIN_URL) as (_, database):
            return database

    databases = _all_at_once(set_up_and_tear_down)
    assert all(name.startswith("mlflow_test_") for name in databases), databases
    assert len(set(databases)) == PROCESSES
    with admin.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (databases,))
        assert cur.fetchall() == []
