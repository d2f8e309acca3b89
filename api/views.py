"""Job and batch records → response bodies, with presigned GET URLs for stored objects."""

from __future__ import annotations

from api.schemas import BatchOut, JobOut, StoredObject
from shared.errors import FaceditError
from shared.jobs import TERMINAL_STATUSES, BatchRecord, JobRecord
from shared.storage import Storage


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


def job_out(job: JobRecord, presigner: Presigner) -> JobOut:
    intermediates = {}
    for name, uri in sorted(job.intermediates.items()):
        stored = presigner.stored(uri)
        if stored is not None:
            intermediates[name] = stored
    return JobOut(
        id=job.id,
        batch_id=job.batch_id,
        position=job.position,
        status=job.status.value,
        progress=job.progress,
        stage=job.stage,
        input_uri=job.input_uri,
        input_name=job.input_name,
        edits=job.edits,
        options=job.options,
        error_code=job.error_code,
        error_message=job.error_message,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        result=presigner.stored(job.output_uri),
        intermediates=intermediates,
        metrics=job.metrics,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        updated_at=job.updated_at,
    )


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
    return BatchOut(
        id=batch.id,
        created_at=batch.created_at,
        callback_url=batch.callback_url,
        options=batch.options,
        total=sum(counts.values()),
        counts=counts,
        done=open_jobs == 0,
        jobs=[job_out(job, presigner) for job in jobs],
        offset=offset,
        limit=limit,
        next_offset=next_offset,
    )
