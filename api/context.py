"""Everything a request handler needs, built once per app from the settings (routes get it
as ``ctx: Context``, see api/deps.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.catalog import CatalogReader
from api.metrics import ApiMetrics
from api.queue import TaskQueue
from api.ratelimit import RateLimiter
from api.views import Presigner
from shared.core.config import Settings
from shared.core.storage import S3Storage, Storage, make_s3_client, storage_from_settings
from shared.core.webhooks import parse_allow_hosts
from shared.jobs import ApiKeys, JobStore
from shared.jobs.deliveries import WebhookDeliveries


@dataclass
class ApiContext:
    settings: Settings
    store: JobStore
    storage: Storage
    presigner: Presigner
    keys: ApiKeys
    deliveries: WebhookDeliveries
    queue: TaskQueue
    redis: Any
    catalog: CatalogReader
    metrics: ApiMetrics
    limiter: RateLimiter  # per-key rate limits, counted in Redis
    webhook_allow_hosts: frozenset[str]
    head_revision: str | None  # the schema revision this code needs

    def close(self) -> None:
        self.queue.close()
        self.limiter.close()
        self.redis.close()
        self.store.close()


def build_context(settings: Settings) -> ApiContext:
    import redis

    store = JobStore(settings.database_url)
    storage = storage_from_settings(settings)
    public = storage
    if isinstance(storage, S3Storage) and settings.s3_public_endpoint_url:
        client = make_s3_client(settings.s3_public_endpoint_url, settings.s3_region)
        public = S3Storage(storage.bucket, storage.prefix, client=client)
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=5)
    return ApiContext(
        settings=settings,
        store=store,
        storage=storage,
        presigner=Presigner(storage, public, settings.url_expires_seconds),
        keys=ApiKeys(store),
        deliveries=WebhookDeliveries(store),
        queue=TaskQueue(settings),
        redis=client,
        catalog=CatalogReader(store, settings.queue),
        metrics=ApiMetrics(store, client, [settings.queue, settings.webhook_queue]),
        limiter=RateLimiter(settings),
        webhook_allow_hosts=parse_allow_hosts(settings.webhook_allow_hosts),
        head_revision=store.head_revision(),
    )
