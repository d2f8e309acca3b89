"""The optional align / paste-back stage around the pipeline (per job, on the CPU).

``align`` job option: ``never`` (the input goes to the pipeline as is), ``auto`` (inputs whose
landmarks show an aligned crop skip alignment, others are aligned) or ``always``; ``all_faces``
edits every face found instead of only the largest; ``detector`` picks dlib's HOG or CNN face
detector. Aligned jobs get their whole photo back: each edited crop is warped
back into the original with a feathered seam, limited to the edited region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.job_options import JobOptions


@dataclass
class FaceInputs:
    """What one job feeds the pipeline: the whole image, or one aligned crop per face."""

    photo: np.ndarray
    images: list[np.ndarray]
    crops: list | None = None  # list[shared.alignment.FaceCrop] when aligned


def prepare_faces(pixels: np.ndarray, options: JobOptions, crop_size: int) -> FaceInputs:
    """The pipeline's input images for a job: the photo itself, or its aligned faces.

    ``auto`` takes an input as aligned only on evidence (its landmarks match the FFHQ crop);
    without dlib it fails (``model_unavailable``) rather than guess.
    """
    if options.align == "never":
        return FaceInputs(pixels, [pixels])
    from shared import alignment

    if options.align == "auto" and alignment.looks_aligned(pixels):
        return FaceInputs(pixels, [pixels])
    crops = alignment.align_faces(
        pixels, all_faces=options.all_faces, output_size=crop_size, detector=options.detector
    )
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
