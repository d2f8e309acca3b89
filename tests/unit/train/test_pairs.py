from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.editing.bundle import toy_bundle
from shared.train.pairs import FILES, read_manifest, read_png, synthetic_pair, write_pairs
from shared.train.seam import colour_mismatch, seam_score


def _tensor(path: Path) -> torch.Tensor:
    array = read_png(path)
    tensor = torch.from_numpy(array)
    return (tensor[None] if array.ndim == 2 else tensor.permute(2, 0, 1))[None]


def test_files_and_manifest(tiny_pairs: Path) -> None:
    rows = read_manifest(tiny_pairs)
    assert len(rows) == 8
    with open(tiny_pairs / "manifest.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    for row in rows:
        assert {"source", "recipe", "params", "seed"} <= set(row)
        assert row["seed"][0] == 3
        for kind in FILES:
            image = read_png(tiny_pairs / row[kind])
            assert image.shape[:2] == (64, 64)
    assert {row["recipe"] for row in rows} <= {"appearance", "warp", "swap"}


def test_masks_are_soft_and_target_keeps_outside(tiny_pairs: Path) -> None:
    for row in read_manifest(tiny_pairs):
        mask = read_png(tiny_pairs / row["mask"])
        assert mask.ndim == 2 and 0 <= mask.min() and mask.max() <= 1
        assert mask.max() == 1.0
        soft = (mask > 0) & (mask < 1)
        assert soft.sum() > 10  # a real soft transition, not a binary mask
        original = read_png(tiny_pairs / row["original"])
        poisson = read_png(tiny_pairs / row["poisson"])
        outside = mask < 0.5 - 1 / 255
        np.testing.assert_array_equal(poisson[outside], original[outside])


def test_naive_composites_have_more_seam_energy_than_poisson(dev_faces: list[Path],
                                                             tmp_path: Path) -> None:
    rows = write_pairs(dev_faces[0].parent, tmp_path, size=128, limit=10, seed=1)
    seam = {"naive": [], "poisson": []}
    colour = {"naive": [], "poisson": []}
    for row in rows:
        o, m = _tensor(tmp_path / row["original"]), _tensor(tmp_path / row["mask"])
        for kind in ("naive", "poisson"):
            result = _tensor(tmp_path / row[kind])
            seam[kind].append(float(seam_score(result, o, m)))
            colour[kind].append(float(colour_mismatch(result, o, m)))
    assert np.mean(seam["naive"]) > 1.2 * np.mean(seam["poisson"])
    assert np.mean(colour["naive"]) > 1.5 * np.mean(colour["poisson"])
    wins = zip(colour["naive"], colour["poisson"], strict=True)
    assert sum(a > b for a, b in wins) >= 8


def test_synthetic_pair_is_deterministic_and_changes_the_face(dev_faces: list[Path]) -> None:
    from shared.train.pairs import load_face

    face = load_face(dev_faces[0], 64)
    donor = load_face(dev_faces[1], 64)
    a = synthetic_pair(face, np.random.default_rng(5), donor)
    b = synthetic_pair(face, np.random.default_rng(5), donor)
    np.testing.assert_array_equal(a.edited, b.edited)
    assert a.params == b.params
    assert np.abs(a.edited - face).mean() > 0.005
    with pytest.raises(ValueError, match="recipe"):
        synthetic_pair(face, np.random.default_rng(5), None, recipe="swap")


def test_gan_source_with_toy_models(dev_faces: list[Path], tmp_path: Path) -> None:
    bundle = toy_bundle()
    rows = write_pairs(dev_faces[0].parent, tmp_path, source="gan", size=64, limit=2,
                       per_image=2, bundle=bundle)
    assert len(rows) == 4
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["pair"] for line in lines] == [row["pair"] for row in rows]
    for row in read_manifest(tmp_path):
        assert row["recipe"] == "gan"
        assert row["params"]["attribute"] in bundle.attributes()
        mask = read_png(tmp_path / row["mask"])
        assert 0 <= mask.min() and mask.max() <= 1 and mask.max() > 0.5
        edited = read_png(tmp_path / row["edited"])
        assert edited.shape == (64, 64, 3)


def test_bad_arguments_are_refused(dev_faces: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        write_pairs(dev_faces[0].parent, tmp_path, source="stylegan")
    with pytest.raises(ValueError, match="bundle"):
        write_pairs(dev_faces[0].parent, tmp_path, source="gan")
    with pytest.raises(ValueError, match="src_dir"):
        write_pairs(tmp_path / "missing", tmp_path)
