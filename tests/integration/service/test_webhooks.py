"""Batch-completion webhooks: signed with HMAC-SHA256, retried with backoff, delivered by the
webhook worker on its own queue, sent to the address that was checked (DNS rebinding)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.core import webhooks
from shared.core.contracts import DELIVER_WEBHOOK_TASK
from shared.core.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Delivery,
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


def _cancelled_batch(client: httpx.Client, key: str, receiver: Receiver) -> dict[str, Any]:
    """A one-image batch with a callback, cancelled at once (its webhook is due now)."""
    batch = client.post("/v1/batches", json={
        "items": [{"input_key": key}], "edits": ["smile=+1"], "callback_url": receiver.url,
    }).json()  # fmt: skip
    client.post(f"/v1/batches/{batch['id']}/cancel")
    return batch


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
            batch = _cancelled_batch(client, key, receiver)
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


# -- the webhook worker ---------------------------------------------------------------------


def test_webhooks_are_delivered_by_the_webhook_worker_while_gpu_workers_take_nothing(
    stack: Stack, small_faces: list[Path], receiver: Receiver
) -> None:
    """Deliveries and their retries go to the webhook queue: with the GPU workers consuming
    nothing, the webhook worker delivers (after a 503) and the job queue — the list KEDA
    scales GPU workers on — never holds a delivery."""
    from tests.integration.service.test_metrics import summed

    receiver.answers[:] = [503, 200]
    hooks = stack.webhook_worker
    assert hooks is not None
    delivered_before = summed([hooks.metrics_url], "facedit_webhook_deliveries_total",
                              status="delivered")
    retries_before = summed([hooks.metrics_url], "facedit_webhook_retries_total")
    with stack.client() as client:
        key = stack.upload(client, small_faces[2].read_bytes())
        with stack.paused():  # the GPU workers take no message from here on
            batch = _cancelled_batch(client, key, receiver)
            assert receiver.got_all.wait(30), stack.worker_logs()
            log = WebhookDeliveries(stack.store)
            record = stack.wait_for(
                lambda: next((d for d in log.for_batch(batch["id"])
                              if d.status == "delivered"), None),
                what="the delivery to be recorded",
            )
            waiting = stack.redis.lrange(stack.settings.queue, 0, -1)
            assert not any(b"deliver_webhook" in message for message in waiting)
    assert record.attempts == 2
    assert f"{DELIVER_WEBHOOK_TASK}[" in hooks.log()
    for worker in stack.workers:  # the GPU workers never ran one
        assert f"{DELIVER_WEBHOOK_TASK}[" not in worker.log(), worker.name
    assert "models=none (webhooks)" in hooks.log()
    stack.wait_for(
        lambda: summed([hooks.metrics_url], "facedit_webhook_deliveries_total",
                       status="delivered") - delivered_before == 1,
        what="the delivery to be counted",
    )
    assert summed([hooks.metrics_url], "facedit_webhook_retries_total") - retries_before == 1


# -- DNS rebinding ----------------------------------------------------------------------------

REBIND_HOST = "hooks.rebind.test"
PUBLIC_ADDRESS = "8.8.8.8"  # what the resolver answers for the check (never connected to)


@dataclass
class TlsReceiver:
    """An HTTPS endpoint on a loopback address with a certificate for REBIND_HOST (signed
    by a throwaway CA), recording the TLS server names and requests it got."""

    port: int
    ca_file: Path
    server_names: list[str | None] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _openssl(*args: str, cwd: Path) -> None:
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make the test certificates"
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for REBIND_HOST, its key)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=facedit test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out",
             "leaf.csr", "-subj", f"/CN={REBIND_HOST}", cwd=tmp)
    (tmp / "leaf.ext").write_text(
        f"subjectAltName=DNS:{REBIND_HOST}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", "leaf.pem", "-extfile", "leaf.ext",
             cwd=tmp)
    return tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    ca, cert, key = _certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = TlsReceiver(server.server_address[1], ca)
    server_context.sni_callback = lambda _sock, name, _ctx: state.server_names.append(name)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _rebinding_resolver(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """socket.getaddrinfo answers REBIND_HOST with ``answers[0]`` the first time and
    ``answers[-1]`` from then on (other names resolve as usual); the hosts asked."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBIND_HOST:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _delivery(url: str) -> Delivery:
    from datetime import UTC, datetime

    return Delivery(
        id="d-rebind", batch_id="b-rebind", owner="alice", event="batch.completed", url=url,
        payload={"event": "batch.completed"}, status="pending", attempts=0,
        response_status=None, last_error=None, created_at=datetime.now(UTC), delivered_at=None,
    )  # fmt: skip


