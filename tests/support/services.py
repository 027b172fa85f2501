"""This machine's services as the tests find them, and what a test does when one is missing."""

from __future__ import annotations

import os

import pytest

# A PostgreSQL role that may create databases and roles. On a learner's machine,
# set TEST_POSTGRES_URL to reach another server.
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(message: str):
    """Skip on a learner's machine; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
