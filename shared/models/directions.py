"""Latent edit directions: file formats, W+ edits and a registry of named attributes.

Formats read (REFERENCE.md §1.2, §4 "e4e editing files"):

- InterFaceGAN ``.pt`` (e4e ``editings/interfacegan_directions``): a tensor (1, 512) or
  (1, 18, 512); ``pose.pt`` was saved on CUDA, so files are always loaded with
  ``map_location="cpu"`` and ``weights_only=True``. Edit: ``w + α·d`` on every W+ layer.
- SDEA ``.npy`` (``directions/*.npy``): (18, 512) float64, converted to float32 and divided
  by its Frobenius norm over all 18×512 values, as SDEA does. Edit: ``w + α·d``.
- GANSpace ``ffhq_pca.pt``: a dict ``mean`` (1, 512), ``comp`` (K, 1, 512), ``std`` (K,).
  :meth:`GanSpace.edit` implements e4e's formula, which sets the coordinate of the first W+
  layer along component k to ``strength`` (in units of std_k) on a layer range:
  ``delta = (strength − ⟨w0 − mean, comp_k⟩ / std_k) · comp_k · std_k``.

Registry names (:class:`DirectionRegistry`): a folder (or its ``interfacegan_directions/``,
``ganspace_pca/``, ``directions/`` subfolders; file names matched case-insensitively) maps

- ``smile``, ``age``, ``pose`` → e4e's smile.pt, age.pt, pose.pt (kind "interfacegan");
- ``smiling``, ``old``, ``eyeglasses``, ``beard``, ``mouth_open``, ``narrow_eyes``,
  ``bushy_eyebrows`` → SDEA's Smiling.npy, Old.npy, Eyeglasses.npy, Beard.npy,
  Mouth_Open.npy, Narrow_Eyes.npy, Bushy_Eyebrows.npy (kind "sdea");
- ``eye_openness``, ``ganspace_smile``, ``trimmed_beard``, ``white_hair``, ``lipstick`` →
  ffhq_pca.pt components 54, 46, 58, 57, 34 on e4e's layer ranges (kind "ganspace").

Aliases, tried in order when the name itself is not available: ``smile`` → smile.pt, else
Smiling.npy; ``age`` → age.pt, else Old.npy (whose sign is doubtful, see REFERENCE.md);
``glasses`` → Eyeglasses.npy (and ``eyeglasses`` → a toy registry's ``glasses``). Names are
normalised to lower snake case ("Mouth-Open" → "mouth_open"). A registry GANSpace direction
is additive (``comp_k · std_k``, strength in standard deviations, GANSpace's own
convention); use :meth:`DirectionRegistry.ganspace` and :meth:`GanSpace.edit` for e4e's
coordinate-setting formula.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

DirectionKind = Literal["interfacegan", "sdea", "ganspace", "toy"]
LayerRange = slice | tuple[int, int] | None

# SDEA's direction2idx: the Diff-CAM class of each shipped direction (17-class model).
_SDEA_CLASSES = {
    "Bushy_Eyebrows": 6,
    "Eyeglasses": 7,
    "Mouth_Open": 10,
    "Narrow_Eyes": 11,
    "Beard": 12,
    "Smiling": 15,
    "Old": 16,
}
_ALIASES: dict[str, tuple[str, ...]] = {
    "smile": ("smile", "smiling"),
    "age": ("age", "old"),
    "glasses": ("eyeglasses",),
    "eyeglasses": ("eyeglasses", "glasses"),
}


def attribute_name(name: str) -> str:
    """Normalise an attribute or file-stem name to lower snake case."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


SDEA_DIRECTION_TO_CLASS: dict[str, int] = {
    **_SDEA_CLASSES,
    **{attribute_name(k): v for k, v in _SDEA_CLASSES.items()},
    "smile": _SDEA_CLASSES["Smiling"],
    "age": _SDEA_CLASSES["Old"],
    "glasses": _SDEA_CLASSES["Eyeglasses"],
}
"""SDEA direction (SDEA's names and ours, aliases included) → Diff-CAM target class."""


