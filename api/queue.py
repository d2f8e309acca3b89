"""Enqueuing work: Celery messages sent by task name, so the API never imports the worker
code (or torch). Rows are committed first; a message only says "come and claim"."""

from __future__ import annotations

import logging
import math

from celery import Celery

from shared.core.config import Settings
from shared.core.contracts import DELIVER_WEBHOOK_TASK, PROCESS_JOBS_TASK

log = logging.getLogger(__name__)

_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class TaskQueue:
    """A Celery client on the broker: sends tasks, runs none."""

    def __init__(self, settings: Settings) -> None:
        self.queue = settings.queue
        self.webhook_queue = settings.webhook_queue
        self.batch_size = settings.batch_size
        self.app = Celery("facedit-api", broker=settings.broker_url, set_as_current=False)
        transport_options = {"visibility_timeout": settings.visibility_timeout_seconds}
        self.app.conf.update(
            task_default_queue=settings.queue,
            task_serializer="json",
            accept_content=["json"],
            task_ignore_result=True,
            broker_transport_options=transport_options,
            result_backend_transport_options=transport_options,
            broker_connection_retry_on_startup=True,
        )

    def wake_workers(self, jobs: int) -> int:
        """Send one "process" message per FACEDIT_BATCH_SIZE queued jobs; how many were sent.

        A broker outage is logged, not raised: the rows are committed, and the workers'
        sweep sends the missing messages once the broker is back.
        """
        count = math.ceil(jobs / self.batch_size)
        try:
            with self.app.producer_or_acquire() as producer:
                for _ in range(count):
                    self.app.send_task(
                        PROCESS_JOBS_TASK, queue=self.queue, producer=producer,
                        retry=True, retry_policy=_RETRY_POLICY,
                    )  # fmt: skip
        except Exception:  # noqa: BLE001
            log.warning("could not enqueue %d message(s); the sweep will", count, exc_info=True)
            return 0
        return count

    def deliver_webhook(self, delivery_id: str) -> None:
        """On the webhook queue (the webhook worker's, never the GPU workers')."""
        try:
            self.app.send_task(
                DELIVER_WEBHOOK_TASK, args=(delivery_id,), queue=self.webhook_queue,
                retry=True, retry_policy=_RETRY_POLICY,
            )  # fmt: skip
        except Exception:  # noqa: BLE001
            log.warning("could not enqueue webhook delivery %s", delivery_id, exc_info=True)

    def close(self) -> None:
        self.app.close()
