"""Prometheus metrics, all read from the shared state, so every API replica reports the
same system-wide figures:

- ``facedit_jobs_total{status}``: gauge, jobs per status (rows of the jobs table);
- ``facedit_queue_depth``: gauge, messages waiting in the Celery queue (the Redis list
  KEDA scales on);
- ``facedit_job_seconds``: histogram, submit-to-finish time of finished jobs;
- ``facedit_stage_seconds{stage}``: histogram, time per stage (fetch, decode, the pipeline
  stages, store) of succeeded jobs.

Stage timings are measured by the workers and stored with each job (``jobs.metrics``, see
shared/jobs/runner.py). At each scrape the API reads the jobs finished since its previous
scrape (by ``finished_at``, with an overlap and a set of ids already counted, so late
commits are neither lost nor counted twice) and adds them to its histograms. Histograms
start empty when an API process starts (Prometheus handles counter resets); with several
replicas each one counts every job, which leaves quantiles unchanged.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from shared.jobs import JobStatus, JobStore

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OVERLAP = timedelta(seconds=60)
MAX_ROWS_PER_SCRAPE = 50_000

log = logging.getLogger(__name__)


class _StateCollector:
    """Gauges computed at scrape time."""

    def __init__(self, store: JobStore, redis_client: Any, queue: str) -> None:
        self.store, self.redis, self.queue = store, redis_client, queue

    def collect(self) -> Any:
        jobs = GaugeMetricFamily("facedit_jobs_total", "Jobs per status.", labels=["status"])
        for status, count in self.store.count_by_status().items():
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily(
            "facedit_queue_depth", "Messages waiting in the Celery queue."
        )
        try:
            depth.add_metric([], float(self.redis.llen(self.queue)))
        except Exception as exc:  # noqa: BLE001 - broker down: no sample, not a failed scrape
            log.warning("queue depth unavailable: %s", exc)
            return
        yield depth


class ApiMetrics:
    """The API's registry; :meth:`render` first takes in the newly finished jobs."""

    def __init__(self, store: JobStore, redis_client: Any, queue: str) -> None:
        self.store = store
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(store, redis_client, queue))
        self.job_seconds = Histogram(
            "facedit_job_seconds", "Submit-to-finish time of finished jobs.",
            buckets=JOB_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            "facedit_stage_seconds", "Time per stage of succeeded jobs (worker-measured).",
            ["stage"], buckets=STAGE_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.started = self.watermark = datetime.now(UTC)
        self.seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def ingest(self) -> int:
        """Observe the jobs that finished since the last call; how many were new."""
        with self._lock:
            rows = self.store.finished_jobs(self.watermark - OVERLAP, MAX_ROWS_PER_SCRAPE)
            new = 0
            for row in rows:
                if row.id in self.seen or row.finished_at <= self.started:
                    continue
                self.seen[row.id] = row.finished_at
                new += 1
                self.job_seconds.observe((row.finished_at - row.created_at).total_seconds())
                if row.status == JobStatus.SUCCEEDED.value:
                    for stage, seconds in (row.metrics or {}).get("stages", {}).items():
                        self.stage_seconds.labels(stage=stage).observe(float(seconds))
            if rows:
                self.watermark = max(self.watermark, rows[-1].finished_at)
            horizon = self.watermark - OVERLAP
            self.seen = {k: v for k, v in self.seen.items() if v > horizon}
            return new

    def render(self) -> bytes:
        self.ingest()
        return generate_latest(self.registry)
