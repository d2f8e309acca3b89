"""The attribute catalog: what the workers' models can do, published for the API.

The API never imports torch, so it cannot load the models to learn their attributes.
Instead each worker process, once its models are loaded, writes a JSON description
(:class:`shared.core.catalog.PublishedCatalog`, the document's one definition) to the job
database (one ``catalogs`` row per queue, so it survives scaling to zero and any Redis restart)
and refreshes it every minute while it takes tasks. The API reads
it to answer ``GET /v1/attributes`` and to refuse unknown attributes, unavailable
suppressors and activations, and layer ranges beyond W+ at submission.

All workers of one deployment must run the same models (``FACEDIT_MODELS`` and weights):
the catalog is last-writer-wins.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from shared.core.catalog import CatalogAttribute, PublishedCatalog
from shared.editing.null_pipeline import NullPipeline


def describe(pipeline: Any, models: str) -> PublishedCatalog:
    """The catalog of ``pipeline``'s attributes and options."""
    from shared.core.contracts import ACTIVATIONS, AUTO_SUPPRESSOR, SUPPRESSORS

    common = {
        "models": models,
        "published_at": datetime.now(UTC).isoformat(),
        "worker": f"{socket.gethostname()}/{os.getpid()}",
    }
    if isinstance(pipeline, NullPipeline):
        bundle = pipeline.bundle
        attributes = [
            CatalogAttribute(name=name, kind="null", default_layers=None,
                             strength_range=[-5.0, 5.0], default_strength=1.0)
            for name in bundle.attributes()
        ]  # fmt: skip
        return PublishedCatalog(
            **common,
            preset=bundle.preset,
            attributes=attributes,
            names=bundle.attributes(),
            suppressors=[AUTO_SUPPRESSOR, *SUPPRESSORS],
            auto_suppressor=None,
            activations=list(ACTIVATIONS),
            n_latent=bundle.n_latent,
            output_size=bundle.output_size,
            notes=list(bundle.notes),
        )
    bundle = pipeline.bundle
    attributes = [
        CatalogAttribute(
            name=info.name,
            kind=info.kind,
            default_layers=list(info.default_layers) if info.default_layers else None,
            strength_range=list(info.strength_range),
            default_strength=info.default_strength,
        )
        for info in bundle.directions.available()
    ]
    suppressors = bundle.available_suppressors()
    activations = [a for a in ACTIVATIONS if a != "diffcam" or bundle.diffcam is not None]
    return PublishedCatalog(
        **common,
        preset=bundle.preset,
        attributes=attributes,
        names=bundle.directions.known_names(),
        suppressors=suppressors,
        auto_suppressor=bundle.auto_suppressor(),
        activations=activations,
        n_latent=int(bundle.generator.n_latent),
        output_size=int(bundle.output_size),
        notes=list(bundle.notes),
    )


def publish(store: Any, queue: str, catalog: PublishedCatalog) -> None:
    """Record the catalog in the job database (``store``: a shared.jobs.JobStore), where the
    API reads it — it survives a Redis restart or data loss."""
    store.publish_catalog(queue, catalog.model_dump())
