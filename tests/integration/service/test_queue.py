"""api/queue.py: the API's Celery client sends messages by task name, one "process" message
per FACEDIT_BATCH_SIZE jobs, and shrugs off a broker outage (the sweep sends them later)."""

from __future__ import annotations

import json

from api.queue import TaskQueue
from shared.core.config import Settings
from shared.core.contracts import DELIVER_WEBHOOK_TASK, PROCESS_JOBS_TASK
from tests.fixtures.services import free_ports
from tests.integration.service.conftest import BATCH_SIZE, Stack


def test_messages_name_the_workers_tasks_and_go_to_their_queues(stack: Stack) -> None:
    name = f"{stack.settings.queue}-probe"  # queues no worker takes from
    hooks = f"{name}-webhooks"
    queue = TaskQueue(stack.settings.model_copy(update={"queue": name, "webhook_queue": hooks}))
    try:
        assert queue.wake_workers(2 * BATCH_SIZE + 1) == 3
        queue.deliver_webhook("delivery-1")
        jobs, webhooks = stack.redis.lrange(name, 0, -1), stack.redis.lrange(hooks, 0, -1)
    finally:
        queue.close()
        stack.redis.delete(name, f"_kombu.binding.{name}", hooks, f"_kombu.binding.{hooks}")

    def tasks(messages: list[bytes]) -> list[str]:
        return [json.loads(message)["headers"]["task"] for message in messages]

    assert tasks(jobs) == [PROCESS_JOBS_TASK] * 3  # KEDA counts only these
    assert tasks(webhooks) == [DELIVER_WEBHOOK_TASK]


def test_a_broker_outage_is_logged_not_raised(caplog) -> None:
    port = free_ports(1)[0]
    queue = TaskQueue(Settings(broker_url=f"redis://127.0.0.1:{port}/0", batch_size=2))
    try:
        assert queue.wake_workers(5) == 0
        queue.deliver_webhook("delivery-1")
    finally:
        queue.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "api.queue"]
    assert messages == ["could not enqueue 3 message(s); the sweep will",
                        "could not enqueue webhook delivery delivery-1"]
