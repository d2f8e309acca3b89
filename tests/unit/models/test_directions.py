from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.models.directions import (
    SDEA_DIRECTION_TO_CLASS,
    Direction,
    DirectionRegistry,
    UnknownDirectionError,
    apply_edit,
    diffcam_class,
    load_direction,
    load_ganspace,
    toy_registry,
)

D = 512


def _unit(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    t = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return t / t.norm(dim=-1, keepdim=True)


def _save_on_location(tensor: torch.Tensor, path: Path, location: str) -> None:
    """torch.save, then retag the storage location as if the tensor had lived on ``location``.

    A zip-format checkpoint records each storage's device as a pickled string in data.pkl
    (e4e's pose.pt says 'cuda:0'); rewriting that string reproduces such a file without CUDA.
    """
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    cpu_tag = b"X\x03\x00\x00\x00cpu"  # pickle BINUNICODE 'cpu'
    new_tag = b"X" + len(location).to_bytes(4, "little") + location.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert data.count(cpu_tag) == 1
                data = data.replace(cpu_tag, new_tag)
            target.writestr(info.filename, data)


def test_interfacegan_1x512(tmp_path) -> None:
    t = _unit((1, D))
    torch.save(t, tmp_path / "Smile.pt")
    d = load_direction(tmp_path / "Smile.pt")
    assert (d.name, d.kind, d.source) == ("smile", "interfacegan", tmp_path / "Smile.pt")
    assert d.tensor.shape == (1, D) and d.n_layers is None and d.style_dim == D
    assert torch.equal(d.tensor, t)


def test_interfacegan_per_layer_saved_on_cuda(tmp_path) -> None:
    t = _unit((1, D)).repeat(18, 1)[None]  # like e4e's pose.pt: (1, 18, 512), 18 equal rows
    path = tmp_path / "pose.pt"
    _save_on_location(t, path, "cuda:0")
    with zipfile.ZipFile(path) as z:
        pickled = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"cuda:0" in pickled and b"cpu" not in pickled
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    d = load_direction(path, name="pose")
    assert d.tensor.device.type == "cpu"
    assert d.tensor.shape == (18, D) and d.n_layers == 18
    assert torch.equal(d.tensor, t[0])


def test_interfacegan_half_precision_becomes_float32(tmp_path) -> None:
    torch.save(_unit((1, D)).half(), tmp_path / "age.pt")
    assert load_direction(tmp_path / "age.pt").tensor.dtype == torch.float32


def test_sdea_npy_is_float32_with_unit_frobenius_norm(tmp_path) -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(size=(18, D)) * 3.7
    np.save(tmp_path / "Mouth_Open.npy", array)
    d = load_direction(tmp_path / "Mouth_Open.npy")
    assert (d.name, d.kind) == ("mouth_open", "sdea")
    assert d.tensor.dtype == torch.float32 and d.tensor.shape == (18, D)
    assert torch.linalg.norm(d.tensor).item() == pytest.approx(1.0, abs=1e-6)
    expected = torch.from_numpy((array / np.linalg.norm(array)).astype(np.float32))
    torch.testing.assert_close(d.tensor, expected)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("bad.npy", np.zeros((18, D)), "zero"),
        ("bad.npy", np.ones((18, D), dtype=np.int64), "floating"),
        ("bad.npy", np.ones((1, 18, D)), r"\(L, D\)"),
        ("bad.pt", torch.ones(2, 3, 4, 5), "shape"),
        ("bad.pt", torch.ones(1, D, dtype=torch.int32), "floating"),
        ("bad.pt", torch.full((1, D), float("nan")), "NaN"),
        (
            "bad.pt",
            {"mean": torch.zeros(1, D), "comp": torch.zeros(1, 1, D), "std": torch.ones(1)},
            "load_ganspace",
        ),
        ("bad.pt", {"weights": torch.zeros(1)}, "tensor"),
        ("bad.txt", None, r"\.pt .* \.npy"),
    ],
)
def test_bad_direction_files(tmp_path, filename, content, message) -> None:
    path = tmp_path / filename
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content is None:
        path.write_text("0.1 0.2")
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=message):
        load_direction(path)


def _pca_file(tmp_path: Path, k: int = 3, dim: int = 4) -> Path:
    generator = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    pca = {
        "mean": torch.randn(1, dim, generator=generator),
        "comp": q[:k].reshape(k, 1, dim).contiguous(),
        "std": torch.tensor([2.0, 0.5, 1.5])[:k],
    }
    path = tmp_path / "ffhq_pca.pt"
    torch.save(pca, path)
    return path


