"""Alembic migrations on fresh SQLite and PostgreSQL databases."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from shared.jobs import JobStore, NewJob
from shared.jobs.tables import Base
from tests.fixtures.services import PostgresServer


@pytest.fixture(scope="module")
def pg_scratch_url(postgres_server: PostgresServer) -> str:
    """One database for this module's migration tests, emptied before each of them
    (dropping a whole database costs a checkpoint, over a second)."""
    return postgres_server.create_database("facedit_migrate")


VERSIONS = Path(__file__).resolve().parents[3] / "shared" / "jobs" / "migrations" / "versions"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (no tables yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'dir' / 'facedit.db'}"
    url = request.getfixturevalue("pg_scratch_url")
    with JobStore(url) as store, store.engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    return url


def test_upgrade_head_creates_the_schema(fresh_url: str) -> None:
    store = JobStore(fresh_url)
    try:
        assert store.current_revision() is None
        head = store.head_revision()
        assert head == sorted(p.name[:4] for p in VERSIONS.glob("0*.py"))[-1]
        assert store.migrate() == head
        assert store.current_revision() == head

        inspector = inspect(store.engine)
        assert {"batches", "jobs", "alembic_version"} <= set(inspector.get_table_names())
        job_columns = {column["name"] for column in inspector.get_columns("jobs")}
        assert {
            "id", "batch_id", "owner", "status", "edits", "options", "input_uri", "input_name",
            "input_sha256", "output_uri", "intermediates", "attempts", "max_attempts",
            "error_code", "error_message", "progress", "stage", "worker_id",
            "lease_expires_at", "created_at", "started_at", "finished_at", "updated_at",
        } <= job_columns  # fmt: skip
        indexes = {index["name"]: index for index in inspector.get_indexes("jobs")}
        assert indexes["ix_jobs_status_created_at"]["column_names"] == ["status", "created_at"]
        assert indexes["ix_jobs_batch_id"]["column_names"] == ["batch_id"]
        assert "UNIQUE" in _index_sql(store, "uq_batches_owner_idempotency_key").upper()
        checks = {check["name"] for check in inspector.get_check_constraints("jobs")}
        assert checks == {"ck_jobs_status", "ck_jobs_progress"}

        # The migrated schema works with the models.
        batch = store.create_batch([NewJob("file:///a.png")])
        assert store.get_batch(batch.id) == batch
    finally:
        store.close()


def _index_sql(store: JobStore, name: str) -> str:
    # Inspectors skip expression indexes on SQLite, so read the definition directly.
    query = (
        "SELECT sql FROM sqlite_master WHERE name = :name"
        if store.dialect == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    )
    with store.engine.connect() as connection:
        return connection.execute(text(query), {"name": name}).scalar_one()


def test_models_match_the_migrations(fresh_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with JobStore(fresh_url) as store:
        store.migrate()
        with store.engine.connect() as connection, warnings.catch_warnings():
            # SQLite cannot reflect the expression index; it is checked above instead.
            warnings.simplefilter("ignore")
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


def test_migrate_is_idempotent(fresh_url: str) -> None:
    with JobStore(fresh_url) as store:
        store.migrate()
        batch = store.create_batch([NewJob("file:///a.png")])
        assert store.migrate() == store.head_revision()
        assert store.migrate() == store.head_revision()
        assert store.get_batch(batch.id) == batch  # rows survive re-runs


def test_concurrent_migrations(fresh_url: str) -> None:
    """Several processes starting at once all migrate; none fails, the schema is created once."""
    stores = [JobStore(fresh_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def migrate(store: JobStore) -> str | None:
        barrier.wait()
        return store.migrate()

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            revisions = list(pool.map(migrate, stores))
        assert revisions == [stores[0].head_revision()] * len(stores)
        assert stores[0].create_batch([NewJob("file:///a.png")]).job_ids
    finally:
        for store in stores:
            store.close()
