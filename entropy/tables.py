"""Integer CDF tables for the rANS coder (rules ENT-T1 ... ENT-T4, ENT-Q1 ... ENT-Q5 in ``docs/entropy.md``).

A :class:`TableSet` holds ``T`` quantized distributions. Row ``t`` is a cumulative frequency table over
``n_t`` symbol indices whose total is ``2**PRECISION``; symbol index ``k < n_t - 1`` codes the value
``offset[t] + k`` and the last index ``n_t - 1`` is the escape symbol (ESC), which codes any other
int16 value (see ``fxlic.entropy.rans``).

Only integer tables reach the coder. The float helpers here (:func:`quantize_pmf`, :func:`gaussian_pmf`,
:func:`table_set_from_pmfs`) run once, at model-export time; their integer output is stored in the model
file, so their floating-point details never have to be reproduced by a C/HLS decoder. They are still
fully deterministic and documented so that an export can be repeated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PRECISION",
    "PROB_TOTAL",
    "VALUE_MIN",
    "VALUE_MAX",
    "TableSet",
    "quantize_pmf",
    "table_set_from_pmfs",
    "gaussian_pmf",
]

PRECISION = 16
"""Bits of probability precision: every CDF row totals ``2**PRECISION`` (ENT-T2)."""
PROB_TOTAL = 1 << PRECISION
# Values that the coder can carry (directly or through the escape): int16 (ENT-E1).
VALUE_MIN = -(1 << 15)
VALUE_MAX = (1 << 15) - 1

_KEYS = ("cdf", "num_symbols", "offset")


def _as_int_array(a: object, dtype: type, name: str, ndim: int) -> np.ndarray:
    """Return ``a`` as a C-contiguous, read-only ``dtype`` array; ValueError if that would change a value."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimension(s), got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=dtype)
    # Compare in int64 space so that e.g. -1 -> 4294967295 (uint32 wrap) is caught.
    if arr.size and not np.array_equal(out.astype(np.int64), arr.astype(np.int64)):
        raise ValueError(f"{name}: values do not fit {np.dtype(dtype).name}")
    if out is arr or out.base is arr:
        out = out.copy()  # never alias (and freeze) the caller's buffer
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class TableSet:
    """``T`` integer CDF tables sharing one padded array (ENT-T1 ... ENT-T4).

    Attributes:
        cdf: uint32 ``[T, L_max + 1]``. Row ``t``: ``cdf[t, 0] = 0``, strictly increasing up to
            ``cdf[t, n_t] = 2**16``, then padded on the right with ``2**16``. The frequency of symbol
            index ``k`` is ``cdf[t, k + 1] - cdf[t, k]`` (in ``[1, 2**16 - 1]``).
        num_symbols: int32 ``[T]``, ``n_t`` in ``[2, L_max]``; includes ESC, which is index ``n_t - 1``.
        offset: int32 ``[T]``; symbol index 0 codes value ``offset[t]``, so table ``t`` codes the values
            ``offset[t] ... offset[t] + n_t - 2`` directly (all inside int16).

    The constructor converts the arrays to these dtypes (C-contiguous, read-only copies) and calls
    :meth:`validate`, so a constructed ``TableSet`` is always valid.
    """

    cdf: np.ndarray
    num_symbols: np.ndarray
    offset: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "cdf", _as_int_array(self.cdf, np.uint32, "cdf", 2))
        object.__setattr__(self, "num_symbols", _as_int_array(self.num_symbols, np.int32, "num_symbols", 1))
        object.__setattr__(self, "offset", _as_int_array(self.offset, np.int32, "offset", 1))
        self.validate()

    @property
    def num_tables(self) -> int:
        """``T``, the number of tables."""
        return int(self.cdf.shape[0])

    def freqs(self, t: int) -> np.ndarray:
        """Frequencies of table ``t``: uint32 ``[n_t]``, sum ``2**16``, ESC last."""
        n = int(self.num_symbols[t])
        return np.diff(self.cdf[t, : n + 1])

    def validate(self) -> None:
        """Check ENT-T1 ... ENT-T4; raise ``ValueError`` naming the first violation."""
        cdf, n, off = self.cdf, self.num_symbols, self.offset
        if cdf.ndim != 2 or cdf.shape[0] < 1:
            raise ValueError(f"ENT-T1: cdf must have shape [T>=1, L_max+1], got {cdf.shape}")
        T, width = cdf.shape
        if width < 3:
            raise ValueError(f"ENT-T1: cdf rows need at least 3 entries (n_t >= 2), got {width}")
        if n.shape != (T,) or off.shape != (T,):
            raise ValueError(f"ENT-T1: num_symbols {n.shape} and offset {off.shape} must both have shape ({T},)")
        bad = np.flatnonzero((n < 2) | (n > width - 1))
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T3: table {t}: num_symbols {int(n[t])} outside [2, {width - 1}]")
        lo = off.astype(np.int64)
        hi = lo + n.astype(np.int64) - 2  # last directly coded value
        bad = np.flatnonzero((lo < VALUE_MIN) | (hi > VALUE_MAX))
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T4: table {t}: direct values {int(lo[t])}..{int(hi[t])} leave the int16 range")
        bad = np.flatnonzero(cdf[:, 0] != 0)
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T2: table {t}: cdf[0] = {int(cdf[t, 0])}, must be 0")
        cols = np.arange(width)[None, :]
        inside = cols <= n[:, None]  # columns 0..n_t are the real CDF, the rest is padding
        bad = np.flatnonzero(np.any(cdf > PROB_TOTAL, axis=1))
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T2: table {t}: cdf entry above 2^{PRECISION}")
        d = np.diff(cdf.astype(np.int64), axis=1)
        strictly = inside[:, 1:]  # step k -> k+1 must be > 0 for k+1 <= n_t
        bad = np.flatnonzero(np.any(strictly & (d <= 0), axis=1))
        if bad.size:
            t = int(bad[0])
            k = int(np.flatnonzero(strictly[t] & (d[t] <= 0))[0])
            raise ValueError(
                f"ENT-T2: table {t}: cdf not strictly increasing at index {k + 1} "
                f"({int(cdf[t, k])} -> {int(cdf[t, k + 1])}); every frequency must be >= 1"
            )
        last = cdf[np.arange(T), n]
        bad = np.flatnonzero(last != PROB_TOTAL)
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T2: table {t}: cdf[n_t={int(n[t])}] = {int(last[t])}, must be 2^{PRECISION}")
        bad = np.flatnonzero(np.any(~inside & (cdf != PROB_TOTAL), axis=1))
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"ENT-T1: table {t}: padding after cdf[n_t] must be 2^{PRECISION}")

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays for an ``.npz`` model file: keys ``prefix + "cdf"``, ``"num_symbols"``, ``"offset"``.

        The prefix is used verbatim (pass e.g. ``"entropy.y."`` to get ``"entropy.y.cdf"``).
        """
        return {prefix + k: np.array(getattr(self, k)) for k in _KEYS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], prefix: str) -> TableSet:
        """Inverse of :meth:`to_arrays`; ``arrays`` is any mapping (dict, ``np.load`` result).

        Raises ``ValueError`` if a key is missing or the tables are invalid.
        """
        missing = [prefix + k for k in _KEYS if prefix + k not in arrays]
        if missing:
            raise ValueError(f"missing entropy table arrays: {', '.join(missing)}")
        return cls(**{k: np.asarray(arrays[prefix + k]) for k in _KEYS})


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Quantize a pmf to integer frequencies (rules ENT-Q1 ... ENT-Q5).

    Args:
        pmf: float64 ``[n]``, ``2 <= n <= 2**precision``, finite and ``>= 0`` with a positive sum (it is
            normalized here). By convention the last entry is the escape/tail mass, which may be tiny
            or zero: it still gets frequency >= 1.
        precision: total is ``2**precision``; ``1 <= precision <= 16``.

    Returns:
        uint32 ``[n]`` with sum ``2**precision`` and every entry ``>= 1``.

    Algorithm: p = pmf / sum(pmf); f = floor(p * 2**precision); give the remaining
    ``2**precision - sum(f)`` units, one each, to the entries with the largest fractional parts
    (ties: lower index first); then, for every entry still 0 (in index order), set it to 1 and take 1
    from the currently largest entry (ties: lower index first).
    """
    if not 1 <= precision <= 16:
        raise ValueError(f"precision must be in [1, 16], got {precision}")
    p = np.asarray(pmf, dtype=np.float64)
    total = 1 << precision
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"pmf must be 1-D with at least 2 entries, got shape {p.shape}")
    if p.size > total:
        raise ValueError(f"pmf has {p.size} entries; at most 2^{precision} fit at precision {precision}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("pmf entries must be finite and >= 0")
    s = math.fsum(p.tolist())  # exactly rounded sum: independent of summation order (ENT-Q1)
    if not s > 0:
        raise ValueError("pmf must have a positive sum")
    scaled = p / s * total
    f = np.floor(scaled).astype(np.int64)
    # Rounding in p / s can push sum(f) a unit past `total` in theory; trim from the largest entries.
    while f.sum() > total:
        f[int(np.argmax(f))] -= 1
    rem = total - int(f.sum())
    if rem > 0:
        frac = scaled - np.floor(scaled)
        order = np.argsort(-frac, kind="stable")  # largest fraction first, lower index wins ties
        # rem < n up to float rounding; cycling the order keeps it well-defined in every case.
        for j in range(rem):
            f[order[j % order.size]] += 1
    _lift_zeros(f)
    assert int(f.sum()) == total and int(f.min()) >= 1
    return f.astype(np.uint32)


def _lift_zeros(f: np.ndarray) -> None:
    """ENT-Q4 in place: for each zero (index order), set it to 1 and take 1 from the largest entry.

    The spec states the rule as a loop (``j = first argmax(f); f[j] -= 1; f[i] = 1`` per zero ``i``);
    this computes the same result in O(n log n) instead of O(n * zeros) (tested against the loop). While
    zeros remain, the maximum is >= 2, so lifted entries are never taken from again, and the loop is
    "take z units, one at a time, from the current first maximum": it first cuts every entry above
    some level lam down to lam, then takes one more from the r lowest-index entries equal to lam.
    """
    zeros = f == 0
    z = int(zeros.sum())
    if z == 0:
        return

    def cut(level: int) -> int:  # units removed by clipping everything to `level`
        return int(np.maximum(f - level, 0).sum())

    lo, hi = 0, int(f.max())  # cut(hi) = 0 <= z; find the smallest lam with cut(lam) <= z
    while lo < hi:
        mid = (lo + hi) // 2
        if cut(mid) <= z:
            hi = mid
        else:
            lo = mid + 1
    lam = lo
    r = z - cut(lam)
    np.minimum(f, lam, out=f)
    at_level = np.flatnonzero(f == lam)[:r]  # r < count(f == lam) by the choice of lam
    f[at_level] -= 1
    f[zeros] = 1


def table_set_from_pmfs(pmfs: list[np.ndarray], offsets: list[int], precision: int = PRECISION) -> TableSet:
    """Build a :class:`TableSet` from float pmfs (export time).

    Args:
        pmfs: ``T`` float arrays; ``pmfs[t]`` has ``n_t >= 2`` entries, the last one being the ESC mass.
        offsets: ``T`` ints; ``offsets[t]`` is the value coded by symbol index 0 of table ``t``.
        precision: must equal :data:`PRECISION` (the coder is fixed at 16 bits; the argument only
            makes the requirement explicit).
    """
    if precision != PRECISION:
        raise ValueError(f"the rANS coder uses precision {PRECISION}, got {precision}")
    if len(pmfs) != len(offsets) or not pmfs:
        raise ValueError(f"need equally many (>= 1) pmfs and offsets, got {len(pmfs)} and {len(offsets)}")
    freqs = [quantize_pmf(p, precision) for p in pmfs]
    width = max(f.size for f in freqs) + 1
    cdf = np.full((len(freqs), width), PROB_TOTAL, dtype=np.uint32)
    for t, f in enumerate(freqs):
        cdf[t, 0] = 0
        cdf[t, 1 : f.size + 1] = np.cumsum(f)
    n = np.array([f.size for f in freqs], dtype=np.int32)
    return TableSet(cdf=cdf, num_symbols=n, offset=np.asarray(offsets, dtype=np.int64))


def _phi_upper(x: float) -> float:
    """P(N(0,1) > x), accurate in both tails (erfc, no cancellation for x > 0)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _bin_mass(a: float, b: float) -> float:
    """P(a < N(0,1) <= b) for a < b, computed on the side where erfc does not cancel."""
    if a >= 0.0:
        return _phi_upper(a) - _phi_upper(b)
    if b <= 0.0:
        return _phi_upper(-b) - _phi_upper(-a)
    return 1.0 - _phi_upper(-a) - _phi_upper(b)


def gaussian_pmf(
    sigma: float, mean_offset: float, tail_mass: float = 1e-9, max_half_width: int = 255
) -> tuple[np.ndarray, int]:
    """Discretized Gaussian for the y tables (ENT-G1; export time only).

    The density of N(mean_offset, sigma^2) convolved with U(-1/2, 1/2) integrated over unit bins:
    ``P(v) = Phi((v + 1/2 - m) / s) - Phi((v - 1/2 - m) / s)`` for integers ``v`` in ``[-L, L]``, where
    ``L >= 0`` is the smallest integer whose two-sided tail
    ``Phi((-L - 1/2 - m) / s) + 1 - Phi((L + 1/2 - m) / s)`` is below ``tail_mass``, capped at
    ``max_half_width``. The tail (the mass outside ``[-L - 1/2, L + 1/2]``) is appended as the ESC entry.

    Args:
        sigma: standard deviation, finite and > 0.
        mean_offset: the mean ``m`` (in symbol units; usually the fractional part of the mean, |m| <= 1).
        tail_mass: target ESC mass, in (0, 1).
        max_half_width: cap for ``L`` (>= 0); ``2 L + 1`` direct symbols.

    Returns:
        ``(pmf, offset)``: float64 ``[2 L + 2]`` (ESC last) and ``offset = -L``.
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")
    if not math.isfinite(mean_offset):
        raise ValueError(f"mean_offset must be finite, got {mean_offset}")
    if not 0 < tail_mass < 1:
        raise ValueError(f"tail_mass must be in (0, 1), got {tail_mass}")
    if max_half_width < 0:
        raise ValueError(f"max_half_width must be >= 0, got {max_half_width}")
    m, s = float(mean_offset), float(sigma)

    def tail(L: int) -> float:
        return _phi_upper((L + 0.5 - m) / s) + _phi_upper((L + 0.5 + m) / s)

    L = 0
    while L < max_half_width and not tail(L) < tail_mass:
        L += 1
    v = range(-L, L + 1)
    pmf = [_bin_mass((k - 0.5 - m) / s, (k + 0.5 - m) / s) for k in v]
    pmf.append(tail(L))
    return np.maximum(np.array(pmf, dtype=np.float64), 0.0), -L
