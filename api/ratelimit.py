"""Per-API-key rate limits, counted in Redis so that every API replica enforces the same ones.

Each key has two quotas, each a moving window (the ``limits`` library's moving-window
strategy: the hits of the last W seconds count, so there is no double burst at a window
boundary):

- ``requests``: every authenticated request (the ``/v1`` routes), at most
  ``FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND`` × ``FACEDIT_RATE_LIMIT_BURST_SECONDS`` in any
  ``FACEDIT_RATE_LIMIT_BURST_SECONDS`` seconds: that rate on average, with bursts up to the
  whole window's worth;
- ``images``: the images submissions queue (a job 1, a batch of N items N, a strength sweep its
  steps, a retry its job's), at most ``FACEDIT_RATE_LIMIT_IMAGES_PER_MINUTE`` in any 60 s.
  A request with more images than that can never pass: 422 ``too_many_images``.

A refused request is 429 ``rate_limited`` with ``Retry-After`` (the seconds until the request
would fit) and changes nothing; refused requests are not counted. Every response of a limited
route carries the fields of draft-ietf-httpapi-ratelimit-headers-06: ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds until the oldest counted hit leaves
the window) of the quota closest to exhaustion, and ``RateLimit-Policy`` listing every quota
that applied (``40;w=2;comment="requests", 1000;w=60;comment="images"``). Health, readiness,
metrics and the docs are not limited.

When Redis does not answer, requests go through unlimited (fail open; a warning is logged once
per outage, and Redis is asked again after :data:`OUTAGE_PAUSE_S`): a limiter must never turn
a request into an error (issue #14: no 500 while a dependency is down).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError
from shared.core.config import Settings

log = logging.getLogger(__name__)

DRAFT = "draft-ietf-httpapi-ratelimit-headers-06"
STATE_KEY = "facedit_rate_limits"  # request.state: the request's KeyLimits
KEY_PREFIX = "facedit-limits"
REDIS_TIMEOUT_S = 1.0
OUTAGE_PAUSE_S = 5.0  # after Redis failed to answer, requests go unlimited this long


@dataclass(frozen=True)
class Quota:
    """One limit: at most ``item.amount`` units in any ``item.get_expiry()`` seconds."""

    name: str  # "requests" or "images": the unit, in messages and in RateLimit-Policy
    item: RateLimitItem
    setting: str  # the variables that set it, for messages

    @property
    def limit(self) -> int:
        return self.item.amount

    @property
    def window(self) -> int:
        return self.item.get_expiry()

    @property
    def policy(self) -> str:
        """This quota as a RateLimit-Policy item."""
        return f'{self.limit};w={self.window};comment="{self.name}"'


@dataclass(frozen=True)
class Usage:
    """What is left of a quota after a request."""

    quota: Quota
    remaining: int
    reset: int  # seconds until the oldest counted unit leaves the window


@dataclass(frozen=True)
class Spent:
    allowed: bool
    usage: Usage
    retry_after: int  # when refused: seconds until the cost fits


class RateLimiter:
    """The quotas (from the settings) and the Redis they are counted in; one per app."""

    def __init__(self, settings: Settings) -> None:
        rps, burst = settings.rate_limit_requests_per_second, settings.rate_limit_burst_seconds
        self.requests = (
            Quota(
                "requests", RateLimitItemPerSecond(rps * burst, burst),
                "FACEDIT_RATE_LIMIT_REQUESTS_PER_SECOND × FACEDIT_RATE_LIMIT_BURST_SECONDS",
            )
            if rps > 0
            else None
        )  # fmt: skip
        images = settings.rate_limit_images_per_minute
        self.images = (
            Quota("images", RateLimitItemPerMinute(images), "FACEDIT_RATE_LIMIT_IMAGES_PER_MINUTE")
            if images > 0
            else None
        )
        self.namespace = settings.queue  # deployments sharing a Redis keep their counts apart
        self.url = settings.rate_limit_storage_url or settings.broker_url
        self._storage: RedisStorage | None = None
        self._strategy: MovingWindowRateLimiter | None = None
        if self.requests is not None or self.images is not None:
            self._storage = RedisStorage(
                self.url, key_prefix=KEY_PREFIX, socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )  # fmt: skip
            self._strategy = MovingWindowRateLimiter(self._storage)
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def spend(self, quota: Quota, key_id: str, cost: int) -> Spent | None:
        """Count ``cost`` units of ``quota`` for API key ``key_id`` if they fit; None when
        Redis does not answer (the request goes through)."""
        if self._strategy is None or time.monotonic() < self._paused_until:
            return None
        ids = (self.namespace, quota.name, key_id)
        try:
            allowed = self._strategy.hit(quota.item, *ids, cost=cost)
            stats = self._strategy.get_window_stats(quota.item, *ids)
            now = time.time()
            usage = Usage(quota, max(0, stats.remaining), max(0, math.ceil(stats.reset_time - now)))
            retry_after = 0 if allowed else self._seconds_until_fits(quota, ids, cost, usage)
        except Exception as exc:  # noqa: BLE001 - fail open, whatever the storage raised
            self._outage(exc)
            return None
        self._recovered()
        return Spent(allowed, usage, retry_after)

    def _seconds_until_fits(self, quota: Quota, ids: tuple[str, ...], cost: int,
                            usage: Usage) -> int:
        """When ``cost`` more units fit: the moving window keeps one timestamp per unit, newest
        first, so they fit once the unit at index ``limit - cost`` has left the window."""
        assert self._storage is not None
        key = self._storage.prefixed_key(quota.item.key_for(*ids))
        try:
            entry = self._storage.get_connection().lindex(key, quota.limit - cost)
            if entry is None:
                return 1
            return max(1, math.ceil(float(entry) + quota.window - time.time()))
        except (TypeError, ValueError):  # not the layout expected: the oldest unit's expiry
            return max(1, usage.reset)

    def _outage(self, exc: Exception) -> None:
        with self._lock:
            first = self._paused_until == 0.0
            self._paused_until = time.monotonic() + OUTAGE_PAUSE_S
        if first:
            log.warning(
                "rate limits not enforced: their Redis (%s) does not answer (%s: %s); "
                "requests go through unlimited until it does", _redacted(self.url),
                type(exc).__name__, exc,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._paused_until != 0.0:
            with self._lock:
                self._paused_until = 0.0
            log.info("rate limits enforced again: their Redis answers")

    def close(self) -> None:
        if self._storage is not None:
            try:
                self._storage.get_connection().close()
            except Exception:  # noqa: BLE001
                log.debug("closing the rate limit storage failed", exc_info=True)


def _redacted(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}" if sep else url


class KeyLimits:
    """The quotas of one request's API key: spends them, and remembers what was left for the
    response's RateLimit fields (:class:`RateLimitHeaders` writes them)."""

    def __init__(self, limiter: RateLimiter, key_id: str) -> None:
        self.limiter = limiter
        self.key_id = key_id
        self.usages: dict[str, Usage] = {}

    def spend_request(self) -> None:
        """Count this request; ApiError 429 when the key has made too many."""
        quota = self.limiter.requests
        if quota is not None:
            self._spend(quota, 1, f"more than {quota.limit} requests in {quota.window} s")

    def spend_images(self, images: int) -> None:
        """Count ``images`` about to be queued; ApiError 429 when they do not fit in the key's
        images per minute now, 422 ``too_many_images`` when they never will."""
        quota = self.limiter.images
        if quota is None or images <= 0:
            return
        if images > quota.limit:
            raise ApiError(
                422, "too_many_images",
                f"this request queues {images} images (a sweep counts its steps); an API key "
                f"may queue at most {quota.limit} per minute ({quota.setting}): split it",
            )  # fmt: skip
        self._spend(quota, images, f"{images} more images would exceed {quota.limit} per minute")

    def _spend(self, quota: Quota, cost: int, what: str) -> None:
        spent = self.limiter.spend(quota, self.key_id, cost)
        if spent is None:
            return
        self.usages[quota.name] = spent.usage
        if not spent.allowed:
            raise ApiError(
                429, "rate_limited",
                f"rate limit of this API key: {what} ({quota.setting}); retry in "
                f"{spent.retry_after} s",
                headers={"Retry-After": str(spent.retry_after)},
            )  # fmt: skip

    def headers(self) -> list[tuple[str, str]]:
        """The RateLimit fields (draft-ietf-httpapi-ratelimit-headers-06) for the quotas this
        request spent: Limit, Remaining and Reset of the one closest to exhaustion."""
        if not self.usages:
            return []
        usages = list(self.usages.values())
        tightest = min(usages, key=lambda u: (u.remaining / u.quota.limit, -u.reset))
        return [
            ("RateLimit-Limit", str(tightest.quota.limit)),
            ("RateLimit-Remaining", str(tightest.remaining)),
            ("RateLimit-Reset", str(tightest.reset)),
            ("RateLimit-Policy", ", ".join(u.quota.policy for u in usages)),
        ]


def request_limits(scope: Scope) -> KeyLimits | None:
    """The KeyLimits a request's authentication stored (None before or without one)."""
    state: Any = scope.get("state") or {}
    return state.get(STATE_KEY)


class RateLimitHeaders:
    """Adds the RateLimit fields to every response of a request whose API key was rate
    limited (success and error answers alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                limits = request_limits(scope)
                fields = limits.headers() if limits is not None else []
                if fields:
                    headers = list(message.get("headers", []))
                    present = {bytes(name).lower() for name, _ in headers}
                    headers += [
                        (name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in fields
                        if name.lower().encode("latin-1") not in present
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_fields)
