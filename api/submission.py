"""Turning a validated request into a batch of queued jobs (CRUD, no HTTP).

Everything a request can get wrong is checked before any row is written or any message
sent: edits against the workers' catalog, options, the callback URL, and every input
(inside the storage, the owner's, present, within the size limit).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.catalog import Catalog
from api.context import ApiContext
from api.errors import ApiError
from api.inputs import check_objects, check_owner, input_key
from api.ratelimit import KeyLimits
from api.schemas import BatchIn, EditIn, JobIn, PipelineOptions
from shared.core.contracts import NETWORK_SUPPRESSORS, OutputOptions
from shared.core.edits import EditSpec, check_request, expand_variants, parse_edit
from shared.core.errors import IdempotencyConflict, InvalidEditRequest
from shared.core.webhooks import WebhookUrlError, check_callback_url
from shared.jobs import BatchRecord, NewJob

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True)
class Item:
    """One input of a request, with the edits it gets."""

    where: str
    input_uri: str | None
    input_key: str | None
    name: str | None
    edits: Sequence[EditIn | str]


def job_items(body: JobIn) -> list[Item]:
    """The one input of a POST /v1/jobs body."""
    return [Item("body", body.input_uri, body.input_key, body.name, body.edits)]


def batch_items(body: BatchIn) -> list[Item]:
    """The inputs of a POST /v1/batches body; ``edits`` apply to items without their own."""
    items = []
    for index, item in enumerate(body.items):
        where = f"items[{index}]"
        edits = item.edits if item.edits is not None else body.edits
        if edits is None:
            raise ApiError(
                422, "missing_field", f"{where}.edits: no edits for this item and none for all"
            )
        items.append(Item(where, item.input_uri, item.input_key, item.name, edits))
    return items


@dataclass(frozen=True)
class Submission:
    batch: BatchRecord
    replayed: bool  # an earlier request with the same Idempotency-Key and body


def request_hash(endpoint: str, body: Any) -> str:
    """What makes two requests "the same" for Idempotency-Key: endpoint and parsed body."""
    document = {"endpoint": endpoint, "body": body.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def job_options(body: OutputOptions) -> dict[str, Any]:
    """The options of a JobIn/BatchIn that the runner reads beside the pipeline's."""
    return body.model_dump(include=set(OutputOptions.model_fields))


def check_edits(raw: Sequence[EditIn | str], catalog: Catalog, where: str) -> list[dict]:
    """Parse, range-check and look up each edit; ApiError 422 naming the bad one."""
    checked = []
    for index, edit in enumerate(raw):
        spot = f"{where}[{index}]"
        try:
            spec = _edit_spec(edit)
        except InvalidEditRequest as exc:
            raise ApiError(422, "invalid_edit", f"{spot}: {exc.message}") from exc
        if spec.attribute not in catalog.names:
            raise ApiError(
                422, "unknown_attribute",
                f"{spot}: attribute {spec.attribute!r} is not available; available: "
                f"{', '.join(sorted(catalog.names))}",
            )  # fmt: skip
        if spec.layers is not None and spec.layers[1] > catalog.n_latent:
            raise ApiError(
                422, "invalid_edit",
                f"{spot}: layers {list(spec.layers)} go past the {catalog.n_latent} W+ layers",
            )  # fmt: skip
        checked.append(spec)
    try:
        check_request(checked)
    except InvalidEditRequest as exc:
        raise ApiError(422, "invalid_edit", f"{where}: {exc.message}") from exc
    return [spec.to_dict() for spec in checked]


def images_of(edits: Sequence[dict[str, Any]]) -> int:
    """How many images a job with these (checked) edits makes: a sweep's steps, else one."""
    return len(expand_variants([EditSpec.from_dict(edit) for edit in edits]))


def _edit_spec(edit: EditIn | str) -> EditSpec:
    if isinstance(edit, str):
        return parse_edit(edit)
    return EditSpec.from_dict(edit.model_dump(exclude_none=True))


# How to get the network a suppressor needs.
HOW_TO_GET = {
    "maresunet": "train one with `facedit train suppressor`, then `facedit weights import` it "
                 "on the workers",
    "sdea": "see `facedit weights list`",
}


