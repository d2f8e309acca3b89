"""The workers' Prometheus metrics, observed where the work happens (the catalog:
shared/core/telemetry.py):

- ``facedit_jobs_finished_total{status, error_code}``: counter, jobs this worker made final
  (``succeeded``; ``failed`` with its error code, ``worker_lost`` from the sweep);
- ``facedit_job_seconds{status}``: histogram, submit-to-finish time of those jobs;
- ``facedit_stage_seconds{stage}``: histogram, time per stage of the succeeded ones;
- ``facedit_webhook_deliveries_total{status}`` and ``facedit_webhook_retries_total``:
  counters of the webhook worker.

A prefork pool's processes count into ``PROMETHEUS_MULTIPROC_DIR`` (``facedit worker``
prepares it before this module is imported) and the worker's main process serves their
sum on ``FACEDIT_WORKER_METRICS_PORT`` (:func:`serve`, started by workers/signals.py).
Each job is counted by the one worker that finished it, so Prometheus sums over workers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.core.errors import FaceditError
from shared.core.telemetry import (
    JOB_SECONDS,
    JOBS_FINISHED,
    STAGE_SECONDS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_RETRIES,
    WORKER,
    MetricSet,
    error_label,
    specs_for,
)

log = logging.getLogger(__name__)

FINAL = ("succeeded", "failed")  # the final states a worker (not the API) gives a job
# Codes a job can fail with: the errors' own, and those the store and the tasks set.
_OWN_CODES = {"internal_error", "worker_lost", "worker_error", "dependency_unavailable"}


@functools.cache
def _known_codes() -> frozenset[str]:
    codes, pending = set(_OWN_CODES), [FaceditError]
    while pending:
        cls = pending.pop()
        codes.add(getattr(cls, "code", ""))
        pending.extend(cls.__subclasses__())
    return frozenset(code for code in codes if code)


METRICS = MetricSet(specs_for(WORKER))
_FINISHED, _JOB_SECONDS = METRICS[JOBS_FINISHED], METRICS[JOB_SECONDS]
_STAGE_SECONDS = METRICS[STAGE_SECONDS]
_DELIVERIES, _RETRIES = METRICS[WEBHOOK_DELIVERIES], METRICS[WEBHOOK_RETRIES]
# Series that exist from the start (rate() needs a first sample before the first event).
_FINISHED.labels(status="succeeded", error_code="")
for _status in FINAL:
    _JOB_SECONDS.labels(status=_status)
for _status in ("delivered", "failed"):
    _DELIVERIES.labels(status=_status)


def job_finished(status: str, error_code: str | None = None, created_at: datetime | None = None,
                 stages: dict[str, float] | None = None, count: int = 1) -> None:
    """Count ``count`` jobs this process made final; with ``created_at`` observe the
    submit-to-finish time, with ``stages`` each stage's time."""
    if status not in FINAL or count <= 0:
        return
    _FINISHED.labels(status=status, error_code=error_label(error_code, _known_codes())).inc(count)
    if created_at is not None:
        seconds = (datetime.now(UTC) - created_at).total_seconds()
        _JOB_SECONDS.labels(status=status).observe(max(0.0, seconds))
    for stage, seconds in (stages or {}).items():
        _STAGE_SECONDS.labels(stage=stage).observe(float(seconds))


def outcomes_finished(jobs: Sequence[Any], outcomes: Sequence[Any]) -> None:
    """Count the final outcomes of a task's jobs (``shared.jobs.runner.JobOutcome``); an
    outcome "queued" (postponed after an outage) or "cancelled" (the API cancelled the job
    and counted it) is not this worker's to count."""
    created = {job.id: job.created_at for job in jobs}
    for outcome in outcomes:
        stages = getattr(outcome, "stages", None) if outcome.status == "succeeded" else None
        job_finished(outcome.status, outcome.error_code, created.get(outcome.job_id), stages)


def webhook_attempt(delivered: bool, give_up: bool) -> None:
    if delivered:
        _DELIVERIES.labels(status="delivered").inc()
    elif give_up:
        _DELIVERIES.labels(status="failed").inc()
    else:
        _RETRIES.inc()


def serve(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve /metrics on ``port`` from this (the worker's main) process, in a thread; the
    server, or None when there is no port or it is taken (logged: the worker runs on)."""
    if not port:
        return None
    from prometheus_client import start_http_server

    if not METRICS.multiprocess:
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: /metrics shows only the main "
                    "process's samples (start workers with `facedit worker`)")
    try:
        server, _thread = start_http_server(port, addr, registry=METRICS.registry)
    except OSError as exc:
        log.warning("worker metrics not served on port %d: %s", port, exc)
        return None
    log.info("worker metrics on :%d/metrics", port)
    return server