def diffcam_class(name: str) -> int | None:
    """The SDEA Diff-CAM class for an attribute name, or None if the 17 classes lack it."""
    return SDEA_DIRECTION_TO_CLASS.get(name, SDEA_DIRECTION_TO_CLASS.get(attribute_name(name)))


@dataclass(frozen=True)
class Direction:
    """An additive W+ direction: ``tensor`` is (1, D) (every layer) or (n_latent, D)."""

    name: str
    tensor: Tensor
    kind: DirectionKind
    source: Path | None = None

    def __post_init__(self) -> None:
        t = self.tensor
        if not isinstance(t, Tensor) or t.ndim != 2 or not t.is_floating_point():
            raise ValueError(
                f"direction {self.name!r}: tensor must be a floating (1, D) or (L, D) tensor, "
                f"got {getattr(t, 'shape', type(t))}"
            )

    @property
    def style_dim(self) -> int:
        return int(self.tensor.shape[1])

    @property
    def n_layers(self) -> int | None:
        """Number of W+ layers it is specific to, or None when one row serves all layers."""
        return None if self.tensor.shape[0] == 1 else int(self.tensor.shape[0])


def _checked(t: Tensor, path: Path) -> Tensor:
    if not t.is_floating_point():
        raise ValueError(f"{path}: direction must be floating point, got {t.dtype}")
    t = t.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{path}: direction holds NaN or infinite values")
    if not bool(t.abs().sum() > 0):
        raise ValueError(f"{path}: direction is all zeros")
    return t


def _load_interfacegan(path: Path) -> Tensor:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and {"mean", "comp", "std"} <= set(obj):
        raise ValueError(f"{path} is a GANSpace PCA file: use load_ganspace")
    if not isinstance(obj, Tensor):
        raise ValueError(f"{path}: expected a direction tensor, got {type(obj).__name__}")
    shape = tuple(obj.shape)
    if obj.ndim == 1:
        obj = obj[None]
    elif obj.ndim == 3 and shape[0] == 1:
        obj = obj[0]
    elif obj.ndim != 2:
        raise ValueError(f"{path}: direction shape must be (1, D) or (1, L, D), got {shape}")
    return _checked(obj, path)


def _load_sdea(path: Path) -> Tensor:
    array = np.load(path, allow_pickle=False)
    if array.ndim != 2:
        raise ValueError(f"{path}: SDEA direction must be (L, D), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: SDEA direction must be floating point, got {array.dtype}")
    array = array.astype(np.float64)
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"{path}: SDEA direction has zero or non-finite norm")
    return _checked(torch.from_numpy(array / norm), path)


