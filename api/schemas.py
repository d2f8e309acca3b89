"""Request and response bodies. Requests refuse unknown fields (``unknown_field``).

The pipeline options (``options``) and the output options (``format``, ``quality``, ``align``,
…) are the contracts of :mod:`shared.core.contracts`, used as they are."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.contracts import OutputOptions, PipelineConfig

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
    key: str
    uri: str
    upload_url: str
    method: Literal["PUT"] = "PUT"
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


class JobOut(BaseModel):
    id: str
    batch_id: str
    position: int
    status: str
    progress: float
    stage: str | None
    input_uri: str
    input_name: str | None
    edits: list[dict[str, Any]]
    options: dict[str, Any]
    error_code: str | None
    error_message: str | None
    attempts: int
    max_attempts: int
    result: StoredObject | None = Field(description="the (first) result")
    intermediates: dict[str, StoredObject]
    results: list[ResultOut] = Field(description="every result, in sweep order")
    latent: StoredObject | None = Field(description="the stored W+ code (save_latents)")
    suppressor: str | None = Field(description="the suppressor that ran (auto resolved)")
    metrics: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class BatchOut(BaseModel):
    id: str
    created_at: datetime
    callback_url: str | None
    options: dict[str, Any]
    total: int
    counts: dict[str, int]
    done: bool
    jobs: list[JobOut]
    offset: int
    limit: int
    next_offset: int | None
    cancelled: int | None = None


class AttributeOut(BaseModel):
    name: str
    kind: str
    default_layers: list[int] | None
    strength_range: list[float]
    default_strength: float


class AttributesOut(BaseModel):
    models: str
    preset: str
    attributes: list[AttributeOut]
    names: list[str]
    suppressors: list[str]
    auto_suppressor: str | None = None
    activations: list[str]
    n_latent: int
    output_size: int
    published_at: str
    notes: list[str] = []
