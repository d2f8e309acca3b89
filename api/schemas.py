"""Request and response bodies. Requests refuse unknown fields (``unknown_field``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PipelineOptions(Strict):
    """Per-request pipeline options (shared.editing.pipeline.PipelineConfig, checked without torch;
    which suppressors and activations exist comes from the workers' catalog)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    activation: str = Field(default="feature_diff", examples=["feature_diff"])
    suppressor: str = Field(
        default="auto", examples=["auto"],
        description="auto: the trained MAResU-Net when the workers have it, else exact Poisson",
    )  # fmt: skip
    output_size: int | None = Field(default=None, ge=64, le=4096)
    mask_threshold: float = Field(default=0.05, ge=0.0, lt=1.0)
    mask_dilate: int = Field(default=0, ge=0, le=256)
    mask_feather: float = Field(default=0.0, ge=0.0, le=256.0)
    keep_outside: bool = True
    keep_outside_margin: float = Field(default=0.04, ge=0.0, le=0.5)
    intermediates: bool = False


OutputFormat = Literal["png", "jpg", "webp"]
AlignMode = Literal["auto", "always", "never"]
Detector = Literal["hog", "cnn"]
ALIGN_HELP = (
    "auto: align photos whose landmarks are not those of an aligned face crop and paste the "
    "edit back into the whole photo; always; never (the input goes to the pipeline as it is)"
)
ALL_FACES_HELP = "with alignment, edit every face found instead of only the largest"


class InputRef(Strict):
    input_uri: str | None = Field(
        default=None, max_length=2048, description="an object in the service's bucket",
        examples=["s3://facedit/data/uploads/0123abcd/photo.png"],
    )  # fmt: skip
    input_key: str | None = Field(
        default=None, max_length=1024, description="a key from POST /v1/uploads"
    )
    name: str | None = Field(default=None, max_length=1024, description="a label for the input")


class OutputOptions(Strict):
    """What the runner reads beside the pipeline options (shared.core.contracts.JobOptions)."""

    format: OutputFormat = "png"
    quality: int = Field(default=95, ge=1, le=100, description="JPEG/WebP quality")
    align: AlignMode = Field(default="auto", description=ALIGN_HELP)
    all_faces: bool = Field(default=False, description=ALL_FACES_HELP)
    detector: Detector = Field(default="hog", description="face detector: hog (fast) | cnn")
    save_latents: bool = Field(default=False, description="store each input's W+ code")


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
