"""The facts every side of facedit shares, each written once (no torch, no database).

- the Celery task names the API sends and the workers register, and the message timings;
- job statuses;
- the suppressors and activations, and the weight files facedit looks for;
- a job's options: :class:`PipelineConfig` (``options.pipeline``) and :class:`JobOptions`
  (format, quality, alignment, detector, latents) — the CLI, the API's request bodies and the
  runner all check options with these models, so each option, its default, its range and its
  help text are declared here and nowhere else;
- :class:`LogRow`, one line of ``OUT/jobs.jsonl``.

A job's ``options`` JSON is ``{"pipeline": {...PipelineConfig...}, **JobOptions}``.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.errors import InvalidEditRequest

# ---------------------------------------------------------------- tasks and states

PROCESS_JOBS_TASK = "facedit.process_jobs"  # "claim up to FACEDIT_BATCH_SIZE queued jobs"
DELIVER_WEBHOOK_TASK = "facedit.deliver_webhook"
JOB_TIME_LIMIT_S = 900  # a task's hard time limit on the workers
# Redis redelivers a message left unacknowledged this long; it must outlast any task. The
# API's Celery client and the workers' app both set it.
VISIBILITY_TIMEOUT_S = 2 * JOB_TIME_LIMIT_S


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)

# ---------------------------------------------------------------- models and weights

E4E_FILE = "e4e_ffhq_encode.pt"
PSP_FILE = "pSp_ffhq_encode.pt"
INVERSION_FILES = {"e4e": E4E_FILE, "psp": PSP_FILE}
DIFFCAM_FILE = "diff_cam_weight.pt"
SUPPRESSOR_FILE = "maresunet_suppressor.pt"
DEGHOSTING_FILE = "deghosting.pt"
DIRECTIONS_DIR = "directions"
LATENT_SUFFIX = ".latent.pt"  # a stored W+ code beside its input's results: <stem>.latent.pt

Suppressor = Literal["naive", "poisson", "poisson-opencv", "maresunet", "sdea"]
SUPPRESSORS: tuple[str, ...] = get_args(Suppressor)
AUTO_SUPPRESSOR = "auto"  # the trained MAResU-Net when it is installed, else exact Poisson
# suppressors that run a trained network, and the file it comes from
NETWORK_SUPPRESSORS = {"maresunet": SUPPRESSOR_FILE, "sdea": DEGHOSTING_FILE}
Activation = Literal["feature_diff", "diffcam"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)

# ---------------------------------------------------------------- options

OutputFormat = Literal["png", "jpg", "webp"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
AlignMode = Literal["auto", "always", "never"]
ALIGN_MODES: tuple[str, ...] = get_args(AlignMode)
Detector = Literal["hog", "cnn"]
DETECTORS: tuple[str, ...] = get_args(Detector)


class _Options(BaseModel):
    # strict: no "yes" for a boolean, no true for a number (ints are still fine for floats)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of option ``name`` (CLI ``--help`` and the API's schema)."""
        return cls.model_fields[name].description or ""


class PipelineConfig(_Options):
    """Per-request pipeline options (``options.pipeline`` of a job)."""

    activation: Activation = Field(
        "feature_diff", description="differential activation: feature_diff (generator feature "
        "difference, no extra weights) | diffcam (SDEA's Diff-CAM, needs diff_cam_weight.pt)")
    suppressor: Literal["auto", Suppressor] = Field(
        AUTO_SUPPRESSOR, description="auto (the trained MAResU-Net when maresunet_suppressor.pt "
        "is installed, else exact Poisson) | maresunet | poisson | poisson-opencv | naive | sdea")
    output_size: int | None = Field(
        None, ge=64, le=4096, description="square output side in pixels (default: the "
        "generator's)")
    mask_threshold: float = Field(
        0.05, ge=0.0, lt=1.0, description="mask values below it become 0")
    mask_dilate: int = Field(0, ge=0, le=256, description="dilation radius, output pixels")
    mask_feather: float = Field(0.0, ge=0.0, le=256.0,
                                description="Gaussian feather sigma, output pixels")
    keep_outside: bool = Field(
        True, description="copy the input back, bit for bit, farther than keep_outside_margin "
        "from the edit")
    keep_outside_margin: float = Field(
        0.04, ge=0.0, le=0.5, description="that margin, as a fraction of the side")
    intermediates: bool = Field(
        False, description="also store the mask, edited, naive and Poisson images")

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> PipelineConfig:
        """Checked options; :class:`InvalidEditRequest` naming what is wrong otherwise."""
        return _checked(cls, options or {}, "pipeline option")

    def to_options(self) -> dict[str, Any]:
        return self.model_dump()

    def with_changes(self, **changes: Any) -> PipelineConfig:
        return PipelineConfig.from_options({**self.to_options(), **changes})


