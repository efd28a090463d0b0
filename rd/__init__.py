"""Rate-distortion evaluation: RD curves (CompressAI JSON layout), BD-rate, PSNR / MS-SSIM, RD plots.

NumPy/SciPy only; matplotlib is imported lazily by :mod:`fxlic.rd.plot`; never torch.
"""

from .bdrate import BDResult, bd_ms_ssim, bd_psnr, bd_rate, bd_rate_ms_ssim, compare_curves
from .metrics import ms_ssim, ms_ssim_db, psnr
from .results import RDCurve, load_curve, load_curves, save_curve

__all__ = [
    "BDResult",
    "RDCurve",
    "bd_ms_ssim",
    "bd_psnr",
    "bd_rate",
    "bd_rate_ms_ssim",
    "compare_curves",
    "load_curve",
    "load_curves",
    "ms_ssim",
    "ms_ssim_db",
    "psnr",
    "save_curve",
]
