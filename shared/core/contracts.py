"""The options a job carries beside its pipeline options, checked in one place.

A job's ``options`` JSON is ``{"pipeline": {...PipelineConfig...}, "format", "quality",
"align", "all_faces", "detector", "save_latents", "latent"}``. The CLI and the API build it,
the runner reads it; :meth:`JobOptions.from_options` is the one check all of them use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.core.errors import InvalidEditRequest

OUTPUT_FORMATS = ("png", "jpg", "webp")
ALIGN_MODES = ("auto", "always", "never")
DETECTORS = ("hog", "cnn")
DEFAULT_QUALITY = 95
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
KEYS = ("format", "quality", "align", "all_faces", "detector", "save_latents", "latent")


@dataclass(frozen=True)
class JobOptions:
    format: str = "png"  # result encoding
    quality: int = DEFAULT_QUALITY  # JPEG / WebP quality, 1-100 (PNG is lossless)
    align: str = "auto"  # auto: align what is not an aligned crop; always; never
    all_faces: bool = False  # with alignment: every face, not only the largest
    detector: str = "hog"  # dlib face detector: hog (fast) or cnn (finds more faces)
    save_latents: bool = False  # store each input's W+ code next to its results
    latent: str | None = None  # URI of a stored W+ code to edit from instead of inverting

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> JobOptions:
        """The job options of a job's ``options`` (the ``pipeline`` key is not read)."""
        options = options or {}
        values = {key: options[key] for key in KEYS if key in options}
        if values.get("format") == "jpeg":
            values["format"] = "jpg"
        job = cls(**values)
        job.validate()
        return job

    def validate(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise InvalidEditRequest(
                f"format: {self.format!r} is not one of {list(OUTPUT_FORMATS)}"
            )
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) \
                or not 1 <= self.quality <= 100:
            raise InvalidEditRequest(f"quality: {self.quality!r} is not an integer in [1, 100]")
        if self.align not in ALIGN_MODES:
            raise InvalidEditRequest(f"align: {self.align!r} is not one of {list(ALIGN_MODES)}")
        if self.detector not in DETECTORS:
            raise InvalidEditRequest(f"detector: {self.detector!r} is not one of {list(DETECTORS)}")
        for name in ("all_faces", "save_latents"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidEditRequest(f"{name}: expected true or false")
        if self.latent is not None and (not isinstance(self.latent, str) or not self.latent):
            raise InvalidEditRequest("latent: expected the URI of a stored W+ code")

    def to_options(self) -> dict[str, Any]:
        """JSON for the job row (``latent`` only when set)."""
        data = asdict(self)
        if data["latent"] is None:
            del data["latent"]
        return data

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]
