"""/v1/batches: submit many images at once, read counts and pages of jobs, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.context import ApiContext
from api.deps import Context, IdempotencyKey, Owner
from api.errors import ApiError
from api.schemas import BatchIn, BatchOut
from api.submission import batch_items, job_options, request_hash, submit
from api.views import batch_out
from shared.jobs import BatchRecord, JobStatus

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def _batch(ctx: ApiContext, batch_id: str, owner: str) -> BatchRecord:
    batch = ctx.store.get_batch(batch_id, owner)
    if batch is None:
        raise ApiError(404, "batch_not_found", f"no batch {batch_id!r}")
    return batch


def _page(
    ctx: ApiContext,
    batch: BatchRecord,
    owner: str,
    offset: int = 0,
    limit: int = 100,
    status: JobStatus | None = None,
) -> BatchOut:
    counts = ctx.store.batch_counts(batch.id)
    jobs = ctx.store.list_jobs(batch.id, status, offset=offset, limit=limit, owner=owner)
    total = counts[status.value] if status is not None else sum(counts.values())
    return batch_out(batch, counts, jobs, ctx.presigner, offset, limit, total)


@router.post("", status_code=202, response_model=BatchOut)
def create_batch(
    body: BatchIn,
    response: Response,
    owner: Owner,
    ctx: Context,
    idempotency_key: IdempotencyKey = None,
) -> BatchOut:
    """Queue many images in one request; ``edits`` apply to items without their own."""
    submission = submit(
        ctx, owner, batch_items(body), body.options, job_options(body), body.callback_url,
        idempotency_key, request_hash("batches", body),
    )  # fmt: skip
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _page(ctx, submission.batch, owner)


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(
    batch_id: str,
    owner: Owner,
    ctx: Context,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    status: Annotated[JobStatus | None, Query()] = None,
) -> BatchOut:
    """Counts per status and one page of the batch's jobs (in submission order)."""
    return _page(ctx, _batch(ctx, batch_id, owner), owner, offset, limit, status)


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel_batch(batch_id: str, owner: Owner, ctx: Context) -> BatchOut:
    """Cancel every queued or running job of the batch."""
    batch = _batch(ctx, batch_id, owner)
    cancelled = ctx.store.cancel_batch(batch_id, owner)
    delivery = ctx.deliveries.announce_if_complete(batch_id)
    if delivery is not None:
        ctx.queue.deliver_webhook(delivery)
    page = _page(ctx, batch, owner)
    page.cancelled = cancelled
    return page
