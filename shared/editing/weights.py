"""The weight files facedit can use: what each is, where it is published, and checks.

``facedit weights list|check|import`` are thin wrappers over :func:`catalogue`,
:func:`check_file` and :func:`import_file`. Files are loaded with ``map_location="cpu"`` and
``weights_only=True``; a file that needs arbitrary unpickling is refused unless the caller
explicitly trusts it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.core.contracts import (
    DEGHOSTING_FILE,
    DIFFCAM_FILE,
    E4E_FILE,
    PSP_FILE,
    SUPPRESSOR_FILE,
)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name inside FACEDIT_WEIGHTS_DIR
    role: str
    format: str
    source: str
    optional: bool = True


CATALOGUE: tuple[WeightFile, ...] = (
    WeightFile(E4E_FILE, "inversion (e4e) + StyleGAN2 decoder",
               "pSp/e4e checkpoint: state_dict (encoder.*, decoder.*), latent_avg, opts",
               "omertov/encoder4editing README, 'e4e_ffhq_encode.pt' "
               "(Google Drive id 1cUv_reLE6k3604or78EranS7XzuVMWeO)", optional=False),
    WeightFile(PSP_FILE, "inversion (pSp, as SDEA) + StyleGAN2 decoder",
               "pSp checkpoint: state_dict (encoder.*, decoder.*), latent_avg, opts",
               "eladrich/pixel2style2pixel README, 'FFHQ Inversion' "
               "(Google Drive id 1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0)"),
    WeightFile("stylegan2-ffhq-config-f.pt", "StyleGAN2 1024 generator (stand-alone)",
               "rosinality checkpoint: g_ema (171 keys), latent_avg",
               "rosinality/stylegan2-pytorch (converted) / e4e README 'FFHQ StyleGAN' "
               "(Google Drive id 1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT)"),
    WeightFile(DIFFCAM_FILE, "differential activation (Diff-CAM, 17 classes)",
               "plain state_dict, 626 keys", "HaoruiSong622/Editing-Out-of-Domain README "
               "(Google Drive id 10d4QL4BRNvY-AyxMQhHsnoQ7vZz0Q_Zh)"),
    WeightFile(SUPPRESSOR_FILE, "artifact suppressor (MAResU-Net, the paper's)",
               "facedit checkpoint {format, model, config, metrics} or official MAResUNet "
               "state_dict (370 keys)", "trained with `facedit train suppressor`"),
    WeightFile(DEGHOSTING_FILE, "SDEA deghosting baseline suppressor",
               "plain state_dict, 925 keys (FCN.*, generator.* in mmgen naming)",
               "HaoruiSong622/Editing-Out-of-Domain README "
               "(Google Drive id 1gfb1M8mFl4GlEiQsGDWjJRQ5zetrVbi0)"),
    WeightFile("directions/age.pt", "edit direction 'age' (InterFaceGAN)", "tensor (1,512)",
               "omertov/encoder4editing editings/interfacegan_directions/age.pt"),
    WeightFile("directions/smile.pt", "edit direction 'smile' (InterFaceGAN)", "tensor (1,512)",
               "omertov/encoder4editing editings/interfacegan_directions/smile.pt"),
    WeightFile("directions/pose.pt", "edit direction 'pose' (InterFaceGAN)",
               "tensor (1,18,512), saved on CUDA",
               "omertov/encoder4editing editings/interfacegan_directions/pose.pt"),
    WeightFile("directions/ffhq_pca.pt", "GANSpace components", "dict mean/comp/std",
               "omertov/encoder4editing editings/ganspace_pca/ffhq_pca.pt"),
    WeightFile("directions/Smiling.npy", "edit direction 'smiling' (SDEA; also Eyeglasses, "
               "Old, Beard, Mouth_Open, Narrow_Eyes, Bushy_Eyebrows)", "(18,512) float64 .npy",
               "HaoruiSong622/Editing-Out-of-Domain directions/"),
    WeightFile("shape_predictor_68_face_landmarks.dat", "face alignment (dlib 68 landmarks)",
               "dlib shape predictor", "ships in the `face_recognition_models` package, "
               "installed with facedit"),
    WeightFile("alexnet-owt-7be5be79.pth", "LPIPS backbone (AlexNet, ImageNet)",
               "torchvision state_dict", "torchvision model zoo, alexnet"),
    WeightFile("alex.pth", "LPIPS v0.1 linear heads", "state_dict lin0..lin4",
               "richzhang/PerceptualSimilarity lpips/weights/v0.1/alex.pth"),
    WeightFile("pt_inception-2015-12-05-6726825d.pth", "FID Inception-v3",
               "pytorch-fid state_dict", "mseitzer/pytorch-fid GitHub release"),
)


@dataclass
class CheckResult:
    path: Path
    ok: bool
    kind: str
    detail: str
    sha256: str | None = None

    def line(self) -> str:
        mark = "ok" if self.ok else "unusable"
        return f"{self.path}: {mark}: {self.kind}: {self.detail}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def catalogue(weights_dir: Path) -> list[tuple[WeightFile, Path | None]]:
    """Every known file with where it was found (None when missing)."""
    rows = []
    for entry in CATALOGUE:
        candidate = Path(weights_dir) / entry.name
        found: Path | None = candidate if candidate.is_file() else None
        if found is None and entry.name.endswith(".dat"):
            found = _dlib_predictor_path()
        rows.append((entry, found))
    return rows


def _dlib_predictor_path() -> Path | None:
    from shared.editing.faces import predictor_path

    path = predictor_path()
    return path if isinstance(path, Path) else None


def _load(path: Path, trust: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            if trust:
                return torch.load(path, map_location="cpu", weights_only=False)
            raise ValueError(
                "contains pickled Python objects beyond tensors; re-run with --trust if you "
                "trust its source"
            ) from None
        reason = f"{type(exc).__name__}: {text[:160]}"
        raise ValueError(f"truncated or corrupt file ({reason})") from None


def _describe(obj: Any) -> tuple[str, Callable[[Any], str]]:
    """Identify a loaded object: (kind, strict-check function returning a detail line)."""
    import torch

    from shared.models import diffcam, encoders, maresunet, stylegan2

    if isinstance(obj, torch.Tensor):
        return "edit direction (InterFaceGAN)", lambda o: _direction_detail(o)
    if not isinstance(obj, dict):
        raise ValueError(f"not a checkpoint: a {type(obj).__name__}")
    keys = set(obj)
    if "g_ema" in keys:
        def check(o):
            g, avg = stylegan2.load_generator(o)
            return f"StyleGAN2 generator {g.size}px, {_count(g):,} parameters" + (
                ", latent_avg present" if avg is not None else "")
        return "StyleGAN2 generator (rosinality)", check
    if "state_dict" in keys and any(k.startswith("encoder.") for k in obj["state_dict"]):
        def check(o):
            enc = encoders.load_encoder(o)
            dec = encoders.load_decoder(o)
            return (f"{type(enc.encoder).__name__}, {_count(enc):,} parameters; decoder "
                    f"{dec.size}px")
        return "pSp/e4e inversion checkpoint", check
    if {"mean", "comp", "std"} <= keys:
        return "GANSpace components", lambda o: f"{tuple(o['comp'].shape)} components"
    if {"model", "config"} <= keys or "firstconv.weight" in keys:
        def check(o):
            net = maresunet.load_maresunet(o)
            extra = ", the mask as a 4th input" if net.num_channels == net.num_classes + 1 else ""
            return f"MAResU-Net, {_count(net):,} parameters, {net.composite} composite{extra}"
        return "MAResU-Net suppressor", check
    if "fc.weight" in keys and any(k.startswith("shared.") for k in keys):
        def check(o):
            net = diffcam.load_diffcam(o)
            return f"Diff-CAM, {net.fc.out_features} classes, {_count(net):,} parameters"
        return "Diff-CAM (SDEA)", check
    if any(k.startswith("FCN.") for k in keys):
        def check(o):
            from shared.models import sdea_deghosting

            net = sdea_deghosting.load_deghosting(o)
            return f"SDEA deghosting, {_count(net):,} parameters"
        return "SDEA deghosting network", check
    if "lin0.model.1.weight" in keys:
        return "LPIPS v0.1 linear heads", lambda o: f"{len(o)} tensors"
    if "features.0.weight" in keys:
        return "AlexNet (LPIPS backbone)", lambda o: f"{len(o)} tensors"
    if any(k.startswith("Mixed_7c") for k in keys):
        return "FID Inception-v3", lambda o: f"{len(o)} tensors"
    raise ValueError(f"unrecognised checkpoint layout (top-level keys: {sorted(keys)[:6]})")


def _direction_detail(tensor) -> str:
    shape = tuple(tensor.shape)
    if len(shape) not in (2, 3) or shape[-1] < 1:
        raise ValueError(f"direction tensor has shape {shape}, expected (1,512) or (1,18,512)")
    return f"tensor {shape}"


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_file(path: Path, trust: bool = False) -> CheckResult:
    """Say what ``path`` is and whether facedit can use it (never raises for bad files)."""
    path = Path(path)
    if not path.is_file():
        return CheckResult(path, False, "missing", "no such file")
    if path.stat().st_size == 0:
        return CheckResult(path, False, "empty", "the file is empty (0 bytes)")
    try:
        if path.suffix == ".npy":
            from shared.models.directions import load_direction

            direction = load_direction(path)
            kind, detail = "edit direction (SDEA .npy)", f"{tuple(direction.tensor.shape)}"
        elif path.suffix == ".dat":
            kind, detail = _check_dlib(path)
        else:
            obj = _load(path, trust)
            kind, strict_check = _describe(obj)
            try:
                detail = strict_check(obj)
            except Exception as exc:  # noqa: BLE001
                return CheckResult(path, False, kind, _one_line(exc))
    except Exception as exc:  # noqa: BLE001
        return CheckResult(path, False, "unknown", _one_line(exc))
    return CheckResult(path, True, kind, detail, sha256_file(path))


def _check_dlib(path: Path) -> tuple[str, str]:
    try:
        import dlib  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ValueError("checking dlib files needs dlib, which facedit installs: "
                         "pip install dlib-bin") from exc
    predictor = dlib.shape_predictor(str(path))
    return "dlib shape predictor", f"{predictor.num_parts} landmarks"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def import_file(path: Path, weights_dir: Path, name: str | None = None,
                trust: bool = False) -> tuple[CheckResult, Path]:
    """Check ``path``, copy it into ``weights_dir`` and record its sha256 in the manifest."""
    result = check_file(path, trust=trust)
    if not result.ok:
        raise ValueError(result.line())
    target = Path(weights_dir) / (name or Path(path).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(path, tmp)
    tmp.replace(target)
    manifest_path = Path(weights_dir) / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[str(target.relative_to(weights_dir))] = {
        "sha256": result.sha256, "kind": result.kind, "source": str(Path(path).absolute()),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return result, target
