"""The periodic sweep, run by a thread in every worker's main process.

Every ``FACEDIT_SWEEP_INTERVAL_SECONDS`` one worker (a Redis lock elects it):

1. requeues ``running`` jobs whose lease expired — their worker died — via
   ``JobStore.requeue_expired``; a job whose attempts are used up (it keeps killing
   workers) is failed with ``worker_lost`` instead of looping;
2. makes sure every queued job that is due has a message to wake a worker: if the queue holds
   fewer "process" messages than those jobs need (jobs requeued above or after a transient
   failure's backoff, messages lost with a Redis restart, an API that could not reach the
   broker), it sends the difference.
   Extra messages are harmless: a task that finds nothing to claim returns at once;
3. sends again, on the webhook queue, the webhook deliveries that have been pending,
   untouched, for longer than any retry backoff (their message was lost);
4. at most every ``FACEDIT_GC_INTERVAL_SECONDS`` cluster-wide (a Redis key that expires after
   that long; 0 turns it off), removes what the retention settings say has expired
   (:func:`shared.jobs.retention.collect_garbage`, as ``facedit gc``).

Webhook workers run it too, so it goes on while the GPU workers are scaled to zero.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from shared.core.config import Settings
from shared.core.contracts import DELIVER_WEBHOOK_TASK, PROCESS_JOBS_TASK
from shared.jobs import WORKER_LOST, JobStore

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_SWEEP = 1000
STALE_DELIVERY_S = 900.0  # longer than the longest webhook retry backoff (600 s)


def lock_key(queue: str) -> str:
    return f"{queue}:sweep-lock"


def gc_key(queue: str) -> str:
    """Set (with a time to live of FACEDIT_GC_INTERVAL_SECONDS) by the worker that collects."""
    return f"{queue}:gc-done"


def queued_jobs(store: JobStore) -> int:
    """Queued jobs a worker may claim now (not those waiting out a transient-retry backoff:
    their message is sent by the sweep after the backoff)."""
    return store.due_jobs()


def sweep_once(store: JobStore, redis_client: Any, app: Any, settings: Settings) -> dict[str, int]:
    """One sweep (without the lock): what it requeued, failed and sent."""
    from shared.jobs.deliveries import WebhookDeliveries
    from workers.metrics import job_finished

    requeued, failed = store.requeue_expired()
    if requeued or failed:
        log.warning("sweep: requeued %d job(s) with expired leases, failed %d", requeued, failed)
        job_finished("failed", WORKER_LOST, count=failed)
    needed = math.ceil(queued_jobs(store) / settings.batch_size)
    waiting = int(redis_client.llen(settings.queue))
    missing = min(max(0, needed - waiting), MAX_MESSAGES_PER_SWEEP)
    stale = WebhookDeliveries(store).reclaim_stale(STALE_DELIVERY_S)
    if missing or stale:
        with app.producer_or_acquire() as producer:
            for _ in range(missing):
                app.send_task(PROCESS_JOBS_TASK, queue=settings.queue, producer=producer)
            for delivery_id in stale:
                app.send_task(DELIVER_WEBHOOK_TASK, args=(delivery_id,),
                              queue=settings.webhook_queue, producer=producer)
    return {"requeued": requeued, "failed": failed, "sent": missing, "webhooks": len(stale)}


def collect_if_due(
    store: JobStore, redis_client: Any, settings: Settings, storage: Any
) -> Any | None:
    """Collect expired uploads, outputs and rows unless a worker did within the last
    FACEDIT_GC_INTERVAL_SECONDS; the report, or None when it was not due (or is off).
    ``storage``: the Storage, or a callable making it (only called when due)."""
    from datetime import UTC, datetime

    from shared.jobs.retention import Retention, collect_garbage

    interval = settings.gc_interval_seconds
    if interval <= 0 or not redis_client.set(
        gc_key(settings.queue), datetime.now(UTC).isoformat(), nx=True,
        px=max(1, int(interval * 1000)),
    ):
        return None
    storage = storage() if callable(storage) else storage
    report = collect_garbage(store, storage, Retention.from_settings(settings))
    if report.removed_anything:
        log.info("gc: %s", report.summary())
    return report


class Sweeper(threading.Thread):
    """Runs :func:`sweep_once` every interval while it holds the Redis lock."""

    def __init__(self, app: Any, settings: Settings) -> None:
        import redis

        super().__init__(name="facedit-sweep", daemon=True)
        self.app = app
        self.settings = settings
        self.stopped = threading.Event()
        self.store = JobStore(settings.database_url)
        self.redis = redis.Redis.from_url(settings.broker_url, socket_timeout=10)
        self.storage: Any = None  # made on the first collection (retention)

    def forget_connections(self) -> None:
        """In a pool process forked from this one: drop the inherited database connections
        without closing them (they belong to the parent). redis-py does this by itself."""
        self.store.forget_connections()

    def run(self) -> None:
        interval = self.settings.sweep_interval_seconds
        store, client = self.store, self.redis
        try:
            while not self.stopped.wait(interval):
                try:
                    # Held for most of an interval: one sweep per interval cluster-wide.
                    if client.set(lock_key(self.settings.queue), "1", nx=True,
                                  px=max(1, int(interval * 900))):
                        sweep_once(store, client, self.app, self.settings)
                        self._collect()
                except Exception:  # noqa: BLE001 - keep sweeping after database/broker hiccups
                    log.warning("sweep failed; retrying next interval", exc_info=True)
        finally:
            store.close()
            client.close()

    def _collect(self) -> None:
        """Retention, when due; its failure waits for the next FACEDIT_GC_INTERVAL_SECONDS."""
        try:
            collect_if_due(self.store, self.redis, self.settings, self._storage)
        except Exception:  # noqa: BLE001 - storage or database down: the next interval retries
            log.warning("gc failed; retrying in %.0f s", self.settings.gc_interval_seconds,
                        exc_info=True)

    def _storage(self) -> Any:
        if self.storage is None:
            from shared.core.storage import storage_from_settings

            self.storage = storage_from_settings(self.settings)
        return self.storage

    def stop(self) -> None:
        self.stopped.set()
