"""Bad input to poisson_blend: ValueError naming the argument and the problem."""

from __future__ import annotations

import pytest
import torch

from shared.blend import poisson_blend


def _inputs(shape=(2, 3, 12, 14)):
    g = torch.Generator().manual_seed(0)
    source = torch.rand(shape, generator=g)
    target = torch.rand(shape, generator=g)
    mask = torch.zeros(shape[0], 1, *shape[2:])
    mask[..., 3:9, 4:10] = 1
    return source, target, mask


@pytest.mark.parametrize("mode", ["exact", "opencv"])
def test_valid_input_passes(mode):
    source, target, mask = _inputs()
    assert poisson_blend(source, target, mask, mode=mode).shape == source.shape


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda s, t, m: (s, t[:, :2], m), r"target: shape \(2, 2, 12, 14\) does not match"),
        (lambda s, t, m: (s, t[:1], m), r"target: shape"),
        (lambda s, t, m: (s, t, m[:, :, :-1]), r"mask: expected shape \(2, 1, 12, 14\)"),
        (lambda s, t, m: (s, t, m.expand(2, 3, 12, 14)), r"mask: expected shape"),
        (lambda s, t, m: (s[0], t[0], m[0]), r"source: expected shape \(B, C, H, W\)"),
        (lambda s, t, m: (s[:0], t[:0], m[:0]), r"source: empty batch"),
        (lambda s, t, m: (s[:, :0], t[:, :0], m), r"source: channel and spatial sizes"),
        (lambda s, t, m: (s.clone().index_fill_(3, torch.tensor([2]), float("nan")), t, m),
         r"source: contains NaN"),
        (lambda s, t, m: (s, t.clone().index_fill_(2, torch.tensor([5]), float("inf")), m),
         r"target: contains Inf"),
        (lambda s, t, m: (s, t, m.clone().fill_(float("nan"))), r"mask: contains NaN"),
        (lambda s, t, m: (s, t, m * 1.5), r"mask: values must lie in \[0, 1\]"),
        (lambda s, t, m: (s, t, m - 0.5), r"mask: values must lie in \[0, 1\]"),
        (lambda s, t, m: (s * 255, t, m), r"source: values must lie in \[0, 1\]"),
        (lambda s, t, m: ((s * 255).to(torch.uint8), t, m), r"source: dtype torch.uint8"),
        (lambda s, t, m: (s, (t * 255).to(torch.int64), m), r"target: dtype torch.int64"),
        (lambda s, t, m: (s, t, (m * 255).to(torch.uint8)), r"mask: dtype torch.uint8"),
        (lambda s, t, m: (s.numpy(), t, m), r"source: expected a torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(change, pattern):
    source, target, mask = change(*_inputs())
    for mode in ("exact", "opencv"):
        with pytest.raises(ValueError, match=pattern):
            poisson_blend(source, target, mask, mode=mode)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mode": "fast"}, r"mode: 'fast' is not one of \['exact', 'opencv'\]"),
        ({"gradients": "target"}, r"gradients: 'target' is not one of"),
        ({"tol": 0.0}, r"tol: must be a number in \(0, 1\)"),
        ({"tol": float("nan")}, r"tol:"),
        ({"max_iter": 0}, r"max_iter: must be an int ≥ 1"),
        ({"max_iter": 2.5}, r"max_iter:"),
    ],
)
def test_bad_options_raise_value_error(kwargs, pattern):
    source, target, mask = _inputs()
    with pytest.raises(ValueError, match=pattern):
        poisson_blend(source, target, mask, **kwargs)


def test_float64_and_float16_are_accepted_and_keep_the_target_dtype():
    source, target, mask = _inputs()
    ref = poisson_blend(source, target, mask)
    out64 = poisson_blend(source.double(), target.double(), mask.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), ref, atol=1e-5, rtol=0)
    out16 = poisson_blend(source.half(), target.half(), mask.half())
    assert out16.dtype == torch.float16
    assert (out16.float() - ref).abs().max() < 2e-3


@pytest.mark.parametrize("value, pattern", [(float("nan"), "NaN"), (float("inf"), "Inf"),
                                            (1.5, r"\[0, 1\]")])
def test_permuted_and_sliced_images_are_checked_without_missing_a_value(value, pattern):
    from shared.blend.validation import check_image

    hwc = torch.rand(16, 12, 3)
    hwc[15, 11, 2] = value  # the last element in memory order
    permuted = hwc.permute(2, 0, 1)[None]  # an HWC array seen as (1, C, H, W)
    with pytest.raises(ValueError, match=pattern):
        check_image("source", permuted)
    wide = torch.rand(1, 3, 16, 24)
    wide[0, 1, 7, 6] = value  # kept by the ::2 slice
    with pytest.raises(ValueError, match=pattern):
        check_image("source", wide[..., ::2])  # not dense: reduced after a copy
    check_image("source", torch.rand(16, 12, 3).permute(2, 0, 1)[None])


def test_mask_box_is_the_bounding_box_of_the_set_pixels():
    from shared.blend.mask_box import mask_box

    mask = torch.zeros(20, 30, dtype=torch.bool)
    assert mask_box(mask) is None
    mask[3, 7] = mask[11, 25] = True
    assert mask_box(mask) == (3, 12, 7, 26)
    assert mask_box(mask[1:, 2:]) == (2, 11, 5, 24)  # a non-contiguous view
