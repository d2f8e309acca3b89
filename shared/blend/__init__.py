"""Blending: the naive composite, Poisson blending, and the suppressors the pipeline calls."""

from shared.blend.naive import MASK_THRESHOLD, naive_blend
from shared.blend.poisson import (
    GRADIENTS,
    POISSON_MODES,
    poisson_blend,
    poisson_blend_with_stats,
    precompile_poisson,
)
from shared.blend.poisson_exact import ExactSolveStats
from shared.blend.suppressor import (
    SUPPRESSOR_NAMES,
    MAResUNetSuppressor,
    NaiveSuppressor,
    PoissonSuppressor,
    SdeaSuppressor,
    Suppressor,
    build_suppressor,
)

__all__ = [
    "GRADIENTS",
    "MASK_THRESHOLD",
    "POISSON_MODES",
    "SUPPRESSOR_NAMES",
    "ExactSolveStats",
    "MAResUNetSuppressor",
    "NaiveSuppressor",
    "PoissonSuppressor",
    "SdeaSuppressor",
    "Suppressor",
    "build_suppressor",
    "naive_blend",
    "poisson_blend",
    "poisson_blend_with_stats",
    "precompile_poisson",
]