def test_webhook_connects_to_the_address_it_checked_with_the_hosts_name(
    monkeypatch: pytest.MonkeyPatch, tls_receiver: TlsReceiver
) -> None:
    """One resolution per attempt: the request goes to its answer (here 127.0.0.1, taken
    for public in this test), with the host's name in Host and as the TLS server name (the
    certificate, valid for the name only, is verified); a later answer is never used."""
    monkeypatch.setattr(webhooks, "_is_public", lambda address: True)
    asked = _rebinding_resolver(monkeypatch, ["127.0.0.1", "127.0.0.2"])
    url = f"https://{REBIND_HOST}:{tls_receiver.port}/hooks/facedit"
    result = webhooks.post(_delivery(url), "secret", timeout_s=5,
                           verify=tls_receiver.client_context())
    assert result.delivered and result.response_status == 204, result
    assert asked == ["127.0.0.1"]
    assert tls_receiver.server_names == [REBIND_HOST]
    (headers,) = tls_receiver.requests
    assert headers["Host"] == f"{REBIND_HOST}:{tls_receiver.port}"
    # Without the host's name the certificate would not verify: the name is what is checked.
    bare = webhooks.post(_delivery(f"https://127.0.0.1:{tls_receiver.port}/x"), "secret",
                         timeout_s=5, verify=tls_receiver.client_context())
    assert not bare.delivered and "CERTIFICATE_VERIFY_FAILED" in (bare.error or "")


def test_dns_rebinding_cannot_point_a_webhook_at_a_private_address(
    monkeypatch: pytest.MonkeyPatch, tls_receiver: TlsReceiver
) -> None:
    """The resolver answers a public address for the check and the private one (where the
    receiver listens) afterwards: facedit connects to the public address it checked (the
    connection is refused here, nothing leaves the machine) and never to the private one."""
    asked = _rebinding_resolver(monkeypatch, [PUBLIC_ADDRESS, "127.0.0.1"])
    real_connect = socket.socket.connect
    dialled: list[Any] = []

    def connect(sock: socket.socket, address: Any) -> None:
        dialled.append(address)
        if address[0] == PUBLIC_ADDRESS:
            raise ConnectionRefusedError("no route in the test")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    url = f"https://{REBIND_HOST}:{tls_receiver.port}/hooks/facedit"
    result = webhooks.post(_delivery(url), "secret", timeout_s=5,
                           verify=tls_receiver.client_context())
    assert not result.delivered and result.retryable, result
    assert asked == [PUBLIC_ADDRESS]
    assert dialled == [(PUBLIC_ADDRESS, tls_receiver.port)]
    assert tls_receiver.requests == [] and tls_receiver.server_names == []
    # An answer that is private from the start is refused for good, without a connection.
    asked.clear()
    refused = _rebinding_resolver(monkeypatch, ["127.0.0.1"])
    result = webhooks.post(_delivery(url), "secret", timeout_s=5,
                           verify=tls_receiver.client_context())
    assert not result.delivered and not result.retryable
    assert "non-public address 127.0.0.1" in (result.error or "")
    assert refused == ["127.0.0.1"] and len(dialled) == 1
