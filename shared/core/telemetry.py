"""The Prometheus metrics facedit exports, in one place: names, types, labels, and which
process exports each, so that the API, the workers, the dashboard and the alert rules
agree (tests/integration/test_deploy_manifests.py checks every PromQL expression against
this catalog and the catalog against what the code registers).

Who counts what, so that Prometheus can simply sum across replicas:

- Events are counted by the process in which they happen, once: a job's final state by the
  worker whose conditional UPDATE made it final (``succeeded``/``failed``; the sweep's
  ``worker_lost``), a cancellation by the API replica that made it; job and stage durations
  are observed by the worker that ran the job; webhook outcomes by the webhook worker.
  ``sum(rate(...))`` over all targets is then the system's rate, whatever the replica counts.
- State (jobs per status, queue depths) is read from the shared database and broker at
  scrape time by every API replica alike: aggregate it with ``max``, never ``sum``.

A worker's Celery pool has several processes: each writes its samples to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and the worker's main
process serves their sum (``FACEDIT_WORKER_METRICS_PORT``). :func:`prepare_multiprocess_dir`
sets this up; it must run before the metrics are created.

prometheus_client is imported only inside functions: this module is a contract, importable
without the ``service`` extra.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

API = "api"
WORKER = "worker"  # `facedit worker`: GPU (job queue) and webhook workers alike

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# Label values are bounded: statuses and stages are fixed sets, and error codes outside
# the known ones are reported as OTHER_ERROR (see :func:`error_label`).
OTHER_ERROR = "other"
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric family. ``name`` is the family name; a counter's sample is ``name_total``,
    a histogram's are ``name_bucket``, ``name_count`` and ``name_sum``."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    exported_by: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def samples(self) -> frozenset[str]:
        if self.kind == "counter":
            return frozenset({f"{self.name}_total"})
        if self.kind == "histogram":
            return frozenset(f"{self.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
        return frozenset({self.name})

    @property
    def cumulative_samples(self) -> frozenset[str]:
        """The samples rate()/increase() may be applied to (monotonic between resets)."""
        return self.samples if self.kind in ("counter", "histogram") else frozenset()


JOBS = MetricSpec(
    "facedit_jobs", "gauge",
    "Jobs per status now (rows of the jobs table; the same from every API replica).",
    ("status",), (API,),
)  # fmt: skip
QUEUE_DEPTH = MetricSpec(
    "facedit_queue_depth", "gauge",
    "Messages waiting in a Celery queue (the job queue is the Redis list KEDA scales on).",
    ("queue",), (API,),
)  # fmt: skip
JOBS_FINISHED = MetricSpec(
    "facedit_jobs_finished", "counter",
    "Jobs that reached a final status, counted by the process that made it final: workers "
    "(succeeded, failed) and the API (cancelled).",
    ("status", "error_code"), (WORKER, API),
)  # fmt: skip
JOB_SECONDS = MetricSpec(
    "facedit_job_seconds", "histogram",
    "Submit-to-finish time of the jobs a worker finished.",
    ("status",), (WORKER,), JOB_BUCKETS,
)  # fmt: skip
STAGE_SECONDS = MetricSpec(
    "facedit_stage_seconds", "histogram",
    "Time per stage (fetch, decode, the pipeline stages, store) of succeeded jobs.",
    ("stage",), (WORKER,), STAGE_BUCKETS,
)  # fmt: skip
WEBHOOK_DELIVERIES = MetricSpec(
    "facedit_webhook_deliveries", "counter",
    "Webhook deliveries that reached a final status (delivered, failed).",
    ("status",), (WORKER,),
)  # fmt: skip
WEBHOOK_RETRIES = MetricSpec(
    "facedit_webhook_retries", "counter",
    "Webhook attempts that failed and were scheduled again.",
    (), (WORKER,),
)  # fmt: skip

CATALOG: tuple[MetricSpec, ...] = (
    JOBS, QUEUE_DEPTH, JOBS_FINISHED, JOB_SECONDS, STAGE_SECONDS, WEBHOOK_DELIVERIES,
    WEBHOOK_RETRIES,
)  # fmt: skip


def specs_for(process: str) -> tuple[MetricSpec, ...]:
    return tuple(spec for spec in CATALOG if process in spec.exported_by)


def error_label(code: str | None, known: Iterable[str]) -> str:
    """The ``error_code`` label for ``code``: "" for none, the code if it is one of
    ``known``, else :data:`OTHER_ERROR` (the label's values stay a small fixed set)."""
    if not code:
        return ""
    return code if code in known and _ERROR_CODE.match(code) else OTHER_ERROR


# -- multiprocess mode ------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


def prepare_multiprocess_dir(prefix: str = "facedit-metrics-") -> tuple[Path, bool]:
    """Make this process and the processes it starts count in prometheus_client's
    multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (given, emptied of earlier samples, or a
    new temporary folder). Returns the folder and whether it was created here (the caller
    removes it at exit). Call before any metric is created."""
    given = multiprocess_dir()
    if given is None:
        path, created = Path(tempfile.mkdtemp(prefix=prefix)), True
    else:
        path, created = given, False
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # a previous run's samples would be summed in
            stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    import sys

    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already: metrics created from now on use the files
        values.ValueClass = values.get_value_class()
    return path, created


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class MetricSet:
    """The counters and histograms of ``specs`` and the registry that renders them, with
    ``collectors`` (scrape-time collectors of state: the gauges). In multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set) the registry sums the samples every process wrote to
    that folder."""

    def __init__(self, specs: Iterable[MetricSpec], collectors: Iterable[Any] = ()) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.metrics import disable_created_metrics

        # No `<name>_created` gauges beside the counters and histograms (multiprocess mode
        # has none either): the same series whichever mode a process counts in.
        disable_created_metrics()
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(self.registry)
        target = None if self.multiprocess else self.registry
        self.metrics: dict[str, Any] = {}
        for spec in specs:
            if spec.kind == "counter":
                metric = Counter(spec.name, spec.help, spec.labels, registry=target)
            elif spec.kind == "histogram":
                metric = Histogram(spec.name, spec.help, spec.labels, registry=target,
                                   buckets=spec.buckets)
            else:  # gauges are state, read at scrape time by a collector
                raise ValueError(f"{spec.name}: a {spec.kind} is not counted by a process")
            self.metrics[spec.name] = metric
        for collector in collectors:
            self.registry.register(collector)

    def __getitem__(self, spec: MetricSpec) -> Any:
        return self.metrics[spec.name]

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def families(self) -> Mapping[str, str]:
        """``{family name: type}`` of the metrics created here (not the collectors')."""
        return {
            family.name: family.type
            for metric in self.metrics.values()
            for family in metric.describe()
        }