def check_options(options: PipelineOptions, catalog: Catalog) -> dict[str, Any]:
    suppressors = ["auto", *(s for s in catalog.suppressors if s != "auto")]
    wanted = options.suppressor
    if wanted in NETWORK_SUPPRESSORS and wanted not in suppressors:
        raise ApiError(
            422, "model_unavailable",
            f"options.suppressor: {wanted!r} needs {NETWORK_SUPPRESSORS[wanted]}, which these "
            f"workers do not have ({HOW_TO_GET[wanted]}); 'auto' runs "
            f"{catalog.data.get('auto_suppressor') or 'poisson'}",
        )  # fmt: skip
    for name, value, available in (
        ("suppressor", options.suppressor, suppressors),
        ("activation", options.activation, catalog.activations),
    ):
        if value not in available:
            raise ApiError(
                422, "invalid_option",
                f"options.{name}: {value!r} is not available; available: {', '.join(available)}",
            )  # fmt: skip
    return options.model_dump(mode="json")


def check_callback(ctx: ApiContext, callback_url: str | None) -> str | None:
    if callback_url is None:
        return None
    if not ctx.settings.webhook_secret:
        raise ApiError(
            422, "webhooks_disabled",
            "callback_url: this service has no FACEDIT_WEBHOOK_SECRET, so it sends no webhooks",
        )  # fmt: skip
    try:
        return check_callback_url(callback_url, ctx.webhook_allow_hosts)
    except WebhookUrlError as exc:
        raise ApiError(422, "invalid_callback_url", str(exc)) from exc


def find_idempotent(ctx: ApiContext, owner: str, key: str) -> BatchRecord | None:
    return ctx.store.find_idempotent(owner, key)


def submit(
    ctx: ApiContext,
    owner: str,
    items: Sequence[Item],
    options: PipelineOptions,
    job_options: dict[str, Any],
    callback_url: str | None,
    idempotency_key: str | None,
    body_hash: str,
    limits: KeyLimits | None = None,
) -> Submission:
    """Validate everything, count the images against the key's rate limit (``limits``), then
    create the batch and wake the workers. ``job_options``: what the runner reads beside the
    pipeline options (format, align, all_faces). A replay of an earlier request (same
    Idempotency-Key and body) queues nothing, so it counts no images."""
    settings = ctx.settings
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ApiError(
                422, "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )  # fmt: skip
        existing = find_idempotent(ctx, owner, idempotency_key)
        if existing is not None:
            if existing.request_hash != body_hash:
                raise ApiError(
                    422, "idempotency_conflict",
                    f"Idempotency-Key {idempotency_key!r} was used for a different request "
                    f"(batch {existing.id})",
                )  # fmt: skip
            return Submission(existing, replayed=True)
    if len(items) > settings.api_max_batch_images:
        raise ApiError(
            422, "too_many_images",
            f"{len(items)} images in one request; the limit is {settings.api_max_batch_images} "
            "(FACEDIT_API_MAX_BATCH_IMAGES)",
        )  # fmt: skip
    callback = check_callback(ctx, callback_url)
    catalog = ctx.catalog.get()
    pipeline = check_options(options, catalog)
    edits = [check_edits(item.edits, catalog, f"{item.where}.edits") for item in items]
    keys = []
    for item in items:
        key = input_key(ctx.storage, item.input_uri, item.input_key, item.where)
        check_owner(key, owner, lambda b: ctx.store.get_batch(b, owner) is not None, item.where)
        keys.append((item.where, key))
    objects = check_objects(ctx.storage, keys, settings.max_image_bytes)
    if limits is not None:
        limits.spend_images(sum(images_of(item_edits) for item_edits in edits))
    job_options = {"pipeline": pipeline, **job_options}
    jobs = [
        NewJob(
            input_uri=found.uri,
            edits=item_edits,
            options=job_options,
            input_name=item.name or found.key.rsplit("/", 1)[-1],
            max_attempts=settings.max_attempts,
        )
        for item, item_edits, found in zip(items, edits, objects, strict=True)
    ]
    started = datetime.now(UTC)
    try:
        batch = ctx.store.create_batch(
            jobs, owner=owner, options={**job_options, "runtime": "service"},
            callback_url=callback, idempotency_key=idempotency_key, request_hash=body_hash,
        )  # fmt: skip
    except IdempotencyConflict as exc:
        raise ApiError(422, "idempotency_conflict", exc.message) from exc
    replayed = batch.created_at < started  # a concurrent twin of this request won the race
    if not replayed:
        ctx.queue.wake_workers(len(jobs))
    return Submission(batch, replayed)
