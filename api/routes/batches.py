"""/v1/batches: submit many images at once, list, read counts and pages of jobs, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.context import ApiContext
from api.cursors import encode_cursor
from api.deps import Context, IdempotencyKey, ListingPage, Owner, RateLimits
from api.errors import ApiError
from api.openapi import SUBMIT_ERRORS, errors
from api.schemas import BatchIn, BatchListOut, BatchOut
from api.submission import batch_items, job_options, request_hash, submit
from api.views import batch_out, batch_summary_out
from shared.jobs import BatchRecord, JobStatus

router = APIRouter(prefix="/v1/batches", tags=["batches"])

NOT_FOUND = errors({404: "`batch_not_found`: no such batch for this API key"})


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


@router.post("", status_code=202, response_model=BatchOut, responses=SUBMIT_ERRORS)
def create_batch(
    body: BatchIn,
    response: Response,
    owner: Owner,
    ctx: Context,
    limits: RateLimits,
    idempotency_key: IdempotencyKey = None,
) -> BatchOut:
    """Queue many images in one request; ``edits`` apply to items without their own."""
    submission = submit(
        ctx, owner, batch_items(body), body.options, job_options(body), body.callback_url,
        idempotency_key, request_hash("batches", body), limits,
    )  # fmt: skip
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _page(ctx, submission.batch, owner)


@router.get("", response_model=BatchListOut)
def list_batches(
    owner: Owner,
    ctx: Context,
    page: ListingPage,
    status: Annotated[
        Literal["open", "done"] | None,
        Query(description="`open`: a job is queued or running; `done`: none is"),
    ] = None,
) -> BatchListOut:
    """This key owner's batches with their counts, newest first, a page at a time. Follow
    ``next_cursor`` to the end: every batch that existed when the first page was read comes
    exactly once, however many are submitted meanwhile."""
    done = None if status is None else status == "done"
    found = ctx.store.list_owner_batches(owner, done, page.created_after, page.created_before,
                                         page.position, page.limit)
    return BatchListOut(
        batches=[batch_summary_out(batch) for batch in found.items],
        next_cursor=encode_cursor(found.next),
    )


@router.get("/{batch_id}", response_model=BatchOut, responses=NOT_FOUND)
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


@router.post("/{batch_id}/cancel", response_model=BatchOut, responses=NOT_FOUND)
def cancel_batch(batch_id: str, owner: Owner, ctx: Context) -> BatchOut:
    """Cancel every queued or running job of the batch."""
    batch = _batch(ctx, batch_id, owner)
    cancelled = ctx.store.cancel_batch(batch_id, owner)
    ctx.metrics.cancelled(cancelled)
    delivery = ctx.deliveries.announce_if_complete(batch_id)
    if delivery is not None:
        ctx.queue.deliver_webhook(delivery)
    page = _page(ctx, batch, owner)
    page.cancelled = cancelled
    return page
