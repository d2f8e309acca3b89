"""Request and response bodies. Requests refuse unknown fields (``unknown_field``).

The pipeline options (``options``) and the output options (``format``, ``quality``, ``align``,
…) are the contracts of :mod:`shared.core.contracts`, used as they are. The job and batch
answers take their fields' types from the records of :mod:`shared.jobs` (:func:`record_fields`):
only which fields are public, their order, and the presigned objects are written here."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from shared.core.catalog import AttributeCatalog, CatalogAttribute
from shared.core.contracts import OutputOptions, PipelineConfig
from shared.jobs import BatchRecord, JobRecord

MAX_EDITS = 32


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SweepIn(Strict):
    """Strengths from ``start`` to ``end`` (both included) in ``steps`` even steps, 2-64."""

    start: float = Field(examples=[-3.0])
    end: float = Field(examples=[3.0])
    steps: int = Field(examples=[7])


class EditIn(Strict):
    """One edit: a ``strength``, or a ``sweep`` (one result per step; at most one sweep per
    request). The text forms ``"smile=+2"``, ``"pose=1.5@0-6"`` and ``"smile=-3:3:7"`` are
    accepted too."""

    attribute: str = Field(max_length=64, examples=["smile"])
    strength: float | None = Field(default=None, description="finite, within ±100",
                                   examples=[2.0])
    sweep: SweepIn | None = Field(default=None, description="instead of strength")
    layers: list[int] | None = Field(
        default=None, description="[start, end) W+ layers; default: the direction's own"
    )


EditList = list[EditIn | str]


# The pipeline and output options are the shared contracts themselves (no copies here).
PipelineOptions = PipelineConfig


class InputRef(Strict):
    input_uri: str | None = Field(
        default=None, max_length=2048, description="an object in the service's bucket",
        examples=["s3://facedit/data/uploads/0123abcd/photo.png"],
    )  # fmt: skip
    input_key: str | None = Field(
        default=None, max_length=1024, description="a key from POST /v1/uploads"
    )
    name: str | None = Field(default=None, max_length=1024, description="a label for the input")


class JobIn(InputRef, OutputOptions):
    edits: EditList = Field(min_length=1, max_length=MAX_EDITS)
    options: PipelineOptions = Field(default_factory=PipelineOptions)
    callback_url: str | None = Field(default=None, max_length=2048)


class BatchItemIn(InputRef):
    edits: EditList | None = Field(default=None, min_length=1, max_length=MAX_EDITS)


class BatchIn(OutputOptions):
    items: list[BatchItemIn] = Field(min_length=1)
    edits: EditList | None = Field(
        default=None, min_length=1, max_length=MAX_EDITS,
        description="edits for every item that does not give its own",
    )  # fmt: skip
    options: PipelineOptions = Field(default_factory=PipelineOptions)
    callback_url: str | None = Field(default=None, max_length=2048)


class UploadIn(Strict):
    filename: str | None = Field(default=None, max_length=255, examples=["portrait.jpg"])
    content_type: str | None = Field(default=None, max_length=100, examples=["image/jpeg"])


class UploadOut(BaseModel):
    """Where and how to upload one input: an HTML-form POST to ``upload_url`` with every
    entry of ``fields`` and then the file (``file``, last), whose size S3 itself bounds."""

    key: str = Field(description="submit it as input_key once the upload is done")
    uri: str
    upload_url: str = Field(description="the S3 form action: POST the form here")
    method: Literal["POST"] = "POST"
    fields: dict[str, str] = Field(
        description="form fields to send as given, before the file (multipart/form-data)"
    )
    max_bytes: int = Field(
        description="the largest file S3 accepts for this upload (FACEDIT_MAX_IMAGE_BYTES); "
        "S3 refuses a larger or empty one (400 EntityTooLarge / EntityTooSmall) and stores "
        "nothing"
    )
    expires_in: int


class StoredObject(BaseModel):
    uri: str
    url: str | None = Field(description="presigned GET URL (null for file:// storage)")


class ResultOut(BaseModel):
    """One result of a job: one per step of a strength sweep, else just one."""

    label: str | None = Field(description="the edit, e.g. smile+2 or smile-3,age-1")
    edits: list[dict[str, Any]] | None
    result: StoredObject
    intermediates: dict[str, StoredObject]


def record_fields(record: type, *names: str, **descriptions: str) -> dict[str, Any]:
    """Fields ``names`` of a record (a dataclass of :mod:`shared.jobs.records`) as required
    pydantic fields of the record's types, for :func:`pydantic.create_model`."""
    types = {field.name: field.type for field in dataclasses.fields(record)}
    return {name: (types[name], Field(description=descriptions.get(name))) for name in names}


# A job as the API shows it, in this order: fields of its record, with the record's types, and
# its stored objects (result, intermediates, every result, latent) as presigned StoredObjects.
# The owner, the input's hash and the worker's lease stay private.
JobOut = create_model(
    "JobOut",
    **record_fields(
        JobRecord, "id", "batch_id", "position", "status", "progress", "stage", "input_uri",
        "input_name", "edits", "options", "error_code", "error_message", "attempts",
        "max_attempts",
    ),
    result=(StoredObject | None, Field(description="the (first) result")),
    intermediates=(dict[str, StoredObject], Field()),
    results=(list[ResultOut], Field(description="every result, in sweep order")),
    latent=(StoredObject | None, Field(description="the stored W+ code (save_latents)")),
    **record_fields(
        JobRecord, "suppressor", "metrics", "created_at", "started_at", "finished_at",
        "updated_at", suppressor="the suppressor that ran (auto resolved)",
    ),
)  # fmt: skip


# A batch: fields of its record, with the record's types, then its counts and a page of jobs.
_BatchFields = create_model(
    "_BatchFields", **record_fields(BatchRecord, "id", "created_at", "callback_url", "options")
)


class BatchSummaryOut(_BatchFields):
    """A batch and its jobs' counts per status (a row of GET /v1/batches)."""

    total: int
    counts: dict[str, int]
    done: bool = Field(description="no job is queued or running")


class BatchOut(BatchSummaryOut):
    jobs: list[JobOut]
    offset: int
    limit: int
    next_offset: int | None
    cancelled: int | None = None


# The listings: newest first, in keyset pages (GET /v1/jobs, GET /v1/batches).
NEXT_CURSOR = Field(
    description="pass as `cursor` for the next (older) page; null on the last page",
)


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = NEXT_CURSOR


class BatchListOut(BaseModel):
    batches: list[BatchSummaryOut]
    next_cursor: str | None = NEXT_CURSOR


# Every error answer (api/errors.py), whatever its status.
class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. job_not_found",
                      examples=["job_not_found"])
    message: str = Field(description="what went wrong, for people")


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


# GET /readyz, ready (200) or not (503).
class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description='per dependency: "ok" or what is wrong')


# GET /v1/attributes: the workers' catalog (shared.core.catalog) under the API's names.
class AttributeOut(CatalogAttribute):
    pass


class AttributesOut(AttributeCatalog):
    attributes: list[AttributeOut]
