"""Batch-completion webhooks: signed with HMAC-SHA256, retried with backoff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.core.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    owner_secret,
    verify,
)
from shared.jobs.deliveries import WebhookDeliveries
from tests.integration.service.conftest import WEBHOOK_SECRET, Stack


@dataclass
class Receiver:
    """A local HTTP endpoint answering each POST with the next status of ``answers``."""

    answers: list[int]
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    got_all: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(answers=[500, 503, 200])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.calls.append((dict(self.headers), body))
            status = state.answers[min(len(state.calls), len(state.answers)) - 1]
            self.send_response(status)
            self.end_headers()
            if len(state.calls) >= len(state.answers):
                state.got_all.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/facedit"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_is_signed_and_retried_until_delivered(
    stack: Stack, small_faces: list[Path], receiver: Receiver
) -> None:
    with stack.client() as client:
        keys = [stack.upload(client, p.read_bytes()) for p in small_faces[:2]]
        broken = stack.upload(client, b"not an image")
        items = [{"input_key": k} for k in [*keys, broken]]
        batch = client.post("/v1/batches", json={
            "items": items, "edits": ["smile=+1"], "options": {"suppressor": "naive"},
            "callback_url": receiver.url,
        }).json()  # fmt: skip
        assert batch["callback_url"] == receiver.url
        stack.wait_batch(client, batch["id"])
    assert receiver.got_all.wait(30), (receiver.calls, stack.worker_logs())
    assert len(receiver.calls) == 3  # 500, 503, then 200
    secret = owner_secret(WEBHOOK_SECRET, "alice")
    deliveries = set()
    for headers, body in receiver.calls:
        assert verify(body, headers[SIGNATURE_HEADER], secret)
        assert not verify(body, headers[SIGNATURE_HEADER], owner_secret(WEBHOOK_SECRET, "bob"))
        assert not verify(body + b" ", headers[SIGNATURE_HEADER], secret)
        assert headers[EVENT_HEADER] == "batch.completed"
        deliveries.add(headers[DELIVERY_HEADER])
        payload = json.loads(body)
        assert payload["batch_id"] == batch["id"]
        assert payload["counts"] == {
            "queued": 0, "running": 0, "succeeded": 2, "failed": 1, "cancelled": 0
        }  # fmt: skip
    assert len(deliveries) == 1  # one delivery, attempted three times
    log = WebhookDeliveries(stack.store)
    record = stack.wait_for(
        lambda: next((d for d in log.for_batch(batch["id"]) if d.status == "delivered"), None),
        what="the delivery to be recorded",
    )
    assert record.attempts == 3 and record.response_status == 200
    assert len(log.for_batch(batch["id"])) == 1


def test_webhook_on_cancelled_batch_and_no_retry_on_client_error(
    stack: Stack, small_faces: list[Path], receiver: Receiver
) -> None:
    receiver.answers[:] = [410]  # Gone: not worth retrying
    with stack.client() as client:
        key = stack.upload(client, small_faces[0].read_bytes())
        with stack.paused():
            batch = client.post("/v1/batches", json={
                "items": [{"input_key": key}], "edits": ["smile=+1"],
                "callback_url": receiver.url,
            }).json()  # fmt: skip
            client.post(f"/v1/batches/{batch['id']}/cancel")
        assert receiver.got_all.wait(30), stack.worker_logs()
    log = WebhookDeliveries(stack.store)
    record = stack.wait_for(
        lambda: next((d for d in log.for_batch(batch["id"]) if d.status == "failed"), None),
        what="the delivery to fail",
    )
    assert record.attempts == 1 and record.response_status == 410
    payload = json.loads(receiver.calls[0][1])
    assert payload["counts"]["cancelled"] == 1


def test_sweep_resends_a_delivery_whose_message_was_lost(
    stack: Stack, small_faces: list[Path], receiver: Receiver
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from shared.jobs import NewJob
    from shared.jobs.deliveries import deliveries_table

    receiver.answers[:] = [204]
    uri = stack.storage.uri("inputs/lost/message.png")
    batch = stack.store.create_batch(
        [NewJob(uri, [{"attribute": "smile", "strength": 1.0}])], owner="alice",
        callback_url=receiver.url,
    )  # fmt: skip
    stack.store.fail(batch.job_ids[0], "input_not_found", "gone")
    log = WebhookDeliveries(stack.store)
    delivery_id = log.announce_if_complete(batch.id)  # recorded, but no message sent
    assert delivery_id is not None and log.announce_if_complete(batch.id) is None
    with stack.store.engine.begin() as connection:
        connection.execute(
            update(deliveries_table)
            .where(deliveries_table.c.id == delivery_id)
            .values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert receiver.got_all.wait(30), stack.worker_logs()
    assert receiver.calls[0][0][DELIVERY_HEADER] == delivery_id
    assert stack.wait_for(lambda: log.get(delivery_id).status == "delivered", what="delivery")
