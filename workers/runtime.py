"""What one worker process holds for its lifetime: settings, job store, storage, and the
pipeline with its models, loaded once (``worker_process_init``) and reused by every task.

A webhook worker (``FACEDIT_WORKER_ROLE=webhooks``, ``facedit worker --webhooks``) holds the
settings, the job store and the delivery log only: no models, no storage, no GPU, and it
publishes no attribute catalog.

One GPU per pool process: the parent's ``CUDA_VISIBLE_DEVICES`` (e.g. ``0,1,2,3``) is
narrowed in each child to one device, chosen by the child's pool index, before torch
initialises CUDA.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from shared.core.config import Settings, get_settings
from shared.core.errors import ModelUnavailable
from shared.core.storage import Storage, storage_from_settings
from shared.jobs import JobRecord, JobStore
from shared.jobs.deliveries import WebhookDeliveries

log = logging.getLogger(__name__)

NULL_MODELS = "null"
WEBHOOKS_ROLE = "webhooks"
CATALOG_REFRESH_S = 60.0


def build_pipeline(models: str, weights_dir: Any, device: str, max_items: int | None = None,
                   null_hold_ms: float = 0.0, precision: str = "fp32") -> Any:
    """The pipeline a worker runs: the null pipeline for ``null`` (holding each batch
    ``null_hold_ms`` per image: a stand-in accelerator), else an EditPipeline with the
    bundle ``shared.editing.bundle.load_bundle`` builds (``toy``, ``auto`` or a folder).
    ``max_items``: how many (image, sweep step) items go through the generator at once."""
    if models == NULL_MODELS:
        from shared.editing.null_pipeline import NullPipeline

        return NullPipeline(hold_seconds_per_image=null_hold_ms / 1000)
    from shared.editing.bundle import load_bundle
    from shared.editing.pipeline import EditPipeline

    bundle = load_bundle(models, weights_dir, device)
    for note in bundle.notes:
        log.warning("models: %s", note)
    return EditPipeline(bundle, max_items=max_items, precision=precision)


def pick_gpu(visible: str | None, index: int | None) -> str | None:
    """The one device of ``CUDA_VISIBLE_DEVICES`` a pool process with ``index`` uses
    (round robin), or None to leave the variable alone."""
    if not visible or index is None:
        return None
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    if len(devices) <= 1:
        return None
    return devices[index % len(devices)]


def assign_gpu(index: int | None) -> None:
    device = pick_gpu(os.environ.get("CUDA_VISIBLE_DEVICES"), index)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        log.info("pool process %s uses GPU %s", index, device)


@dataclass
class DependencyBackoff:
    """A worker whose every job just failed for a dependency (storage, database, broker) waits
    before it claims more — 1 s, doubling, at most ``max_s`` — instead of burning through the
    queue while the dependency is down; one success resets it."""

    first_s: float = 1.0
    max_s: float = 60.0
    failures: int = 0
    until: float = 0.0

    def record(self, outcomes: Sequence[Any]) -> None:
        if outcomes and all(o.status == "queued" and o.error_code for o in outcomes):
            self.failures += 1
            delay = min(self.max_s, self.first_s * 2 ** min(self.failures - 1, 30))
            self.until = time.monotonic() + delay * random.uniform(0.5, 1.0)
            log.warning("every job of the batch hit an unavailable dependency (%s); waiting "
                        "%.1f s before claiming more", outcomes[0].error_code,
                        self.until - time.monotonic())
        elif outcomes:
            self.failures, self.until = 0, 0.0

    def wait(self) -> None:
        remaining = self.until - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, self.max_s))


@dataclass
class WorkerRuntime:
    settings: Settings
    store: JobStore
    storage: Storage | None  # None on a webhook worker
    pipeline: Any  # None on a webhook worker
    worker_id: str
    deliveries: WebhookDeliveries
    catalog_published: float = 0.0
    backoff: DependencyBackoff = field(default_factory=lambda: DependencyBackoff())
    _redis: Any = field(default=None, repr=False)

    @property
    def runner(self) -> Any:
        from shared.jobs.runner import JobRunner

        return JobRunner.from_settings(
            self.store, self.storage, self.pipeline, self.settings, worker_id=self.worker_id
        )

    def claims(self, held: ClaimedJobs, drain_seconds: float) -> Iterator[list[JobRecord]]:
        """Batches of up to FACEDIT_BATCH_SIZE queued jobs, claimed one after the other (for
        :meth:`JobRunner.process_batches`, which asks for the next while the current one
        runs) until none is queued or ``drain_seconds`` have passed; each claimed job is
        added to ``held`` (whose leases the heartbeat renews)."""
        deadline = time.monotonic() + drain_seconds
        while True:
            self.backoff.wait()
            jobs = self.claim()
            if not jobs:
                return
            held.add(jobs)
            yield jobs
            if time.monotonic() >= deadline:
                return

    @property
    def redis(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_timeout=10)
        return self._redis

    def claim(self) -> list[JobRecord]:
        """Claim up to FACEDIT_BATCH_SIZE queued jobs (oldest first) for this process."""
        s = self.settings
        return self.store.claim_next(s.batch_size, self.worker_id, s.lease_seconds)

    def publish_catalog(self, force: bool = False) -> None:
        """Tell the API what this worker's models offer (see workers/catalog.py)."""
        from workers.catalog import describe, publish

        if self.pipeline is None:  # a webhook worker has no models to describe
            return
        if not force and time.monotonic() - self.catalog_published < CATALOG_REFRESH_S:
            return
        publish(self.store, self.settings.queue, describe(self.pipeline, self.settings.models))
        self.catalog_published = time.monotonic()

    def close(self) -> None:
        self.store.close()
        if self._redis is not None:
            self._redis.close()


