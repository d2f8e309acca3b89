"""Stored W+ codes: what ``--save-latents`` writes and ``facedit edit --latent`` reads.

A latent file is a ``torch.save`` of a plain dict (readable with ``weights_only=True``)::

    {"format": "facedit-latent-v1", "w": float32 (F, L, D), "input_sha256": str,
     "models": str, "faces": F}

one W+ code per face the job edited (one for an unaligned-off or aligned crop input; one per
face with alignment and ``all_faces``), in the order the faces were found.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from shared.core.errors import FaceditError

LATENT_FORMAT = "facedit-latent-v1"


class InvalidLatent(FaceditError, ValueError):
    code = "invalid_latent"


@dataclass(frozen=True)
class StoredLatent:
    w: torch.Tensor  # (F, L, D) float32
    input_sha256: str | None
    models: str


def encode_latent(w: torch.Tensor, input_sha256: str | None, models: str) -> bytes:
    if w.ndim != 3:
        raise ValueError(f"w: expected (faces, layers, dim), got {tuple(w.shape)}")
    buffer = io.BytesIO()
    torch.save({"format": LATENT_FORMAT, "w": w.detach().float().cpu().contiguous(),
                "input_sha256": input_sha256 or "", "models": models,
                "faces": int(w.shape[0])}, buffer)
    return buffer.getvalue()


def decode_latent(data: bytes, name: str = "latent") -> StoredLatent:
    """The stored code, or :class:`InvalidLatent` saying what is wrong with the file."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise InvalidLatent(f"{name}: not a facedit latent file ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != LATENT_FORMAT:
        raise InvalidLatent(f"{name}: not a facedit latent file (expected {LATENT_FORMAT})")
    w = state.get("w")
    if not isinstance(w, torch.Tensor) or w.ndim != 3 or not w.is_floating_point():
        raise InvalidLatent(f"{name}: 'w' must be a float tensor (faces, layers, dim)")
    if not torch.isfinite(w).all():
        raise InvalidLatent(f"{name}: 'w' holds NaN or infinite values")
    return StoredLatent(w.float(), state.get("input_sha256") or None, str(state.get("models")))


def check_latent(latent: StoredLatent, faces: int, n_latent: int, style_dim: int,
                 name: str = "latent") -> None:
    """The code must fit the models (layers × dim) and the job's faces."""
    count, layers, dim = latent.w.shape
    if (layers, dim) != (n_latent, style_dim):
        raise InvalidLatent(
            f"{name}: W+ codes of {layers}×{dim} do not fit these models ({n_latent}×{style_dim});"
            f" it was saved with models {latent.models!r}"
        )
    if count != faces:
        raise InvalidLatent(f"{name}: holds {count} face code(s) but the photo has {faces} face(s)"
                            " to edit")
