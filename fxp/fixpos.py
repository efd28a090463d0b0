"""Export-time fix-position adjustment of conv-like layers (rules FXP-P1..FXP-P4).

The DPU compiler needs shift_cut = f_w + f_in - f_out in [0, 16] and
shift_bias = f_w + f_in - f_b in [min(0, shift_cut - 16), 16]. The Vitis AI PyTorch quantizer
(vai_q_pytorch) moves positions at export to meet this, and the deployed xmodel carries the moved
positions, so the golden model must apply the same moves. What it does was read from the public
sources (Xilinx/Vitis-AI, ``src/vai_quantizer/vai_q_pytorch/nndct_shared/quantization/
fix_pos_adjust.py``, ``FixPosChecker.shift_cut_bias``; the same logic sits in older releases in
``src/vai_quantizer/vai_q_pytorch/pytorch_binding/pytorch_nndct/quantization/torchquantizer.py``,
``_node_relative_fix_pos_check``, called by ``export_quant_config``), one pass per layer, in this order:

1. shift_cut < 0  -> the *output* position moves down: f_out += shift_cut (now shift_cut = 0).
   shift_cut > 16 -> the *weight* position moves down: f_w -= shift_cut - 16 (now shift_cut = 16).
2. shift_bias is recomputed with the (possibly moved) f_w. Its lower bound is computed from the
   shift_cut *before* step 1 (a quirk of the source: the variable is not refreshed).
   shift_bias < lower -> the *bias* position moves down: f_b -= lower - shift_bias.
   shift_bias > 16    -> the *weight* position moves down again: f_w -= shift_bias - 16
   (this lowers shift_cut too, and the source does not re-check it).

This module re-implements that rule from its description (no code copied) and, by default, refuses
the rare inputs for which the single Vitis pass leaves the constraints violated (see FXP-P4).
"""

from __future__ import annotations

__all__ = [
    "SHIFT_CUT_MIN",
    "SHIFT_CUT_MAX",
    "SHIFT_BIAS_MAX",
    "DPUCZDX8G_SHIFT_BIAS_MIN",
    "DPUCZDX8G_SHIFT_BIAS_MAX",
    "DPUCZDX8G_SHIFT_CUT_MAX",
    "shift_bias_min",
    "shifts_in_dpu_range",
    "encodable_on_dpuczdx8g",
    "adjust_conv_fix_positions",
]

SHIFT_CUT_MIN = 0
SHIFT_CUT_MAX = 16
SHIFT_BIAS_MAX = 16


# FXP-P5: what the DPUCZDX8G (dpuv2) CONVINIT instruction can hold. Its shift_cut and shift_bias fields are
# 6-bit unsigned; the DPU instruction simulator of VART computes 2·acc + b·2^field and divides by
# 2^(shift_cut + 1), so the bias field holds shift_bias + 1, and it rejects bias fields above 20 (issue 33,
# tools/dpu_oracle; docs/fixed-point.md §7 and §11).
DPUCZDX8G_SHIFT_BIAS_MIN = -1
DPUCZDX8G_SHIFT_BIAS_MAX = 19
DPUCZDX8G_SHIFT_CUT_MAX = 63


def encodable_on_dpuczdx8g(shift_cut: int, shift_bias: int) -> bool:
    """True when a DPUCZDX8G CONVINIT can hold the shifts: shift_cut in [0, 63], shift_bias in [-1, 19] (FXP-P5).

    This is the instruction encoding, independent of FXP-P1 (the quantizer's range): a layer needs both.
    shift_bias <= -2, which FXP-P1 allows down to shift_cut - 16, has no encoding; how the (closed)
    compiler realizes such a layer is not public (FXP-A-NSB).
    """
    sc, sb = int(shift_cut), int(shift_bias)
    return 0 <= sc <= DPUCZDX8G_SHIFT_CUT_MAX and DPUCZDX8G_SHIFT_BIAS_MIN <= sb <= DPUCZDX8G_SHIFT_BIAS_MAX


def shift_bias_min(shift_cut: int) -> int:
    """Lower bound of shift_bias for a given shift_cut: min(0, shift_cut - 16) (FXP-P1).

    (The source writes it as ``min(0, -(24 - (8 + shift_cut)))``.) With a negative shift_bias the
    total right shift shift_cut - shift_bias then stays <= 16.
    """
    return min(0, int(shift_cut) - 16)


def shifts_in_dpu_range(shift_cut: int, shift_bias: int) -> bool:
    """True when shift_cut in [0, 16] and shift_bias in [min(0, shift_cut - 16), 16] (FXP-P1)."""
    sc, sb = int(shift_cut), int(shift_bias)
    return SHIFT_CUT_MIN <= sc <= SHIFT_CUT_MAX and shift_bias_min(sc) <= sb <= SHIFT_BIAS_MAX


def adjust_conv_fix_positions(
    fix_in: int, fix_w: int, fix_b: int, fix_out: int, *, strict: bool = True
) -> tuple[int, int, int]:
    """Apply the Vitis export adjustment to one conv / transposed-conv layer (FXP-P2, FXP-P3).

    The input position is never moved (it belongs to the producer). See the module docstring for
    the exact order of moves.

    Args:
        fix_in: input activation position.
        fix_w: weight position (as calibrated / learned).
        fix_b: bias position.
        fix_out: output activation position.
        strict: FXP-P4. When True (default) raise ``ValueError`` if the Vitis pass leaves
            shift_cut or shift_bias outside the DPU range (possible only when f_b is more than 16
            away from f_w + f_in or f_out); when False return the Vitis result unchanged.

    Returns:
        ``(fix_w, fix_b, fix_out)`` after adjustment.
    """
    fi, fw, fb, fo = int(fix_in), int(fix_w), int(fix_b), int(fix_out)

    # Step 1: shift_cut.
    sc0 = fw + fi - fo
    if sc0 < SHIFT_CUT_MIN:
        fo += sc0 - SHIFT_CUT_MIN  # output gets coarser: f_out = f_w + f_in
    elif sc0 > SHIFT_CUT_MAX:
        fw -= sc0 - SHIFT_CUT_MAX  # weights get coarser

    # Step 2: shift_bias, with the lower bound from the *unadjusted* shift_cut (as in the source).
    sb = fw + fi - fb
    lower = shift_bias_min(sc0)
    if sb < lower:
        fb += sb - lower  # bias gets coarser
    elif sb > SHIFT_BIAS_MAX:
        fw -= sb - SHIFT_BIAS_MAX  # weights get coarser (shift_cut drops with it)

    if strict:
        sc, sb = fw + fi - fo, fw + fi - fb
        if not shifts_in_dpu_range(sc, sb):
            raise ValueError(
                f"Vitis fix-position adjustment of (in={fix_in}, w={fix_w}, b={fix_b}, out={fix_out}) gives "
                f"(w={fw}, b={fb}, out={fo}) with shift_cut={sc}, shift_bias={sb}, outside the DPU range "
                "shift_cut in [0, 16], shift_bias in [min(0, shift_cut-16), 16]; the bias position is too "
                "far from the others (FXP-P4)"
            )
    return fw, fb, fo
