"""The conditional (mean-scale Gaussian) entropy model of ŷ, NumPy only: the one owner of the scale grid,
the y tables, and the choice of table per symbol (CompressAI's ``GaussianConditional`` owns the same:
``scale_table``, ``_update`` of the CDFs, ``build_indexes``).

Build time (export, float64, once): the σ grid (``scale_grid``), the uint8 look-up from the int8 log2 σ
code of the hyper-synthesis to a grid index (``build_scale_lut``), and the integer tables
(``build_y_tables``). Run time (encoder and decoder, integers only): ``table_indexes`` turns the integer
h_s outputs into (table index, μ_r) per element of ŷ (docs/entropy.md). Training (``fxlic.qat``) clamps σ
to the same [SCALE_MIN, SCALE_MAX].
"""

from __future__ import annotations

import math

import numpy as np

from fxlic.fxp.rounding import shift_round_half_up

from .tables import TableSet, gaussian_pmf, table_set_from_pmfs

SCALE_MIN = 0.11  # lower bound of σ (CompressAI's scale table starts here)
SCALE_MAX = 64.0
SCALE_LEVELS = 64  # Gaussian tables, log-spaced σ in [SCALE_MIN, SCALE_MAX] (as CompressAI's scale table)
MEAN_FRAC_BITS = 2  # the coarsest μ resolution of the tables: 1/4 (every model file before 2026-12-02f)
MEAN_FRAC_BITS_MAX = 4  # the finest: 64 × 16 tables
TAIL_MASS = 1e-9

__all__ = ["MEAN_FRAC_BITS", "MEAN_FRAC_BITS_MAX", "SCALE_LEVELS", "SCALE_MAX", "SCALE_MIN", "TAIL_MASS",
           "build_scale_lut", "build_y_tables", "factorized_table_indexes", "mean_frac_bits_for", "scale_grid",
           "table_indexes"]


def scale_grid() -> np.ndarray:
    """σ of the y tables: SCALE_LEVELS log-spaced values from SCALE_MIN to SCALE_MAX (float64)."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))


def mean_frac_bits_for(fix_means: int | None) -> int:
    """b = ``mean_frac_bits`` of the y tables for a mean head whose int8 output sits at fix ``fix_means``
    (None: no mean head). b = f_μ keeps every bit of μ that the model computes: a coarser b rounds μ once
    more, which cost the q0 model of the fifth 2026-12-02 release (f_μ = 3) 4.5 % of its y rate at b = 2 on
    training photos (``tools/rate_budget.py``), and a finer b only adds tables. Clamped to
    [MEAN_FRAC_BITS, MEAN_FRAC_BITS_MAX]: models with f_μ ≤ 2 keep the tables of the earlier releases.
    """
    if fix_means is None:
        return MEAN_FRAC_BITS
    return min(max(MEAN_FRAC_BITS, int(fix_means)), MEAN_FRAC_BITS_MAX)


def build_scale_lut(fix_scales: int, grid: np.ndarray) -> np.ndarray:
    """uint8 [256]: for each int8 code q of the log2 σ head, the smallest grid σ ≥ 2^(q·2^-f) (clamped).

    Rounding σ up to the next table is CompressAI's rule (build_indexes): it never under-estimates the
    spread, which costs far less than an over-confident table.
    """
    codes = np.arange(-128, 128, dtype=np.float64)
    sigma = np.clip(np.exp2(codes * 2.0 ** -fix_scales), grid[0], grid[-1])
    index = np.searchsorted(grid, sigma * (1.0 - 1e-12), side="left")
    return np.minimum(index, len(grid) - 1).astype(np.uint8)


def build_y_tables(grid: np.ndarray, mean_frac_bits: int) -> TableSet:
    """Table t = scale_index · 2^b + (frac + 2^(b−1)): Gaussian(σ_scale, mean frac/2^b) ⊛ U(−½, ½)."""
    pmfs, offsets = [], []
    half = 1 << (mean_frac_bits - 1)
    for sigma in grid:
        for j in range(1 << mean_frac_bits):
            pmf, offset = gaussian_pmf(float(sigma), (j - half) / (1 << mean_frac_bits), tail_mass=TAIL_MASS)
            pmfs.append(pmf)
            offsets.append(offset)
    return table_set_from_pmfs(pmfs, offsets)


def table_indexes(scales: np.ndarray, means: np.ndarray | None, scale_lut: np.ndarray, fix_means: int | None,
                  mean_frac_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(table index, integer mean μ_r) per element of ŷ, from the integer h_s outputs (docs/entropy.md).

    μ is brought to b = mean_frac_bits fractional bits with DPU rounding (no saturation: int64),
    μ_r = round-half-up(μ) and frac = μ·2^b − μ_r·2^b ∈ [−2^(b−1), 2^(b−1)). The table is
    ``scale_lut[q_σ + 128] · 2^b + frac + 2^(b−1)``; the coded symbol is ŷ − μ_r. ``means`` is None for
    the scale hyperprior (μ = 0).
    """
    b = mean_frac_bits
    scale_index = scale_lut[scales.astype(np.int64) + 128].astype(np.int64)
    if means is None:
        mean_fine = np.zeros(scales.shape, dtype=np.int64)
    else:
        mean_fine = shift_round_half_up(means.astype(np.int64), fix_means - b)
    mean_r = shift_round_half_up(mean_fine, b)
    frac = mean_fine - (mean_r << b)
    table = (scale_index << b) + frac + (1 << (b - 1))
    return table.astype(np.int32), mean_r.astype(np.int32)


def factorized_table_indexes(shape: tuple[int, int, int]) -> np.ndarray:
    """ẑ's factorized prior (Ballé 2018) uses one table per channel: index = channel, in C-order (c, i, j)."""
    channels, rows, cols = shape
    return np.repeat(np.arange(channels, dtype=np.int32), rows * cols)
