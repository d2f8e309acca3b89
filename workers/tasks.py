"""Celery tasks. The API enqueues them by name; they hold no state of their own.

``process_jobs`` runs on the GPU workers (``FACEDIT_QUEUE``), ``deliver_webhook`` on the
webhook worker (``FACEDIT_WEBHOOK_QUEUE``, no models). Both count what they finish in the
worker's Prometheus metrics (workers/metrics.py)."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions

from shared.core.contracts import DELIVER_WEBHOOK_TASK, PROCESS_JOBS_TASK
from shared.core.errors import BrokerUnavailable, StorageUnavailable
from shared.core.webhooks import backoff_seconds, owner_secret, parse_allow_hosts, post
from shared.jobs import TRANSIENT_DATABASE_ERRORS, JobStatus
from workers import metrics
from workers.celery_app import celery_app
from workers.runtime import ClaimedJobs, WorkerRuntime, get_runtime, heartbeat

log = logging.getLogger(__name__)

# Worth retrying the whole task: the database, the broker or the storage is unreachable.
TRANSIENT_ERRORS = (
    StorageUnavailable,
    BrokerUnavailable,
    *TRANSIENT_DATABASE_ERRORS,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
RETRY_OPTIONS: dict[str, Any] = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
}


@celery_app.task(name=PROCESS_JOBS_TASK, **RETRY_OPTIONS)
def process_jobs() -> dict[str, Any]:
    """Claim batches of up to FACEDIT_BATCH_SIZE queued jobs and run them, the next batch
    claimed and fetched while the current one runs and the previous one is stored
    (``JobRunner.process_batches``), while jobs are queued, for at most
    FACEDIT_WORKER_DRAIN_SECONDS of claiming."""
    runtime = get_runtime()
    if runtime.pipeline is None:  # a webhook worker: it claims no jobs (they need models)
        log.warning("%s reached a worker without models; left for the GPU workers",
                    PROCESS_JOBS_TASK)
        return {"claimed": 0}
    settings = runtime.settings
    held = ClaimedJobs()
    statuses: dict[str, int] = {}
    claimed = batches = 0
    try:
        with heartbeat(runtime, held):
            batches_run = runtime.runner.process_batches(
                runtime.claims(held, settings.drain_seconds),
                store_threads=settings.store_threads,
            )
            for outcomes in batches_run:
                jobs = held.finish([outcome.job_id for outcome in outcomes])
                metrics.outcomes_finished(jobs, outcomes)
                runtime.backoff.record(outcomes)
                _announce_completions(runtime, {job.batch_id for job in jobs})
                claimed, batches = claimed + len(outcomes), batches + 1
                for outcome in outcomes:
                    statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    except BaseException as exc:
        _give_back(runtime, held.jobs(), exc)
        raise
    if not claimed:
        return {"claimed": 0}
    try:
        runtime.publish_catalog()
    except Exception:  # noqa: BLE001 - the catalog is refreshed on a later task
        log.warning("could not refresh the attribute catalog", exc_info=True)
    return {"claimed": claimed, "batches": batches, **statuses}


def _give_back(runtime: WorkerRuntime, jobs: list[Any], exc: BaseException) -> None:
    """The task is failing as a whole: return the jobs it still holds to the queue. A
    dependency outage postpones them (no attempt used); anything else (a time limit, a bug)
    counts as an attempt, so a job that keeps doing it fails once its attempts are used up."""
    message = f"the worker's task failed: {type(exc).__name__}: {exc}"[:2000]
    settings = runtime.settings
    for job in jobs:
        try:
            if isinstance(exc, TRANSIENT_ERRORS):
                code = getattr(exc, "code", "dependency_unavailable")
                status = runtime.store.postpone(
                    job.id, code, message, first_delay_s=settings.transient_retry_seconds,
                    budget_s=settings.transient_retry_budget_seconds,
                    worker_id=runtime.worker_id,
                )  # fmt: skip
            else:
                code = "worker_error"
                status = runtime.store.release(job.id, code, message,
                                               worker_id=runtime.worker_id)
            if status is JobStatus.FAILED:  # no retries left: this worker failed it
                metrics.job_finished("failed", code, job.created_at)
            elif status is None:
                _count_if_finished_here(runtime, job)
        except Exception:  # noqa: BLE001 - the lease expiry requeues it instead
            log.warning("could not give back job %s", job.id, exc_info=True)


def _count_if_finished_here(runtime: WorkerRuntime, job: Any) -> None:
    """A job the failing task still held but could not give back: its result may have been
    stored and recorded by a store thread after the failure (the overlapped runner finishes
    the stores in flight); then this worker made it final, and counts it."""
    row = runtime.store.get_job(job.id)
    if row is not None and row.worker_id == runtime.worker_id and row.status in (
        JobStatus.SUCCEEDED, JobStatus.FAILED,
    ):
        metrics.job_finished(row.status.value, row.error_code, job.created_at)


def _announce_completions(runtime: WorkerRuntime, batch_ids: set[str]) -> None:
    for batch_id in sorted(batch_ids):
        delivery_id = runtime.deliveries.announce_if_complete(batch_id)
        if delivery_id is not None:
            deliver_webhook.apply_async((delivery_id,), queue=runtime.settings.webhook_queue)


@celery_app.task(name=DELIVER_WEBHOOK_TASK, bind=True, **RETRY_OPTIONS)
def deliver_webhook(self: Any, delivery_id: str) -> dict[str, Any]:
    """POST a batch-completion webhook; retried with backoff (on the webhook queue) until
    it is delivered or FACEDIT_WEBHOOK_MAX_ATTEMPTS is reached."""
    runtime = get_runtime()
    settings = runtime.settings
    delivery = runtime.deliveries.get(delivery_id)
    if delivery is None or delivery.status != "pending":
        return {"delivery": delivery_id, "status": getattr(delivery, "status", "missing")}
    if not settings.webhook_secret:
        runtime.deliveries.record_attempt(
            delivery_id, delivered=False, response_status=None, give_up=True,
            error="FACEDIT_WEBHOOK_SECRET is not set on the workers: nothing to sign with",
        )  # fmt: skip
        metrics.webhook_attempt(delivered=False, give_up=True)
        return {"delivery": delivery_id, "status": "failed"}
    result = post(
        delivery,
        owner_secret(settings.webhook_secret, delivery.owner),
        allow_hosts=parse_allow_hosts(settings.webhook_allow_hosts),
        timeout_s=settings.webhook_timeout_seconds,
    )
    attempt = delivery.attempts + 1
    give_up = not result.delivered and (
        not result.retryable or attempt >= settings.webhook_max_attempts
    )
    runtime.deliveries.record_attempt(
        delivery_id, delivered=result.delivered, response_status=result.response_status,
        error=result.error, give_up=give_up,
    )  # fmt: skip
    metrics.webhook_attempt(result.delivered, give_up)
    if result.delivered or give_up:
        status = "delivered" if result.delivered else "failed"
        if give_up:
            log.warning("webhook %s failed for good: %s", delivery_id, result.error)
        return {"delivery": delivery_id, "status": status, "attempts": attempt}
    countdown = backoff_seconds(attempt, settings.webhook_retry_seconds)
    raise self.retry(countdown=countdown, max_retries=None, queue=settings.webhook_queue)
