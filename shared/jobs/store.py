"""The job store: batches and jobs in SQL, and the job state machine.

States: ``queued → running → succeeded | failed | cancelled`` (plus ``failed → queued`` by
retry and ``running → queued`` when a lease expires). Every transition is one conditional
UPDATE (``WHERE id = :id AND status IN (:expected)``) and reports whether it won, so a
duplicated or redelivered task finds nothing to do.

SQLite write transactions start with ``BEGIN IMMEDIATE`` (one writer at a time, waiting up
to the busy timeout instead of failing on a read-to-write upgrade); PostgreSQL claims with
``SELECT … FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.pool import StaticPool

from shared.core.errors import IdempotencyConflict, InvalidEditRequest
from shared.jobs.tables import TERMINAL_STATUSES, Batch, Job, JobStatus

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
WORKER_LOST = "worker_lost"
# pg_advisory_xact_lock key serialising concurrent migrate() calls ("facedit" in ASCII).
_MIGRATION_LOCK_KEY = 0x66616365646974
_SQLITE_BUSY_TIMEOUT_MS = 30_000

jobs_table = Job.__table__
batches_table = Batch.__table__


@dataclass(frozen=True)
class NewJob:
    """One job to create: an input image and the edits to apply to it."""

    input_uri: str
    edits: Sequence[Mapping[str, Any]] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    input_name: str | None = None
    max_attempts: int = 3
    input_sha256: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    batch_id: str
    position: int
    owner: str | None
    status: JobStatus
    edits: list[dict[str, Any]]
    options: dict[str, Any]
    input_uri: str
    input_name: str | None
    input_sha256: str | None
    output_uri: str | None
    intermediates: dict[str, str]
    outputs: list[dict[str, Any]]
    latent_uri: str | None
    suppressor: str | None
    metrics: dict[str, Any]
    attempts: int
    max_attempts: int
    error_code: str | None
    error_message: str | None
    progress: float
    stage: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class BatchRecord:
    id: str
    owner: str | None
    options: dict[str, Any]
    callback_url: str | None
    idempotency_key: str | None
    request_hash: str | None
    created_at: datetime
    job_ids: tuple[str, ...]


class JobStore:
    """Batches and jobs in SQLite (embedded) or PostgreSQL (services)."""

    def __init__(self, database_url: str) -> None:
        self.url = _normalise_url(database_url)
        self.dialect = self.url.get_backend_name()
        self.engine = _make_engine(self.url)

    def __repr__(self) -> str:
        return f"JobStore({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close pooled connections (the store stays usable; new ones open on demand)."""
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> str | None:
        """Upgrade the schema to the newest revision; return it. Safe to call repeatedly
        and, on PostgreSQL, from several processes at once (advisory lock)."""
        from alembic import command

        with self._migration_connection() as connection:
            command.upgrade(self._alembic_config(connection), "head")
        return self.current_revision()

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision shipped with this code."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def _alembic_config(self, connection: Connection | None = None) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        return config

    @contextmanager
    def _migration_connection(self) -> Iterator[Connection]:
        with self._transaction(write=True) as connection:
            if self.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            yield connection

    # -- creating and reading -----------------------------------------------------------

    def create_batch(
        self,
        jobs: Sequence[NewJob],
        owner: str | None = None,
        options: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> BatchRecord:
        """Create a batch and its queued jobs in one transaction.

        If ``owner`` already used ``idempotency_key``, return that batch when
        ``request_hash`` matches, else raise IdempotencyConflict.
        """
        if isinstance(jobs, NewJob) or not isinstance(jobs, Sequence) or not jobs:
            raise ValueError(f"jobs must be a non-empty list of NewJob, got {jobs!r}")
        for name, value in (
            ("owner", owner),
            ("callback_url", callback_url),
            ("idempotency_key", idempotency_key),
            ("request_hash", request_hash),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}")
        now = _utcnow()
        batch_id = _new_id()
        batch_row = {
            "id": batch_id,
            "owner": owner,
            "options": _json_object(options or {}, "options"),
            "callback_url": callback_url,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "created_at": now,
        }
        job_rows = [
            _new_job_row(job, f"jobs[{i}]", batch_id, i, owner, now) for i, job in enumerate(jobs)
        ]
        try:
            with self._transaction(write=True) as connection:
                if idempotency_key is not None:
                    existing = self._find_idempotent(connection, owner, idempotency_key)
                    if existing is not None:
                        return _same_request(existing, request_hash)
                connection.execute(insert(batches_table), batch_row)
                connection.execute(insert(jobs_table), job_rows)
                return _batch_record(batch_row, [row["id"] for row in job_rows])
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Another request with the same key won the race; answer as if we came second.
            with self._transaction(write=False) as connection:
                existing = self._find_idempotent(connection, owner, idempotency_key)
            if existing is None:
                raise
            return _same_request(existing, request_hash)

    def _find_idempotent(
        self, connection: Connection, owner: str | None, idempotency_key: str
    ) -> BatchRecord | None:
        batch = connection.execute(
            select(batches_table).where(
                func.coalesce(batches_table.c.owner, "") == (owner or ""),
                batches_table.c.idempotency_key == idempotency_key,
            )
        ).first()
        return None if batch is None else self._batch_from_row(connection, batch)

    def get_job(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        """The job, or None if there is none (or it belongs to another owner)."""
        query = select(jobs_table).where(jobs_table.c.id == job_id)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self._transaction(write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else _job_record(row)

    def get_batch(self, batch_id: str, owner: str | None = None) -> BatchRecord | None:
        """The batch, or None if there is none (or it belongs to another owner)."""
        query = select(batches_table).where(batches_table.c.id == batch_id)
        if owner is not None:
            query = query.where(batches_table.c.owner == owner)
        with self._transaction(write=False) as connection:
            row = connection.execute(query).first()
            return None if row is None else self._batch_from_row(connection, row)

    def _batch_from_row(self, connection: Connection, row: Row[Any]) -> BatchRecord:
        job_ids = connection.scalars(
            select(jobs_table.c.id)
            .where(jobs_table.c.batch_id == row.id)
            .order_by(jobs_table.c.position)
        ).all()
        return _batch_record(row._mapping, job_ids)

    def list_jobs(
        self,
        batch_id: str,
        status: JobStatus | str | None = None,
        offset: int = 0,
        limit: int = 100,
        owner: str | None = None,
    ) -> list[JobRecord]:
        """A page of the batch's jobs in submission order, optionally of one status."""
        _check_int("offset", offset, 0)
        _check_int("limit", limit, 1, 1000)
        query = select(jobs_table).where(jobs_table.c.batch_id == batch_id)
        if status is not None:
            query = query.where(jobs_table.c.status == _status(status).value)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        query = query.order_by(jobs_table.c.position).offset(offset).limit(limit)
        with self._transaction(write=False) as connection:
            return [_job_record(row) for row in connection.execute(query)]

    def batch_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's jobs are in each status (every status, zeros included)."""
        counts = {status.value: 0 for status in JobStatus}
        query = (
            select(jobs_table.c.status, func.count())
            .where(jobs_table.c.batch_id == batch_id)
            .group_by(jobs_table.c.status)
        )
        with self._transaction(write=False) as connection:
            for status, count in connection.execute(query):
                counts[status] = count
        return counts

    def is_cancelled(self, job_id: str) -> bool:
        """Whether the job was cancelled (False for an unknown job)."""
        with self._transaction(write=False) as connection:
            status = connection.scalar(select(jobs_table.c.status).where(jobs_table.c.id == job_id))
        return status == JobStatus.CANCELLED

    # -- transitions --------------------------------------------------------------------

    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """queued → running for ``worker_id``; the claimed job, or None if it was not queued."""
        values = self._claim_values(worker_id, lease_seconds)
        with self._transaction(write=True) as connection:
            row = connection.execute(
                update(jobs_table)
                .where(jobs_table.c.id == job_id, jobs_table.c.status == JobStatus.QUEUED.value)
                .values(values)
                .returning(*jobs_table.c)
            ).first()
        return None if row is None else _job_record(row)

    def claim_next(
        self, limit: int, worker_id: str, lease_seconds: float, batch_id: str | None = None
    ) -> list[JobRecord]:
        """Claim up to ``limit`` queued jobs, oldest first; concurrent callers never get
        the same job."""
        _check_int("limit", limit, 1, 10_000)
        values = self._claim_values(worker_id, lease_seconds)
        candidates = select(jobs_table.c.id).where(jobs_table.c.status == JobStatus.QUEUED.value)
        if batch_id is not None:
            candidates = candidates.where(jobs_table.c.batch_id == batch_id)
        candidates = candidates.order_by(
            jobs_table.c.created_at, jobs_table.c.position, jobs_table.c.id
        ).limit(limit)
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        with self._transaction(write=True) as connection:
            job_ids = connection.scalars(candidates).all()
            if not job_ids:
                return []
            rows = connection.execute(
                update(jobs_table)
                .where(
                    jobs_table.c.id.in_(job_ids),
                    jobs_table.c.status == JobStatus.QUEUED.value,
                )
                .values(values)
                .returning(*jobs_table.c)
            ).all()
        records = [_job_record(row) for row in rows]
        return sorted(records, key=lambda job: (job.created_at, job.position, job.id))

    def _claim_values(self, worker_id: str, lease_seconds: float) -> dict[str, Any]:
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError(f"worker_id must be a non-empty string, got {worker_id!r}")
        now = _utcnow()
        return {
            "status": JobStatus.RUNNING.value,
            "attempts": jobs_table.c.attempts + 1,
            "worker_id": worker_id,
            "lease_expires_at": now + _lease(lease_seconds),
            "started_at": now,
            "finished_at": None,
            "progress": 0.0,
            "stage": None,
            "updated_at": now,
        }

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease of a job ``worker_id`` is running; False if it no longer is
        (cancelled, requeued, finished): the worker should stop."""
        now = _utcnow()
        return self._transition(
            job_id,
            [JobStatus.RUNNING],
            {"lease_expires_at": now + _lease(lease_seconds)},
            worker_id=worker_id,
            now=now,
        )

    def set_progress(
        self,
        job_id: str,
        progress: float,
        stage: str | None,
        *,
        worker_id: str | None = None,
    ) -> bool:
        """Record how far a running job is (0..1) and its stage name."""
        if (
            isinstance(progress, bool)
            or not isinstance(progress, int | float)
            or not 0 <= progress <= 1
        ):
            raise ValueError(f"progress must be a number in [0, 1], got {progress!r}")
        if stage is not None and (not isinstance(stage, str) or len(stage) > 64):
            raise ValueError(f"stage must be a string of at most 64 characters, got {stage!r}")
        return self._transition(
            job_id,
            [JobStatus.RUNNING],
            {"progress": float(progress), "stage": stage},
            worker_id=worker_id,
        )

    def succeed(
        self,
        job_id: str,
        output_uri: str,
        intermediates: Mapping[str, str] | None = None,
        input_sha256: str | None = None,
        *,
        metrics: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        outputs: Sequence[Mapping[str, Any]] | None = None,
        latent_uri: str | None = None,
        suppressor: str | None = None,
    ) -> bool:
        """running → succeeded, recording where the result (and intermediates) went.

        ``outputs``: every result of the job (one per sweep step); by default the one result.
        """
        if not isinstance(output_uri, str) or not output_uri:
            raise ValueError(f"output_uri must be a non-empty string, got {output_uri!r}")
        intermediates = _json_object(intermediates or {}, "intermediates")
        if not all(isinstance(uri, str) for uri in intermediates.values()):
            raise ValueError(f"intermediates must map names to URI strings, got {intermediates}")
        now = _utcnow()
        if outputs is None:
            outputs = [{"label": None, "edits": None, "uri": output_uri,
                        "intermediates": intermediates}]
        outputs = _json_ready([dict(o) for o in outputs], "outputs")
        if not outputs or outputs[0].get("uri") != output_uri:
            raise ValueError("outputs must start with the result at output_uri")
        values: dict[str, Any] = {
            "output_uri": output_uri,
            "intermediates": intermediates,
            "outputs": outputs,
            "latent_uri": latent_uri,
            "suppressor": suppressor,
            "metrics": _json_object(metrics or {}, "metrics"),
            "progress": 1.0,
            "stage": "done",
            "error_code": None,
            "error_message": None,
            "lease_expires_at": None,
            "finished_at": now,
        }
        if input_sha256 is not None:
            values["input_sha256"] = input_sha256
        return self._transition(
            job_id,
            [JobStatus.RUNNING],
            values,
            new_status=JobStatus.SUCCEEDED,
            worker_id=worker_id,
            now=now,
        )

    def fail(
        self,
        job_id: str,
        error_code: str,
        error_message: str,
        *,
        worker_id: str | None = None,
    ) -> bool:
        """queued|running → failed with a stable ``error_code`` and a human message.
        With ``worker_id``, only a job that worker is running."""
        _check_error(error_code, error_message)
        now = _utcnow()
        expected = [JobStatus.RUNNING] if worker_id else [JobStatus.QUEUED, JobStatus.RUNNING]
        return self._transition(
            job_id,
            expected,
            {
                "error_code": error_code,
                "error_message": error_message,
                "lease_expires_at": None,
                "finished_at": now,
            },
            new_status=JobStatus.FAILED,
            worker_id=worker_id,
            now=now,
        )

    def release(
        self,
        job_id: str,
        error_code: str,
        error_message: str,
        *,
        worker_id: str | None = None,
    ) -> JobStatus | None:
        """After a transient error: running → queued while attempts remain, else → failed.
        Returns the new status, or None if the job was not running (for ``worker_id``)."""
        _check_error(error_code, error_message)
        now = _utcnow()
        error = {"error_code": error_code, "error_message": error_message}
        attempts_left = jobs_table.c.attempts < jobs_table.c.max_attempts
        with self._transaction(write=True) as connection:
            for new_status, condition, values in (
                (JobStatus.QUEUED, attempts_left, _requeued_values()),
                (JobStatus.FAILED, ~attempts_left, {"lease_expires_at": None, "finished_at": now}),
            ):
                query = self._conditional_update(
                    job_id, [JobStatus.RUNNING], worker_id, {**values, **error}, new_status, now
                ).where(condition)
                if connection.execute(query).rowcount:
                    return new_status
        return None

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """queued|running → cancelled (a running job's worker sees it via is_cancelled or a
        failed heartbeat)."""
        now = _utcnow()
        query = self._conditional_update(
            job_id,
            [JobStatus.QUEUED, JobStatus.RUNNING],
            None,
            {"lease_expires_at": None, "finished_at": now},
            JobStatus.CANCELLED,
            now,
        )
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self._transaction(write=True) as connection:
            return connection.execute(query).rowcount == 1

    def cancel_batch(self, batch_id: str, owner: str | None = None) -> int:
        """Cancel every queued or running job of the batch; how many were cancelled."""
        now = _utcnow()
        query = (
            update(jobs_table)
            .where(
                jobs_table.c.batch_id == batch_id,
                jobs_table.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
            )
            .values(
                status=JobStatus.CANCELLED.value,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self._transaction(write=True) as connection:
            return connection.execute(query).rowcount

    def retry(self, job_id: str, owner: str | None = None) -> bool:
        """failed → queued as a fresh start: error, output and progress are cleared and
        ``attempts`` resets to 0, so the job again gets ``max_attempts`` tries."""
        now = _utcnow()
        values = {
            **_requeued_values(),
            "attempts": 0,
            "error_code": None,
            "error_message": None,
            "output_uri": None,
            "intermediates": {},
            "outputs": [],
            "latent_uri": None,
            "suppressor": None,
            "metrics": {},
            "started_at": None,
            "finished_at": None,
        }
        query = self._conditional_update(
            job_id, [JobStatus.FAILED], None, values, JobStatus.QUEUED, now
        )
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self._transaction(write=True) as connection:
            return connection.execute(query).rowcount == 1

    def requeue_expired(self, now: datetime | None = None) -> tuple[int, int]:
        """Running jobs whose lease ended before ``now``: back to queued while attempts
        remain, else failed with error_code ``worker_lost``. Returns (requeued, failed)."""
        if now is None:
            now = _utcnow()
        elif not isinstance(now, datetime) or now.tzinfo is None:
            raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
        expired = (
            jobs_table.c.status == JobStatus.RUNNING.value,
            jobs_table.c.lease_expires_at < now,
        )
        attempts_left = jobs_table.c.attempts < jobs_table.c.max_attempts
        requeue = (
            update(jobs_table)
            .where(*expired, attempts_left)
            .values(status=JobStatus.QUEUED.value, updated_at=now, **_requeued_values())
        )
        give_up = (
            update(jobs_table)
            .where(*expired, ~attempts_left)
            .values(
                status=JobStatus.FAILED.value,
                error_code=WORKER_LOST,
                error_message=(
                    "the worker running this job stopped renewing its lease, "
                    "and no attempts are left"
                ),
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
        with self._transaction(write=True) as connection:
            requeued = connection.execute(requeue).rowcount
            failed = connection.execute(give_up).rowcount
        return requeued, failed

    def _transition(
        self,
        job_id: str,
        expected: Iterable[JobStatus],
        values: dict[str, Any],
        *,
        new_status: JobStatus | None = None,
        worker_id: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        query = self._conditional_update(
            job_id, expected, worker_id, values, new_status, now or _utcnow()
        )
        with self._transaction(write=True) as connection:
            return connection.execute(query).rowcount == 1

    @staticmethod
    def _conditional_update(
        job_id: str,
        expected: Iterable[JobStatus],
        worker_id: str | None,
        values: dict[str, Any],
        new_status: JobStatus | None,
        now: datetime,
    ) -> Any:
        query = update(jobs_table).where(
            jobs_table.c.id == job_id,
            jobs_table.c.status.in_([status.value for status in expected]),
        )
        if worker_id is not None:
            query = query.where(jobs_table.c.worker_id == worker_id)
        if new_status is not None:
            values = {**values, "status": new_status.value}
        return query.values({**values, "updated_at": now})

    # -- connections --------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            if write and self.dialect == "sqlite":
                connection = connection.execution_options(facedit_sqlite_begin="IMMEDIATE")
            with connection.begin():
                yield connection


# -- helpers ------------------------------------------------------------------------------


def _normalise_url(database_url: str) -> URL:
    if not isinstance(database_url, str) or not database_url:
        raise ValueError(f"database_url must be a non-empty URL string, got {database_url!r}")
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ValueError(f"database_url {database_url!r} is not a database URL") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"database_url {url.render_as_string(hide_password=True)!r}: only sqlite:// and "
            "postgresql:// databases are supported"
        )
    return url


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory and not url.query.get("uri"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000}
    }
    if in_memory:
        # One shared connection keeps an in-memory database alive (for tests and tools).
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is always DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL (a persistent setting). Switching needs an exclusive
    lock and SQLite answers "database is locked" at once, without its busy handler, while
    another connection holds one — e.g. several processes opening a new database together —
    so wait and retry up to the busy timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0].lower()
            if mode not in ("wal", "memory"):  # an in-memory database has no file to switch
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("facedit_sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _lease(lease_seconds: float) -> timedelta:
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int | float)
        or not 0 < lease_seconds < math.inf
    ):
        raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
    return timedelta(seconds=lease_seconds)


def _requeued_values() -> dict[str, Any]:
    return {
        "worker_id": None,
        "lease_expires_at": None,
        "progress": 0.0,
        "stage": None,
    }


def _status(status: JobStatus | str) -> JobStatus:
    try:
        return JobStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in JobStatus)
        raise ValueError(f"status must be one of {choices}, got {status!r}") from None


def _check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high}, got {value!r}")


def _check_error(error_code: str, error_message: str) -> None:
    if not isinstance(error_code, str) or not error_code or len(error_code) > 64:
        raise ValueError(f"error_code must be a string of 1-64 characters, got {error_code!r}")
    if not isinstance(error_message, str):
        raise ValueError(f"error_message must be a string, got {error_message!r}")


def _json_object(value: Any, name: str) -> dict[str, Any]:
    """A deep, JSON-clean copy of a mapping, or ValueError naming ``name``."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    return _json_ready(dict(value), name)


def _json_ready(value: Any, name: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from exc


def check_edits(edits: Any, name: str = "edits") -> list[dict[str, Any]]:
    """A JSON-clean copy of an edit request ``[{"attribute", "strength" | "sweep", "layers"?},
    ...]``;
    InvalidEditRequest naming the offending entry otherwise. Extra keys are kept."""
    if isinstance(edits, str | bytes | Mapping) or not isinstance(edits, Sequence):
        raise InvalidEditRequest(f"{name} must be a list of edits, got {edits!r}")
    checked = []
    for index, edit in enumerate(edits):
        where = f"{name}[{index}]"
        if not isinstance(edit, Mapping):
            raise InvalidEditRequest(f"{where} must be an object, got {edit!r}")
        attribute = edit.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise InvalidEditRequest(f"{where}.attribute must be a non-empty string")
        if edit.get("sweep") is not None:
            _check_sweep(edit["sweep"], f"{where}.sweep")
        else:
            _check_number(edit.get("strength"), f"{where}.strength")
        layers = edit.get("layers")
        if layers is not None and (
            isinstance(layers, str | bytes)
            or not isinstance(layers, Sequence)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
        ):
            raise InvalidEditRequest(f"{where}.layers must be a list of integers, got {layers!r}")
        checked.append(_json_ready(dict(edit), where))
    return checked


def _check_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEditRequest(f"{name} must be a finite number, got {value!r}")


def _check_sweep(sweep: Any, name: str) -> None:
    if not isinstance(sweep, Mapping) or set(sweep) != {"start", "end", "steps"}:
        raise InvalidEditRequest(f"{name} must be {{start, end, steps}}, got {sweep!r}")
    _check_number(sweep["start"], f"{name}.start")
    _check_number(sweep["end"], f"{name}.end")
    if isinstance(sweep["steps"], bool) or not isinstance(sweep["steps"], int):
        raise InvalidEditRequest(f"{name}.steps must be an integer, got {sweep['steps']!r}")


def _new_job_row(
    job: NewJob, name: str, batch_id: str, position: int, owner: str | None, now: datetime
) -> dict[str, Any]:
    if not isinstance(job, NewJob):
        raise ValueError(f"{name} must be a NewJob, got {type(job).__name__}")
    if not isinstance(job.input_uri, str) or not job.input_uri:
        raise ValueError(f"{name}.input_uri must be a non-empty string, got {job.input_uri!r}")
    _check_int(f"{name}.max_attempts", job.max_attempts, 1, 100)
    return {
        "id": _new_id(),
        "batch_id": batch_id,
        "position": position,
        "owner": owner,
        "status": JobStatus.QUEUED.value,
        "edits": check_edits(job.edits, f"{name}.edits"),
        "options": _json_object(job.options, f"{name}.options"),
        "input_uri": job.input_uri,
        "input_name": job.input_name,
        "input_sha256": job.input_sha256,
        "output_uri": None,
        "intermediates": {},
        "outputs": [],
        "latent_uri": None,
        "suppressor": None,
        "metrics": {},
        "attempts": 0,
        "max_attempts": job.max_attempts,
        "error_code": None,
        "error_message": None,
        "progress": 0.0,
        "stage": None,
        "worker_id": None,
        "lease_expires_at": None,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
    }


def _same_request(existing: BatchRecord, request_hash: str | None) -> BatchRecord:
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            f"idempotency key {existing.idempotency_key!r} was already used for a different "
            f"request (batch {existing.id})"
        )
    return existing


def _batch_record(row: Mapping[str, Any], job_ids: Sequence[str]) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        owner=row["owner"],
        options=row["options"],
        callback_url=row["callback_url"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        created_at=row["created_at"],
        job_ids=tuple(job_ids),
    )


def _job_record(row: Row[Any]) -> JobRecord:
    values = dict(row._mapping)
    values["status"] = JobStatus(values["status"])
    values["progress"] = float(values["progress"])  # SQLite may hand back an int
    return JobRecord(**values)
