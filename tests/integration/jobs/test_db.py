"""The database rules: SQLite in WAL with a busy timeout and every write transaction
``BEGIN IMMEDIATE`` (the store's, the webhook log's and the API keys'), URLs, and which
errors are transient."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.jobs import TRANSIENT_DATABASE_ERRORS, ApiKeys, Database, JobStatus, JobStore
from shared.jobs.deliveries import WebhookDeliveries
from tests.integration.jobs.helpers import LEASE, job_in, new_jobs, statements, transactions

WRITES = ("INSERT", "UPDATE", "DELETE")


def test_sqlite_switches_to_wal_while_another_connection_holds_a_lock(tmp_path: Path) -> None:
    # Switching a new database file to WAL needs an exclusive lock, and SQLite refuses at once
    # (no busy handler) while another connection writes: what processes starting together
    # against a new file hit. The store waits for the lock instead of failing.
    path = tmp_path / "jobs.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    releaser = threading.Timer(0.5, holder.commit)
    releaser.start()
    try:
        with JobStore(f"sqlite:///{path}") as store:
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        releaser.join()
        holder.close()


def test_sqlite_store_uses_wal_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "jobs.db"
    with JobStore(f"sqlite:///{path}") as store:
        store.migrate()
        assert path.is_file()
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_every_sqlite_write_begins_immediate(sqlite_store: JobStore) -> None:
    """Each write of shared/jobs — the store's transitions, webhook deliveries, API keys —
    runs in a transaction that began with BEGIN IMMEDIATE; reads begin DEFERRED."""
    store = sqlite_store
    keys, deliveries = ApiKeys(store), WebhookDeliveries(store)
    with statements(store) as sent:
        batch = store.create_batch(new_jobs(3), callback_url="https://example.com/hook")
        a, b, c = batch.job_ids
        store.claim(a, "w", LEASE)
        store.heartbeat(a, "w", LEASE)
        store.set_progress(a, 0.5, "edit")
        store.release(a, "storage_unavailable", "S3 down")
        store.claim_next(1, "w", LEASE)
        store.succeed(a, "file:///o.png")
        store.fail(b, "invalid_image", "bad")
        store.retry(b)
        store.cancel(b)
        store.cancel_batch(batch.id)
        store.requeue_expired()
        delivery_id = deliveries.announce_if_complete(batch.id)
        assert delivery_id is not None
        deliveries.record_attempt(
            delivery_id, delivered=False, response_status=500, error="oops", give_up=False
        )
        deliveries.reclaim_stale(0.0)
        record, key = keys.create("alice")
        keys.authenticate(key)
        keys.revoke(record.id)
        store.get_job(c), store.list_jobs(batch.id), store.batch_counts(batch.id)
        keys.list(), deliveries.for_batch(batch.id)
    found = transactions(sent)
    writing = [t for t in found if any(s.startswith(WRITES) for s in t[1:])]
    reading = [t for t in found if t not in writing]
    assert len(writing) >= 17 and reading
    assert {t[0] for t in writing} == {"BEGIN IMMEDIATE"}
    assert {t[0] for t in reading} == {"BEGIN DEFERRED"}


def test_sqlite_write_transactions_wait_for_each_other(tmp_path: Path) -> None:
    """Two read-then-write transactions at once: the second waits for the first instead of
    failing with "database is locked" when its read turns into a write."""
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with database.transaction(write=True) as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def increment() -> None:
        try:
            barrier.wait()
            with database.transaction(write=True) as connection:
                n = connection.execute(text("SELECT n FROM counter")).scalar_one()
                time.sleep(0.2)  # the other transaction would commit here, were it let in
                connection.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=increment) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with database.transaction(write=False) as connection:
            assert connection.execute(text("SELECT n FROM counter")).scalar_one() == 2
    finally:
        database.close()


def test_database_urls(postgres_url: str) -> None:
    plain = "postgresql://" + postgres_url.partition("://")[2]
    with JobStore(plain) as store:
        assert store.url.drivername == "postgresql+psycopg"
        assert store.dialect == "postgresql"
    for bad in ("", "mysql://u@h/db", "not a url"):
        with pytest.raises(ValueError, match="database_url"):
            JobStore(bad)


def test_an_unreachable_database_is_a_transient_error() -> None:
    with JobStore("postgresql://facedit@127.0.0.1:1/facedit") as store:
        with pytest.raises(TRANSIENT_DATABASE_ERRORS):
            store.get_job("0" * 32)


def test_forgotten_connections_are_replaced(sqlite_store: JobStore) -> None:
    job_id = sqlite_store.create_batch(new_jobs(1)).job_ids[0]
    sqlite_store.forget_connections()  # what a forked worker process does first
    job = sqlite_store.get_job(job_id)
    assert job is not None and job.status == JobStatus.QUEUED


def test_an_operation_survives_its_connection_being_terminated(pg_store: JobStore) -> None:
    """PostgreSQL ends the backend mid-transaction (what `pg_terminate_backend`, a failover or
    a restart does): the store repeats the operation on a new connection, and it counts once."""
    from sqlalchemy import event

    job = job_in(pg_store, JobStatus.RUNNING)
    killed: list[int] = []

    def terminate_own_backend(connection, cursor, statement, *args) -> None:
        if killed or not statement.lstrip().upper().startswith("UPDATE"):
            return
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        killed.append(pid)
        with pg_store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(pg_store.engine, "before_cursor_execute", terminate_own_backend)
    try:
        assert pg_store.succeed(job.id, "s3://b/out/result.png")
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", terminate_own_backend)
    assert killed, "the backend was never terminated: the test did not test anything"
    done = pg_store.get_job(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.output_uri == "s3://b/out/result.png"


def test_succeed_repeated_after_its_commit_counts_once(store: JobStore) -> None:
    job = job_in(store, JobStatus.RUNNING)
    assert store.succeed(job.id, "file:///out/a.png")
    assert store.succeed(job.id, "file:///out/a.png")  # the same result again: already done
    assert not store.succeed(job.id, "file:///out/other.png")
    assert store.get_job(job.id).output_uri == "file:///out/a.png"


def test_a_database_that_is_down_is_database_unavailable() -> None:
    from shared.core.errors import DatabaseUnavailable

    with JobStore("postgresql://facedit@127.0.0.1:1/facedit") as store:
        with pytest.raises(DatabaseUnavailable) as info:
            store.claim_next(1, "w1", 60)
    assert info.value.code == "database_unavailable" and info.value.transient
    assert not info.value.disconnected  # nothing to reconnect to: not retried in a loop
