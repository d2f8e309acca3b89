"""/v1/jobs: submit one image, list, read, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.context import ApiContext
from api.cursors import encode_cursor
from api.deps import Context, IdempotencyKey, ListingPage, Owner, RateLimits
from api.errors import ApiError
from api.openapi import SUBMIT_ERRORS, errors
from api.schemas import JobIn, JobListOut, JobOut
from api.submission import images_of, job_items, job_options, request_hash, submit
from api.views import job_out
from shared.jobs import JobRecord, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

NOT_FOUND = errors({404: "`job_not_found`: no such job for this API key"})


def _job(ctx: ApiContext, job_id: str, owner: str) -> JobRecord:
    job = ctx.store.get_job(job_id, owner)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    return job


@router.post("", status_code=202, response_model=JobOut, responses=SUBMIT_ERRORS)
def create_job(
    body: JobIn,
    response: Response,
    owner: Owner,
    ctx: Context,
    limits: RateLimits,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue one image for editing. The answer is the job; poll its Location."""
    submission = submit(
        ctx, owner, job_items(body), body.options, job_options(body), body.callback_url,
        idempotency_key, request_hash("jobs", body), limits,
    )  # fmt: skip
    job = _job(ctx, submission.batch.job_ids[0], owner)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return job_out(job, ctx.presigner)


@router.get("", response_model=JobListOut)
def list_jobs(
    owner: Owner,
    ctx: Context,
    page: ListingPage,
    status: Annotated[
        list[JobStatus] | None, Query(description="only these statuses (repeat for several)")
    ] = None,
) -> JobListOut:
    """This key owner's jobs of every batch, newest first, a page at a time. Follow
    ``next_cursor`` to the end: every job that existed when the first page was read comes
    exactly once, however many are submitted meanwhile (newer jobs start a new listing)."""
    found = ctx.store.list_owner_jobs(owner, status, page.created_after, page.created_before,
                                      page.position, page.limit)
    return JobListOut(
        jobs=[job_out(job, ctx.presigner) for job in found.items],
        next_cursor=encode_cursor(found.next),
    )


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND)
def get_job(job_id: str, owner: Owner, ctx: Context) -> JobOut:
    """The job: status, progress, error, timestamps, presigned URLs of its results."""
    return job_out(_job(ctx, job_id, owner), ctx.presigner)


@router.post(
    "/{job_id}/cancel", response_model=JobOut,
    responses={**NOT_FOUND, **errors({409: "`job_not_cancellable`: the job is finished"})},
)  # fmt: skip
def cancel_job(job_id: str, owner: Owner, ctx: Context) -> JobOut:
    """Cancel a queued or running job (a running one stops at its next stage)."""
    job = _job(ctx, job_id, owner)
    if not ctx.store.cancel(job_id, owner):
        current = _job(ctx, job_id, owner)
        raise ApiError(
            409, "job_not_cancellable", f"job {job_id} is {current.status.value}; "
            "only queued or running jobs can be cancelled",
        )  # fmt: skip
    ctx.metrics.cancelled(1)
    delivery = ctx.deliveries.announce_if_complete(job.batch_id)
    if delivery is not None:
        ctx.queue.deliver_webhook(delivery)
    return job_out(_job(ctx, job_id, owner), ctx.presigner)


@router.post(
    "/{job_id}/retry", status_code=202, response_model=JobOut,
    responses={**NOT_FOUND, **errors({
        409: "`job_not_retryable`: the job has not failed",
        422: "`too_many_images`: the job has more images than the API key may queue per minute",
    })},
)  # fmt: skip
def retry_job(
    job_id: str, response: Response, owner: Owner, ctx: Context, limits: RateLimits
) -> JobOut:
    """Queue a failed job again, as a fresh start (its attempts are reset). Its images count
    against the key's images per minute."""
    job = _job(ctx, job_id, owner)
    if job.status is JobStatus.FAILED:
        limits.spend_images(images_of(job.edits))
    if not ctx.store.retry(job_id, owner):
        current = _job(ctx, job_id, owner)
        raise ApiError(
            409, "job_not_retryable",
            f"job {job_id} is {current.status.value}; only failed jobs can be retried",
        )  # fmt: skip
    ctx.queue.wake_workers(1)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return job_out(_job(ctx, job_id, owner), ctx.presigner)
