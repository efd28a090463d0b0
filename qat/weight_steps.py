"""Choose each layer's weight step (fix position f_w) by what it does to the model, not to the weights.

Calibration (``QConv.finish_calibration``) picks f_w among {f₀, f₀ + 1}, f₀ the finest position that holds
the largest weight, by the squared error of the quantized *weights*. The DPU's weight steps are one power of
two per tensor (docs/fixed-point.md FXP-Q4) and the largest weights of g_a and g_s are 20–27× their
standard deviation, so that criterion mostly protects a handful of outliers: at f₀ a typical weight is only
5–7 steps wide. Whether clipping those outliers (a finer step for every other weight) pays depends on the
layer — measured on training photos at q8 (``python -m fxlic.qat.int8_cost``, weights of one layer
quantized): g_s.2 at f₀ + 2 (1,664 of 147,456 weights clipped) cost +0.5 % of the RD objective against
+2.7 % at the calibrated position; g_s.0 at f₀ + 1 +0.8 % against +3.3 %; g_a.3 at f₀ + 1 +42 % against
+3.7 % (its outliers carry the latents' extremes).

``choose_weight_fix_positions`` is therefore a coordinate search on the quantized model's RD objective
(``objective``, e.g. λ·255²·MSE + bpp at the ideal rate on training crops): one pass in dataflow order, for
each layer the offsets ``offsets`` from its calibrated f_w, keeping the best. Only positions that are
DPU-legal as they stand (FXP-P1: shift_cut = f_w + f_in − f_out ∈ [0, 16], shift_bias within its range,
for the ŷ twin too) and no finer than the quantizer's cap of 12 (FXP-Q4) are tried, so the export
adjustment leaves them unchanged and no activation position moves. Bias positions are kept. Calibrated
models only; run it after ``calibrate`` and before QAT, which keeps the positions frozen (weights beyond the
range stay clipped: the straight-through gradient is zero there).
"""

from __future__ import annotations

from collections.abc import Callable

from fxlic.fxp.fixpos import shifts_in_dpu_range
from fxlic.fxp.quant import fix_pos_from_max_abs

from .layers import QConv
from .models import LATENT_FIX, MeanScaleHyperprior

WEIGHT_FIX_CAP = fix_pos_from_max_abs(0.0)  # 12, Vitis' cap on 8-bit positions (FXP-Q4)


def legal_weight_fix(layer: QConv, fix_w: int, twin_fix_out: int | None) -> bool:
    """Whether ``layer`` with weight position ``fix_w`` (its other positions as calibrated) is DPU-legal
    without any export adjustment (FXP-P1), for its ŷ twin's output position too when it has one, and within
    the quantizer's cap (FXP-Q4: the position of an all-zero tensor, 12)."""
    if fix_w > WEIGHT_FIX_CAP:
        return False
    outputs = [layer.fix_out] + ([twin_fix_out] if twin_fix_out is not None else [])
    return all(shifts_in_dpu_range(fix_w + layer.fix_in - f_out, fix_w + layer.fix_in - layer.fix_b)
               for f_out in outputs)


def choose_weight_fix_positions(model: MeanScaleHyperprior, objective: Callable[[MeanScaleHyperprior], float],
                                offsets: tuple[int, ...] = (0, 1, 2),
                                report: Callable[[str], None] | None = None) -> dict[str, int]:
    """Set each layer's f_w to the calibrated f_w + the offset of least ``objective(model)`` (in place).

    ``objective`` evaluates the model as it is (quantized, positions as set); it is called once per layer
    and legal offset. Returns the chosen offsets by layer name."""
    if not model.quantized:
        raise ValueError("choose_weight_fix_positions needs a calibrated (quantized) model")
    chosen: dict[str, int] = {}
    for name, layer in model.named_qconvs():
        twin = _twin_fix_out(model, layer)
        calibrated = layer.fix_w

        def set_weight_fix(offset: int, layer: QConv = layer, calibrated: int = calibrated, twin=twin) -> bool:
            if not legal_weight_fix(layer, calibrated + offset, twin):
                return False
            layer.fix[1] = calibrated + offset
            return True

        chosen[name], tried = best_offset(model, objective, offsets, set_weight_fix)
        if report is not None:
            report(f"{name}: f_w {calibrated} → {calibrated + chosen[name]} ({tried})")
    if hasattr(model, "check_latent_twin"):
        model.check_latent_twin()
    return chosen


def best_offset(model, objective: Callable, offsets: tuple[int, ...],
                set_offset: Callable[[int], bool]) -> tuple[int, str]:
    """One coordinate of the search: ``set_offset(o)`` sets a position to its calibrated value + o and says
    whether that is legal (illegal ones are not scored); the offset of least ``objective(model)`` (ties: the
    smallest move) is set last. Returns it and the scores tried, as text."""
    scores = [(objective(model), offset) for offset in offsets if set_offset(offset)]
    _, best = min(scores, key=lambda s: (s[0], abs(s[1])))
    set_offset(best)
    return best, ", ".join(f"{o:+d}: {s:.4f}" for s, o in scores)


def _twin_fix_out(model, layer: QConv) -> int | None:
    """The output position of ``layer``'s ŷ twin: a full model's g_a last conv may have one
    (``MeanScaleHyperprior.twin_fix_out``); a model without twins (a lite decoder's g_s) has none."""
    twin_fix_out = getattr(model, "twin_fix_out", None)
    return None if twin_fix_out is None or twin_fix_out(layer) is None else LATENT_FIX
