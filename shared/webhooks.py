"""Batch-completion webhooks: URL policy, HMAC-SHA256 signatures, the delivery log.

When the last job of a batch that has a ``callback_url`` reaches a final state, one row
is recorded in ``webhook_deliveries`` (unique per batch and outcome, so however many
workers notice the completion, it is announced once) and a Celery task POSTs it,
retrying with exponential backoff and jitter.

Signature: ``X-Facedit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>." + body)>``, with the owner's secret ``owner_secret(FACEDIT_WEBHOOK_SECRET, owner)``
(``facedit keys create`` prints it). Receivers check it with :func:`verify` and drop
repeats by ``X-Facedit-Delivery``: delivery is at least once.

Only ``https`` URLs are accepted, and none that resolves to a private, loopback or
link-local address, unless its host is in ``FACEDIT_WEBHOOK_ALLOW_HOSTS`` (development).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, select, update

from shared.jobs.models import Batch, Job, JobStatus, WebhookDelivery
from shared.jobs.store import JobStore

SIGNATURE_HEADER = "X-Facedit-Signature"
EVENT_HEADER = "X-Facedit-Event"
DELIVERY_HEADER = "X-Facedit-Delivery"
BATCH_COMPLETED = "batch.completed"
MAX_URL_LENGTH = 2048
SIGNATURE_TOLERANCE_S = 300

deliveries_table = WebhookDelivery.__table__
_jobs = Job.__table__
_batches = Batch.__table__


class WebhookUrlError(ValueError):
    """A callback URL that facedit will not call."""


# -- URL policy ---------------------------------------------------------------------------


def parse_allow_hosts(text: str | Collection[str] | None) -> frozenset[str]:
    """``"a.test, localhost:8080"`` → ``{"a.test", "localhost:8080"}`` (lower case)."""
    if not text:
        return frozenset()
    items = text.split(",") if isinstance(text, str) else list(text)
    return frozenset(item.strip().lower() for item in items if item.strip())


def _host_allowed(host: str, port: int | None, allow_hosts: Collection[str]) -> bool:
    return host in allow_hosts or (port is not None and f"{host}:{port}" in allow_hosts)


def check_callback_url(url: str, allow_hosts: Collection[str] = ()) -> str:
    """``url`` if facedit may call it (https, or a host on the allow-list); else
    WebhookUrlError naming the problem. No DNS here: :func:`post` checks addresses."""
    if not isinstance(url, str) or not url:
        raise WebhookUrlError("callback_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"callback_url {url!r} is not a valid URL: {exc}") from exc
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise WebhookUrlError(f"callback_url {url!r} must be an https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("callback_url must not carry credentials (user:password@)")
    if parts.scheme == "http" and not _host_allowed(host, port, allow_hosts):
        raise WebhookUrlError(
            f"callback_url {url!r} must use https (plain http only for hosts in "
            "FACEDIT_WEBHOOK_ALLOW_HOSTS)"
        )
    return url


def _check_addresses(host: str, port: int) -> None:
    """Refuse hosts that resolve to non-public addresses (SSRF into the cluster)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise WebhookUrlError(f"callback host {host!r} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise WebhookUrlError(
                f"callback host {host!r} resolves to the non-public address {address}; "
                "add it to FACEDIT_WEBHOOK_ALLOW_HOSTS to allow it"
            )


# -- signatures ---------------------------------------------------------------------------


