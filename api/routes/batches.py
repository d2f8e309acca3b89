"""/v1/batches: submit many images at once, read counts and pages of jobs, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Response

from api.auth import current_owner
from api.context import ApiContext, get_context
from api.errors import ApiError
from api.schemas import BatchIn, BatchOut
from api.submission import Item, job_options, request_hash, submit
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
    owner: str = Depends(current_owner),
    ctx: ApiContext = Depends(get_context),
    idempotency_key: str | None = Header(default=None),
) -> BatchOut:
    """Queue many images in one request; ``edits`` apply to items without their own."""
    items = []
    for index, item in enumerate(body.items):
        where = f"items[{index}]"
        edits = item.edits if item.edits is not None else body.edits
        if edits is None:
            raise ApiError(
                422, "missing_field", f"{where}.edits: no edits for this item and none for all"
            )
        items.append(Item(where, item.input_uri, item.input_key, item.name, edits))
    submission = submit(
        ctx, owner, items, body.options, job_options(body), body.callback_url,
        idempotency_key, request_hash("batches", body),
    )  # fmt: skip
    response.headers["Location"] = f"/v1/batches/{submission.batch.id}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _page(ctx, submission.batch, owner)


@router.get("/{batch_id}", response_model=BatchOut)
def get_batch(
    batch_id: str,
    owner: str = Depends(current_owner),
    ctx: ApiContext = Depends(get_context),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=1000),
    status: JobStatus | None = Query(default=None),
) -> BatchOut:
    """Counts per status and one page of the batch's jobs (in submission order)."""
    return _page(ctx, _batch(ctx, batch_id, owner), owner, offset, limit, status)


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel_batch(
    batch_id: str, owner: str = Depends(current_owner), ctx: ApiContext = Depends(get_context)
) -> BatchOut:
    """Cancel every queued or running job of the batch."""
    batch = _batch(ctx, batch_id, owner)
    cancelled = ctx.store.cancel_batch(batch_id, owner)
    delivery = ctx.deliveries.announce_if_complete(batch_id)
    if delivery is not None:
        ctx.queue.deliver_webhook(delivery)
    page = _page(ctx, batch, owner)
    page.cancelled = cancelled
    return page
