"""The job store: creating batches, and the job state machine.

States: ``queued → running → succeeded | failed | cancelled`` (plus ``failed → queued`` by
retry and ``running → queued`` when a lease expires). Every transition is one conditional
UPDATE (``WHERE id = :id AND status IN (:expected)``) and reports whether it won, so a
duplicated or redelivered task finds nothing to do. PostgreSQL claims with
``SELECT … FOR UPDATE SKIP LOCKED``; on SQLite every write transaction is ``BEGIN IMMEDIATE``
(:mod:`shared.jobs.db`).

The reads (:class:`~shared.jobs.queries.JobQueries`) come with the store: ``get_job``,
``get_batch``, ``list_jobs``, ``batch_counts``, ``count_by_status``, ``is_cancelled``, ….
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, insert, or_, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from shared.core.contracts import JobStatus
from shared.core.errors import IdempotencyConflict
from shared.jobs import queries
from shared.jobs.checks import (
    check_error,
    check_int,
    check_text,
    json_object,
    json_ready,
    lease,
)
from shared.jobs.db import Database, survives_disconnects
from shared.jobs.queries import JobQueries
from shared.jobs.records import (
    BatchRecord,
    JobRecord,
    NewJob,
    from_row,
    job_record,
    new_id,
    new_job_row,
    unstarted,
)
from shared.jobs.tables import Batch, Catalog, Job

WORKER_LOST = "worker_lost"
MAX_RETRY_DELAY_S = 60.0

jobs_table = Job.__table__
batches_table = Batch.__table__
catalogs_table = Catalog.__table__


class JobStore(JobQueries):
    """Batches and jobs in SQLite (embedded) or PostgreSQL (services)."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url)

    @property
    def url(self) -> URL:
        return self.db.url

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def __repr__(self) -> str:
        return f"JobStore({self.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Close pooled connections (the store stays usable; new ones open on demand)."""
        self.db.close()

    def forget_connections(self) -> None:
        """In a process forked from this one: drop the inherited database connections
        without closing them (they belong to the parent)."""
        self.db.forget_connections()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> str | None:
        """Upgrade the schema to the newest revision; return it (see Database.migrate)."""
        return self.db.migrate()

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        return self.db.current_revision()

    def head_revision(self) -> str | None:
        """The newest revision shipped with this code."""
        return self.db.head_revision()

    # -- creating -----------------------------------------------------------------------

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
            check_text(name, value)
        now = _utcnow()
        batch_row = {
            "id": new_id(),
            "owner": owner,
            "options": json_object(options or {}, "options"),
            "callback_url": callback_url,
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "created_at": now,
        }
        job_rows = [
            new_job_row(job, f"jobs[{i}]", batch_row["id"], i, owner, now)
            for i, job in enumerate(jobs)
        ]
        try:
            with self.db.transaction(write=True) as connection:
                if idempotency_key is not None:
                    existing = queries.find_idempotent(connection, owner, idempotency_key)
                    if existing is not None:
                        return _same_request(existing, request_hash)
                connection.execute(insert(batches_table), batch_row)
                connection.execute(insert(jobs_table), job_rows)
                return from_row(BatchRecord, batch_row, job_ids=tuple(r["id"] for r in job_rows))
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Another request with the same key won the race; answer as if we came second.
            existing = self.find_idempotent(owner, idempotency_key)
            if existing is None:
                raise
            return _same_request(existing, request_hash)

    # -- transitions --------------------------------------------------------------------

    @survives_disconnects
    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """queued → running for ``worker_id``; the claimed job, or None if it was not queued."""
        values = _claim_values(worker_id, lease_seconds)
        with self.db.transaction(write=True) as connection:
            row = connection.execute(
                update(jobs_table)
                .where(jobs_table.c.id == job_id, jobs_table.c.status == JobStatus.QUEUED.value)
                .values(values)
                .returning(*jobs_table.c)
            ).first()
        return None if row is None else job_record(row._mapping)

    @survives_disconnects
    def claim_next(
        self, limit: int, worker_id: str, lease_seconds: float, batch_id: str | None = None
    ) -> list[JobRecord]:
        """Claim up to ``limit`` queued jobs, oldest first; concurrent callers never get
        the same job."""
        check_int("limit", limit, 1, 10_000)
        values = _claim_values(worker_id, lease_seconds)
        now = _utcnow()
        candidates = select(jobs_table.c.id).where(
            jobs_table.c.status == JobStatus.QUEUED.value, _due(now)
        )
        if batch_id is not None:
            candidates = candidates.where(jobs_table.c.batch_id == batch_id)
        candidates = candidates.order_by(
            jobs_table.c.created_at, jobs_table.c.position, jobs_table.c.id
        ).limit(limit)
        if self.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        with self.db.transaction(write=True) as connection:
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
        records = [job_record(row._mapping) for row in rows]
        return sorted(records, key=lambda job: (job.created_at, job.position, job.id))

    @survives_disconnects
    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease of a job ``worker_id`` is running; False if it no longer is
        (cancelled, requeued, finished): the worker should stop."""
        now = _utcnow()
        return self._transition(
            job_id,
            [JobStatus.RUNNING],
            {"lease_expires_at": now + lease(lease_seconds)},
            worker_id=worker_id,
            now=now,
        )

    @survives_disconnects
    def set_progress(
        self,
        job_id: str,
        progress: float,
        stage: str | None,
        *,
        worker_id: str | None = None,
    ) -> bool:
        """Record how far a running job is (0..1) and its stage name."""
        _check_progress(progress, stage)
        return self._transition(
            job_id,
            [JobStatus.RUNNING],
            {"progress": float(progress), "stage": stage},
            worker_id=worker_id,
        )

    @survives_disconnects
    def set_progress_many(self, job_ids: Sequence[str], progress: float, stage: str | None) -> int:
        """:meth:`set_progress` for the running ones of ``job_ids`` in one statement (a batch
        after each stage); how many it updated."""
        _check_progress(progress, stage)
        if not job_ids:
            return 0
        return self._execute(_conditional_update(
            list(job_ids), [JobStatus.RUNNING], None,
            {"progress": float(progress), "stage": stage}, None, _utcnow(),
        ))  # fmt: skip

    @survives_disconnects
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
        intermediates = json_object(intermediates or {}, "intermediates")
        if not all(isinstance(uri, str) for uri in intermediates.values()):
            raise ValueError(f"intermediates must map names to URI strings, got {intermediates}")
        now = _utcnow()
        if outputs is None:
            outputs = [{"label": None, "edits": None, "uri": output_uri,
                        "intermediates": intermediates}]  # fmt: skip
        outputs = json_ready([dict(o) for o in outputs], "outputs")
        if not outputs or outputs[0].get("uri") != output_uri:
            raise ValueError("outputs must start with the result at output_uri")
        values: dict[str, Any] = {
            "output_uri": output_uri,
            "intermediates": intermediates,
            "outputs": outputs,
            "latent_uri": latent_uri,
            "suppressor": suppressor,
            "metrics": json_object(metrics or {}, "metrics"),
            "progress": 1.0,
            "stage": "done",
            "error_code": None,
            "error_message": None,
            "lease_expires_at": None,
            "finished_at": now,
        }
        if input_sha256 is not None:
            values["input_sha256"] = input_sha256
        query = _conditional_update(
            job_id, [JobStatus.RUNNING], worker_id, values, JobStatus.SUCCEEDED, now
        )
        with self.db.transaction(write=True) as connection:
            if connection.execute(query).rowcount == 1:
                return True
            # Repeated after a dropped connection whose commit went through: already done.
            done = connection.execute(
                select(jobs_table.c.status, jobs_table.c.output_uri)
                .where(jobs_table.c.id == job_id)
            ).first()
        return done is not None and tuple(done) == (JobStatus.SUCCEEDED.value, output_uri)

    @survives_disconnects
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
        check_error(error_code, error_message)
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

    @survives_disconnects
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
        check_error(error_code, error_message)
        now = _utcnow()
        error = {"error_code": error_code, "error_message": error_message}
        attempts_left = jobs_table.c.attempts < jobs_table.c.max_attempts
        with self.db.transaction(write=True) as connection:
            for new_status, condition, values in (
                (JobStatus.QUEUED, attempts_left, _requeued_values()),
                (JobStatus.FAILED, ~attempts_left, {"lease_expires_at": None, "finished_at": now}),
            ):
                query = _conditional_update(
                    job_id, [JobStatus.RUNNING], worker_id, {**values, **error}, new_status, now
                ).where(condition)
                if connection.execute(query).rowcount:
                    return new_status
        return None

    @survives_disconnects
    def postpone(
        self,
        job_id: str,
        error_code: str,
        error_message: str,
        *,
        first_delay_s: float,
        budget_s: float,
        worker_id: str | None = None,
        max_delay_s: float = MAX_RETRY_DELAY_S,
    ) -> JobStatus | None:
        """After a transient error (storage, database or broker down): running → queued,
        not to be claimed before an exponential, jittered backoff — without using up one of
        the attempts that guard against poison jobs — until ``budget_s`` has passed since
        the first such error; then → failed with ``error_code``. The new status, or None if
        the job was not running (for ``worker_id``)."""
        check_error(error_code, error_message)
        now = _utcnow()
        with self.db.transaction(write=True) as connection:
            query = select(jobs_table.c.retries, jobs_table.c.retry_until).where(
                jobs_table.c.id == job_id, jobs_table.c.status == JobStatus.RUNNING.value
            )
            if worker_id is not None:
                query = query.where(jobs_table.c.worker_id == worker_id)
            row = connection.execute(query).first()
            if row is None:
                return None
            until = row.retry_until or now + timedelta(seconds=budget_s)
            error = {"error_code": error_code, "error_message": error_message}
            if now >= until:
                message = f"{error_message} (still failing after {budget_s:g} s of retries)"
                values = {**error, "error_message": message[:4000], "lease_expires_at": None,
                          "finished_at": now, "not_before": None}
                new_status = JobStatus.FAILED
            else:
                delay = retry_delay(row.retries, first_delay_s, max_delay_s)
                values = {**_requeued_values(), **error, "retries": row.retries + 1,
                          "retry_until": until, "not_before": now + timedelta(seconds=delay),
                          # the attempt that ended here does not count: only worker deaths do
                          "attempts": case((jobs_table.c.attempts > 0, jobs_table.c.attempts - 1),
                                           else_=0)}
                new_status = JobStatus.QUEUED
            changed = connection.execute(
                _conditional_update(job_id, [JobStatus.RUNNING], worker_id, values, new_status,
                                    now)
            ).rowcount
        return new_status if changed else None

    @survives_disconnects
    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """queued|running → cancelled (a running job's worker sees it via is_cancelled or a
        failed heartbeat)."""
        now = _utcnow()
        query = _conditional_update(
            job_id,
            [JobStatus.QUEUED, JobStatus.RUNNING],
            None,
            {"lease_expires_at": None, "finished_at": now},
            JobStatus.CANCELLED,
            now,
        )
        return self._execute(_owned(query, owner)) == 1

    @survives_disconnects
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
        return self._execute(_owned(query, owner))

    @survives_disconnects
    def retry(self, job_id: str, owner: str | None = None) -> bool:
        """failed → queued as a fresh start: the job's state is that of a new job again
        (no error, output or progress, ``attempts`` 0: it again gets ``max_attempts`` tries)."""
        now = _utcnow()
        query = _conditional_update(
            job_id, [JobStatus.FAILED], None, unstarted(), JobStatus.QUEUED, now
        )
        return self._execute(_owned(query, owner)) == 1

    @survives_disconnects
    def publish_catalog(self, queue: str, document: Mapping[str, Any]) -> None:
        """Record what the workers of ``queue`` can do (their attribute catalog)."""
        if not isinstance(queue, str) or not 0 < len(queue) <= 255:
            raise ValueError(f"queue must be a name of 1-255 characters, got {queue!r}")
        row = {"queue": queue, "document": json_object(document, "document"),
               "published_at": _utcnow()}
        with self.db.transaction(write=True) as connection:
            if self.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as upsert
            else:
                from sqlalchemy.dialects.sqlite import insert as upsert
            statement = upsert(catalogs_table).values(row)
            connection.execute(statement.on_conflict_do_update(
                index_elements=[catalogs_table.c.queue],
                set_={"document": statement.excluded.document,
                      "published_at": statement.excluded.published_at},
            ))

    @survives_disconnects
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
        with self.db.transaction(write=True) as connection:
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
        query = _conditional_update(
            job_id, expected, worker_id, values, new_status, now or _utcnow()
        )
        return self._execute(query) == 1

    def _execute(self, statement: Any) -> int:
        """Run one write statement in a transaction of its own; the rows it changed."""
        with self.db.transaction(write=True) as connection:
            return connection.execute(statement).rowcount


# -- helpers ------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _due(now: datetime) -> Any:
    """A queued job whose transient-retry backoff (if any) is over."""
    return or_(jobs_table.c.not_before.is_(None), jobs_table.c.not_before <= now)


def retry_delay(retries: int, first_s: float, max_s: float = MAX_RETRY_DELAY_S) -> float:
    """Seconds before transient retry number ``retries + 1``: ``first_s`` doubling, at most
    ``max_s``, times a random factor in [0.5, 1] so that jobs failed together spread out."""
    return min(max_s, first_s * 2 ** min(retries, 30)) * random.uniform(0.5, 1.0)


def _check_progress(progress: Any, stage: Any) -> None:
    if isinstance(progress, bool) or not isinstance(progress, int | float) \
            or not 0 <= progress <= 1:
        raise ValueError(f"progress must be a number in [0, 1], got {progress!r}")
    if stage is not None and (not isinstance(stage, str) or len(stage) > 64):
        raise ValueError(f"stage must be a string of at most 64 characters, got {stage!r}")


def _conditional_update(
    job_id: str | list[str],
    expected: Iterable[JobStatus],
    worker_id: str | None,
    values: dict[str, Any],
    new_status: JobStatus | None,
    now: datetime,
) -> Any:
    """UPDATE the job (or each of a list of jobs) if its status is one of ``expected`` (and
    it is ``worker_id``'s)."""
    matches = jobs_table.c.id.in_(job_id) if isinstance(job_id, list) \
        else jobs_table.c.id == job_id
    query = update(jobs_table).where(
        matches, jobs_table.c.status.in_([status.value for status in expected]),
    )
    if worker_id is not None:
        query = query.where(jobs_table.c.worker_id == worker_id)
    if new_status is not None:
        values = {**values, "status": new_status.value}
    return query.values({**values, "updated_at": now})


def _owned(query: Any, owner: str | None) -> Any:
    return query if owner is None else query.where(jobs_table.c.owner == owner)


def _claim_values(worker_id: str, lease_seconds: float) -> dict[str, Any]:
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError(f"worker_id must be a non-empty string, got {worker_id!r}")
    now = _utcnow()
    return {
        "status": JobStatus.RUNNING.value,
        "attempts": jobs_table.c.attempts + 1,
        "worker_id": worker_id,
        "lease_expires_at": now + lease(lease_seconds),
        "started_at": now,
        "finished_at": None,
        "progress": 0.0,
        "stage": None,
        "updated_at": now,
    }


def _requeued_values() -> dict[str, Any]:
    return {
        "worker_id": None,
        "lease_expires_at": None,
        "progress": 0.0,
        "stage": None,
    }


def _same_request(existing: BatchRecord, request_hash: str | None) -> BatchRecord:
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            f"idempotency key {existing.idempotency_key!r} was already used for a different "
            f"request (batch {existing.id})"
        )
    return existing
