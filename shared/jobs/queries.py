"""Reads of jobs and batches: records, pages, an owner's jobs and batches newest first (keyset
pages), counts by status, the idempotency lookup and the finished jobs /metrics observes.

Each read is a function of an open connection, so that a write transaction can read through
it too (``create_batch`` looks up its idempotency key, a webhook delivery counts its batch's
jobs); :class:`JobQueries` runs each in a read transaction of its own, and
:class:`~shared.jobs.store.JobStore` inherits it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, func, or_, select

from shared.core.contracts import TERMINAL_STATUSES, JobStatus
from shared.jobs.checks import check_int, job_status
from shared.jobs.db import Database, survives_disconnects
from shared.jobs.records import (
    BatchRecord,
    BatchSummary,
    FinishedJob,
    JobRecord,
    from_row,
    job_record,
)
from shared.jobs.tables import Batch, Catalog, Job

jobs_table = Job.__table__
batches_table = Batch.__table__
catalogs_table = Catalog.__table__

OPEN_STATUSES = tuple(s.value for s in JobStatus if s not in TERMINAL_STATUSES)
MAX_PAGE = 1000

# Where a newest-first listing stands: the (created_at, id) of the last row handed out.
Position = tuple[datetime, str]


@dataclass(frozen=True)
class Page:
    """One page of a newest-first listing: its rows and, when more rows follow, the position
    to continue after (the next call's ``after``)."""

    items: list[Any]
    next: Position | None


def get_job(connection: Connection, job_id: str, owner: str | None = None) -> JobRecord | None:
    """The job, or None if there is none (or it belongs to another owner)."""
    query = select(jobs_table).where(jobs_table.c.id == job_id)
    if owner is not None:
        query = query.where(jobs_table.c.owner == owner)
    row = connection.execute(query).first()
    return None if row is None else job_record(row._mapping)


def get_batch(
    connection: Connection, batch_id: str, owner: str | None = None
) -> BatchRecord | None:
    """The batch, or None if there is none (or it belongs to another owner)."""
    query = select(batches_table).where(batches_table.c.id == batch_id)
    if owner is not None:
        query = query.where(batches_table.c.owner == owner)
    row = connection.execute(query).first()
    return None if row is None else _batch_record(connection, row._mapping)


def find_idempotent(connection: Connection, owner: str | None, key: str) -> BatchRecord | None:
    """The batch ``owner`` created with Idempotency-Key ``key``, if any (the anonymous
    owner, None, is one owner too: the unique index uses the same COALESCE)."""
    row = connection.execute(
        select(batches_table).where(
            func.coalesce(batches_table.c.owner, "") == (owner or ""),
            batches_table.c.idempotency_key == key,
        )
    ).first()
    return None if row is None else _batch_record(connection, row._mapping)


def _batch_record(connection: Connection, row: Any) -> BatchRecord:
    job_ids = connection.scalars(
        select(jobs_table.c.id)
        .where(jobs_table.c.batch_id == row["id"])
        .order_by(jobs_table.c.position)
    ).all()
    return from_row(BatchRecord, row, job_ids=tuple(job_ids))


def list_jobs(
    connection: Connection,
    batch_id: str,
    status: JobStatus | str | None = None,
    offset: int = 0,
    limit: int = 100,
    owner: str | None = None,
) -> list[JobRecord]:
    """A page of the batch's jobs in submission order, optionally of one status."""
    check_int("offset", offset, 0)
    check_int("limit", limit, 1, 1000)
    query = select(jobs_table).where(jobs_table.c.batch_id == batch_id)
    if status is not None:
        query = query.where(jobs_table.c.status == job_status(status).value)
    if owner is not None:
        query = query.where(jobs_table.c.owner == owner)
    query = query.order_by(jobs_table.c.position).offset(offset).limit(limit)
    return [job_record(row._mapping) for row in connection.execute(query)]


def _owned_by(table: Table, owner: str | None) -> Any:
    return table.c.owner.is_(None) if owner is None else table.c.owner == owner


def _newest_first(
    query: Select[Any],
    table: Table,
    owner: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    after: Position | None,
    limit: int,
) -> Select[Any]:
    """``query`` restricted to ``owner``'s rows created in [created_after, created_before)
    and strictly past the position ``after``, newest first by (created_at, id): one row more
    than ``limit``, to know whether another page follows.

    A keyset, not an offset: rows added while a client pages (newer than anything it has seen)
    never shift the pages it has yet to read, so nothing is skipped or repeated."""
    check_int("limit", limit, 1, MAX_PAGE)
    query = query.where(_owned_by(table, owner))
    if created_after is not None:
        query = query.where(table.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(table.c.created_at < created_before)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(table.c.created_at < at, and_(table.c.created_at == at, table.c.id < last_id))
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)


def _page(rows: list[Any], limit: int, make: Callable[[Any], Any]) -> Page:
    if len(rows) <= limit:
        return Page([make(row) for row in rows], None)
    last = rows[limit - 1]
    return Page([make(row) for row in rows[:limit]], (last.created_at, last.id))


def list_owner_jobs(
    connection: Connection,
    owner: str | None,
    statuses: Collection[JobStatus | str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: Position | None = None,
    limit: int = 100,
) -> Page:
    """A page of ``owner``'s jobs (of every batch), newest first, optionally only those in
    ``statuses`` and created in [created_after, created_before); ``after``: the previous
    page's ``next``."""
    query = select(jobs_table)
    if statuses:
        query = query.where(jobs_table.c.status.in_([job_status(s).value for s in statuses]))
    query = _newest_first(query, jobs_table, owner, created_after, created_before, after, limit)
    rows = connection.execute(query).all()
    return _page(rows, limit, lambda row: job_record(row._mapping))


def list_owner_batches(
    connection: Connection,
    owner: str | None,
    done: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: Position | None = None,
    limit: int = 100,
) -> Page:
    """A page of ``owner``'s batches with their jobs' counts, newest first; ``done``: only
    those with no job queued or running (True) or only those with one (False)."""
    query = select(batches_table)
    if done is not None:
        running = (
            select(jobs_table.c.id)
            .where(
                jobs_table.c.batch_id == batches_table.c.id,
                jobs_table.c.status.in_(OPEN_STATUSES),
            )
            .exists()
        )
        query = query.where(~running if done else running)
    query = _newest_first(query, batches_table, owner, created_after, created_before, after, limit)
    rows = connection.execute(query).all()
    counts = count_by_batch(connection, [row.id for row in rows[:limit]])
    return _page(
        rows, limit, lambda row: from_row(BatchSummary, row._mapping, counts=counts[row.id])
    )


def count_by_batch(connection: Connection, batch_ids: Collection[str]) -> dict[str, dict[str, int]]:
    """For each of ``batch_ids``, what :func:`count_by_status` counts for it alone (every
    status, zeros included), in one query for them all."""
    counts = {batch_id: {status.value: 0 for status in JobStatus} for batch_id in batch_ids}
    if not counts:
        return counts
    query = (
        select(jobs_table.c.batch_id, jobs_table.c.status, func.count())
        .where(jobs_table.c.batch_id.in_(list(counts)))
        .group_by(jobs_table.c.batch_id, jobs_table.c.status)
    )
    for batch_id, status, count in connection.execute(query):
        counts[batch_id][status] = count
    return counts


def count_by_status(
    connection: Connection,
    batch_ids: Collection[str] | None = None,
    statuses: Collection[JobStatus | str] | None = None,
) -> dict[str, int]:
    """How many jobs are in each status — every status, zeros included — of the batches
    ``batch_ids`` (default: all jobs), counting only ``statuses`` (default: all)."""
    counts = {status.value: 0 for status in JobStatus}
    query = select(jobs_table.c.status, func.count()).group_by(jobs_table.c.status)
    if batch_ids is not None:
        query = query.where(jobs_table.c.batch_id.in_(list(batch_ids)))
    if statuses is not None:
        query = query.where(jobs_table.c.status.in_([job_status(s).value for s in statuses]))
    for status, count in connection.execute(query):
        counts[status] = count
    return counts


def due_jobs(connection: Connection, now: datetime) -> int:
    """Queued jobs that may be claimed now (not waiting out a transient-retry backoff)."""
    return int(connection.scalar(
        select(func.count()).where(
            jobs_table.c.status == JobStatus.QUEUED.value,
            or_(jobs_table.c.not_before.is_(None), jobs_table.c.not_before <= now),
        )
    ) or 0)


def read_catalog(connection: Connection, queue: str) -> dict[str, Any] | None:
    """The attribute catalog the workers of ``queue`` last published, or None."""
    return connection.scalar(
        select(catalogs_table.c.document).where(catalogs_table.c.queue == queue)
    )


def status_of(connection: Connection, job_id: str) -> JobStatus | None:
    """The job's status (None for an unknown job)."""
    status = connection.scalar(select(jobs_table.c.status).where(jobs_table.c.id == job_id))
    return None if status is None else JobStatus(status)


def finished_jobs(connection: Connection, since: datetime, limit: int) -> list[FinishedJob]:
    """Succeeded and failed jobs that finished after ``since``, in finishing order (at most
    ``limit``)."""
    check_int("limit", limit, 1)
    query = (
        select(*(jobs_table.c[f.name] for f in dataclasses.fields(FinishedJob)))
        .where(
            jobs_table.c.finished_at > since,
            jobs_table.c.status.in_([JobStatus.SUCCEEDED.value, JobStatus.FAILED.value]),
        )
        .order_by(jobs_table.c.finished_at)
        .limit(limit)
    )
    return [
        from_row(FinishedJob, row._mapping, status=JobStatus(row.status))
        for row in connection.execute(query)
    ]


class JobQueries:
    """The reads above, each in a read transaction of its own (same names and arguments,
    without the connection)."""

    db: Database

    @survives_disconnects
    def get_job(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        """The job, or None if there is none (or it belongs to another owner)."""
        with self.db.transaction(write=False) as connection:
            return get_job(connection, job_id, owner)

    @survives_disconnects
    def get_batch(self, batch_id: str, owner: str | None = None) -> BatchRecord | None:
        """The batch, or None if there is none (or it belongs to another owner)."""
        with self.db.transaction(write=False) as connection:
            return get_batch(connection, batch_id, owner)

    @survives_disconnects
    def find_idempotent(self, owner: str | None, key: str) -> BatchRecord | None:
        """The batch ``owner`` created with Idempotency-Key ``key``, if any."""
        with self.db.transaction(write=False) as connection:
            return find_idempotent(connection, owner, key)

    @survives_disconnects
    def list_jobs(
        self,
        batch_id: str,
        status: JobStatus | str | None = None,
        offset: int = 0,
        limit: int = 100,
        owner: str | None = None,
    ) -> list[JobRecord]:
        """A page of the batch's jobs in submission order, optionally of one status."""
        with self.db.transaction(write=False) as connection:
            return list_jobs(connection, batch_id, status, offset, limit, owner)

    @survives_disconnects
    def list_owner_jobs(
        self,
        owner: str | None,
        statuses: Collection[JobStatus | str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: Position | None = None,
        limit: int = 100,
    ) -> Page:
        """A page of ``owner``'s jobs, newest first (see :func:`list_owner_jobs`)."""
        with self.db.transaction(write=False) as connection:
            return list_owner_jobs(
                connection, owner, statuses, created_after, created_before, after, limit
            )

    @survives_disconnects
    def list_owner_batches(
        self,
        owner: str | None,
        done: bool | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: Position | None = None,
        limit: int = 100,
    ) -> Page:
        """A page of ``owner``'s batches with their counts, newest first (see
        :func:`list_owner_batches`)."""
        with self.db.transaction(write=False) as connection:
            return list_owner_batches(
                connection, owner, done, created_after, created_before, after, limit
            )

    @survives_disconnects
    def count_by_status(
        self,
        batch_ids: Collection[str] | None = None,
        statuses: Collection[JobStatus | str] | None = None,
    ) -> dict[str, int]:
        """How many jobs are in each status (see :func:`count_by_status`)."""
        with self.db.transaction(write=False) as connection:
            return count_by_status(connection, batch_ids, statuses)

    @survives_disconnects
    def batch_counts(self, batch_id: str) -> dict[str, int]:
        """How many of the batch's jobs are in each status (every status, zeros included)."""
        return self.count_by_status(batch_ids=[batch_id])

    @survives_disconnects
    def is_cancelled(self, job_id: str) -> bool:
        """Whether the job was cancelled (False for an unknown job)."""
        with self.db.transaction(write=False) as connection:
            return status_of(connection, job_id) == JobStatus.CANCELLED

    @survives_disconnects
    def cancelled_among(self, job_ids: Sequence[str]) -> set[str]:
        """Those of ``job_ids`` that were cancelled, in one query."""
        if not job_ids:
            return set()
        with self.db.transaction(write=False) as connection:
            return set(connection.scalars(select(jobs_table.c.id).where(
                jobs_table.c.id.in_(list(job_ids)),
                jobs_table.c.status == JobStatus.CANCELLED.value,
            )))

    @survives_disconnects
    def finished_jobs(self, since: datetime, limit: int) -> list[FinishedJob]:
        """Succeeded and failed jobs that finished after ``since``, oldest first."""
        with self.db.transaction(write=False) as connection:
            return finished_jobs(connection, since, limit)

    @survives_disconnects
    def due_jobs(self) -> int:
        """Queued jobs that may be claimed now (see :func:`due_jobs`)."""
        with self.db.transaction(write=False) as connection:
            return due_jobs(connection, datetime.now(UTC))

    @survives_disconnects
    def read_catalog(self, queue: str) -> dict[str, Any] | None:
        """The attribute catalog the workers of ``queue`` last published, or None."""
        with self.db.transaction(write=False) as connection:
            return read_catalog(connection, queue)
