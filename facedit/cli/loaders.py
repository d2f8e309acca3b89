"""What commands run with, built from the settings and their flags: the model bundle, the edit
pipeline, the job store and storage. A flag that cannot be honoured exits with code 2.

torch (the bundle, the pipeline) and SQLAlchemy (the job store) are imported when one is built.
"""

from __future__ import annotations

from typing import Any

from facedit.console import fail_usage, note
from shared.core.config import get_settings
from shared.core.contracts import NETWORK_SUPPRESSORS, PipelineConfig
from shared.core.edits import EditSpec
from shared.core.errors import FaceditError, InvalidEditRequest
from shared.core.storage import open_storage


def load_models(models: str | None, device: str | None) -> Any:
    """The model bundle (``--models``, default FACEDIT_MODELS), its notes printed."""
    from shared.editing.bundle import load_bundle

    settings = get_settings()
    try:
        bundle = load_bundle(models or settings.models, settings.weights_dir,
                             device or settings.device)
    except FaceditError as exc:
        fail_usage(exc.message)
    for line in bundle.notes:
        note(line)
    return bundle


def check_attributes(bundle: Any, edits: list[EditSpec]) -> None:
    """Every edited attribute has a direction in ``bundle``, or exit 2."""
    for spec in edits:
        try:
            bundle.check_attribute(spec.attribute)
        except InvalidEditRequest as exc:
            fail_usage(exc.message)


def build_pipeline(bundle: Any, config: PipelineConfig, batch_size: int | None = None) -> Any:
    """The :class:`EditPipeline` of ``bundle``; exit 2 if its suppressor's network is missing."""
    from shared.editing.pipeline import EditPipeline

    if config.suppressor not in bundle.available_suppressors():
        fail_usage(
            f"--suppressor {config.suppressor} needs {NETWORK_SUPPRESSORS[config.suppressor]}, "
            "which is not installed: no trained MAResU-Net is published, so train one "
            "(`facedit train suppressor`) and bring it with `facedit weights import`, or use "
            "--suppressor auto (exact Poisson blending without it); see `facedit weights list`"
        )
    settings = get_settings()
    return EditPipeline(bundle, config, max_items=batch_size or settings.batch_size,
                        precision=settings.precision)


def load_pipeline(models: str | None, device: str | None, edits: list[EditSpec],
                  options: dict[str, Any], batch_size: int | None = None) -> Any:
    """Models loaded, ``edits`` checked against them, and the pipeline for checked ``options``."""
    bundle = load_models(models, device)
    check_attributes(bundle, edits)
    return build_pipeline(bundle, PipelineConfig.from_options(options), batch_size)


def job_store(database_url: str | None = None) -> Any:
    """The job store of ``database_url`` (default: FACEDIT_DATABASE_URL), not migrated."""
    from shared.jobs import JobStore

    return JobStore(database_url or get_settings().database_url)


def embedded_runtime(storage_url: str, database_url: str | None = None) -> tuple[Any, Any]:
    """The migrated job store (default: FACEDIT_DATABASE_URL) and the storage an in-process
    run writes to."""
    settings = get_settings()
    store = job_store(database_url)
    store.migrate()
    return store, open_storage(storage_url, settings.s3_endpoint_url, settings.s3_region)
