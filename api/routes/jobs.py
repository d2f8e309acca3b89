"""/v1/jobs: submit one image, read, cancel, retry."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.context import ApiContext
from api.deps import Context, IdempotencyKey, Owner
from api.errors import ApiError
from api.schemas import JobIn, JobOut
from api.submission import job_items, job_options, request_hash, submit
from api.views import job_out
from shared.jobs import JobRecord

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _job(ctx: ApiContext, job_id: str, owner: str) -> JobRecord:
    job = ctx.store.get_job(job_id, owner)
    if job is None:
        raise ApiError(404, "job_not_found", f"no job {job_id!r}")
    return job


@router.post("", status_code=202, response_model=JobOut)
def create_job(
    body: JobIn,
    response: Response,
    owner: Owner,
    ctx: Context,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue one image for editing. The answer is the job; poll its Location."""
    submission = submit(
        ctx, owner, job_items(body), body.options, job_options(body), body.callback_url,
        idempotency_key, request_hash("jobs", body),
    )  # fmt: skip
    job = _job(ctx, submission.batch.job_ids[0], owner)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return job_out(job, ctx.presigner)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, owner: Owner, ctx: Context) -> JobOut:
    """The job: status, progress, error, timestamps, presigned URLs of its results."""
    return job_out(_job(ctx, job_id, owner), ctx.presigner)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, owner: Owner, ctx: Context) -> JobOut:
    """Cancel a queued or running job (a running one stops at its next stage)."""
    job = _job(ctx, job_id, owner)
    if not ctx.store.cancel(job_id, owner):
        current = _job(ctx, job_id, owner)
        raise ApiError(
            409, "job_not_cancellable", f"job {job_id} is {current.status.value}; "
            "only queued or running jobs can be cancelled",
        )  # fmt: skip
    delivery = ctx.deliveries.announce_if_complete(job.batch_id)
    if delivery is not None:
        ctx.queue.deliver_webhook(delivery)
    return job_out(_job(ctx, job_id, owner), ctx.presigner)


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut)
def retry_job(job_id: str, response: Response, owner: Owner, ctx: Context) -> JobOut:
    """Queue a failed job again, as a fresh start (its attempts are reset)."""
    _job(ctx, job_id, owner)
    if not ctx.store.retry(job_id, owner):
        current = _job(ctx, job_id, owner)
        raise ApiError(
            409, "job_not_retryable",
            f"job {job_id} is {current.status.value}; only failed jobs can be retried",
        )  # fmt: skip
    ctx.queue.wake_workers(1)
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return job_out(_job(ctx, job_id, owner), ctx.presigner)
