"""Bjøntegaard delta rate and delta quality (VCEG-M33, with the JCT-VC/JVET CTC interpolation).

BD-rate: both curves are written as log-rate as a function of quality, interpolated, and integrated
over the quality interval the two curves share; the mean log-rate difference ``d`` gives the
average rate change at equal quality, ``100 (e^d - 1)`` percent (negative = the test codec needs
fewer bits). BD-PSNR swaps the axes: quality as a function of log-rate, integrated over the shared
log-rate interval, mean difference in dB (positive = the test codec is better).

Interpolation (``method``):

- ``"pchip"`` (default): piecewise cubic Hermite interpolation (the slopes of
  ``scipy.interpolate.PchipInterpolator``, computed here with NumPy: :func:`pchip_slopes`) through the
  points, integrated exactly. This is what the JCT-VC / JVET common-test-conditions
  spreadsheets use; unlike the cubic fit it is monotone and never overshoots between points.
  Needs at least 2 points per curve.
- ``"cubic"``: the original VCEG-M33 method, a least-squares cubic polynomial fit through all the
  points, integrated exactly. Needs at least 4 points per curve.

Points are sorted by rate, and points with the same rate collapse to the best quality among them.
For BD-rate with PCHIP the quality must then increase strictly with rate (log-rate has to be a
function of quality); a curve where it does not gets a ValueError naming the offending points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .results import RDCurve, msssim_to_db

__all__ = [
    "METHODS",
    "BDResult",
    "bd_rate",
    "bd_psnr",
    "bd_rate_ms_ssim",
    "bd_ms_ssim",
    "compare_curves",
]

METHODS = ("pchip", "cubic")
_MIN_POINTS = {"pchip": 2, "cubic": 4}


def _prepare(
    bpp: Sequence[float], quality: Sequence[float], label: str, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve; return (log rate, quality), sorted by rate, rates unique."""
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; expected one of {METHODS}")
    r = np.asarray(bpp, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"{label} curve: {r.size} rates but {q.size} quality values")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise ValueError(f"{label} curve: rates and quality values must be finite")
    if np.any(r <= 0):
        raise ValueError(f"{label} curve: rates must be positive (BD-rate works on log-rate)")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    # Same rate twice: keep the best quality at that rate.
    uniq, start = np.unique(r, return_index=True)
    q = np.maximum.reduceat(q, start) if r.size else q
    r = uniq
    need = _MIN_POINTS[method]
    if r.size < need:
        raise ValueError(
            f"{label} curve: {r.size} distinct rate point(s); method {method!r} needs at least {need}"
        )
    return np.log(r), q


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes of the monotone piecewise cubic Hermite interpolant (Fritsch & Carlson 1980; Fritsch & Butland
    1984 weighted harmonic mean inside, the three-point shape-preserving formula at the ends), as SciPy's
    ``PchipInterpolator`` computes them."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.size
    if n == 2:
        return np.full(2, delta[0])
    d = np.zeros(n)
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same_sign = (np.sign(delta[:-1]) * np.sign(delta[1:])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)

    def end(h0: float, h1: float, m0: float, m1: float) -> float:
        slope = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(slope) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(slope) > abs(3 * m0):
            return 3 * m0
        return slope

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] ⊆ [x[0], x[-1]] of the PCHIP interpolant of y(x) (x strictly increasing)."""
    d = pchip_slopes(x, y)
    total = 0.0
    for i in range(x.size - 1):
        a, b = max(lo, x[i]), min(hi, x[i + 1])
        if b <= a:
            continue
        h = x[i + 1] - x[i]
        # Hermite cubic on [x_i, x_i+1] in t = (s − x_i)/h; its antiderivative in t, times h
        c0, c1 = y[i], d[i] * h
        c2 = 3 * (y[i + 1] - y[i]) - (2 * d[i] + d[i + 1]) * h
        c3 = 2 * (y[i] - y[i + 1]) + (d[i] + d[i + 1]) * h

        def antiderivative(t: float, c0=c0, c1=c1, c2=c2, c3=c3) -> float:
            return c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4

        total += h * (antiderivative((b - x[i]) / h) - antiderivative((a - x[i]) / h))
    return float(total)


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral over [lo, hi] of the interpolant of y(x) (x strictly increasing for pchip)."""
    if method == "pchip":
        return pchip_integral(x, y, lo, hi)
    poly = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(poly, hi) - np.polyval(poly, lo))


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float]:
    lo = max(float(a.min()), float(b.min()))
    hi = min(float(a.max()), float(b.max()))
    if not hi > lo:
        raise ValueError(
            f"the curves do not overlap in {what}: reference [{a.min():.4g}, {a.max():.4g}], "
            f"test [{b.min():.4g}, {b.max():.4g}]"
        )
    return lo, hi


