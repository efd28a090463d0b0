"""Export-time fix-position adjustment (docs/fixed-point.md FXP-P1..FXP-P4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp import adjust_conv_fix_positions, encodable_on_dpuczdx8g, shift_bias_min, shifts_in_dpu_range

SETTINGS = settings(max_examples=200, deadline=None)
pos = st.integers(-8, 24)


def vitis_closed_form(fi: int, fw: int, fb: int, fo: int) -> tuple[int, int, int]:
    """The vai_q_pytorch rule (fix_pos_adjust.py, FixPosChecker.shift_cut_bias) as closed-form formulas."""
    sc0 = fw + fi - fo
    fw1 = fw - max(0, sc0 - 16)  # shift_cut > 16: weight moves down
    fo1 = fo + min(0, sc0)  # shift_cut < 0: output moves down
    sb1 = fw1 + fi - fb
    lower = min(0, sc0 - 16)  # from the *unadjusted* shift_cut (source quirk)
    fb1 = fb - max(0, lower - sb1)  # shift_bias too small: bias moves down
    fw2 = fw1 - max(0, sb1 - 16)  # shift_bias > 16: weight moves down again
    return fw2, fb1, fo1


def test_shift_bias_min():
    """FXP-P1: the lower bound is min(0, shift_cut - 16)."""
    assert [shift_bias_min(sc) for sc in (0, 5, 15, 16, 17)] == [-16, -11, -1, 0, 0]
    assert shifts_in_dpu_range(0, -16) and shifts_in_dpu_range(16, 16) and shifts_in_dpu_range(8, -8)
    assert not shifts_in_dpu_range(-1, 0) and not shifts_in_dpu_range(17, 0)
    assert not shifts_in_dpu_range(8, -9) and not shifts_in_dpu_range(8, 17)


@SETTINGS
@given(pos, pos, pos, pos)
def test_matches_vitis_rule_without_strict(fi, fw, fb, fo):
    """FXP-P2/P3: the single Vitis pass, as closed-form formulas written independently of the code."""
    assert adjust_conv_fix_positions(fi, fw, fb, fo, strict=False) == vitis_closed_form(fi, fw, fb, fo)


@SETTINGS
@given(pos, pos, pos, pos)
def test_properties(fi, fw, fb, fo):
    """FXP-P2..P4: positions only move down; the result is in the DPU range or strict mode raises;
    in-range layers are untouched; the adjustment is idempotent."""
    try:
        w2, b2, o2 = adjust_conv_fix_positions(fi, fw, fb, fo)
    except ValueError:
        w2, b2, o2 = adjust_conv_fix_positions(fi, fw, fb, fo, strict=False)
        assert not shifts_in_dpu_range(w2 + fi - o2, w2 + fi - b2)
        return
    assert w2 <= fw and b2 <= fb and o2 <= fo
    assert shifts_in_dpu_range(w2 + fi - o2, w2 + fi - b2)
    if shifts_in_dpu_range(fw + fi - fo, fw + fi - fb):
        assert (w2, b2, o2) == (fw, fb, fo)
    assert adjust_conv_fix_positions(fi, w2, b2, o2) == (w2, b2, o2)


def test_worked_examples():
    """FXP-P2/P3: which position moves in which case."""
    # in range: nothing moves
    assert adjust_conv_fix_positions(8, 7, 6, 8) == (7, 6, 8)
    # shift_cut = 10 + 8 - 0 = 18 > 16: weight 10 -> 8
    assert adjust_conv_fix_positions(8, 10, 8, 0) == (8, 8, 0)
    # shift_cut = 4 + 2 - 9 = -3 < 0: output 9 -> 6
    assert adjust_conv_fix_positions(2, 4, 5, 9) == (4, 5, 6)
    # shift_bias = 12 + 8 - 2 = 18 > 16: weight 12 -> 10 (shift_cut 12 -> 10)
    assert adjust_conv_fix_positions(8, 12, 2, 8) == (10, 2, 8)
    # shift_cut = 16, shift_bias = 8 + 8 - 20 = -4 < min(0, 16 - 16) = 0: bias 20 -> 16
    assert adjust_conv_fix_positions(8, 8, 20, 0) == (8, 16, 0)
    # shift_cut = 2, shift_bias = 0 + 2 - 20 = -18 < -14: bias 20 -> 16
    assert adjust_conv_fix_positions(2, 0, 20, 0) == (0, 16, 0)


def test_stale_shift_cut_quirk():
    """FXP-P4: with shift_cut < 0 the source checks shift_bias against min(0, sc0 - 16) < -16, so a
    shift_bias of -17 survives although the adjusted shift_cut = 0 needs >= -16. strict mode refuses it."""
    fi, fw, fb, fo = 0, 0, 17, 3  # sc0 = -3 -> out 3 -> 0; sb = -17 >= -19 passes the stale bound
    assert adjust_conv_fix_positions(fi, fw, fb, fo, strict=False) == (0, 17, 0)
    with pytest.raises(ValueError):
        adjust_conv_fix_positions(fi, fw, fb, fo)


def test_weight_move_can_break_shift_cut():
    """FXP-P4: a weight move for shift_bias > 16 lowers shift_cut, which the source does not re-check."""
    fi, fw, fb, fo = 8, 8, -10, 12  # sc = 4; sb = 26 -> w 8 -> -2, so sc = -6
    assert adjust_conv_fix_positions(fi, fw, fb, fo, strict=False) == (-2, -10, 12)
    with pytest.raises(ValueError):
        adjust_conv_fix_positions(fi, fw, fb, fo)


def test_dpuczdx8g_encoding():
    """FXP-P5: the DPUCZDX8G CONVINIT holds shift_cut in [0, 63] and shift_bias + 1 in [0, 20] (6-bit unsigned
    fields; the VART simulator rejects bias fields above 20): shift_bias -2 .. -16, legal for FXP-P1, is not."""
    assert encodable_on_dpuczdx8g(0, -1) and encodable_on_dpuczdx8g(16, 16) and encodable_on_dpuczdx8g(63, 19)
    assert not encodable_on_dpuczdx8g(0, -2) and not encodable_on_dpuczdx8g(4, -12)
    assert not encodable_on_dpuczdx8g(-1, 0) and not encodable_on_dpuczdx8g(64, 0)
    assert not encodable_on_dpuczdx8g(8, 20)
    assert shifts_in_dpu_range(4, -12) and not encodable_on_dpuczdx8g(4, -12)