class ClaimedJobs:
    """The jobs a task has claimed and not yet finished (thread-safe: claimed by the prefetch
    thread, finished by the task's thread, renewed by the heartbeat)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}

    def add(self, jobs: Sequence[JobRecord]) -> None:
        with self._lock:
            self._jobs.update((job.id, job) for job in jobs)

    def finish(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """Drop the finished ones; returns their records."""
        with self._lock:
            return [self._jobs.pop(job_id) for job_id in job_ids if job_id in self._jobs]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            return list(self._jobs.values())


@contextmanager
def heartbeat(runtime: WorkerRuntime, held: ClaimedJobs) -> Iterator[None]:
    """Renew the leases of the jobs a task holds (every third of the lease) until the block
    ends, so the sweep never requeues a job whose worker is alive."""
    lease = runtime.settings.lease_seconds
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease / 3):
            for job_id in held.ids():
                try:
                    runtime.store.heartbeat(job_id, runtime.worker_id, lease)
                except Exception:  # noqa: BLE001 - a missed beat is retried next period
                    log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name="facedit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def init_process(index: int | None = None, settings: Settings | None = None) -> WorkerRuntime:
    """Build this process's runtime (models included) once; later calls return it."""
    global _runtime
    with _lock:
        if _runtime is not None:
            return _runtime
        settings = settings or get_settings()
        webhooks = settings.worker_role == WEBHOOKS_ROLE
        started = time.perf_counter()
        pipeline = None
        if not webhooks:
            assign_gpu(index)
            try:
                pipeline = build_pipeline(settings.models, settings.weights_dir,
                                          settings.device, max_items=settings.batch_size,
                                          null_hold_ms=settings.null_hold_ms,
                                          precision=settings.precision)
            except Exception:
                log.exception("could not load the models (FACEDIT_MODELS=%s)", settings.models)
                raise
        store = JobStore(settings.database_url)
        _runtime = WorkerRuntime(
            settings=settings,
            store=store,
            storage=None if webhooks else storage_from_settings(settings),
            pipeline=pipeline,
            worker_id=f"{socket.gethostname()}/{os.getpid()}",
            deliveries=WebhookDeliveries(store),
        )
        log.info(
            "worker %s ready: models=%s in %.1f s",
            _runtime.worker_id, "none (webhooks)" if webhooks else settings.models,
            time.perf_counter() - started,
        )
        try:
            _runtime.publish_catalog(force=True)
        except Exception:  # noqa: BLE001 - the broker may come up later; tasks retry it
            log.warning("could not publish the attribute catalog", exc_info=True)
        return _runtime


def get_runtime() -> WorkerRuntime:
    """The process's runtime, built on first use where no worker_process_init ran (solo
    and thread pools)."""
    if _runtime is not None:
        return _runtime
    try:
        return init_process()
    except Exception as exc:
        raise ModelUnavailable(f"the worker could not load its models: {exc}") from exc


def close_process() -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
            _runtime = None
