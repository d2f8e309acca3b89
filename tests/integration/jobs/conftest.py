"""Fixtures of the shared/jobs tests: a migrated store on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from shared.jobs import JobStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> JobStore:
    """A migrated JobStore with empty tables, on each backend in turn."""
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")
