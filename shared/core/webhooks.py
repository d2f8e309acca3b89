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

The host is resolved once per attempt: the addresses are checked, and the request is sent
to a checked address itself (the URL's host replaced by it, ``Host`` and the TLS server name
— SNI and certificate verification — still the host's name), so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot point the request elsewhere.
Such requests go straight to the address, never through an ``HTTP(S)_PROXY`` (a proxy would
resolve the name again).
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
from urllib.parse import SplitResult, urlsplit

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


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global


def resolve_public(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, once; WebhookUrlError
    if it does not resolve or any of them is not public (SSRF into the cluster)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise WebhookUrlError(f"callback host {host!r} does not resolve: {exc}") from exc
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not _is_public(address):
            raise WebhookUrlError(
                f"callback host {host!r} resolves to the non-public address {address}; "
                "add it to FACEDIT_WEBHOOK_ALLOW_HOSTS to allow it"
            )
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise WebhookUrlError(f"callback host {host!r} resolves to no address")
    return addresses


def pinned_url(parts: SplitResult, address: str, port: int) -> str:
    """``parts`` with its host replaced by ``address`` (the port made explicit)."""
    literal = f"[{address}]" if ":" in address else address
    return parts._replace(netloc=f"{literal}:{port}").geturl()


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


MAX_ADDRESSES_TRIED = 4  # a host with more addresses: the first ones


def post(
    delivery: Delivery,
    secret: str,
    *,
    allow_hosts: Collection[str] = (),
    timeout_s: float = 10.0,
    verify: Any = True,
) -> AttemptResult:
    """POST one delivery, signed. 2xx is delivered; 408, 429, 5xx and network errors are
    worth retrying; other answers and refused URLs are not.

    A host that is not allow-listed is resolved once; the request goes to the checked
    addresses (the next one only when connecting to one fails), with the host's name in
    ``Host`` and as the TLS server name. ``verify``: httpx's (the CAs to trust)."""
    import httpx

    try:
        check_callback_url(delivery.url, allow_hosts)
        parts = urlsplit(delivery.url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = None
        if not _host_allowed(host, parts.port, allow_hosts):
            addresses = resolve_public(host, port)[:MAX_ADDRESSES_TRIED]
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
        if addresses is None:  # an allow-listed host (development): connect by name
            response = httpx.post(delivery.url, content=body, headers=headers,
                                  timeout=timeout_s, follow_redirects=False, verify=verify)
        else:
            response = _post_pinned(parts, host, port, addresses, body, headers, timeout_s,
                                    verify)
    except httpx.HTTPError as exc:
        return AttemptResult(False, None, f"{type(exc).__name__}: {exc}", retryable=True)
    code = response.status_code
    if 200 <= code < 300:
        return AttemptResult(True, code, None, retryable=False)
    retryable = code in (408, 425, 429) or code >= 500
    return AttemptResult(False, code, f"HTTP {code}", retryable=retryable)


def _post_pinned(parts: SplitResult, host: str, port: int, addresses: list[str], body: bytes,
                 headers: dict[str, str], timeout_s: float, verify: Any) -> Any:
    """POST to the first of ``addresses`` that accepts a connection, as if to ``host``."""
    import httpx

    headers = {**headers, "Host": parts.netloc.rpartition("@")[2]}
    # TLS: SNI and certificate verification against the name, not the address.
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    with httpx.Client(timeout=timeout_s, follow_redirects=False, verify=verify,
                      trust_env=False) as client:
        for i, address in enumerate(addresses):
            request = client.build_request("POST", pinned_url(parts, address, port),
                                           content=body, headers=headers, extensions=extensions)
            try:
                return client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if i == len(addresses) - 1:
                    raise
    raise AssertionError("unreachable: addresses is never empty")


def backoff_seconds(attempt: int, base_s: float, cap_s: float = 600.0) -> float:
    """Exponential backoff for the ``attempt``-th retry (1-based), jittered between half
    and all of it so that retries of many deliveries spread out."""
    import random

    ceiling = min(cap_s, base_s * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