def load_direction(path: str | os.PathLike[str], name: str | None = None) -> Direction:
    """Read an InterFaceGAN ``.pt`` or SDEA ``.npy`` direction (see the module docstring)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".pt" or suffix == ".pth":
        tensor, kind = _load_interfacegan(p), "interfacegan"
    elif suffix == ".npy":
        tensor, kind = _load_sdea(p), "sdea"
    else:
        raise ValueError(f"path must be a .pt (InterFaceGAN) or .npy (SDEA) file, got {p.name}")
    return Direction(name or attribute_name(p.stem), tensor, kind, p)


def _layer_slice(layers: LayerRange, n_latent: int) -> slice:
    if layers is None:
        return slice(0, n_latent)
    if isinstance(layers, slice):
        start, stop, step = layers.indices(n_latent)
        if step != 1 or start >= stop:
            raise ValueError(f"layers {layers} selects no contiguous W+ layer of {n_latent}")
        return slice(start, stop)
    if isinstance(layers, tuple) and len(layers) == 2:
        start, stop = (int(v) for v in layers)
        if not 0 <= start < stop <= n_latent:
            raise ValueError(f"layers must satisfy 0 <= start < end <= {n_latent}, got {layers}")
        return slice(start, stop)
    raise ValueError(f"layers must be None, a slice or (start, end), got {layers!r}")


def _strength(strength: float | Tensor, w: Tensor) -> Tensor:
    if isinstance(strength, Tensor):
        s = strength.to(device=w.device, dtype=w.dtype).reshape(-1)
        if s.numel() not in (1, w.shape[0]):
            raise ValueError(
                f"strength must be a number or hold 1 or {w.shape[0]} values, got {s.numel()}"
            )
        return s.expand(w.shape[0])
    return torch.full((w.shape[0],), float(strength), device=w.device, dtype=w.dtype)


def _check_w_plus(w_plus: Tensor, style_dim: int) -> None:
    if w_plus.ndim != 3 or w_plus.shape[-1] != style_dim:
        raise ValueError(f"w_plus must be (B, L, {style_dim}), got {tuple(w_plus.shape)}")


def apply_edit(
    w_plus: Tensor, direction: Direction, strength: float | Tensor, layers: LayerRange = None
) -> Tensor:
    """``w + α·d`` on the chosen W+ layers (None = all); returns a new tensor."""
    _check_w_plus(w_plus, direction.style_dim)
    n_latent = w_plus.shape[1]
    d = direction.tensor.to(device=w_plus.device, dtype=w_plus.dtype)
    if d.shape[0] not in (1, n_latent):
        raise ValueError(
            f"direction {direction.name!r} has {d.shape[0]} layers, w_plus has {n_latent}"
        )
    d = d.expand(n_latent, -1)
    sl = _layer_slice(layers, n_latent)
    alpha = _strength(strength, w_plus)[:, None, None]
    out = w_plus.clone()
    out[:, sl] = w_plus[:, sl] + alpha * d[sl]
    return out


@dataclass(frozen=True)
class GanSpace:
    """GANSpace PCA of W: ``mean`` (1, D), ``comp`` (K, 1, D) unit rows, ``std`` (K,)."""

    mean: Tensor
    comp: Tensor
    std: Tensor
    source: Path | None = None

    @property
    def n_components(self) -> int:
        return int(self.comp.shape[0])

    def _component(self, component: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= component < self.n_components:
            raise ValueError(f"component must be in [0, {self.n_components - 1}], got {component}")
        cast = {"device": like.device, "dtype": like.dtype}
        return (
            self.mean.reshape(-1).to(**cast),
            self.comp[component].reshape(-1).to(**cast),
            self.std[component].to(**cast),
        )

    def coordinate(self, w_plus: Tensor, component: int) -> Tensor:
        """⟨w0 − mean, comp_k⟩ / std_k for each item (B,), w0 = the first W+ layer."""
        _check_w_plus(w_plus, int(self.mean.numel()))
        mean, comp, std = self._component(component, w_plus)
        return ((w_plus[:, 0] - mean) * comp).sum(dim=-1) / std

    def edit(
        self,
        w_plus: Tensor,
        component: int,
        strength: float | Tensor,
        layers: LayerRange = None,
    ) -> Tensor:
        """e4e's GANSpace edit on the layer range (None = all); returns a new tensor."""
        _check_w_plus(w_plus, int(self.mean.numel()))
        _, comp, std = self._component(component, w_plus)
        coord = self.coordinate(w_plus, component)
        delta = (_strength(strength, w_plus) - coord)[:, None] * comp * std  # (B, D)
        sl = _layer_slice(layers, w_plus.shape[1])
        out = w_plus.clone()
        out[:, sl] = w_plus[:, sl] + delta[:, None]
        return out

    def direction(self, component: int, name: str) -> Direction:
        """Component k as an additive direction ``comp_k · std_k`` (strength in std units)."""
        if not 0 <= component < self.n_components:
            raise ValueError(f"component must be in [0, {self.n_components - 1}], got {component}")
        tensor = (self.comp[component].reshape(1, -1) * self.std[component]).clone()
        return Direction(name, tensor, "ganspace", self.source)


