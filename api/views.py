"""Job and batch records → response bodies, with presigned GET URLs for stored objects."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from api.schemas import BatchOut, BatchSummaryOut, JobOut, ResultOut, StoredObject
from shared.core.errors import FaceditError
from shared.core.storage import Storage
from shared.jobs import TERMINAL_STATUSES, BatchRecord, BatchSummary, JobRecord


class Presigner:
    """Presigned GET URLs for objects of ``storage``, signed for the endpoint clients use."""

    def __init__(self, storage: Storage, public: Storage, expires: int) -> None:
        self.storage = storage
        self.public = public
        self.expires = expires

    def stored(self, uri: str | None) -> StoredObject | None:
        if uri is None:
            return None
        try:
            key = self.storage.key_from_uri(uri)
            url = self.public.presigned_url(key, "GET", self.expires)
        except (FaceditError, ValueError):
            url = None
        return StoredObject(uri=uri, url=url)


def _stored_map(presigner: Presigner, uris: dict[str, str]) -> dict[str, StoredObject]:
    stored = {name: presigner.stored(uri) for name, uri in sorted(uris.items())}
    return {name: obj for name, obj in stored.items() if obj is not None}


def job_out(job: JobRecord, presigner: Presigner) -> JobOut:
    results = [
        ResultOut(label=o.get("label"), edits=o.get("edits"), result=presigner.stored(o["uri"]),
                  intermediates=_stored_map(presigner, o.get("intermediates") or {}))
        for o in job.outputs
    ]  # fmt: skip
    return _answer(
        JobOut, job,
        result=presigner.stored(job.output_uri),
        intermediates=_stored_map(presigner, job.intermediates),
        results=results,
        latent=presigner.stored(job.latent_uri),
    )  # fmt: skip


def batch_out(
    batch: BatchRecord,
    counts: dict[str, int],
    jobs: list[JobRecord],
    presigner: Presigner,
    offset: int,
    limit: int,
    total: int,
) -> BatchOut:
    open_jobs = sum(n for status, n in counts.items() if status not in TERMINAL_STATUSES)
    next_offset = offset + len(jobs) if offset + len(jobs) < total else None
    return _answer(
        BatchOut, batch,
        total=sum(counts.values()),
        counts=counts,
        done=open_jobs == 0,
        jobs=[job_out(job, presigner) for job in jobs],
        offset=offset,
        limit=limit,
        next_offset=next_offset,
    )  # fmt: skip


def batch_summary_out(batch: BatchSummary) -> BatchSummaryOut:
    open_jobs = sum(n for status, n in batch.counts.items() if status not in TERMINAL_STATUSES)
    return _answer(
        BatchSummaryOut, batch, total=sum(batch.counts.values()), done=open_jobs == 0
    )


def _answer(model: type[BaseModel], record: Any, **presented: Any) -> Any:
    """``model`` with the ``presented`` values, and the record's own value for every other
    field of the record it has."""
    names = {field.name for field in dataclasses.fields(record)}
    shared = [name for name in model.model_fields if name in names and name not in presented]
    copied = {name: getattr(record, name) for name in shared}
    return model(**copied, **presented)