def owner_secret(server_secret: str, owner: str | None) -> str:
    """The signing secret of one owner, derived from ``FACEDIT_WEBHOOK_SECRET``."""
    if not server_secret:
        raise ValueError("server_secret is empty: set FACEDIT_WEBHOOK_SECRET")
    message = f"facedit-webhook:{owner or ''}".encode()
    return hmac.new(server_secret.encode(), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Facedit-Signature`` header value for ``body``."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    body: bytes,
    header: str,
    secret: str,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is recent enough."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (AttributeError, KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


# -- delivery log -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    id: str
    batch_id: str
    owner: str | None
    event: str
    url: str
    payload: dict[str, Any]
    status: str
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveries:
    """The ``webhook_deliveries`` table of a (migrated) job store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def announce_if_complete(self, batch_id: str) -> str | None:
        """If the batch has a callback URL and no queued or running job, record its
        completion; the new delivery's id, or None (not complete, no URL, announced)."""
        with self.store.engine.begin() as connection:
            batch = connection.execute(
                select(_batches.c.callback_url, _batches.c.owner).where(_batches.c.id == batch_id)
            ).first()
            if batch is None or not batch.callback_url:
                return None
            counts = _counts(connection, batch_id)
            if counts[JobStatus.QUEUED] or counts[JobStatus.RUNNING]:
                return None
            now = datetime.now(UTC)
            delivery_id = uuid.uuid4().hex
            payload = {
                "event": BATCH_COMPLETED,
                "batch_id": batch_id,
                "delivery_id": delivery_id,
                "counts": counts,
                "total": sum(counts.values()),
                "completed_at": now.isoformat(),
            }
            event_key = "completed:" + ":".join(
                str(counts[s]) for s in ("succeeded", "failed", "cancelled")
            )
            row = {
                "id": delivery_id,
                "batch_id": batch_id,
                "owner": batch.owner,
                "event": BATCH_COMPLETED,
                "event_key": event_key,
                "url": batch.callback_url,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "response_status": None,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
                "delivered_at": None,
            }
            inserted = connection.execute(_insert_ignoring_duplicates(connection, row)).first()
            return delivery_id if inserted is not None else None

    def get(self, delivery_id: str) -> Delivery | None:
        with self.store.engine.connect() as connection:
            row = connection.execute(
                select(deliveries_table).where(deliveries_table.c.id == delivery_id)
            ).first()
        return None if row is None else _delivery(row._mapping)

    def for_batch(self, batch_id: str) -> list[Delivery]:
        query = (
            select(deliveries_table)
            .where(deliveries_table.c.batch_id == batch_id)
            .order_by(deliveries_table.c.created_at)
        )
        with self.store.engine.connect() as connection:
            return [_delivery(row._mapping) for row in connection.execute(query)]

    def reclaim_stale(self, older_than_s: float, limit: int = 100) -> list[str]:
        """Pending deliveries untouched for ``older_than_s`` (their message was lost: the
        broker was down when it was to be sent, or Redis lost it); marks them touched and
        returns their ids so they can be sent again."""
        now = datetime.now(UTC)
        stale = (
            select(deliveries_table.c.id)
            .where(
                deliveries_table.c.status == "pending",
                deliveries_table.c.updated_at < now - timedelta(seconds=older_than_s),
            )
            .limit(limit)
        )
        with self.store.engine.begin() as connection:
            ids = list(connection.scalars(stale))
            if ids:
                connection.execute(
                    update(deliveries_table)
                    .where(deliveries_table.c.id.in_(ids), deliveries_table.c.status == "pending")
                    .values(updated_at=now)
                )
        return ids

    def record_attempt(
        self,
        delivery_id: str,
        *,
        delivered: bool,
        response_status: int | None,
        error: str | None,
        give_up: bool,
    ) -> None:
        """Count one attempt: delivered, still pending, or failed for good."""
        now = datetime.now(UTC)
        status = "delivered" if delivered else ("failed" if give_up else "pending")
        with self.store.engine.begin() as connection:
            connection.execute(
                update(deliveries_table)
                .where(
                    deliveries_table.c.id == delivery_id,
                    deliveries_table.c.status == "pending",
                )
                .values(
                    status=status,
                    attempts=deliveries_table.c.attempts + 1,
                    response_status=response_status,
                    last_error=error,
                    updated_at=now,
                    delivered_at=now if delivered else None,
                )
            )


def _counts(connection: Connection, batch_id: str) -> dict[str, int]:
    counts = {status.value: 0 for status in JobStatus}
    rows = connection.execute(
        select(_jobs.c.status, func.count()).where(_jobs.c.batch_id == batch_id)
        .group_by(_jobs.c.status)
    )
    for status, count in rows:
        counts[status] = count
    return counts


def _insert_ignoring_duplicates(connection: Connection, row: dict[str, Any]) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(deliveries_table).values(row).on_conflict_do_nothing()
    return statement.returning(deliveries_table.c.id)


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=row["id"],
        batch_id=row["batch_id"],
        owner=row["owner"],
        event=row["event"],
        url=row["url"],
        payload=row["payload"],
        status=row["status"],
        attempts=row["attempts"],
        response_status=row["response_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


# -- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    response_status: int | None
    error: str | None
    retryable: bool


def post(
    delivery: Delivery,
    secret: str,
    *,
    allow_hosts: Collection[str] = (),
    timeout_s: float = 10.0,
) -> AttemptResult:
    """POST one delivery, signed. 2xx is delivered; 408, 429, 5xx and network errors are
    worth retrying; other answers and refused URLs are not."""
    import httpx

    try:
        check_callback_url(delivery.url, allow_hosts)
        parts = urlsplit(delivery.url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not _host_allowed(host, parts.port, allow_hosts):
            _check_addresses(host, port)
    except WebhookUrlError as exc:
        return AttemptResult(False, None, str(exc), retryable=False)
    body = encode_payload(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "facedit-webhooks/1",
        SIGNATURE_HEADER: sign(body, secret),
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: delivery.id,
    }
    try:
        response = httpx.post(
            delivery.url, content=body, headers=headers, timeout=timeout_s, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        return AttemptResult(False, None, f"{type(exc).__name__}: {exc}", retryable=True)
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(True, code, None, retryable=False)
    retryable = code in (408, 425, 429) or code >= 500
    return AttemptResult(False, code, f"HTTP {code}", retryable=retryable)


def backoff_seconds(attempt: int, base_s: float, cap_s: float = 600.0) -> float:
    """Exponential backoff for the ``attempt``-th retry (1-based), jittered between half
    and all of it so that retries of many deliveries spread out."""
    import random

    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
