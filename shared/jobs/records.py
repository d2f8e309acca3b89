"""Records: the frozen views of rows that shared/jobs hands out, and what a new job holds.

The tables (:mod:`shared.jobs.tables`) are the one declaration of each field, its Python type
and its storage. The records are derived from them, not re-listed:

- :data:`JobRecord`: every column of ``jobs`` (``status`` as a :class:`JobStatus`);
- :data:`BatchRecord`: every column of ``batches``, plus ``job_ids`` in submission order;
- :data:`BatchSummary`: every column of ``batches``, plus its jobs' counts by status;
- :data:`ApiKeyRecord`: every column of ``api_keys`` but the key's hash;
- :data:`FinishedJob`: the columns of a finished job that /metrics observes.

A new job is a :class:`NewJob` (what the caller chooses) plus :func:`unstarted` (the state of
a job that has not run: written once, for new rows and for :meth:`JobStore.retry`).
"""

from __future__ import annotations

import dataclasses
import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from shared.core.contracts import TERMINAL_STATUSES, JobStatus
from shared.core.edits import EditSpec, check_request
from shared.core.errors import InvalidEditRequest
from shared.jobs.checks import check_int, json_object
from shared.jobs.tables import ApiKey, Base, Batch, Job

R = TypeVar("R")


def column_types(model: type[Base]) -> dict[str, Any]:
    """Each column of ``model``'s table and its Python type (from the ``Mapped[...]``
    annotations), in table order."""
    hints = typing.get_type_hints(model)
    return {
        column.name: typing.get_args(hints[column.key])[0] for column in model.__table__.columns
    }


def record_type(
    name: str,
    model: type[Base],
    doc: str,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    types: Mapping[str, Any] | None = None,
    extra: Sequence[tuple[str, Any]] = (),
    base: type = object,
) -> type:
    """A frozen dataclass with the columns of ``model`` (those in ``only``, less
    ``exclude``; ``types`` overrides some columns' types), then the fields ``extra``;
    ``base`` adds methods."""
    wanted = column_types(model)
    if only is not None:
        wanted = {column: wanted[column] for column in only}  # KeyError: no such column
    excluded = set(exclude)
    columns = [
        (column, (types or {}).get(column, python_type))
        for column, python_type in wanted.items()
        if column not in excluded
    ]
    return dataclasses.make_dataclass(
        name,
        [*columns, *extra],
        bases=(base,),
        frozen=True,
        namespace={"__doc__": doc, "__module__": __name__},
    )


class _JobMethods:
    __slots__ = ()
    status: JobStatus

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class _ApiKeyMethods:
    __slots__ = ()
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


JobRecord = record_type(
    "JobRecord", Job, "A job as stored: one field per column of ``jobs``.",
    types={"status": JobStatus}, base=_JobMethods,
)  # fmt: skip
BatchRecord = record_type(
    "BatchRecord", Batch,
    "A batch as stored (one field per column of ``batches``) and its jobs' ids in order.",
    extra=[("job_ids", tuple[str, ...])],
)  # fmt: skip
BatchSummary = record_type(
    "BatchSummary", Batch,
    "A batch as stored (one field per column of ``batches``) and how many of its jobs are in "
    "each status (every status, zeros included): a row of a listing.",
    extra=[("counts", dict[str, int])],
)  # fmt: skip
ApiKeyRecord = record_type(
    "ApiKeyRecord", ApiKey, "An API key as stored, without the hash of its secret.",
    exclude=["key_hash"], base=_ApiKeyMethods,
)  # fmt: skip
FinishedJob = record_type(
    "FinishedJob", Job, "What /metrics observes of a finished job (its times and stages).",
    only=["id", "status", "created_at", "finished_at", "metrics"], types={"status": JobStatus},
)  # fmt: skip


def from_row(record: type[R], row: Mapping[str, Any], **extra: Any) -> R:
    """``record`` (a dataclass) built from the columns of ``row`` it has, and ``extra``."""
    names = [f.name for f in dataclasses.fields(record) if f.name not in extra]
    return record(**{name: row[name] for name in names}, **extra)


def job_record(row: Mapping[str, Any]) -> JobRecord:
    """A :data:`JobRecord` from a row of ``jobs``."""
    values = dict(row)
    values["status"] = JobStatus(values["status"])
    values["progress"] = float(values["progress"])  # SQLite may hand back an int
    return JobRecord(**values)


# -- new jobs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewJob:
    """One job to create: an input image and the edits to apply to it."""

    input_uri: str
    edits: Sequence[Mapping[str, Any]] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    input_name: str | None = None
    max_attempts: int = 3
    input_sha256: str | None = None


def unstarted() -> dict[str, Any]:
    """The columns of a job that has not run yet: a new job, or one :meth:`retry` resets
    (a fresh start: no worker, no result, no error, attempts back to 0)."""
    return {
        "status": JobStatus.QUEUED.value,
        "output_uri": None,
        "intermediates": {},
        "outputs": [],
        "latent_uri": None,
        "suppressor": None,
        "metrics": {},
        "attempts": 0,
        "error_code": None,
        "error_message": None,
        "progress": 0.0,
        "stage": None,
        "worker_id": None,
        "lease_expires_at": None,
        "started_at": None,
        "finished_at": None,
        "not_before": None,
        "retries": 0,
        "retry_until": None,
    }


def new_id() -> str:
    return uuid.uuid4().hex


def new_job_row(
    job: NewJob, where: str, batch_id: str, position: int, owner: str | None, now: datetime
) -> dict[str, Any]:
    """The ``jobs`` row of a new job (checked; ValueError naming ``where`` otherwise)."""
    if not isinstance(job, NewJob):
        raise ValueError(f"{where} must be a NewJob, got {type(job).__name__}")
    if not isinstance(job.input_uri, str) or not job.input_uri:
        raise ValueError(f"{where}.input_uri must be a non-empty string, got {job.input_uri!r}")
    check_int(f"{where}.max_attempts", job.max_attempts, 1, 100)
    return {
        **{f.name: getattr(job, f.name) for f in dataclasses.fields(NewJob)},
        **unstarted(),
        "id": new_id(),
        "batch_id": batch_id,
        "position": position,
        "owner": owner,
        "edits": check_edits(job.edits, f"{where}.edits"),
        "options": json_object(job.options, f"{where}.options"),
        "created_at": now,
        "updated_at": now,
    }


def check_edits(edits: Any, name: str = "edits") -> list[dict[str, Any]]:
    """An edit request in its canonical JSON form (``EditSpec.to_dict`` of each edit), as
    :mod:`shared.core.edits` checks it; InvalidEditRequest naming the offending entry
    otherwise. An empty list passes (the runner fails such a job with ``invalid_edit``)."""
    if isinstance(edits, str | bytes | Mapping) or not isinstance(edits, Sequence):
        raise InvalidEditRequest(f"{name} must be a list of edits, got {edits!r}")
    specs = []
    for index, edit in enumerate(edits):
        try:
            specs.append(EditSpec.from_dict(dict(edit) if isinstance(edit, Mapping) else edit))
        except InvalidEditRequest as exc:
            raise InvalidEditRequest(f"{name}[{index}]: {exc.message}") from None
    if specs:
        try:
            check_request(specs)
        except InvalidEditRequest as exc:
            raise InvalidEditRequest(f"{name}: {exc.message}") from None
    return [spec.to_dict() for spec in specs]
