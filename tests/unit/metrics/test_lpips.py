from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shared.metrics import LPIPS, MetricUnavailable, load_lpips
from shared.metrics.lpips import SCALE, SHIFT
from tests.unit.metrics.conftest import alexnet_file_state, random_state
from tests.unit.metrics.official_layouts import (
    ALEXNET_FILE,
    ALEXNET_TRUNK,
    LPIPS_ALEX_V01_FILE,
)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def test_trunk_and_heads_have_the_official_layouts() -> None:
    with torch.device("meta"):
        model = LPIPS()
    assert shapes(model.net.state_dict()) == ALEXNET_TRUNK
    assert shapes(model.heads.state_dict()) == LPIPS_ALEX_V01_FILE
    # nothing else is stored: the scaling constants are not weights of either file
    assert len(model.state_dict()) == len(ALEXNET_TRUNK) + len(LPIPS_ALEX_V01_FILE)


def test_official_files_load_strictly(metric_weights_dir: Path) -> None:
    trunk = alexnet_file_state()
    assert shapes(trunk) == ALEXNET_FILE  # the test file has torchvision's classifier too
    model = load_lpips([metric_weights_dir])
    for key, value in model.net.state_dict().items():
        assert torch.equal(value, trunk[key])
    heads = torch.load(metric_weights_dir / "alex.pth", weights_only=True)
    assert torch.equal(model.heads.lin2.model[1].weight, heads["lin2.model.1.weight"])

    incomplete = {k: v for k, v in heads.items() if k != "lin4.model.1.weight"}
    with pytest.raises(RuntimeError, match="lin4.model.1.weight"):
        LPIPS().load_heads(incomplete)


def test_identical_images_have_zero_distance_and_distance_is_symmetric(
    metric_weights_dir: Path,
) -> None:
    model = load_lpips([metric_weights_dir])
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=generator) * 2 - 1
    y = (x + 0.5 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    with torch.no_grad():
        assert torch.equal(model(x, x), torch.zeros(3))
        d_xy, d_yx = model(x, y), model(y, x)
    assert d_xy.shape == (3,)
    assert torch.equal(d_xy, d_yx)
    assert bool((d_xy > 0).all())
    # more noise, larger distance
    with torch.no_grad():
        d_more = model(x, (x + 1.0 * torch.randn(x.shape, generator=generator)).clamp(-1, 1))
    assert bool((d_more > d_xy).all())


def reference_lpips(
    x: torch.Tensor, y: torch.Tensor, trunk: dict[str, torch.Tensor], heads: dict
) -> torch.Tensor:
    """LPIPS v0.1 spelled out from the paper code's definition, with functional ops."""
    shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(SCALE).view(1, 3, 1, 1)

    def features(image: torch.Tensor) -> list[torch.Tensor]:
        def conv(h: torch.Tensor, i: int, padding: int, stride: int = 1) -> torch.Tensor:
            w, b = trunk[f"features.{i}.weight"], trunk[f"features.{i}.bias"]
            return F.relu(F.conv2d(h, w, b, stride=stride, padding=padding))

        relu1 = conv((image - shift) / scale, 0, padding=2, stride=4)
        relu2 = conv(F.max_pool2d(relu1, 3, 2), 3, padding=2)
        relu3 = conv(F.max_pool2d(relu2, 3, 2), 6, padding=1)
        relu4 = conv(relu3, 8, padding=1)
        relu5 = conv(relu4, 10, padding=1)
        return [relu1, relu2, relu3, relu4, relu5]

    total = torch.zeros(x.shape[0])
    for i, (fx, fy) in enumerate(zip(features(x), features(y), strict=True)):
        fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        weighted = F.conv2d((fx - fy) ** 2, heads[f"lin{i}.model.1.weight"])
        total += weighted.mean(dim=(1, 2, 3))
    return total


def test_distance_matches_the_definition(metric_weights_dir: Path) -> None:
    model = load_lpips([metric_weights_dir])
    trunk = alexnet_file_state()
    heads = torch.load(metric_weights_dir / "alex.pth", weights_only=True)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 80, 96, generator=generator) * 2 - 1
    y = torch.rand(2, 3, 80, 96, generator=generator) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model(x, y), reference_lpips(x, y, trunk, heads), rtol=1e-5)


def test_bfloat16_forward_is_close_to_float32(metric_weights_dir: Path) -> None:
    model = load_lpips([metric_weights_dir])
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        reference = model(x, y)
        low = model.to(torch.bfloat16)(x.bfloat16(), y.bfloat16())
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), reference, rtol=0.05)


def test_missing_files_are_named_with_where_to_get_them(tmp_path: Path) -> None:
    torch.save(random_state(LPIPS_ALEX_V01_FILE, 0), tmp_path / "alex.pth")
    with pytest.raises(MetricUnavailable) as caught:
        load_lpips([tmp_path])
    message = str(caught.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert "alex.pth (" not in message  # present, so not reported
    assert str(tmp_path) in message

    with pytest.raises(MetricUnavailable) as caught:
        load_lpips([tmp_path / "empty"])
    assert "alex.pth" in str(caught.value)
    assert "richzhang/PerceptualSimilarity" in str(caught.value)
    assert "lpips/weights/v0.1/alex.pth" in str(caught.value)


def test_torch_hub_cache_is_searched(tmp_path: Path, metric_weights_dir: Path) -> None:
    hub_checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert str(tmp_path) in str(hub_checkpoints)  # the autouse fixture isolated it
    hub_checkpoints.mkdir(parents=True)
    (hub_checkpoints / "alexnet-owt-7be5be79.pth").symlink_to(
        metric_weights_dir / "alexnet-owt-7be5be79.pth"
    )
    heads_only = tmp_path / "heads"
    heads_only.mkdir()
    (heads_only / "alex.pth").symlink_to(metric_weights_dir / "alex.pth")
    assert isinstance(load_lpips([heads_only]), LPIPS)


def test_mismatched_inputs_raise_value_error() -> None:
    with torch.device("meta"):
        model = LPIPS()
    with pytest.raises(ValueError, match="x and y"):
        model(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 32))
