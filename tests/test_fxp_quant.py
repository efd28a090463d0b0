"""Quantizers (docs/fixed-point.md FXP-Q1..FXP-Q5) against exact Python models."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp import dequantize, fix_pos_from_max_abs, quantize_activation, quantize_param, requantize

SETTINGS = settings(max_examples=150, deadline=None)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def r_model(x: Fraction) -> int:
    return math.floor(Fraction(x) + Fraction(1, 2))


def s_model(x: Fraction) -> int:
    m = math.floor(abs(Fraction(x)) + Fraction(1, 2))
    return -m if x < 0 else m


def sat8(v: int) -> int:
    return min(127, max(-128, v))


def scale(x: float, f: int) -> Fraction:
    return Fraction(x) * (Fraction(2) ** f)


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=16), st.integers(-6, 14))
def test_quantize_activation_model(xs, f):
    """FXP-Q1: q = sat8(R(x 2^f)), computed exactly."""
    got = quantize_activation(np.array(xs), f)
    assert got.dtype == np.int8
    assert got.tolist() == [sat8(r_model(scale(x, f))) for x in xs]


@SETTINGS
@given(st.lists(finite, min_size=1, max_size=16), st.integers(-6, 14))
def test_quantize_param_model(xs, f):
    """FXP-Q2: q = sat8(S(x 2^f)), computed exactly (halves away from zero)."""
    got = quantize_param(np.array(xs), f)
    assert got.dtype == np.int8
    assert got.tolist() == [sat8(s_model(scale(x, f))) for x in xs]


def test_quantizers_differ_only_on_negative_ties():
    """FXP-Q1 vs FXP-Q2: -0.5 LSB -> 0 (activations, R) but -1 (weights, S)."""
    x = np.array([-1.5, -0.5, 0.5, 1.5]) / 8.0
    assert quantize_activation(x, 3).tolist() == [-1, 0, 1, 2]
    assert quantize_param(x, 3).tolist() == [-2, -1, 1, 2]


def test_quantize_saturation_and_inf():
    """FXP-Q1/Q2: out-of-range values saturate to [-128, 127]; +-inf saturates; NaN is refused."""
    x = np.array([1e300, -1e300, np.inf, -np.inf, 127.49, 127.5, -128.5, -128.51])
    assert quantize_activation(x, 0).tolist() == [127, -128, 127, -128, 127, 127, -128, -128]
    assert quantize_param(x, 0).tolist() == [127, -128, 127, -128, 127, 127, -128, -128]
    with pytest.raises(ValueError):
        quantize_activation(np.array([np.nan]), 0)


def test_network_input_is_exact():
    """FXP-Q1: pixel p -> (p - 128) / 256 at f = 8 quantizes back to p - 128 exactly."""
    p = np.arange(256)
    assert np.array_equal(quantize_activation((p - 128) / 256.0, 8), (p - 128).astype(np.int8))


@SETTINGS
@given(st.lists(st.integers(-128, 127), min_size=1, max_size=16), st.integers(-20, 30))
def test_dequantize_exact(q, f):
    """FXP-Q3: dequantize(q, f) == q * 2^-f exactly, and quantizing it back is the identity."""
    arr = np.array(q, dtype=np.int8)
    d = dequantize(arr, f)
    assert d.dtype == np.float64
    assert [Fraction(v) for v in d] == [Fraction(v) * Fraction(2) ** (-f) for v in q]
    assert np.array_equal(quantize_activation(d, f), arr)
    assert np.array_equal(quantize_param(d, f), arr)


def fix_pos_model(m: float, bits: int, cap: int) -> int:
    if m <= 0:
        return cap
    m = Fraction(m)
    k = 0  # smallest k with 2^k >= m, i.e. ceil(log2 m)
    while Fraction(2) ** k < m:
        k += 1
    while Fraction(2) ** (k - 1) >= m:
        k -= 1
    return min(cap, bits - 1 - k)


@SETTINGS
@given(
    st.one_of(
        st.floats(min_value=1e-12, max_value=1e12, allow_nan=False),
        st.integers(-40, 40).map(lambda e: 2.0**e),
        st.integers(-40, 40).map(lambda e: math.nextafter(2.0**e, math.inf)),
        st.integers(-40, 40).map(lambda e: math.nextafter(2.0**e, 0.0)),
    ),
    st.integers(2, 16),
    st.integers(0, 20),
)
def test_fix_pos_from_max_abs_model(m, bits, cap):
    """FXP-Q4: f = min(cap, bits - 1 - ceil(log2 max_abs)), exact at and next to powers of two."""
    assert fix_pos_from_max_abs(m, bits, cap) == fix_pos_model(m, bits, cap)


def test_fix_pos_from_max_abs_examples():
    """FXP-Q4: worked examples; zero range gives the cap; large ranges give negative positions."""
    assert fix_pos_from_max_abs(1.0) == 7
    assert fix_pos_from_max_abs(1.01) == 6
    assert fix_pos_from_max_abs(0.99) == 7
    assert fix_pos_from_max_abs(0.0) == 12
    assert fix_pos_from_max_abs(1e-9) == 12
    assert fix_pos_from_max_abs(1000.0) == -3  # 2^10 >= 1000 -> 7 - 10
    with pytest.raises(ValueError):
        fix_pos_from_max_abs(float("nan"))


@SETTINGS
@given(st.lists(st.integers(-128, 127), min_size=1, max_size=16), st.integers(-8, 16), st.integers(-8, 16))
def test_requantize_model(q, fi, fo):
    """FXP-Q5: requantize(q, f_in, f_out) = sat8(R(q 2^(f_out - f_in))) exactly."""
    got = requantize(np.array(q, dtype=np.int8), fi, fo)
    assert got.dtype == np.int8
    assert got.tolist() == [sat8(r_model(Fraction(v) * Fraction(2) ** (fo - fi))) for v in q]


def test_requantize_equals_quantize_of_dequantized():
    """FXP-Q5 = FXP-Q1 applied to the exact value: requantize(q) == quantize_activation(dequantize(q))."""
    q = np.arange(-128, 128, dtype=np.int8)
    for fi in range(-3, 10):
        for fo in range(-3, 10):
            assert np.array_equal(requantize(q, fi, fo), quantize_activation(dequantize(q, fi), fo))
