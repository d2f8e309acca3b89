"""The set of models one pipeline runs with: the ``toy`` preset or official weights.

A worker process builds one bundle at start-up and keeps it; every job then reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from shared.core.contracts import (
    AUTO_SUPPRESSOR,
    DEGHOSTING_FILE,
    DIFFCAM_FILE,
    DIRECTIONS_DIR,
    INVERSION_FILES,
    NETWORK_SUPPRESSORS,
    SUPPRESSOR_FILE,
    SUPPRESSORS,
)
from shared.core.errors import InvalidEditRequest, ModelUnavailable

TOY_SEED = 1234



@dataclass
class ModelBundle:
    preset: str  # "toy" or "official"
    encoder: torch.nn.Module
    generator: torch.nn.Module
    directions: object  # shared.models.directions.DirectionRegistry
    encoder_size: int
    output_size: int
    device: torch.device
    diffcam: torch.nn.Module | None = None
    suppressor_net: torch.nn.Module | None = None
    # True for a trained checkpoint (maresunet_suppressor.pt); the toy preset's network is not
    suppressor_trained: bool = False
    deghosting_net: torch.nn.Module | None = None  # SDEA Deghosting, for suppressor "sdea"
    diffcam_classes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # which models these are: "toy:<seed>" or the weight files' digest

    @property
    def n_latent(self) -> int:
        return int(self.generator.n_latent)

    @property
    def style_dim(self) -> int:
        return int(self.generator.style_dim)

    def direction(self, attribute: str):
        """(Direction, default layer range or None) for an attribute name."""
        try:
            return self.directions.get(attribute), self.directions.info(attribute).default_layers
        except KeyError as exc:
            raise InvalidEditRequest(
                f"attribute {attribute!r} is not available; available: {self.attributes()}"
            ) from exc

    def attributes(self) -> list[str]:
        return sorted(info.name for info in self.directions.available())

    def suppressor_network(self, name: str) -> torch.nn.Module | None:
        """The trained network a suppressor needs (None for naive / Poisson or when missing)."""
        return {"maresunet": self.suppressor_net, "sdea": self.deghosting_net}.get(name)

    def with_suppressor(self, network: torch.nn.Module) -> ModelBundle:
        """The same models with ``network`` (a trained MAResUNet) as the suppressor."""
        network = network.to(self.device).eval().requires_grad_(False)
        return replace(self, suppressor_net=network, suppressor_trained=True)

    def available_suppressors(self) -> list[str]:
        """``auto`` first, then every suppressor these models can run."""
        return [AUTO_SUPPRESSOR] + [
            n for n in SUPPRESSORS
            if n not in NETWORK_SUPPRESSORS or self.suppressor_network(n) is not None
        ]

    def auto_suppressor(self) -> str:
        """What ``suppressor=auto`` runs: the trained MAResU-Net if installed, else Poisson."""
        if self.suppressor_net is not None and self.suppressor_trained:
            return "maresunet"
        return "poisson"

    def check_attribute(self, attribute: str) -> None:
        self.direction(attribute)

    def diffcam_class(self, attribute: str) -> int:
        from shared.models.directions import diffcam_class

        if attribute not in self.diffcam_classes and diffcam_class(attribute) is not None:
            return int(diffcam_class(attribute))
        if attribute not in self.diffcam_classes:
            raise InvalidEditRequest(
                f"attribute {attribute!r} has no Diff-CAM class; use activation=feature_diff"
            )
        return self.diffcam_classes[attribute]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {name!r} requested but CUDA is not available")
    return device


def toy_bundle(device: str | torch.device = "cpu", seed: int = TOY_SEED) -> ModelBundle:
    """Small seeded models: the whole pipeline on a CPU in milliseconds per image.

    Untrained, so edits are not meaningful: the preset exercises every stage and contract.
    """
    from shared.models.diffcam import DiffCam
    from shared.models.directions import SDEA_DIRECTION_TO_CLASS, toy_registry
    from shared.models.encoders import Encoder4Editing, WPlusEncoder
    from shared.models.maresunet import MAResUNet, zero_init_head
    from shared.models.stylegan2 import Generator

    device = torch.device(device)
    size, style_dim = 64, 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(size, style_dim=style_dim, n_mlp=2, channel_multiplier=1,
                              channel_scale=1 / 16)
        n_latent = generator.n_latent
        encoder = Encoder4Editing(50, "ir_se", n_styles=n_latent, style_dim=style_dim,
                                  input_size=size, channel_scale=1 / 16)
        latent_avg = generator.mean_latent(256).detach().repeat(n_latent, 1)
        wrapped = WPlusEncoder(encoder, latent_avg)
        diffcam = DiffCam(num_class=17, base_width=4)
        suppressor = MAResUNet(num_classes=3, base_width=8)
        zero_init_head(suppressor)
        directions = toy_registry(style_dim, n_latent, seed=seed)
    # The toy Diff-CAM is untrained; pose has no SDEA class, so it borrows class 0.
    classes = {"smile": SDEA_DIRECTION_TO_CLASS["smile"], "age": SDEA_DIRECTION_TO_CLASS["age"],
               "glasses": SDEA_DIRECTION_TO_CLASS["glasses"], "pose": 0}
    modules = [generator, wrapped, diffcam, suppressor]
    for module in modules:
        module.to(device).eval().requires_grad_(False)
    return ModelBundle(
        preset="toy", encoder=wrapped, generator=generator, directions=directions,
        encoder_size=size, output_size=256, device=device, diffcam=diffcam,
        suppressor_net=suppressor, diffcam_classes=classes, fingerprint=f"toy:{seed}",
        notes=["toy preset: small untrained models; outputs are not meaningful edits "
               "(suppressor=auto runs exact Poisson blending: the toy MAResU-Net is untrained)"],
    )


def official_bundle(
    weights_dir: Path, device: str | torch.device = "cpu", inversion: str = "e4e"
) -> ModelBundle:
    """Load official checkpoints from ``weights_dir`` (names: ``facedit weights list``)."""
    from shared.models.checkpoints import read_checkpoint
    from shared.models.directions import DirectionRegistry
    from shared.models.encoders import load_decoder, load_encoder

    device = torch.device(device)
    weights_dir = Path(weights_dir)
    encoder_file = weights_dir / INVERSION_FILES[inversion]
    if not encoder_file.is_file():
        raise ModelUnavailable(
            f"{encoder_file} is missing: download it (see `facedit weights list`) and run "
            f"`facedit weights import PATH`"
        )
    checkpoint = read_checkpoint(encoder_file, str(encoder_file))  # weights_only=True
    encoder = load_encoder(checkpoint, device=device)
    generator = load_decoder(checkpoint, device=device)
    del checkpoint
    directions = DirectionRegistry(weights_dir / DIRECTIONS_DIR)
    bundle = ModelBundle(
        preset="official", encoder=encoder, generator=generator, directions=directions,
        encoder_size=int(encoder.input_size), output_size=int(generator.size), device=device,
        fingerprint=weights_fingerprint(weights_dir, inversion),
    )
    diffcam_file = weights_dir / DIFFCAM_FILE
    if diffcam_file.is_file():
        from shared.models.diffcam import load_diffcam
        from shared.models.directions import SDEA_DIRECTION_TO_CLASS

        bundle.diffcam = load_diffcam(diffcam_file, device=device)
        bundle.diffcam_classes = dict(SDEA_DIRECTION_TO_CLASS)
    suppressor_file = weights_dir / SUPPRESSOR_FILE
    if suppressor_file.is_file():
        from shared.models.maresunet import load_maresunet

        bundle.suppressor_net = load_maresunet(suppressor_file, device=device)
        bundle.suppressor_trained = True
    else:
        bundle.notes.append(
            f"{SUPPRESSOR_FILE} not found: suppressor=auto runs exact Poisson blending "
            "(suppressor=maresunet needs a trained checkpoint: `facedit train suppressor`)"
        )
    deghosting_file = weights_dir / DEGHOSTING_FILE
    if deghosting_file.is_file():
        from shared.models.sdea_deghosting import load_deghosting

        bundle.deghosting_net = load_deghosting(deghosting_file, device=device)
    else:
        bundle.notes.append(f"{DEGHOSTING_FILE} not found: suppressor=sdea is unavailable")
    modules = (bundle.encoder, bundle.generator, bundle.diffcam, bundle.suppressor_net,
               bundle.deghosting_net)
    for module in modules:
        if module is not None:
            module.eval().requires_grad_(False)
    return bundle


def weights_fingerprint(weights_dir: Path, inversion: str) -> str:
    """A digest of the weight files a bundle loads (names, sizes, modification times)."""
    import hashlib

    weights_dir = Path(weights_dir)
    names = [INVERSION_FILES[inversion], DIFFCAM_FILE, SUPPRESSOR_FILE, DEGHOSTING_FILE]
    files = [weights_dir / n for n in names]
    directions = weights_dir / DIRECTIONS_DIR
    if directions.is_dir():
        files += sorted(p for p in directions.iterdir() if p.is_file())
    digest = hashlib.sha256(inversion.encode())
    for path in files:
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(weights_dir)}:{stat.st_size}:{stat.st_mtime_ns};"
                          .encode())
    return f"official:{digest.hexdigest()[:16]}"


def load_bundle(
    models: str, weights_dir: Path | None, device: str = "auto", inversion: str | None = None
) -> ModelBundle:
    """``models``: ``toy``, ``auto`` (official weights if present, else toy) or a folder.

    ``inversion``: ``e4e`` or ``psp`` (SDEA inverts with pSp); default ``FACEDIT_INVERSION``.
    """
    if inversion is None:
        from shared.core.config import get_settings

        inversion = get_settings().inversion
    if inversion not in INVERSION_FILES:
        raise ModelUnavailable(f"inversion {inversion!r}: expected one of {list(INVERSION_FILES)}")
    target = resolve_device(device)
    if models == "toy":
        return toy_bundle(target)
    folder = Path(weights_dir) if models == "auto" and weights_dir else Path(models)
    if models == "auto":
        have = weights_dir and (Path(weights_dir) / INVERSION_FILES[inversion]).is_file()
        if not have:
            bundle = toy_bundle(target)
            bundle.notes.insert(0, f"no official weights in {weights_dir}: using the toy preset")
            return bundle
    if not folder.is_dir():
        raise ModelUnavailable(f"--models {models!r}: not 'toy', 'auto' or an existing folder")
    return official_bundle(folder, target, inversion=inversion)