def load_ganspace(path: str | os.PathLike[str]) -> GanSpace:
    """Read e4e's ``ganspace_pca/ffhq_pca.pt`` (dict mean/comp/std) onto the CPU."""
    p = Path(path)
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(obj, Mapping) or not {"mean", "comp", "std"} <= set(obj):
        raise ValueError(f"{p}: a GANSpace file is a dict with 'mean', 'comp' and 'std'")
    mean, comp, std = obj["mean"], obj["comp"], obj["std"]
    if not all(isinstance(t, Tensor) and t.is_floating_point() for t in (mean, comp, std)):
        raise ValueError(f"{p}: mean, comp and std must be floating-point tensors")
    dim = mean.numel()
    if comp.ndim != 3 or tuple(comp.shape[1:]) != (1, dim) or tuple(std.shape) != (comp.shape[0],):
        raise ValueError(
            f"{p}: expected mean (1, D), comp (K, 1, D), std (K,), got {tuple(mean.shape)}, "
            f"{tuple(comp.shape)}, {tuple(std.shape)}"
        )
    cast = {"device": "cpu", "dtype": torch.float32}
    return GanSpace(mean.reshape(1, dim).to(**cast), comp.to(**cast), std.to(**cast), p)


@dataclass(frozen=True)
class AttributeInfo:
    """What a registry knows about one attribute."""

    name: str
    kind: DirectionKind
    file: Path | None
    default_layers: tuple[int, int] | None
    strength_range: tuple[float, float]
    default_strength: float
    diffcam_class: int | None = None
    ganspace_component: int | None = None


@dataclass(frozen=True)
class _Standard:
    file: str
    kind: DirectionKind
    default_layers: tuple[int, int] | None
    strength_range: tuple[float, float]
    default_strength: float
    ganspace_component: int | None = None


_INTERFACEGAN = {"kind": "interfacegan", "default_layers": None, "strength_range": (-5.0, 5.0)}
_SDEA = {"kind": "sdea", "default_layers": None, "strength_range": (-30.0, 30.0)}
_GANSPACE_FILE = "ffhq_pca.pt"

STANDARD_ATTRIBUTES: dict[str, _Standard] = {
    # e4e InterFaceGAN directions; e4e's examples use factors in (-5, 5).
    "smile": _Standard("smile.pt", default_strength=3.0, **_INTERFACEGAN),
    "age": _Standard("age.pt", default_strength=3.0, **_INTERFACEGAN),
    "pose": _Standard("pose.pt", default_strength=3.0, **_INTERFACEGAN),
    # SDEA directions; SDEA's default alpha is 20 on the Frobenius-normalised (18, 512) file.
    **{
        attribute_name(stem): _Standard(f"{stem}.npy", default_strength=20.0, **_SDEA)
        for stem in _SDEA_CLASSES
    },
    # e4e's GANSpace examples (component, layers start:end, strength).
    "eye_openness": _Standard(_GANSPACE_FILE, "ganspace", (7, 8), (-30.0, 30.0), 20.0, 54),
    "ganspace_smile": _Standard(_GANSPACE_FILE, "ganspace", (4, 5), (-30.0, 30.0), -20.0, 46),
    "trimmed_beard": _Standard(_GANSPACE_FILE, "ganspace", (7, 9), (-30.0, 30.0), 20.0, 58),
    "white_hair": _Standard(_GANSPACE_FILE, "ganspace", (7, 10), (-30.0, 30.0), -24.0, 57),
    "lipstick": _Standard(_GANSPACE_FILE, "ganspace", (10, 11), (-30.0, 30.0), 20.0, 34),
}
_SUBFOLDERS = ("", "interfacegan_directions", "ganspace_pca", "directions")