class OutputOptions(_Options):
    """What becomes of a job's input and results beside the pipeline (API request fields)."""

    format: OutputFormat = Field("png", description="result encoding: png | jpg | webp")
    quality: int = Field(95, ge=1, le=100, description="JPEG/WebP quality, 1-100")
    align: AlignMode = Field(
        "auto", description="auto: align inputs whose landmarks are not those of an aligned "
        "face crop and paste the edit back into the whole photo; always; never (take the input "
        "as an aligned crop)")
    all_faces: bool = Field(False, description="with alignment, edit every face, not only "
                                               "the largest")
    detector: Detector = Field("hog", description="face detector for alignment: hog (fast) | "
                                                  "cnn (dlib's CNN, much slower on a CPU)")
    save_latents: bool = Field(False, description="store each input's W+ code next to its "
                                                  "results")


class JobOptions(OutputOptions):
    """All of a job's options beside ``pipeline`` (what the runner reads)."""

    latent: str | None = Field(None, min_length=1, description="URI of a stored W+ code to "
                                                               "edit from instead of inverting")

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> JobOptions:
        """The job options of a job's ``options`` (its ``pipeline`` key is not read)."""
        values = {k: v for k, v in (options or {}).items() if k != "pipeline"}
        if values.get("format") == "jpeg":
            values["format"] = "jpg"
        return _checked(cls, values, "job option")

    def to_options(self) -> dict[str, Any]:
        """JSON for the job row (``latent`` only when set)."""
        return self.model_dump(exclude_none=True)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


M = TypeVar("M", bound=BaseModel)


def _checked(model: type[M], values: dict[str, Any], what: str) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidEditRequest(describe_errors(exc, what)) from None


def describe_errors(exc: ValidationError, what: str = "option") -> str:
    """One line per problem, ``name: message`` (unknown names gathered in one line)."""
    unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    lines = [f"unknown {what}(s) {sorted(unknown)}"] if unknown else []
    for error in exc.errors():
        if error["type"] == "extra_forbidden":
            continue
        name = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or what
        lines.append(f"{name}: {error['msg']}")
    return "; ".join(lines)


# ---------------------------------------------------------------- jobs.jsonl


@dataclass
class LogRow:
    """One line of ``OUT/jobs.jsonl`` (``facedit run``, ``edit --out``, ``submit --wait``).

    ``output``: where the job's first result is stored; ``sha256``: of the input's bytes;
    ``request``: the resume key (input bytes, edits, options, models); ``results``:
    ``[{"label", "file", "intermediates"}]`` with file names relative to OUT; ``latent``: the
    stored W+ code's file.
    """

    input: str
    job_id: str | None
    status: str
    error_code: str | None = None
    error: str | None = None
    output: str | None = None
    seconds: float | None = None
    sha256: str | None = None
    request: str | None = None
    suppressor: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    latent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["seconds"] is not None:
            data["seconds"] = round(data["seconds"], 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogRow:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known.setdefault("input", "")
        known.setdefault("job_id", None)
        known.setdefault("status", "unknown")
        return cls(**known)
