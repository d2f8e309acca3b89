"""Small checkpoints in the official layouts, built from seeded random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared.models.diffcam import DiffCam
from shared.models.encoders import Encoder4Editing
from shared.models.maresunet import MAResUNet, maresunet_checkpoint
from shared.models.stylegan2 import Generator

STYLE_DIM = 32


def small_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(64, style_dim=STYLE_DIM, n_mlp=2, channel_multiplier=1, channel_scale=1 / 16)


def e4e_checkpoint(seed: int = 0) -> dict:
    """``{"state_dict": {"encoder.…", "decoder.…"}, "latent_avg", "opts"}`` as e4e saves it."""
    generator = small_generator(seed)
    torch.manual_seed(seed + 1)
    encoder = Encoder4Editing(50, "ir_se", n_styles=generator.n_latent, style_dim=STYLE_DIM,
                              input_size=64, channel_scale=1 / 16)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in generator.state_dict().items()})
    latent_avg = generator.mean_latent(64).detach().repeat(generator.n_latent, 1)
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 64,
            "start_from_latent_avg": True, "dataset_type": "ffhq_encode"}
    return {"state_dict": state, "latent_avg": latent_avg, "opts": opts}


def write_weights_dir(folder: Path, seed: int = 0) -> Path:
    """A weights folder in the layout `facedit weights list` documents."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(e4e_checkpoint(seed), folder / "e4e_ffhq_encode.pt")
    torch.manual_seed(seed + 2)
    torch.save(DiffCam(num_class=17, base_width=8).state_dict(), folder / "diff_cam_weight.pt")
    net = MAResUNet(num_classes=3, base_width=8)
    torch.save(maresunet_checkpoint(net), folder / "maresunet_suppressor.pt")
    directions = folder / "directions"
    directions.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    smile = torch.from_numpy(rng.standard_normal((1, STYLE_DIM)).astype(np.float32))
    torch.save(smile / smile.norm(), directions / "smile.pt")
    generator = small_generator(seed)
    np.save(directions / "Eyeglasses.npy", rng.standard_normal((generator.n_latent, STYLE_DIM)))
    return folder
