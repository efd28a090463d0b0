"""Image quality metrics: PSNR and MS-SSIM on 8-bit RGB, NumPy/SciPy only.

Both follow what CompressAI's evaluation reports (``psnr-rgb``, ``ms-ssim-rgb``), so numbers
computed here can be compared with the published anchors:

- :func:`psnr`: peak 255, MSE over all pixels and channels at once.
- :func:`ms_ssim`: Wang, Simoncelli & Bovik 2003 with the parameters of ``pytorch_msssim.ms_ssim``
  (which CompressAI calls with ``data_range=255``): 11x11 Gaussian window (σ = 1.5, applied
  separably, "valid" filtering without padding), K1 = 0.01, K2 = 0.03, 5 scales with weights
  (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales. The contrast-structure
  terms of scales 1-4 and the full SSIM of scale 5 are clipped at 0 (ReLU), raised to their weights
  and multiplied, per channel; the result is the mean over channels. Like ``F.avg_pool2d(...,
  padding=s % 2)`` in ``pytorch_msssim``, an odd side is zero-padded by one pixel on *both* ends
  before pooling, and the zeros count in the average.
"""

from __future__ import annotations

import math

import numpy as np

from .results import msssim_to_db

__all__ = ["psnr", "mse", "ms_ssim", "ms_ssim_db", "MS_SSIM_WEIGHTS", "gaussian_window"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _as_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check two images (HxW or HxWxC) have the same shape; return them as float64 HxWxC."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {a.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all values of two same-shape images."""
    x, y = _as_pair(a, b)
    return float(np.mean((x - y) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB of two uint8 HxWx3 images (peak ``data_range``, MSE over all RGB values).

    Returns ``inf`` for identical images.
    """
    err = mse(a, b)
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / err)


def gaussian_window(size: int = _WIN_SIZE, sigma: float = _SIGMA) -> np.ndarray:
    """Normalized 1-D Gaussian taps (centered, ``size`` taps)."""
    coords = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering (correlation) of an HxWxC array with the 1-D window along H and W.

    Output (H − k + 1) × (W − k + 1): y[i] = Σ_t win[t] · x[i + t] per axis, NumPy only (no SciPy on the
    base install); tests compare it with ``scipy.ndimage.correlate1d`` where SciPy is installed.
    """
    k = win.size
    h, w = x.shape[:2]
    y = sum(win[t] * x[t : h - k + 1 + t] for t in range(k))
    return sum(win[t] * y[:, t : w - k + 1 + t] for t in range(k))


def _ssim_terms(
    x: np.ndarray, y: np.ndarray, data_range: float, win: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and mean contrast-structure term (arrays of length C)."""
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_x = _filter_valid(x, win)
    mu_y = _filter_valid(y, win)
    sxx = _filter_valid(x * x, win) - mu_x**2
    syy = _filter_valid(y * y, win) - mu_y**2
    sxy = _filter_valid(x * y, win) - mu_x * mu_y
    cs_map = (2.0 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2.0 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(axis=(0, 1)), cs_map.mean(axis=(0, 1))


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling, stride 2, matching ``F.avg_pool2d(x, 2, padding=[s % 2 for s in (H, W)])``."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    if ph or pw:
        x = np.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    x = x[: 2 * h2, : 2 * w2]
    return x.reshape(h2, 2, w2, 2, -1).mean(axis=(1, 3))


def ms_ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = 255.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> float:
    """Multi-scale SSIM of two uint8 HxWx3 (or HxW) images, averaged over channels.

    Matches ``pytorch_msssim.ms_ssim(a, b, data_range=255)`` on NCHW float tensors of the same
    pixels (up to float32 rounding in the latter). Identical images give 1.0.

    Raises:
        ValueError: shapes differ, or the shorter side is not larger than 160 pixels (the
            coarsest of the 5 scales would be smaller than the 11x11 window).
    """
    x, y = _as_pair(a, b)
    levels = len(weights)
    min_side = (_WIN_SIZE - 1) * 2 ** (levels - 1)
    if min(x.shape[:2]) <= min_side:
        raise ValueError(f"MS-SSIM with {levels} scales needs both sides > {min_side} px, got {x.shape[:2]}")
    win = gaussian_window()
    w = np.asarray(weights, dtype=np.float64)
    factors = []
    for level in range(levels):
        ssim_c, cs_c = _ssim_terms(x, y, data_range, win)
        if level < levels - 1:
            factors.append(np.maximum(cs_c, 0.0))
            x, y = _avg_pool2(x), _avg_pool2(y)
        else:
            factors.append(np.maximum(ssim_c, 0.0))
    stacked = np.stack(factors)  # levels x C
    per_channel = np.prod(stacked ** w[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_db(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """MS-SSIM in dB, ``-10 log10(1 - MS-SSIM)`` (``inf`` for identical images)."""
    return msssim_to_db(ms_ssim(a, b, data_range))
