"""State-dict layouts of the three published metric weight files, written out independently
of shared.metrics from the official code:

* ``alexnet-owt-7be5be79.pth``: torchvision ``alexnet()`` (features 0/3/6/8/10 convs,
  classifier 1/4/6 linears);
* ``alex.pth`` (v0.1): richzhang/PerceptualSimilarity ``lpips/weights/v0.1/alex.pth``, the
  ``NetLinLayer`` heads ``lin{i}.model.1.weight`` (checked against the file: 5 keys, shapes
  (1, C, 1, 1), C = 64, 192, 384, 256, 256);
* ``pt_inception-2015-12-05-6726825d.pth``: mseitzer/pytorch-fid ``fid_inception_v3()``, i.e.
  torchvision ``Inception3(num_classes=1008, aux_logits=False)`` with the FID blocks; every
  ``BasicConv2d`` is ``conv`` (no bias) + ``bn``.
"""

from __future__ import annotations

Shape = tuple[int, ...]

ALEXNET_TRUNK: dict[str, Shape] = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
}
ALEXNET_CLASSIFIER: dict[str, Shape] = {
    "classifier.1.weight": (4096, 256 * 6 * 6),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}
ALEXNET_FILE = {**ALEXNET_TRUNK, **ALEXNET_CLASSIFIER}

LPIPS_ALEX_V01_FILE: dict[str, Shape] = {
    f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))
}

Conv = tuple[str, int, int, tuple[int, int]]  # name, in, out, (kh, kw)


def _block_a(cin: int, pool: int) -> list[Conv]:
    return [
        ("branch1x1", cin, 64, (1, 1)),
        ("branch5x5_1", cin, 48, (1, 1)),
        ("branch5x5_2", 48, 64, (5, 5)),
        ("branch3x3dbl_1", cin, 64, (1, 1)),
        ("branch3x3dbl_2", 64, 96, (3, 3)),
        ("branch3x3dbl_3", 96, 96, (3, 3)),
        ("branch_pool", cin, pool, (1, 1)),
    ]


def _block_b(cin: int) -> list[Conv]:
    return [
        ("branch3x3", cin, 384, (3, 3)),
        ("branch3x3dbl_1", cin, 64, (1, 1)),
        ("branch3x3dbl_2", 64, 96, (3, 3)),
        ("branch3x3dbl_3", 96, 96, (3, 3)),
    ]


def _block_c(cin: int, c7: int) -> list[Conv]:
    return [
        ("branch1x1", cin, 192, (1, 1)),
        ("branch7x7_1", cin, c7, (1, 1)),
        ("branch7x7_2", c7, c7, (1, 7)),
        ("branch7x7_3", c7, 192, (7, 1)),
        ("branch7x7dbl_1", cin, c7, (1, 1)),
        ("branch7x7dbl_2", c7, c7, (7, 1)),
        ("branch7x7dbl_3", c7, c7, (1, 7)),
        ("branch7x7dbl_4", c7, c7, (7, 1)),
        ("branch7x7dbl_5", c7, 192, (1, 7)),
        ("branch_pool", cin, 192, (1, 1)),
    ]


def _block_d(cin: int) -> list[Conv]:
    return [
        ("branch3x3_1", cin, 192, (1, 1)),
        ("branch3x3_2", 192, 320, (3, 3)),
        ("branch7x7x3_1", cin, 192, (1, 1)),
        ("branch7x7x3_2", 192, 192, (1, 7)),
        ("branch7x7x3_3", 192, 192, (7, 1)),
        ("branch7x7x3_4", 192, 192, (3, 3)),
    ]


def _block_e(cin: int) -> list[Conv]:
    return [
        ("branch1x1", cin, 320, (1, 1)),
        ("branch3x3_1", cin, 384, (1, 1)),
        ("branch3x3_2a", 384, 384, (1, 3)),
        ("branch3x3_2b", 384, 384, (3, 1)),
        ("branch3x3dbl_1", cin, 448, (1, 1)),
        ("branch3x3dbl_2", 448, 384, (3, 3)),
        ("branch3x3dbl_3a", 384, 384, (1, 3)),
        ("branch3x3dbl_3b", 384, 384, (3, 1)),
        ("branch_pool", cin, 192, (1, 1)),
    ]


def inception_convs() -> list[Conv]:
    convs: list[Conv] = [
        ("Conv2d_1a_3x3", 3, 32, (3, 3)),
        ("Conv2d_2a_3x3", 32, 32, (3, 3)),
        ("Conv2d_2b_3x3", 32, 64, (3, 3)),
        ("Conv2d_3b_1x1", 64, 80, (1, 1)),
        ("Conv2d_4a_3x3", 80, 192, (3, 3)),
    ]
    blocks = {
        "Mixed_5b": _block_a(192, 32),
        "Mixed_5c": _block_a(256, 64),
        "Mixed_5d": _block_a(288, 64),
        "Mixed_6a": _block_b(288),
        "Mixed_6b": _block_c(768, 128),
        "Mixed_6c": _block_c(768, 160),
        "Mixed_6d": _block_c(768, 160),
        "Mixed_6e": _block_c(768, 192),
        "Mixed_7a": _block_d(768),
        "Mixed_7b": _block_e(1280),
        "Mixed_7c": _block_e(2048),
    }
    for block, branch_convs in blocks.items():
        convs += [(f"{block}.{name}", cin, cout, k) for name, cin, cout, k in branch_convs]
    return convs


def fid_inception_file(with_num_batches_tracked: bool = True) -> dict[str, Shape]:
    layout: dict[str, Shape] = {}
    for name, cin, cout, (kh, kw) in inception_convs():
        layout[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for buffer in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.bn.{buffer}"] = (cout,)
        if with_num_batches_tracked:
            layout[f"{name}.bn.num_batches_tracked"] = ()
    layout["fc.weight"] = (1008, 2048)
    layout["fc.bias"] = (1008,)
    return layout
