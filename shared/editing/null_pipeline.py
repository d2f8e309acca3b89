"""The null pipeline (``FACEDIT_MODELS=null``): no models, the result is the input resized.

It has the interface :class:`shared.jobs.runner.JobRunner` uses (``bundle.check_attribute``,
``with_config``, ``output_size``, ``__call__``), so a worker running it does everything a
real one does — claim, fetch, decode, encode, store, state — except the GPU stages. It
measures the orchestration cost of the job system (``bench/service.py``) and lets the
service run where no weights and no accelerator are available.

With ``hold_seconds_per_image`` (``FACEDIT_NULL_HOLD_MS``) it stands in for an accelerator:
each batch is held that long per image in ``time.sleep``, which releases the GIL as a GPU
kernel launch and wait would (``bench/overlap.py`` measures how busy the workers keep it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.core.errors import InvalidEditRequest

if TYPE_CHECKING:
    import torch

    from shared.core.edits import EditSpec

# The toy preset's attribute names, so one request works against either.
NULL_ATTRIBUTES = ("age", "glasses", "pose", "smile")
NULL_OUTPUT_SIZE = 256
NULL_LATENTS = 18


@dataclass
class NullBundle:
    """Stands in for a :class:`~shared.editing.bundle.ModelBundle`: knows attribute names only."""

    attribute_names: tuple[str, ...] = NULL_ATTRIBUTES
    output_size: int = NULL_OUTPUT_SIZE
    n_latent: int = NULL_LATENTS
    preset: str = "null"
    fingerprint: str = "null"
    notes: list[str] = field(
        default_factory=lambda: ["null pipeline: results are the inputs, resized"]
    )

    def attributes(self) -> list[str]:
        return sorted(self.attribute_names)

    def check_attribute(self, attribute: str) -> None:
        if attribute not in self.attribute_names:
            raise InvalidEditRequest(
                f"attribute {attribute!r} is not available; available: {self.attributes()}"
            )


@dataclass
class NullOutput:
    result: torch.Tensor  # (N,3,S,S) in [0,1]: one item per (image, variant)
    mask: torch.Tensor  # (N,1,S,S) zeros: the "edit" changed nothing (paste-back keeps the photo)
    source: list[int] = field(default_factory=list)  # the image of each item
    latents: None = None
    suppressor: str = ""

    def intermediates(self) -> dict[str, torch.Tensor]:
        return {}


class NullPipeline:
    """Decode → resize → encode; edits are checked and otherwise ignored."""

    def __init__(self, bundle: NullBundle | None = None, config: Any = None,
                 hold_seconds_per_image: float = 0.0) -> None:
        if not hold_seconds_per_image >= 0:
            raise ValueError(f"hold_seconds_per_image must be >= 0, got {hold_seconds_per_image}")
        self.bundle = bundle or NullBundle()
        self.config = config
        self.hold_seconds_per_image = hold_seconds_per_image

    def with_config(self, config: Any) -> NullPipeline:
        """The same pipeline with per-request options (a PipelineConfig)."""
        return NullPipeline(self.bundle, config, self.hold_seconds_per_image)

    @property
    def output_size(self) -> int:
        size = getattr(self.config, "output_size", None)
        return int(size or self.bundle.output_size)

    def __call__(
        self,
        images: torch.Tensor,
        edits: Sequence[Sequence[EditSpec]],
        on_stage: Callable[[str], None] | None = None,
    ) -> NullOutput:
        """images: (B,3,H,W) in [0,1]; one edit list per item."""
        return self.run(images, [[item] for item in edits], on_stage=on_stage)

    def run(
        self,
        images: torch.Tensor,
        variants: Sequence[Sequence[Sequence[EditSpec]]],
        *,
        latents: Sequence[Any] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> NullOutput:
        """One item per (image, variant), each the image resized. No stages, so ``on_stage``
        is never called (cancellation is still honoured when results are stored)."""
        import torch

        from shared.editing.pipeline import resize

        if len(variants) != images.shape[0]:
            raise ValueError(f"variants: {len(variants)} lists for a batch of {images.shape[0]}")
        for item in variants:
            for edit_list in item:
                for spec in edit_list:
                    self.bundle.check_attribute(spec.attribute)
        size = self.output_size
        if self.hold_seconds_per_image:
            time.sleep(self.hold_seconds_per_image * images.shape[0])
        source = [i for i, item in enumerate(variants) for _ in item]
        # The same values as resize(...).clamp(0, 1)[source], without the copies a stand-in
        # should not cost: no clamp when already in range, no gather for one item per image,
        # one zero mask shared by every item.
        result = resize(images, size)
        low, high = torch.aminmax(result)
        if low < 0 or high > 1:
            result = result.clamp(0.0, 1.0)
        if source != list(range(images.shape[0])):
            result = result[torch.tensor(source, dtype=torch.long)]
        mask = result.new_zeros((1, 1, size, size)).expand(result.shape[0], 1, size, size)
        return NullOutput(result, mask, source)
