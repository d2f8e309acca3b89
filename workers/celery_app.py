"""The Celery app of the workers: Redis transport, two queues, late acks.

Two queues, each with its own workers: ``FACEDIT_QUEUE`` (``facedit``: "process jobs"
messages, consumed by the GPU workers, the Redis list KEDA scales them on) and
``FACEDIT_WEBHOOK_QUEUE`` (``facedit-webhooks``: webhook deliveries, consumed by
``facedit worker --webhooks``, which loads no models). Tasks are routed by name, so a
webhook's retries stay on its queue and never scale GPU workers.

Celery is transport only; the SQL job row is the source of truth. A message says "claim
and process up to ``FACEDIT_BATCH_SIZE`` queued jobs" and carries no job ids, so a
redelivered or duplicated message finds nothing left to claim and does no work twice.

Delivery guarantees, and where each setting comes in:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when its
  task ends, so a worker killed mid-task (OOM, node loss) leaves it to be redelivered.
- ``worker_prefetch_multiplier = 1``: a worker process reserves one message at a time;
  the jobs themselves are claimed from SQL only when a task starts.
- ``visibility_timeout`` (Redis): an unacknowledged message is redelivered after this
  long. It must outlast the task time limit, or a long task would run twice; it is set in
  every place Celery reads transport options (broker and result backend).
- time limits: hard ``FACEDIT_TASK_TIME_LIMIT_SECONDS`` (default 900 s; compose and
  Kubernetes give workers a 960 s grace period), soft 30 s earlier so jobs are failed cleanly.

This module imports nothing of workers/ (as Celery's example apps: the app module knows
its project only by name). The worker imports the ``include`` modules when it starts,
before its pool processes fork: ``workers.tasks`` registers the tasks (named in
shared.core.contracts, the names the API sends), ``workers.signals`` connects the handlers
that load the models in each pool process and run the sweep thread.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from shared.core.config import Settings, get_settings
from shared.core.contracts import DELIVER_WEBHOOK_TASK, PROCESS_JOBS_TASK

WORKER_MODULES = ["workers.tasks", "workers.signals"]
SOFT_TIME_LIMIT_MARGIN_S = 30  # the soft limit comes this much earlier (at least half the hard)
# Loading official weights onto a GPU takes a while; Celery's default (4 s) would kill the
# pool process during worker_process_init.
PROCESS_ALIVE_TIMEOUT_S = 300.0


def make_celery(settings: Settings | None = None) -> Celery:
    """The worker app for ``settings`` (default: the environment's)."""
    settings = settings or get_settings()
    transport_options = {"visibility_timeout": settings.visibility_timeout_seconds}
    limit = settings.task_time_limit_seconds
    app = Celery("facedit", broker=settings.broker_url, include=WORKER_MODULES)
    app.conf.update(
        task_queues=[
            Queue(settings.queue, routing_key=settings.queue),
            Queue(settings.webhook_queue, routing_key=settings.webhook_queue),
        ],
        task_routes={
            PROCESS_JOBS_TASK: {"queue": settings.queue},
            DELIVER_WEBHOOK_TASK: {"queue": settings.webhook_queue},
        },
        task_default_queue=settings.queue,
        task_default_routing_key=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=limit,
        task_soft_time_limit=max(limit // 2, limit - SOFT_TIME_LIMIT_MARGIN_S),
        worker_proc_alive_timeout=PROCESS_ALIVE_TIMEOUT_S,
        worker_send_task_events=True,
        task_send_sent_event=True,
        timezone="UTC",
    )
    return app


celery_app = make_celery()
