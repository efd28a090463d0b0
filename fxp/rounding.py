"""Rounding, shifting and saturation primitives of the DPU integer model.

Every function here implements one numbered rule of ``docs/fixed-point.md``:

* FXP-R1 ``round_half_up``        R(x) = floor(x + 1/2)            (XIR ``DPU_ROUND``)
* FXP-R2 ``round_half_away``      S(x) = sign(x) * floor(|x| + 1/2) (``STD_ROUND``)
* FXP-R3 ``shift_round_half_up``  R(a / 2^s) for an integer a, computed with integer ops only
* FXP-R4 ``saturate``             clamp to [-2^(b-1), 2^(b-1) - 1]

All integer results are ``np.int64`` (``saturate`` with ``bits=8`` returns ``np.int8``).
The float roundings are exact for every finite float64 input (no ``x + 0.5`` shortcut, see
``round_half_up``), so they are safe to use on values produced by exact power-of-two scaling.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shift_round_half_up", "round_half_up", "round_half_away", "saturate"]

# |x| must stay below this before a float -> int64 conversion (2^63 itself does not fit).
_INT64_LIMIT = float(2**63)


def _as_int64(a: np.ndarray | int, name: str) -> np.ndarray:
    """Return ``a`` as an int64 array; refuse floats (a silent truncation would hide bugs)."""
    arr = np.asarray(a)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values above the int64 range")
    return arr.astype(np.int64, copy=False)


def shift_round_half_up(acc: np.ndarray, shift: int) -> np.ndarray:
    """Divide an integer array by 2^shift and round half up (FXP-R3).

    ``shift > 0``: ``(acc + 2^(shift-1)) >> shift`` with an arithmetic shift, which equals
    ``floor(acc / 2^shift + 1/2)`` exactly (the DPU "add half, shift right" requantizer).
    ``shift == 0``: ``acc`` unchanged. ``shift < 0``: ``acc << -shift`` (exact multiplication).

    Args:
        acc: integer array (any integer dtype, any shape); values and the result must fit int64.
        shift: shift amount, ``-62 <= shift <= 62``.

    Returns:
        int64 array of the same shape (a new array).
    """
    a = _as_int64(acc, "acc")
    shift = int(shift)
    if not -62 <= shift <= 62:
        raise ValueError(f"shift must be in [-62, 62], got {shift}")
    if shift > 0:
        # (a + 2^(s-1)) >> s: numpy's >> on signed ints is arithmetic (floor division by 2^s).
        return (a + np.int64(1 << (shift - 1))) >> np.int64(shift)
    if shift == 0:
        return a.copy()
    s = -shift
    # Left shift must not overflow int64: |a| < 2^(63-s).
    if a.size:
        lim = 1 << (63 - s)
        if int(a.max()) >= lim or int(a.min()) < -lim:
            raise OverflowError(f"acc << {s} overflows int64")
    return a << np.int64(s)


def _check_float(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    if arr.size and float(np.max(np.abs(arr))) >= _INT64_LIMIT - 1.0:
        raise ValueError(f"{name} has values outside the int64 range")
    return arr


def round_half_up(x: np.ndarray) -> np.ndarray:
    """R(x) = floor(x + 1/2) for float input, as int64 (FXP-R1, XIR ``DPU_ROUND``).

    Computed as ``floor(x) + (x - floor(x) >= 1/2)``: ``x - floor(x)`` is exact in float64 whenever
    it lies in [1/4, 1) (both operands are multiples of ulp(x) there), so the comparison with 1/2 is
    exact. The naive ``floor(x + 0.5)`` is wrong, e.g. for x = 0.49999999999999994 (x + 0.5 rounds
    up to 1.0).

    Args:
        x: float array (converted to float64); finite, |x| < 2^63.

    Returns:
        int64 array, same shape.
    """
    arr = _check_float(x, "x")
    fl = np.floor(arr)
    up = (arr - fl) >= 0.5
    return fl.astype(np.int64) + up.astype(np.int64)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """S(x) = sign(x) * floor(|x| + 1/2) for float input, as int64 (FXP-R2, ``STD_ROUND``).

    C's ``round``: halves go away from zero. Used for weights and bias only.

    Args:
        x: float array (converted to float64); finite, |x| < 2^63.

    Returns:
        int64 array, same shape.
    """
    arr = _check_float(x, "x")
    mag = round_half_up(np.abs(arr))  # floor(|x| + 1/2), exact (see round_half_up)
    return np.where(arr < 0, -mag, mag).astype(np.int64)


def saturate(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """Clamp integers to the signed ``bits``-bit range [-2^(b-1), 2^(b-1) - 1] (FXP-R4).

    Args:
        x: integer array (any integer dtype).
        bits: target width, 2..63.

    Returns:
        ``np.int8`` array when ``bits == 8`` (the DPU tensor type), else ``np.int64``.
    """
    bits = int(bits)
    if not 2 <= bits <= 63:
        raise ValueError(f"bits must be in [2, 63], got {bits}")
    a = _as_int64(x, "x")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    out = np.clip(a, lo, hi)
    return out.astype(np.int8) if bits == 8 else out.astype(np.int64, copy=False)