def test_ganspace_edit_matches_e4e_formula_by_hand(tmp_path) -> None:
    space = load_ganspace(_pca_file(tmp_path))
    assert space.n_components == 3
    w = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    out = space.edit(w, component=1, strength=torch.tensor([3.0, -2.0]), layers=(2, 5))
    mean, comp, std = space.mean[0].tolist(), space.comp[1, 0].tolist(), space.std[1].item()
    for b, strength in enumerate((3.0, -2.0)):
        w0 = w[b, 0].tolist()
        coord = sum((w0[i] - mean[i]) * comp[i] for i in range(4)) / std
        delta = [(strength - coord) * comp[i] * std for i in range(4)]
        for layer in range(6):
            expected = [
                w[b, layer, i].item() + (delta[i] if 2 <= layer < 5 else 0.0) for i in range(4)
            ]
            assert out[b, layer].tolist() == pytest.approx(expected, abs=1e-5)
    # Editing layer 0 too sets the coordinate of w0 to the strength.
    full = space.edit(w, component=1, strength=3.0)
    torch.testing.assert_close(space.coordinate(full, 1), torch.tensor([3.0, 3.0]))
    assert not torch.equal(out, w)  # a new tensor; w itself untouched below
    assert torch.equal(w, torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1)))


def test_ganspace_is_device_and_dtype_agnostic(tmp_path) -> None:
    space = load_ganspace(_pca_file(tmp_path))
    w64 = torch.randn(1, 6, 4, dtype=torch.float64)
    assert space.edit(w64, 0, 1.0).dtype == torch.float64
    on_meta = space.edit(torch.empty(1, 6, 4, device="meta"), 0, 1.0, layers=slice(0, 3))
    assert on_meta.device.type == "meta" and on_meta.shape == (1, 6, 4)


