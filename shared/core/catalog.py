"""The attribute catalog: what the workers' models offer, as the API learns it.

The API never imports torch, so it cannot load the models. Each worker process records this
document in the job database, one row per queue (``workers/catalog.py`` →
``JobStore.publish_catalog``), where it survives Redis restarts and data loss; the API reads it
to answer ``GET /v1/attributes`` (its response schema is derived from
:class:`AttributeCatalog`) and to check submissions. Only the document's shape is here.
"""

from __future__ import annotations

from pydantic import BaseModel

CATALOG_VERSION = 1


class CatalogAttribute(BaseModel):
    """One edit the models offer."""

    name: str
    kind: str
    default_layers: list[int] | None
    strength_range: list[float]
    default_strength: float


class AttributeCatalog(BaseModel):
    """What the workers' models offer: attributes, suppressors, activations, sizes."""

    models: str
    preset: str
    attributes: list[CatalogAttribute]
    names: list[str]
    suppressors: list[str]
    auto_suppressor: str | None = None
    activations: list[str]
    n_latent: int
    output_size: int
    published_at: str
    notes: list[str] = []


class PublishedCatalog(AttributeCatalog):
    """The document a worker writes: the catalog, its format version and its writer."""

    version: int = CATALOG_VERSION
    worker: str