class UnknownDirectionError(KeyError, ValueError):
    """An attribute name the registry cannot provide; ``known`` lists the names it can."""

    def __init__(self, name: str, known: list[str], reason: str = "unknown attribute") -> None:
        self.name = name
        self.known = known
        self.message = f"{reason} {name!r}; known: {', '.join(known) or '(none)'}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class DirectionRegistry:
    """Named attributes → directions, from the standard files in ``folder``.

    ``directions`` adds in-memory entries (used by :func:`toy_registry`). Only attributes
    whose file exists are listed by :meth:`available`.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        *,
        directions: Iterable[tuple[AttributeInfo, Direction]] = (),
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._infos: dict[str, AttributeInfo] = {}
        self._cache: dict[str, Direction] = {}
        self._ganspace: GanSpace | None = None
        if self.folder is not None:
            if not self.folder.is_dir():
                raise ValueError(f"folder {self.folder} is not a directory")
            self._scan(self.folder)
        for info, direction in directions:
            self._infos[info.name] = info
            self._cache[info.name] = direction

    def _scan(self, folder: Path) -> None:
        files: dict[str, Path] = {}
        for sub in _SUBFOLDERS:
            d = folder / sub
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    if p.is_file():
                        files.setdefault(p.name.lower(), p)
        for name, std in STANDARD_ATTRIBUTES.items():
            path = files.get(std.file.lower())
            if path is None:
                continue
            self._infos[name] = AttributeInfo(
                name=name,
                kind=std.kind,
                file=path,
                default_layers=std.default_layers,
                strength_range=std.strength_range,
                default_strength=std.default_strength,
                diffcam_class=diffcam_class(name) if std.kind != "ganspace" else None,
                ganspace_component=std.ganspace_component,
            )

    def available(self) -> list[AttributeInfo]:
        return [self._infos[n] for n in sorted(self._infos)]

    def known_names(self) -> list[str]:
        """Every name :meth:`get` accepts: available attributes and resolvable aliases."""
        aliases = [a for a, targets in _ALIASES.items() if any(t in self._infos for t in targets)]
        return sorted(set(self._infos) | set(aliases))

    def resolve(self, name: str) -> str:
        key = attribute_name(name)
        if key in self._infos:
            return key
        for target in _ALIASES.get(key, ()):
            if target in self._infos:
                return target
        reason = "unknown attribute"
        if key in STANDARD_ATTRIBUTES or key in _ALIASES:
            reason = f"no direction file in {self.folder} for attribute"
        raise UnknownDirectionError(name, self.known_names(), reason)

    def info(self, name: str) -> AttributeInfo:
        return self._infos[self.resolve(name)]

    def get(self, name: str) -> Direction:
        key = self.resolve(name)
        if key not in self._cache:
            info = self._infos[key]
            assert info.file is not None
            if info.kind == "ganspace":
                assert info.ganspace_component is not None
                self._cache[key] = self.ganspace().direction(info.ganspace_component, key)
            else:
                self._cache[key] = load_direction(info.file, key)
        return self._cache[key]

    def ganspace(self) -> GanSpace:
        """The GANSpace PCA in the folder (for e4e's exact :meth:`GanSpace.edit`)."""
        if self._ganspace is None:
            files = [i.file for i in self._infos.values() if i.kind == "ganspace" and i.file]
            if not files:
                raise UnknownDirectionError(_GANSPACE_FILE, self.known_names(), "no GANSpace file")
            self._ganspace = load_ganspace(files[0])
        return self._ganspace


TOY_ATTRIBUTES = ("smile", "age", "pose", "glasses")


def toy_registry(style_dim: int, n_latent: int, seed: int = 0) -> DirectionRegistry:
    """Seeded random unit directions for smile, age, pose (1, D) and glasses (n_latent, D).

    Every row has unit norm; ``glasses`` differs per layer, like SDEA's files.
    """
    if style_dim < 1 or n_latent < 1:
        raise ValueError(f"style_dim and n_latent must be >= 1, got {style_dim}, {n_latent}")
    gen = torch.Generator().manual_seed(seed)
    entries = []
    for name in TOY_ATTRIBUTES:
        rows = n_latent if name == "glasses" else 1
        t = torch.randn(rows, style_dim, generator=gen)
        t = t / t.norm(dim=1, keepdim=True)
        info = AttributeInfo(
            name=name,
            kind="toy",
            file=None,
            default_layers=None,
            strength_range=(-5.0, 5.0),
            default_strength=3.0,
            diffcam_class=diffcam_class(name),
        )
        entries.append((info, Direction(name, t, "toy", None)))
    return DirectionRegistry(directions=entries)


__all__ = [
    "SDEA_DIRECTION_TO_CLASS",
    "STANDARD_ATTRIBUTES",
    "AttributeInfo",
    "Direction",
    "DirectionRegistry",
    "GanSpace",
    "UnknownDirectionError",
    "apply_edit",
    "attribute_name",
    "diffcam_class",
    "load_direction",
    "load_ganspace",
    "toy_registry",
]
