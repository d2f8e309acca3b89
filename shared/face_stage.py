"""The optional align / paste-back stage around the pipeline (per job, on the CPU).

``align`` job option: ``never`` (the input goes to the pipeline as is), ``auto`` (aligned-looking
inputs skip alignment, others are aligned) or ``always``; ``all_faces`` edits every face found
instead of only the largest. Aligned jobs get their whole photo back: each edited crop is warped
back into the original with a feathered seam, limited to the edited region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import InvalidEditRequest

ALIGN_MODES = ("auto", "always", "never")


@dataclass
class FaceInputs:
    """What one job feeds the pipeline: the whole image, or one aligned crop per face."""

    photo: np.ndarray
    images: list[np.ndarray]
    crops: list | None = None  # list[shared.alignment.FaceCrop] when aligned


def check_align_options(options: dict) -> tuple[str, bool]:
    mode = options.get("align", "auto")
    if mode not in ALIGN_MODES:
        raise InvalidEditRequest(f"align: {mode!r} is not one of {list(ALIGN_MODES)}")
    all_faces = options.get("all_faces", False)
    if not isinstance(all_faces, bool):
        raise InvalidEditRequest("all_faces: expected true or false")
    return mode, all_faces


def prepare_faces(pixels: np.ndarray, options: dict, crop_size: int) -> FaceInputs:
    mode, all_faces = check_align_options(options)
    if mode == "never":
        return FaceInputs(pixels, [pixels])
    from shared import alignment

    if mode == "auto" and alignment.looks_aligned(pixels):
        return FaceInputs(pixels, [pixels])
    crops = alignment.align_faces(pixels, all_faces=all_faces, output_size=crop_size)
    return FaceInputs(pixels, [crop.pixels for crop in crops], crops)


def assemble(
    faces: FaceInputs, results: list[np.ndarray], masks: list[np.ndarray], feather: float = 0.05
) -> np.ndarray:
    """The job's final image: the pipeline result, or the photo with every face pasted back."""
    if faces.crops is None:
        return results[0]
    from shared.alignment import paste_back

    photo = faces.photo
    for crop, result, mask in zip(faces.crops, results, masks, strict=True):
        photo = paste_back(photo, crop, result, feather=feather, mask=mask)
    return photo