def _check_increasing(lr: np.ndarray, q: np.ndarray, label: str) -> None:
    bad = np.flatnonzero(np.diff(q) <= 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{label} curve: quality does not increase with rate (bpp {np.exp(lr[i]):.4g} -> {q[i]:.4g}, "
            f"bpp {np.exp(lr[i + 1]):.4g} -> {q[i + 1]:.4g}); PCHIP BD-rate needs a monotone curve "
            "(drop the dominated point, or use method='cubic')"
        )


def bd_rate(
    ref_bpp: Sequence[float],
    ref_psnr: Sequence[float],
    test_bpp: Sequence[float],
    test_psnr: Sequence[float],
    method: str = "pchip",
) -> float:
    """Bjøntegaard delta rate of the test curve against the reference, in percent.

    The average rate difference at equal quality over the quality range both curves cover:
    -10.0 means the test codec needs 10 % fewer bits than the reference. ``*_psnr`` may be any
    quality measure in a log-like unit (PSNR in dB, MS-SSIM in dB, ...).

    Raises:
        ValueError: too few points (< 2 for ``"pchip"``, < 4 for ``"cubic"``), mismatched lengths,
            non-positive rates, a non-monotone curve (``"pchip"``), or no overlap in quality.
    """
    lr_ref, q_ref = _prepare(ref_bpp, ref_psnr, "reference", method)
    lr_test, q_test = _prepare(test_bpp, test_psnr, "test", method)
    if method == "pchip":
        _check_increasing(lr_ref, q_ref, "reference")
        _check_increasing(lr_test, q_test, "test")
    lo, hi = _overlap(q_ref, q_test, "quality")
    int_ref = _integral(q_ref, lr_ref, lo, hi, method)
    int_test = _integral(q_test, lr_test, lo, hi, method)
    mean_diff = (int_test - int_ref) / (hi - lo)
    return float(np.expm1(mean_diff) * 100.0)


def bd_psnr(
    ref_bpp: Sequence[float],
    ref_psnr: Sequence[float],
    test_bpp: Sequence[float],
    test_psnr: Sequence[float],
    method: str = "pchip",
) -> float:
    """Bjøntegaard delta quality (dB) of the test curve against the reference.

    The average quality difference at equal rate over the log-rate range both curves cover:
    +0.5 means the test codec is 0.5 dB better.

    Raises:
        ValueError: too few points, mismatched lengths, non-positive rates, or no overlap in rate.
    """
    lr_ref, q_ref = _prepare(ref_bpp, ref_psnr, "reference", method)
    lr_test, q_test = _prepare(test_bpp, test_psnr, "test", method)
    lo, hi = _overlap(lr_ref, lr_test, "rate")
    int_ref = _integral(lr_ref, q_ref, lo, hi, method)
    int_test = _integral(lr_test, q_test, lo, hi, method)
    return float((int_test - int_ref) / (hi - lo))


def _to_db(values: Sequence[float]) -> list[float]:
    out = [msssim_to_db(v) for v in values]
    if not all(np.isfinite(out)):
        raise ValueError("MS-SSIM values must be < 1 to be expressed in dB")
    return out


def bd_rate_ms_ssim(
    ref_bpp: Sequence[float],
    ref_ms_ssim: Sequence[float],
    test_bpp: Sequence[float],
    test_ms_ssim: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-rate (percent) on linear MS-SSIM values, measured in dB: ``-10 log10(1 - MS-SSIM)``."""
    return bd_rate(ref_bpp, _to_db(ref_ms_ssim), test_bpp, _to_db(test_ms_ssim), method)


def bd_ms_ssim(
    ref_bpp: Sequence[float],
    ref_ms_ssim: Sequence[float],
    test_bpp: Sequence[float],
    test_ms_ssim: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-MS-SSIM in dB (``-10 log10(1 - MS-SSIM)``) of the test curve against the reference."""
    return bd_psnr(ref_bpp, _to_db(ref_ms_ssim), test_bpp, _to_db(test_ms_ssim), method)


@dataclass
class BDResult:
    """BD figures of one test curve against a reference (see :func:`compare_curves`)."""

    reference: str
    test: str
    metric: str
    method: str
    bd_rate: float
    """Percent; negative = fewer bits than the reference at equal quality."""
    bd_quality: float
    """dB (PSNR, or MS-SSIM in dB); positive = better than the reference at equal rate."""
    bpp_range: tuple[float, float]
    """Overlapping bpp interval (BD-quality is averaged over it, in log-rate)."""
    quality_range: tuple[float, float]
    """Overlapping quality interval in dB (BD-rate is averaged over it)."""

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["bpp_range"] = list(self.bpp_range)
        d["quality_range"] = list(self.quality_range)
        return d


def _curve_quality(curve: RDCurve, metric: str) -> list[float]:
    if metric == "psnr":
        if curve.psnr is None:
            raise ValueError(f"curve {curve.name!r} has no PSNR values")
        return curve.psnr
    if metric == "ms-ssim":
        if curve.ms_ssim is None:
            raise ValueError(f"curve {curve.name!r} has no MS-SSIM values")
        return _to_db(curve.ms_ssim)
    raise ValueError(f"unknown metric {metric!r}; expected 'psnr' or 'ms-ssim'")


def compare_curves(ref: RDCurve, test: RDCurve, metric: str = "psnr", method: str = "pchip") -> BDResult:
    """BD-rate and BD-quality of ``test`` against ``ref`` on ``metric`` (``"psnr"`` or ``"ms-ssim"``)."""
    q_ref = _curve_quality(ref, metric)
    q_test = _curve_quality(test, metric)
    rate = bd_rate(ref.bpp, q_ref, test.bpp, q_test, method)
    quality = bd_psnr(ref.bpp, q_ref, test.bpp, q_test, method)
    bpp_range = (max(min(ref.bpp), min(test.bpp)), min(max(ref.bpp), max(test.bpp)))
    q_range = (max(min(q_ref), min(q_test)), min(max(q_ref), max(q_test)))
    return BDResult(ref.name, test.name, metric, method, rate, quality, bpp_range, q_range)
