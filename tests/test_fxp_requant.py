"""Requantization of conv accumulators (docs/fixed-point.md FXP-C3..FXP-C9) and the assumptions
switches (FXP-A-LEAKY, FXP-A-NSB, FXP-A-ACC)."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp import DEFAULT, DpuAssumptions, requantize_accumulator

SETTINGS = settings(max_examples=200, deadline=None)
ACTS = ("none", "relu", "leaky_relu")


def r_model(x: Fraction) -> int:
    return math.floor(Fraction(x) + Fraction(1, 2))


def sat8(v: int) -> int:
    return min(127, max(-128, v))


def requant_model(a: int, b: int, sb: int, sc: int, act: str, leaky: str = "single", nsb: str = "scale_accumulator"):
    """FXP-C4..C8 on Python ints / Fractions."""
    if sb >= 0:
        t, s = a + b * 2**sb, sc
    elif nsb == "scale_accumulator":
        t, s = a * 2 ** (-sb) + b, sc - sb
    else:  # floor_bias: 2a + floor(b 2^(sb+1)), s = sc + 1
        t, s = 2 * a + math.floor(Fraction(b) * Fraction(2) ** (sb + 1)), sc + 1
    v = Fraction(t) / Fraction(2) ** s
    if act == "none":
        o = r_model(v)
    elif act == "relu":
        o = r_model(max(v, Fraction(0)))
    elif leaky == "single":
        o = r_model(v if v >= 0 else v * Fraction(26, 256))
    else:
        o = r_model(v)
        if o < 0:
            o = r_model(Fraction(o * 26, 256))
    return sat8(o)


@st.composite
def requant_case(draw):
    n = draw(st.integers(1, 6))
    acc = draw(st.lists(st.integers(-(2**28), 2**28) | st.integers(-600, 600), min_size=n, max_size=n))
    bias = draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n))
    sc = draw(st.integers(0, 16))
    sb = draw(st.integers(min(0, sc - 16), 16))
    return np.array(acc, dtype=np.int64), np.array(bias, dtype=np.int8), sb, sc


@SETTINGS
@given(
    requant_case(),
    st.sampled_from(ACTS),
    st.sampled_from(["single", "double"]),
    st.sampled_from(["scale_accumulator", "floor_bias"]),
)
def test_requantize_matches_python_model(case, act, leaky, nsb):
    """FXP-C4..C8: bias alignment (both shift_bias signs and both FXP-A-NSB modes), fused activation
    (both FXP-A-LEAKY modes), round-half-up shift and int8 saturation, on one channel per element."""
    acc, bias, sb, sc = case
    a = DpuAssumptions(leaky_relu_rounding=leaky, negative_shift_bias=nsb)
    got = requantize_accumulator(acc, bias, sb, sc, act, a)
    assert got.dtype == np.int8
    want = [requant_model(int(x), int(b), sb, sc, act, leaky, nsb) for x, b in zip(acc, bias, strict=True)]
    assert got.tolist() == want


@SETTINGS
@given(requant_case(), st.sampled_from(ACTS), st.integers(-4, 12), st.integers(-6, 12))
def test_requantize_equals_float64_fake_quant(case, act, f_in, f_w):
    """FXP-C9: with the default assumptions, the integer requantizer equals the quantizer's fake-quant
    clamp(floor(act(acc 2^-(f_w+f_in) + b 2^-f_b) 2^f_out + 1/2)) evaluated in float64 (exact here)."""
    acc, bias, sb, sc = case
    f_b = f_w + f_in - sb
    f_out = f_w + f_in - sc
    v = np.ldexp(acc.astype(np.float64), -(f_w + f_in)) + np.ldexp(bias.astype(np.float64), -f_b)
    if act == "relu":
        v = np.maximum(v, 0.0)
    elif act == "leaky_relu":
        v = np.where(v < 0, v * (26.0 / 256.0), v)
    want = np.clip(np.floor(np.ldexp(v, f_out) + 0.5), -128, 127).astype(np.int8)
    assert np.array_equal(requantize_accumulator(acc, bias, sb, sc, act), want)


def test_bias_broadcasts_over_channel_axis():
    """FXP-C4: bias [O] is added per output channel of an [O, H, W] accumulator."""
    acc = np.zeros((3, 2, 2), np.int64)
    out = requantize_accumulator(acc, np.array([1, -2, 3], np.int8), 2, 2, "none")
    assert out[:, 0, 0].tolist() == [1, -2, 3] and (out == out[:, :1, :1]).all()
    assert requantize_accumulator(acc, None, 0, 0, "none").tolist() == np.zeros((3, 2, 2)).tolist()


def test_relu_and_leaky_worked_examples():
    """FXP-C7/C8: ReLU before rounding; LeakyReLU 26/256 single vs double rounding differ."""
    acc = np.array([-8, -3, 3, -200, -1300], np.int64)
    b = np.zeros(5, np.int8)
    assert requantize_accumulator(acc, b, 0, 1, "relu").tolist() == [0, 0, 2, 0, 0]
    # t = -200, s = 1: single R(-200*26/512) = R(-10.15625) = -10; double: R(-100) = -100 -> R(-2600/256) = -10
    # t = -1300, s = 1: single R(-66.015625) = -66; double: -650 -> R(-66.015625) = -66 (no intermediate clamp)
    single = requantize_accumulator(acc, b, 0, 1, "leaky_relu")
    double = requantize_accumulator(acc, b, 0, 1, "leaky_relu", DpuAssumptions(leaky_relu_rounding="double"))
    assert single.tolist() == [0, 0, 2, -10, -66]
    assert double.tolist() == [0, 0, 2, -10, -66]
    # t = -59, s = 2: single R(-59*26/2^10) = R(-1.498) = -1; double R(-14.75) = -15 -> R(-390/256) = -2
    t = np.array([-59], np.int64)
    assert requantize_accumulator(t, np.zeros(1, np.int8), 0, 2, "leaky_relu").tolist() == [-1]
    dbl = DpuAssumptions(leaky_relu_rounding="double")
    assert requantize_accumulator(t, np.zeros(1, np.int8), 0, 2, "leaky_relu", dbl).tolist() == [-2]


@SETTINGS
@given(requant_case(), st.sampled_from(("none", "relu")))
def test_floor_bias_equals_default_without_leaky(case, act):
    """FXP-A-NSB: for "none" and "relu" the two negative-shift-bias modes are provably identical
    (shift_cut >= 0): the bias bits that "floor_bias" drops lie below the rounding point."""
    acc, bias, sb, sc = case
    fb = DpuAssumptions(negative_shift_bias="floor_bias")
    assert np.array_equal(
        requantize_accumulator(acc, bias, sb, sc, act), requantize_accumulator(acc, bias, sb, sc, act, fb)
    )


def test_floor_bias_differs_for_leaky_relu():
    """FXP-A-NSB: with LeakyReLU and shift_bias <= -2 the modes can differ (the 26x product sees the
    dropped bias bits). acc = -15, b = 1, shift_bias = -2, shift_cut = 0:
    default t = -15*4 + 1 = -59, R(-59*26/2^10) = R(-1.498) = -1;
    floor_bias t = -30 + floor(1/2) = -30, R(-30*26/2^9) = R(-1.523) = -2."""
    acc, b = np.array([-15], np.int64), np.array([1], np.int8)
    fb = DpuAssumptions(negative_shift_bias="floor_bias")
    assert requantize_accumulator(acc, b, -2, 0, "leaky_relu").tolist() == [-1]
    assert requantize_accumulator(acc, b, -2, 0, "leaky_relu", fb).tolist() == [-2]
    # shift_bias = -1 keeps every bias bit: identical
    assert (
        requantize_accumulator(acc, b, -1, 0, "leaky_relu").tolist()
        == requantize_accumulator(acc, b, -1, 0, "leaky_relu", fb).tolist()
    )


def test_accumulator_width_check():
    """FXP-A-ACC: accumulator_bits=32 raises when the accumulator or the bias-aligned sum leaves int32."""
    a32 = DpuAssumptions(accumulator_bits=32)
    b = np.array([127], np.int8)
    ok = np.array([2**31 - 1 - 127 * 2**0], np.int64)
    requantize_accumulator(ok, b, 0, 16, "none", a32)
    with pytest.raises(OverflowError):
        requantize_accumulator(np.array([2**31], np.int64), b, 0, 16, "none", a32)
    with pytest.raises(OverflowError):  # acc fits, acc + bias << 16 does not
        requantize_accumulator(np.array([2**31 - 2**20], np.int64), b, 16, 16, "none", a32)
    with pytest.raises(OverflowError):  # shift_bias < 0 scales the accumulator up
        requantize_accumulator(np.array([2**28], np.int64), b, -4, 4, "none", a32)
    # the exact default never raises
    requantize_accumulator(np.array([2**40], np.int64), b, -4, 4, "none")


def test_assumptions_validation_and_default():
    """FXP-A-*: unknown switch values are refused; DEFAULT is the documented default; it is frozen."""
    assert DEFAULT == DpuAssumptions("single", "scale_accumulator", None, "floor_read_2bit")
    with pytest.raises(ValueError):
        DpuAssumptions(leaky_relu_rounding="triple")
    with pytest.raises(ValueError):
        DpuAssumptions(negative_shift_bias="wrap")
    with pytest.raises(ValueError):
        DpuAssumptions(accumulator_bits=8)
    with pytest.raises(ValueError):
        DpuAssumptions(eltwise_add="round")
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.accumulator_bits = 32  # type: ignore[misc]


def test_requantize_validation():
    """FXP-C4: wrong bias shape, float accumulators and unknown activations are refused."""
    acc = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError):
        requantize_accumulator(acc, np.zeros(3, np.int8), 0, 0, "none")
    with pytest.raises(ValueError):
        requantize_accumulator(acc.astype(np.float64), np.zeros(2, np.int8), 0, 0, "none")
    with pytest.raises(ValueError):
        requantize_accumulator(acc, np.zeros(2, np.int8), 0, 0, "gelu")
