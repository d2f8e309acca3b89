"""Batch-completion webhooks: URL policy, HMAC-SHA256 signatures, sending.

The delivery log (one row per batch outcome) is SQL and lives in
:mod:`shared.jobs.deliveries`; a Celery task POSTs each delivery with :func:`post`,
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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SIGNATURE_HEADER = "X-Facedit-Signature"
EVENT_HEADER = "X-Facedit-Event"
DELIVERY_HEADER = "X-Facedit-Delivery"
BATCH_COMPLETED = "batch.completed"
MAX_URL_LENGTH = 2048
SIGNATURE_TOLERANCE_S = 300


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


# -- deliveries -------------------------------------------------------------------------


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
