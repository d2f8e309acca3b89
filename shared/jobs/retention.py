"""Retention: removing what has expired — old uploads, the stored results of long-finished
jobs, the rows of long-finished batches — for ``facedit gc`` and the workers' sweep.

Three ages, each in days (0 keeps that kind forever), counted back from ``now``:

- **uploads** (``uploads/…`` objects, by their last-modified time): removed unless a queued
  or running job reads one (checked just before each group of deletions);
- **outputs** (``outputs/<batch>/<job>/…`` objects): removed once their job finished that
  long ago, or when no job row owns them any more. A queued or running job's objects are
  never touched (a requeued job reuses what an earlier attempt stored). A succeeded job whose
  results are gone keeps its row, with no result URIs and ``stage = "outputs_expired"`` —
  also when the objects went by other means (an S3 lifecycle rule), as long as its result
  URIs name this storage; results stored elsewhere (``facedit run``'s ``--out`` folders)
  are neither removed nor marked;
- **jobs**: a batch whose jobs all finished that long ago goes with its jobs; one queued or
  running job keeps its whole batch. Finished webhook deliveries (delivered or failed) that
  old go too.

Only objects under ``uploads/`` and ``outputs/`` are ever removed; a storage belongs to one
job database (an ``outputs/`` object no row of it owns is an orphan). The SQL is here; the
objects are listed and deleted through :class:`shared.core.storage.Storage`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from shared.core.contracts import TERMINAL_STATUSES, JobStatus
from shared.core.errors import InvalidStorageKey
from shared.core.storage import ObjectInfo, Storage
from shared.jobs.queries import OPEN_STATUSES
from shared.jobs.store import JobStore
from shared.jobs.tables import Batch, Job, WebhookDelivery

UPLOADS = "uploads"  # the storage folders retention looks after (api/inputs.py names them too)
OUTPUTS = "outputs"
OUTPUTS_EXPIRED = "outputs_expired"  # the stage of a succeeded job whose results were removed
CHUNK = 500  # jobs, batches or objects per statement

jobs_table = Job.__table__
batches_table = Batch.__table__
deliveries_table = WebhookDelivery.__table__
_TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)
_FINISHED_DELIVERIES = ["delivered", "failed"]
# When a finished job finished (every transition to a final state sets finished_at; a row
# without one counts from its last update).
_finished_at = func.coalesce(jobs_table.c.finished_at, jobs_table.c.updated_at)


@dataclass(frozen=True)
class Retention:
    """How many days each kind is kept; 0 keeps it forever."""

    uploads_days: float = 0.0
    outputs_days: float = 0.0
    jobs_days: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number of days >= 0, got {value!r}")

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        """FACEDIT_RETAIN_UPLOADS_DAYS, FACEDIT_RETAIN_OUTPUTS_DAYS, FACEDIT_RETAIN_JOBS_DAYS."""
        return cls(settings.retain_uploads_days, settings.retain_outputs_days,
                   settings.retain_jobs_days)

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        """For each kind, the time before which it has expired (None: kept forever)."""
        return {kind: now - timedelta(days=days) if days else None
                for kind, days in (("uploads", self.uploads_days),
                                   ("outputs", self.outputs_days), ("jobs", self.jobs_days))}


@dataclass
class Removed:
    count: int = 0
    bytes: int = 0

    def add(self, objects: list[ObjectInfo]) -> None:
        self.count += len(objects)
        self.bytes += sum(o.size for o in objects)


@dataclass
class GcReport:
    """What one collection removed (or, with ``dry_run``, would remove)."""

    now: datetime
    dry_run: bool
    retention: Retention
    uploads: Removed = field(default_factory=Removed)  # objects
    outputs: Removed = field(default_factory=Removed)  # objects
    results_expired: int = 0  # succeeded jobs whose result URIs were cleared
    jobs: int = 0  # rows
    batches: int = 0  # rows
    webhook_deliveries: int = 0  # rows
    uploads_in_use: int = 0  # expired uploads kept: a queued or running job reads them

    @property
    def removed_anything(self) -> bool:
        return bool(self.uploads.count or self.outputs.count or self.results_expired
                    or self.jobs or self.batches or self.webhook_deliveries)

    def to_dict(self) -> dict[str, Any]:
        answer = asdict(self)
        answer["now"] = self.now.isoformat()
        answer["cutoffs"] = {kind: cutoff.isoformat() if cutoff else None
                             for kind, cutoff in self.retention.cutoffs(self.now).items()}
        return answer

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (f"{verb} {self.uploads.count} upload(s) ({self.uploads.bytes} bytes), "
                f"{self.outputs.count} output object(s) ({self.outputs.bytes} bytes), "
                f"the results of {self.results_expired} job(s), {self.jobs} job(s) in "
                f"{self.batches} batch(es), {self.webhook_deliveries} webhook deliveries; "
                f"kept {self.uploads_in_use} expired upload(s) that unfinished jobs read")


def collect_garbage(
    store: JobStore,
    storage: Storage,
    retention: Retention,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Remove what ``retention`` says has expired at ``now`` (default: the current time);
    with ``dry_run``, only count it. Outputs first, then uploads, then rows."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    report = GcReport(now=now, dry_run=dry_run, retention=retention)
    cutoffs = retention.cutoffs(now)
    if cutoffs["outputs"] is not None:
        _collect_outputs(store, storage, cutoffs["outputs"], report)
        _expire_results(store, storage, cutoffs["outputs"], report)
    if cutoffs["uploads"] is not None:
        _collect_uploads(store, storage, cutoffs["uploads"], report)
    if cutoffs["jobs"] is not None:
        _collect_batches(store, cutoffs["jobs"], report)
        _collect_deliveries(store, cutoffs["jobs"], report)
    return report


# -- objects --------------------------------------------------------------------------------


def _older(storage: Storage, folder: str, cutoff: datetime) -> Iterator[list[ObjectInfo]]:
    """The objects under ``folder/`` written before ``cutoff``, in groups of CHUNK."""
    group: list[ObjectInfo] = []
    for info in storage.list(folder + "/"):
        if info.modified < cutoff:
            group.append(info)
            if len(group) >= CHUNK:
                yield group
                group = []
    if group:
        yield group


def _collect_outputs(store: JobStore, storage: Storage, cutoff: datetime,
                     report: GcReport) -> None:
    for group in _older(storage, OUTPUTS, cutoff):
        by_job: dict[str, list[ObjectInfo]] = {}
        for info in group:
            parts = info.key.split("/")
            if len(parts) >= 4:  # outputs/<batch>/<job>/<name>: the layout the runner writes
                by_job.setdefault(parts[2], []).append(info)
        with store.db.transaction(write=False) as connection:
            keep = _jobs_keeping_outputs(connection, list(by_job), cutoff)
        expired = [info for job_id, infos in by_job.items() if job_id not in keep
                   for info in infos]
        if expired and not report.dry_run:
            storage.delete_many(info.key for info in expired)
        report.outputs.add(expired)


def _jobs_keeping_outputs(connection: Connection, job_ids: list[str],
                          cutoff: datetime) -> set[str]:
    """Of ``job_ids``, those whose objects stay: the job is queued or running, or finished
    at or after ``cutoff`` (a job with no row keeps nothing)."""
    if not job_ids:
        return set()
    rows = connection.execute(
        select(jobs_table.c.id).where(
            jobs_table.c.id.in_(job_ids),
            or_(jobs_table.c.status.in_(OPEN_STATUSES), _finished_at >= cutoff),
        )
    )
    return {row.id for row in rows}


def _expire_results(store: JobStore, storage: Storage, cutoff: datetime,
                    report: GcReport) -> None:
    """Clear the result URIs of succeeded jobs that finished before ``cutoff`` and whose
    results this storage holds (or held)."""
    after = ""
    while True:
        with store.db.transaction(write=False) as connection:
            rows = connection.execute(
                select(jobs_table.c.id, jobs_table.c.output_uri, jobs_table.c.latent_uri)
                .where(
                    jobs_table.c.status == JobStatus.SUCCEEDED.value,
                    _finished_at < cutoff,
                    or_(jobs_table.c.output_uri.is_not(None), jobs_table.c.latent_uri.is_not(None)),
                    jobs_table.c.id > after,
                )
                .order_by(jobs_table.c.id)
                .limit(CHUNK)
            ).all()
        if not rows:
            return
        after = rows[-1].id
        ours = [row.id for row in rows
                if _stored_output(storage, row.output_uri or row.latent_uri)]
        if ours and not report.dry_run:
            with store.db.transaction(write=True) as connection:
                connection.execute(
                    update(jobs_table)
                    .where(jobs_table.c.id.in_(ours),
                           jobs_table.c.status == JobStatus.SUCCEEDED.value)
                    .values(output_uri=None, intermediates={}, outputs=[], latent_uri=None,
                            stage=OUTPUTS_EXPIRED, updated_at=datetime.now(UTC))
                )
        report.results_expired += len(ours)


def _stored_output(storage: Storage, uri: str) -> bool:
    """Whether ``uri`` names an ``outputs/`` object of ``storage``."""
    try:
        return storage.key_from_uri(uri).startswith(OUTPUTS + "/")
    except (InvalidStorageKey, ValueError):
        return False


def _collect_uploads(store: JobStore, storage: Storage, cutoff: datetime,
                     report: GcReport) -> None:
    for group in _older(storage, UPLOADS, cutoff):
        by_uri = {storage.uri(info.key): info for info in group}
        # Read just before deleting: a job created after this read and before the deletion
        # (submitting an upload older than the retention, in that instant) would fail with
        # input_not_found.
        with store.db.transaction(write=False) as connection:
            in_use = set(connection.scalars(
                select(jobs_table.c.input_uri).distinct().where(
                    jobs_table.c.status.in_(OPEN_STATUSES), jobs_table.c.input_uri.in_(list(by_uri))
                )
            ))
        expired = [info for uri, info in by_uri.items() if uri not in in_use]
        if expired and not report.dry_run:
            storage.delete_many(info.key for info in expired)
        report.uploads.add(expired)
        report.uploads_in_use += len(by_uri) - len(expired)


# -- rows -----------------------------------------------------------------------------------


def _collect_batches(store: JobStore, cutoff: datetime, report: GcReport) -> None:
    """Delete the batches (with their jobs) created before ``cutoff`` whose jobs all finished
    before it."""
    jobs = jobs_table
    unfinished_or_recent = exists().where(
        jobs.c.batch_id == batches_table.c.id,
        or_(jobs.c.status.not_in(_TERMINAL), _finished_at >= cutoff),
    )
    after = ""
    while True:
        candidates = (
            select(batches_table.c.id)
            .where(batches_table.c.created_at < cutoff, ~unfinished_or_recent,
                   batches_table.c.id > after)
            .order_by(batches_table.c.id)
            .limit(CHUNK)
        )
        with store.db.transaction(write=not report.dry_run) as connection:
            batch_ids = list(connection.scalars(candidates))
            if not batch_ids:
                return
            after = batch_ids[-1]
            # The conditions again, row by row: a job retried (failed → queued) meanwhile
            # stays, and so does its batch.
            expired_jobs = and_(jobs.c.batch_id.in_(batch_ids), jobs.c.status.in_(_TERMINAL),
                                _finished_at < cutoff)
            if report.dry_run:
                report.jobs += connection.scalar(select(func.count()).where(expired_jobs)) or 0
                report.batches += len(batch_ids)
                continue
            report.jobs += connection.execute(delete(jobs).where(expired_jobs)).rowcount
            report.batches += connection.execute(
                delete(batches_table).where(
                    batches_table.c.id.in_(batch_ids),
                    ~exists().where(jobs.c.batch_id == batches_table.c.id),
                )
            ).rowcount


def _collect_deliveries(store: JobStore, cutoff: datetime, report: GcReport) -> None:
    """Delete delivered or failed webhook deliveries last touched before ``cutoff``."""
    condition = and_(deliveries_table.c.status.in_(_FINISHED_DELIVERIES),
                     deliveries_table.c.updated_at < cutoff)
    with store.db.transaction(write=not report.dry_run) as connection:
        if report.dry_run:
            report.webhook_deliveries += connection.scalar(
                select(func.count()).select_from(deliveries_table).where(condition)
            ) or 0
        else:
            report.webhook_deliveries += connection.execute(
                delete(deliveries_table).where(condition)
            ).rowcount
