"""Quantizers between float and the DPU's int8 power-of-two format (value = q * 2^-f).

Rules (``docs/fixed-point.md``): FXP-Q1 ``quantize_activation``, FXP-Q2 ``quantize_param``,
FXP-Q3 ``dequantize``, FXP-Q4 ``fix_pos_from_max_abs``, FXP-Q5 ``requantize``.
"""

from __future__ import annotations

import math

import numpy as np

from .rounding import round_half_away, round_half_up, saturate, shift_round_half_up

__all__ = ["quantize_activation", "quantize_param", "dequantize", "fix_pos_from_max_abs", "requantize"]

# Values are clipped to +-2^40 before rounding. Saturation to int8 follows, so this changes nothing
# (clip and saturate are both monotone and 2^40 >> 127) but keeps the float -> int64 step in range.
_PRE_CLIP = float(2**40)


def _scaled(x: np.ndarray, fix_pos: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size and np.any(np.isnan(arr)):
        raise ValueError("x contains NaN")
    # ldexp multiplies by 2^f exactly (barring overflow to inf, which the clip absorbs, and results
    # below 2^-1022, which round to 0 either way).
    return np.clip(np.ldexp(arr, int(fix_pos)), -_PRE_CLIP, _PRE_CLIP)


def quantize_activation(x: np.ndarray, fix_pos: int) -> np.ndarray:
    """int8 = saturate(R(x * 2^f)) with R = round half up (FXP-Q1; activations and network input).

    Args:
        x: float array, any shape (converted to float64); +-inf saturate, NaN is refused.
        fix_pos: fix position f (any integer, may be negative).

    Returns:
        ``np.int8`` array of the same shape, values in [-128, 127].
    """
    return saturate(round_half_up(_scaled(x, fix_pos)), 8)


def quantize_param(x: np.ndarray, fix_pos: int) -> np.ndarray:
    """int8 = saturate(S(x * 2^f)) with S = round half away from zero (FXP-Q2; weights and bias).

    Args:
        x: float array, any shape (converted to float64); +-inf saturate, NaN is refused.
        fix_pos: fix position f (any integer, may be negative).

    Returns:
        ``np.int8`` array of the same shape, values in [-128, 127].
    """
    return saturate(round_half_away(_scaled(x, fix_pos)), 8)


def dequantize(q: np.ndarray, fix_pos: int) -> np.ndarray:
    """float64 value q * 2^-f (FXP-Q3). Exact for every int8 (indeed every |q| < 2^53) and f.

    Args:
        q: integer array, any shape.
        fix_pos: fix position f.

    Returns:
        float64 array of the same shape.
    """
    arr = np.asarray(q)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"q must have an integer dtype, got {arr.dtype}")
    return np.ldexp(arr.astype(np.float64), -int(fix_pos))


def fix_pos_from_max_abs(max_abs: float, bits: int = 8, cap: int = 12) -> int:
    """Fix position from a calibrated range: f = bits - 1 - ceil(log2(max_abs)), at most ``cap`` (FXP-Q4).

    This is the TQT / Vitis power-of-two rule: the largest f with max_abs <= 2^(bits-1-f), i.e.
    the range [-2^(bits-1-f), 2^(bits-1-f)) covers max_abs (max_abs = 2^k exactly gives f = bits-1-k;
    such a value then saturates to 2^(bits-1)-1 by one step). ``ceil(log2(.))`` is computed exactly
    with ``math.frexp`` (no float log rounding). ``max_abs <= 0`` (an all-zero tensor) gives ``cap``.
    The result may be negative for large ranges (max_abs > 2^(bits-1)).

    Args:
        max_abs: non-negative finite float.
        bits: bit width (8 for the DPU).
        cap: upper bound of the result (Vitis caps 8-bit positions at 12).

    Returns:
        The fix position (int).
    """
    m = float(max_abs)
    if math.isnan(m) or math.isinf(m):
        raise ValueError(f"max_abs must be finite, got {max_abs}")
    if m <= 0.0:
        return int(cap)
    mant, exp = math.frexp(m)  # m = mant * 2^exp, mant in [0.5, 1)
    ceil_log2 = exp - 1 if mant == 0.5 else exp
    return min(int(cap), int(bits) - 1 - ceil_log2)


def requantize(q: np.ndarray, fix_in: int, fix_out: int) -> np.ndarray:
    """The DPU fix op between positions: saturate(R(q * 2^(fix_out - fix_in))) (FXP-Q5).

    Integer only: ``shift_round_half_up(q, fix_in - fix_out)`` then saturate to int8. A finer output
    position (fix_out > fix_in) is an exact left shift (then saturation).

    Args:
        q: integer array (e.g. int8), any shape.
        fix_in: fix position of ``q``.
        fix_out: target fix position.

    Returns:
        ``np.int8`` array of the same shape.
    """
    return saturate(shift_round_half_up(q, int(fix_in) - int(fix_out)), 8)
