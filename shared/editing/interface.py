"""What the job runner needs from a pipeline, stated as protocols (no torch at import).

:class:`~shared.editing.pipeline.EditPipeline` (the models) and
:class:`~shared.editing.null_pipeline.NullPipeline` (no models: resize only) both satisfy
:class:`EditingPipeline`; :class:`~shared.jobs.runner.JobRunner` is written against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from shared.core.contracts import PipelineConfig
    from shared.core.edits import EditSpec


class Models(Protocol):
    """The models behind a pipeline, as far as the runner sees them."""

    preset: str  # "toy", "official", "null", …
    fingerprint: str  # which models these are (stored with latents, part of resume keys)
    output_size: int

    def check_attribute(self, attribute: str) -> None:
        """Raise InvalidEditRequest when these models cannot edit ``attribute``."""


class PipelineResult(Protocol):
    """One item per (image, variant); ``source[i]`` is the input image of item ``i``."""

    result: torch.Tensor  # (N, 3, S, S) in [0, 1]
    mask: torch.Tensor  # (N, 1, S, S) in [0, 1]
    source: list[int]
    latents: torch.Tensor | None  # (B, L, D) W+ codes of the images, when the models have them
    suppressor: str  # the suppressor that ran ("" when none did)

    def intermediates(self) -> dict[str, torch.Tensor]:
        """Named (N, C, S, S) images kept with ``intermediates=true`` (mask, edited, …)."""


@runtime_checkable
class EditingPipeline(Protocol):
    bundle: Models

    @property
    def output_size(self) -> int: ...

    def with_config(self, config: PipelineConfig) -> EditingPipeline:
        """The same models with per-request options."""

    def run(
        self,
        images: torch.Tensor,
        variants: Sequence[Sequence[Sequence[EditSpec]]],
        *,
        latents: Sequence[Any] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> PipelineResult:
        """Edit image ``i`` with each edit list of ``variants[i]``; ``latents[i]``, when given,
        replaces its inversion; ``on_stage(name)`` is called after each stage."""
