"""The workers' attribute catalog, read from the job database (published there by
workers/catalog.py, so a Redis restart loses nothing; the document is
:class:`shared.core.catalog.PublishedCatalog`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Catalog:
    data: dict[str, Any]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.data.get("names", ()))

    @property
    def suppressors(self) -> list[str]:
        return list(self.data.get("suppressors", ()))

    @property
    def activations(self) -> list[str]:
        return list(self.data.get("activations", ()))

    @property
    def n_latent(self) -> int:
        return int(self.data.get("n_latent", 18))


class CatalogReader:
    """Reads the catalog from the job database, caching it for a few seconds."""

    def __init__(self, store: Any, queue: str) -> None:
        self.store = store
        self.queue = queue
        self._cached: tuple[float, Catalog | None] = (0.0, None)
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        """The catalog, or ApiError 503 when no worker has published one yet."""
        now = time.monotonic()
        at, catalog = self._cached
        if catalog is None or now - at > CACHE_SECONDS:
            with self._lock:
                document = self.store.read_catalog(self.queue)
                catalog = Catalog(document) if document else None
                self._cached = (now, catalog)
        if catalog is None:
            raise ApiError(
                503, "attributes_unavailable",
                "no worker has published its models' attributes yet: start a worker "
                "(`facedit worker`) and retry", headers={"Retry-After": "10"},
            )  # fmt: skip
        return catalog