def test_ganspace_rejects_bad_files_and_components(tmp_path) -> None:
    space = load_ganspace(_pca_file(tmp_path))
    with pytest.raises(ValueError, match="component"):
        space.edit(torch.zeros(1, 6, 4), 3, 1.0)
    torch.save(
        {"mean": torch.zeros(1, 4), "comp": torch.zeros(3, 4), "std": torch.ones(3)},
        tmp_path / "bad.pt",
    )
    with pytest.raises(ValueError, match="comp"):
        load_ganspace(tmp_path / "bad.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match="mean"):
        load_ganspace(tmp_path / "tensor.pt")


def test_apply_edit_all_layers_and_ranges() -> None:
    w = torch.randn(2, 6, 8)
    before = w.clone()
    d = Direction("x", _unit((1, 8)), "toy")
    out = apply_edit(w, d, 2.0)
    torch.testing.assert_close(out, w + 2.0 * d.tensor)
    assert torch.equal(w, before)

    ranged = apply_edit(w, d, 2.0, layers=(1, 3))
    assert torch.equal(ranged[:, [0, 3, 4, 5]], w[:, [0, 3, 4, 5]])
    torch.testing.assert_close(ranged[:, 1:3], w[:, 1:3] + 2.0 * d.tensor)
    assert torch.equal(apply_edit(w, d, 2.0, layers=slice(1, 3)), ranged)

    per_item = apply_edit(w, d, torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(per_item[0], w[0] + d.tensor)
    torch.testing.assert_close(per_item[1], w[1] - d.tensor)

    layered = Direction("y", torch.arange(48.0).reshape(6, 8), "sdea")
    torch.testing.assert_close(apply_edit(w, layered, 0.5), w + 0.5 * layered.tensor)
    assert apply_edit(w.double(), d, 1.0).dtype == torch.float64


@pytest.mark.parametrize(
    ("direction", "kwargs", "message"),
    [
        (Direction("a", torch.ones(1, 7), "toy"), {}, "w_plus"),
        (Direction("b", torch.ones(5, 8), "toy"), {}, "layers"),
        (Direction("c", torch.ones(1, 8), "toy"), {"layers": (4, 2)}, "start"),
        (Direction("d", torch.ones(1, 8), "toy"), {"layers": (0, 7)}, "end"),
        (Direction("e", torch.ones(1, 8), "toy"), {"layers": slice(3, 3)}, "selects no"),
        (Direction("f", torch.ones(1, 8), "toy"), {"strength": torch.ones(3)}, "strength"),
    ],
)
def test_apply_edit_rejects_mismatches(direction, kwargs, message) -> None:
    kwargs = {"strength": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        apply_edit(torch.zeros(2, 6, 8), direction, **kwargs)


def test_direction_rejects_non_2d_tensor() -> None:
    with pytest.raises(ValueError, match="tensor"):
        Direction("x", torch.ones(512), "toy")


def _folder(tmp_path: Path, smile_pt: bool = True, age_pt: bool = True) -> Path:
    inter = tmp_path / "interfacegan_directions"
    inter.mkdir()
    if smile_pt:
        torch.save(_unit((1, D), 1), inter / "smile.pt")
    if age_pt:
        torch.save(_unit((1, D), 2), inter / "age.pt")
    for i, stem in enumerate(["Smiling", "Eyeglasses", "Old", "Mouth_Open"]):
        np.save(tmp_path / f"{stem}.npy", np.random.default_rng(i).normal(size=(18, D)))
    pca_dir = tmp_path / "ganspace_pca"
    pca_dir.mkdir()
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(3)))
    torch.save(
        {
            "mean": torch.zeros(1, D),
            "comp": q[:80].reshape(80, 1, D).contiguous(),
            "std": torch.linspace(3, 1, 80),
        },
        pca_dir / "ffhq_pca.pt",
    )
    return tmp_path


def test_registry_lists_the_files_it_finds(tmp_path) -> None:
    registry = DirectionRegistry(_folder(tmp_path))
    infos = {i.name: i for i in registry.available()}
    assert set(infos) == {
        "smile",
        "age",
        "smiling",
        "eyeglasses",
        "old",
        "mouth_open",
        "eye_openness",
        "ganspace_smile",
        "trimmed_beard",
        "white_hair",
        "lipstick",
    }
    assert infos["smile"].kind == "interfacegan" and infos["smile"].file.name == "smile.pt"
    assert infos["smiling"].kind == "sdea" and infos["smiling"].diffcam_class == 15
    assert infos["eyeglasses"].default_strength == 20.0
    assert infos["lipstick"].default_layers == (10, 11)
    assert infos["lipstick"].ganspace_component == 34
    lo, hi = infos["age"].strength_range
    assert lo < 0 < infos["age"].default_strength <= hi


def test_registry_aliases_and_name_normalisation(tmp_path) -> None:
    registry = DirectionRegistry(_folder(tmp_path))
    assert registry.get("smile").kind == "interfacegan"  # smile.pt preferred
    assert registry.get("glasses").name == "eyeglasses"
    assert registry.get("age").source.name == "age.pt"
    assert registry.get("Mouth-Open") is registry.get("mouth_open")
    assert registry.get("Smiling").tensor.shape == (18, D)
    lipstick = registry.get("lipstick")
    space = registry.ganspace()
    assert lipstick.kind == "ganspace"
    torch.testing.assert_close(lipstick.tensor, space.comp[34] * space.std[34])


def test_registry_alias_fallbacks(tmp_path) -> None:
    registry = DirectionRegistry(_folder(tmp_path, smile_pt=False, age_pt=False))
    assert registry.get("smile").name == "smiling"
    assert registry.get("age").name == "old"
    assert "smile" in registry.known_names() and "smile" not in {
        i.name for i in registry.available()
    }


def test_registry_unknown_name(tmp_path) -> None:
    registry = DirectionRegistry(_folder(tmp_path))
    with pytest.raises(KeyError) as info:
        registry.get("top_hat")
    err = info.value
    assert isinstance(err, UnknownDirectionError) and isinstance(err, ValueError)
    assert "top_hat" in str(err) and "eyeglasses" in str(err) and "glasses" in err.known
    with pytest.raises(UnknownDirectionError, match="no direction file"):
        registry.get("pose")  # a standard attribute whose file is absent
    with pytest.raises(ValueError, match="directory"):
        DirectionRegistry(tmp_path / "missing")


def test_toy_registry_is_seeded() -> None:
    a, b = toy_registry(16, 8, seed=3), toy_registry(16, 8, seed=3)
    other = toy_registry(16, 8, seed=4)
    names = [i.name for i in a.available()]
    assert set(names) >= {"smile", "age", "pose", "glasses"}
    for name in names:
        d = a.get(name)
        assert d.kind == "toy" and d.style_dim == 16
        torch.testing.assert_close(d.tensor.norm(dim=1), torch.ones(d.tensor.shape[0]))
        assert torch.equal(d.tensor, b.get(name).tensor)
        assert not torch.equal(d.tensor, other.get(name).tensor)
    assert a.get("glasses").n_layers == 8 and a.get("smile").n_layers is None
    assert a.get("eyeglasses").name == "glasses"  # alias in the other direction
    assert a.info("smile").diffcam_class == 15
    w = torch.zeros(2, 8, 16)
    assert apply_edit(w, a.get("glasses"), 1.0).shape == (2, 8, 16)


def test_sdea_class_table() -> None:
    assert SDEA_DIRECTION_TO_CLASS["Bushy_Eyebrows"] == 6
    assert SDEA_DIRECTION_TO_CLASS["Eyeglasses"] == 7
    assert SDEA_DIRECTION_TO_CLASS["Mouth_Open"] == 10
    assert SDEA_DIRECTION_TO_CLASS["Narrow_Eyes"] == 11
    assert SDEA_DIRECTION_TO_CLASS["Beard"] == 12
    assert SDEA_DIRECTION_TO_CLASS["Smiling"] == 15
    assert SDEA_DIRECTION_TO_CLASS["Old"] == 16
    assert [diffcam_class(n) for n in ("smiling", "smile", "glasses", "age", "Narrow-Eyes")] == [
        15,
        15,
        7,
        16,
        11,
    ]
    assert diffcam_class("pose") is None
