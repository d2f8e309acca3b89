"""The API's Prometheus metrics (the catalog and who counts what: shared/core/telemetry.py).

State, read from the shared database and broker at each scrape, so every API replica
reports the same figures (dashboards and alerts take their ``max``):

- ``facedit_jobs{status}``: gauge, jobs per status (rows of the jobs table);
- ``facedit_queue_depth{queue}``: gauge, messages waiting in the job queue (the Redis list
  KEDA scales on) and in the webhook queue.

Events this replica caused, counted once, here:

- ``facedit_jobs_finished_total{status="cancelled"}``: jobs this replica cancelled (the
  workers count the jobs they finish under the same name).

Job and stage durations are observed by the workers that ran the jobs (workers/metrics.py),
not here: an API replica that rebuilt them from SQL would report every job once per replica.
With ``facedit api --workers N`` the uvicorn processes share ``PROMETHEUS_MULTIPROC_DIR``,
so a scrape answers for all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from shared.core.telemetry import API, JOBS, JOBS_FINISHED, QUEUE_DEPTH, MetricSet, specs_for
from shared.jobs import JobStatus, JobStore

log = logging.getLogger(__name__)


class _StateCollector:
    """Gauges computed at scrape time."""

    def __init__(self, store: JobStore, redis_client: Any, queues: Sequence[str]) -> None:
        self.store, self.redis, self.queues = store, redis_client, tuple(queues)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(JOBS.name, JOBS.help, labels=list(JOBS.labels))
        for status, count in self.store.count_by_status().items():
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily(QUEUE_DEPTH.name, QUEUE_DEPTH.help,
                                  labels=list(QUEUE_DEPTH.labels))
        try:
            for queue in self.queues:
                depth.add_metric([queue], float(self.redis.llen(queue)))
        except Exception as exc:  # noqa: BLE001 - broker down: no sample, not a failed scrape
            log.warning("queue depth unavailable: %s", exc)
            return
        yield depth

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            for spec in (JOBS, QUEUE_DEPTH)
        ]


class ApiMetrics:
    """The API's registry: the state gauges and this replica's own counters."""

    def __init__(self, store: JobStore, redis_client: Any, queues: Sequence[str]) -> None:
        counted = [spec for spec in specs_for(API) if spec.kind != "gauge"]
        self.state = _StateCollector(store, redis_client, queues)
        self.metrics = MetricSet(counted, collectors=[self.state])
        self.registry = self.metrics.registry
        # The series exists from the start, so rate() sees the first cancellation.
        self._cancelled = self.metrics[JOBS_FINISHED].labels(
            status=JobStatus.CANCELLED.value, error_code=""
        )

    def cancelled(self, jobs: int) -> None:
        """``jobs`` jobs were cancelled by this replica."""
        if jobs > 0:
            self._cancelled.inc(jobs)

    def families(self) -> dict[str, str]:
        """``{family: type}`` this replica exports (for the catalog test)."""
        found = dict(self.metrics.families())
        found.update({family.name: family.type for family in self.state.describe()})
        return found

    def render(self) -> bytes:
        return self.metrics.render()
