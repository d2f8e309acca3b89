"""SDEA's Diff-CAM (differential activation module) and its Grad-CAM mask.

Network (``model/DA.py`` of HaoruiSong622/Editing-Out-of-Domain), state-dict compatible with
SDEA's ``diff_cam_weight.pt`` (626 keys; 42,534,993 parameters with 17 classes):

- ``shared`` = ResNet-101 ``conv1, bn1, relu, maxpool, layer1, layer2, layer3[0:10]`` as one
  flat ``nn.Sequential`` (indices 0–3 the stem, 4 layer1, 5 layer2, 6–15 the first ten
  layer3 blocks), applied Siamese-style to the inverted and the manipulated image;
- ``classifier`` = ``layer3[10:23]`` (indices 0–12), ``layer4`` (13), ``avgpool`` (14),
  applied to ``shared(manipulated) − shared(inverted)``;
- ``fc`` = ``Linear(2048, num_class)``: which editing direction produced the pair.

:meth:`DiffCam.cam` is SDEA's Grad-CAM on ``layer4``: w_c = spatial mean of
∂logit_target/∂A_c, cam = ReLU(Σ_c w_c A_c), bilinear upsampling to the input size and a
per-image min–max normalisation. Unlike SDEA it uses (H, W) in the right order, adds an
epsilon to the normalisation (an all-zero CAM gives zeros, not NaN), runs in eval mode
and works inside ``torch.no_grad()``/``torch.inference_mode()`` without touching
parameter gradients. No ImageNet weights are downloaded: load SDEA's file with
:func:`load_diffcam`.

``base_width`` and ``layers`` shrink the backbone for toy configurations; the layer3 split
between ``shared`` and ``classifier`` is ``layer3_split`` blocks (SDEA: 10 of 23; by default
``round(10·layers[2]/23)`` clipped to ``[1, layers[2] − 1]``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shared.models.checkpoints import read_checkpoint
from shared.models.resnet import resnet101

SDEA_LAYERS = (3, 4, 23, 3)
SDEA_LAYER3_SPLIT = 10


def default_layer3_split(layer3_blocks: int) -> int:
    if layer3_blocks < 2:
        raise ValueError(f"layers[2] must be >= 2 to split layer3, got {layer3_blocks}")
    split = round(SDEA_LAYER3_SPLIT * layer3_blocks / SDEA_LAYERS[2])
    return min(max(split, 1), layer3_blocks - 1)


class DiffCam(nn.Module):
    """Siamese ResNet-101 classifier of feature differences; ``cam`` gives the edit mask."""

    def __init__(
        self,
        num_class: int = 17,
        base_width: int = 64,
        layers: Sequence[int] = SDEA_LAYERS,
        layer3_split: int | None = None,
    ) -> None:
        super().__init__()
        layers = tuple(int(n) for n in layers)
        if num_class < 1:
            raise ValueError(f"num_class must be >= 1, got {num_class}")
        if len(layers) != 4:
            raise ValueError(f"layers must list 4 stage depths, got {layers}")
        if layer3_split is None:
            layer3_split = default_layer3_split(layers[2])
        if not 1 <= layer3_split < layers[2]:
            raise ValueError(f"layer3_split must be in [1, {layers[2] - 1}], got {layer3_split}")
        self.num_class = num_class
        self.base_width = base_width
        self.layers = layers
        self.layer3_split = layer3_split

        resnet = resnet101(width=base_width, layers=layers)
        self.shared = nn.Sequential(
            resnet.conv1,
            resnet.bn1,
            resnet.relu,
            resnet.maxpool,
            resnet.layer1,
            resnet.layer2,
            *resnet.layer3[:layer3_split],
        )
        self.classifier = nn.Sequential(
            *resnet.layer3[layer3_split:], resnet.layer4, nn.AdaptiveAvgPool2d((1, 1))
        )
        self.fc = nn.Linear(resnet.out_channels[3], num_class)

    @property
    def target_layer(self) -> nn.Module:
        """The Grad-CAM layer: ``classifier[-2]`` (ResNet ``layer4``)."""
        return self.classifier[-2]

    def _check_input(self, x6: Tensor) -> None:
        if x6.ndim != 4 or x6.shape[1] != 6:
            raise ValueError(
                "x6 must be (B, 6, H, W) = cat(inverted, manipulated) in [-1, 1], "
                f"got {tuple(x6.shape)}"
            )

    def feature_delta(self, x6: Tensor) -> Tensor:
        """``shared(manipulated) − shared(inverted)``."""
        self._check_input(x6)
        return self.shared(x6[:, 3:6]) - self.shared(x6[:, 0:3])

    def forward(self, x6: Tensor) -> Tensor:
        """(B, 6, H, W) = cat(inverted, manipulated) in [-1, 1] → logits (B, num_class)."""
        return self.fc(torch.flatten(self.classifier(self.feature_delta(x6)), 1))

    def cam(self, x6: Tensor, target_category: int | Sequence[int] | Tensor) -> Tensor:
        """Grad-CAM mask (B, H, W) in [0, 1] for each item's target class.

        ``target_category`` is one class for the whole batch or one per item. Each item's
        mask depends only on that item (the network runs in eval mode), so a batch gives
        the same masks as the items one by one.
        """
        self._check_input(x6)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = x6.clone()
                targets = self._targets(target_category, x6.shape[0], x6.device)
                head = self.classifier[:-2]
                with torch.no_grad():
                    activation = self.target_layer(head(self.feature_delta(x)))
                activation = activation.detach().requires_grad_(True)
                logits = self.fc(torch.flatten(self.classifier[-1](activation), 1))
                selected = logits.gather(1, targets[:, None]).sum()
                (grad,) = torch.autograd.grad(selected, activation)
                weights = grad.mean(dim=(2, 3), keepdim=True)
                cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
        finally:
            self.train(was_training)
        cam = F.interpolate(cam, size=x6.shape[-2:], mode="bilinear", align_corners=False)
        return _minmax(cam[:, 0])

    def _targets(
        self, target_category: int | Sequence[int] | Tensor, batch: int, device: torch.device
    ) -> Tensor:
        if isinstance(target_category, Tensor):
            if target_category.is_floating_point() or target_category.is_complex():
                raise ValueError("target_category must hold integer class indices")
            t = target_category.reshape(-1).to(device=device, dtype=torch.long).clone()
        elif isinstance(target_category, int):
            t = torch.full((batch,), target_category, dtype=torch.long, device=device)
        else:
            values = list(target_category)
            if not all(isinstance(v, int) for v in values):
                raise ValueError("target_category must hold integer class indices")
            t = torch.tensor(values, dtype=torch.long, device=device)
        if t.numel() == 1 and batch != 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(
                f"target_category must give 1 or {batch} classes (the batch size), got {t.numel()}"
            )
        if bool(((t < 0) | (t >= self.num_class)).any()):
            raise ValueError(
                f"target_category must be in [0, {self.num_class - 1}], got {t.tolist()}"
            )
        return t


def _minmax(cam: Tensor, eps: float = 1e-6) -> Tensor:
    flat = cam.flatten(1)
    low = flat.amin(dim=1)[:, None, None]
    span = (flat.amax(dim=1) - flat.amin(dim=1))[:, None, None]
    return (cam - low) / span.clamp_min(eps)


def _infer_config(state: Mapping[str, Any]) -> dict[str, Any]:
    fc, stem = state.get("fc.weight"), state.get("shared.0.weight")
    if not isinstance(fc, Tensor) or not isinstance(stem, Tensor) or fc.ndim != 2:
        keys = list(state)[:5]
        raise ValueError(
            "path_or_state_dict is not a Diff-CAM state dict (needs shared.0.weight and a 2-D "
            f"fc.weight, as in SDEA's diff_cam_weight.pt); first keys: {keys}"
        )

    def blocks(prefix: str) -> set[int]:
        found = set()
        for key in state:
            if key.startswith(prefix):
                head = key[len(prefix) :].split(".", 1)[0]
                if head.isdigit():
                    found.add(int(head))
        return found

    shared = blocks("shared.")
    classifier = blocks("classifier.")
    if not shared or not classifier:
        raise ValueError("path_or_state_dict has no shared.N / classifier.N keys")
    # Sequential indices: shared = stem (0-3), layer1 (4), layer2 (5), layer3 head (6..);
    # classifier = layer3 tail (0..k-1), layer4 (k), avgpool (k+1, no keys).
    layer4_index = max(classifier)
    split = max(shared) - 5
    layers = (
        len(blocks("shared.4.")),
        len(blocks("shared.5.")),
        split + layer4_index,
        len(blocks(f"classifier.{layer4_index}.")),
    )
    return {
        "num_class": int(fc.shape[0]),
        "base_width": int(stem.shape[0]),
        "layers": layers,
        "layer3_split": split,
    }


def load_diffcam(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> DiffCam:
    """Load SDEA's ``diff_cam_weight.pt`` (a plain state dict) strictly; eval mode on ``device``.

    ``num_class`` comes from ``fc.weight``; width and depths are read from the keys, so
    toy-sized state dicts load too. Raises ``ValueError`` for anything else.
    """
    state = read_checkpoint(path_or_state_dict, "path_or_state_dict")
    config = _infer_config(state)
    try:
        with torch.device("meta"):
            net = DiffCam(**config)
        # Every tensor is overwritten by the strict load, so skip the random initialisation.
        net = net.to_empty(device=device)
        net.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"Diff-CAM weights do not match {config}: {exc}") from exc
    return net.eval()


__all__ = ["DiffCam", "default_layer3_split", "load_diffcam"]
