"""Rounding, shifting and saturation (docs/fixed-point.md FXP-R1..FXP-R4) against exact Python models."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp import round_half_away, round_half_up, saturate, shift_round_half_up

SETTINGS = settings(max_examples=150, deadline=None)


# ---- exact models (arbitrary precision) ------------------------------------------------------------
def r_model(x: Fraction) -> int:
    """R, DPU_ROUND: floor(x + 1/2)."""
    return math.floor(Fraction(x) + Fraction(1, 2))


def s_model(x: Fraction) -> int:
    """S, STD_ROUND: sign(x) * floor(|x| + 1/2)."""
    x = Fraction(x)
    m = math.floor(abs(x) + Fraction(1, 2))
    return -m if x < 0 else m


def shift_model(a: int, s: int) -> int:
    return r_model(Fraction(a, 2**s)) if s >= 0 else a * 2 ** (-s)


# ---- FXP-R1 -----------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.floats(min_value=-(2.0**60), max_value=2.0**60, allow_nan=False), min_size=1, max_size=20))
def test_round_half_up_matches_exact_model(xs):
    """FXP-R1: R(x) = floor(x + 1/2) for arbitrary finite floats."""
    got = round_half_up(np.array(xs))
    assert got.dtype == np.int64
    assert got.tolist() == [r_model(Fraction(x)) for x in xs]


@SETTINGS
@given(st.integers(-(2**40), 2**40), st.integers(0, 12))
def test_round_half_up_dyadic_and_ties(n, k):
    """FXP-R1: dyadic values n / 2^k, including every tie (k = 1), round half up (toward +inf)."""
    x = n / 2.0**k  # exact
    assert int(round_half_up(np.array([x]))[0]) == r_model(Fraction(n, 2**k))


def test_round_half_up_ties_and_float_edge():
    """FXP-R1: ties go up (-2.5 -> -2, -0.5 -> 0, 0.5 -> 1); 0.5 - 2^-54 must give 0 (naive floor(x+0.5) gives 1)."""
    xs = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, -0.5000000000000001, -0.0])
    assert round_half_up(xs).tolist() == [-2, -1, 0, 1, 2, 3, 0, -1, 0]


def test_round_half_up_rejects_nan_inf():
    """FXP-R1: NaN / inf have no rounding; refused."""
    for bad in (np.nan, np.inf, -np.inf, 2.0**63):
        with pytest.raises(ValueError):
            round_half_up(np.array([bad]))


# ---- FXP-R2 -----------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.floats(min_value=-(2.0**60), max_value=2.0**60, allow_nan=False), min_size=1, max_size=20))
def test_round_half_away_matches_exact_model(xs):
    """FXP-R2: S(x) = sign(x) floor(|x| + 1/2) for arbitrary finite floats."""
    assert round_half_away(np.array(xs)).tolist() == [s_model(Fraction(x)) for x in xs]


def test_round_half_away_ties():
    """FXP-R2: ties go away from zero (differs from FXP-R1 on negative ties only)."""
    xs = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.49999999999999994])
    assert round_half_away(xs).tolist() == [-3, -2, -1, 1, 2, 3, 0]


# ---- FXP-R3 -----------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), st.integers(-20, 40))
def test_shift_round_half_up_matches_exact_model(a, s):
    """FXP-R3: shift_round_half_up(a, s) = R(a / 2^s) for s > 0, a for s = 0, a * 2^-s for s < 0."""
    got = shift_round_half_up(np.array(a, dtype=np.int64), s)
    assert got.dtype == np.int64
    assert got.tolist() == [shift_model(v, s) for v in a]


@pytest.mark.parametrize("s", [0, 1, 2, 8, 16, 24, 62, -1, -16])
def test_shift_round_half_up_edges(s):
    """FXP-R3: shift amounts at the edges (0, 1, 16, 62, negative) and ties around zero."""
    base = [0, 1, -1, 2, -2, 3, -3, 127, -128, 2**31 - 1, -(2**31)]
    # precondition of FXP-R3: |acc| < 2^62 (acc + 2^(s-1) must not overflow int64)
    ties = [2 ** (s - 1) * k for k in (-3, -1, 1, 3) if abs(2 ** (s - 1) * k) < 2**62] if s >= 1 else []
    vals = base + ties
    got = shift_round_half_up(np.array(vals, dtype=np.int64), s).tolist()
    assert got == [shift_model(v, s) for v in vals]


def test_shift_round_half_up_ties_go_up():
    """FXP-R3: -3/2 -> -1, -1/2 -> 0, 1/2 -> 1, 3/2 -> 2 (arithmetic shift, not truncation)."""
    assert shift_round_half_up(np.array([-3, -1, 1, 3]), 1).tolist() == [-1, 0, 1, 2]


def test_shift_round_half_up_errors():
    """FXP-R3: float input refused (no silent truncation); overflowing left shift refused; shift range."""
    with pytest.raises(ValueError):
        shift_round_half_up(np.array([1.5]), 1)
    with pytest.raises(OverflowError):
        shift_round_half_up(np.array([2**40]), -30)
    with pytest.raises(ValueError):
        shift_round_half_up(np.array([1]), 63)


def test_shift_round_half_up_does_not_alias_input():
    """FXP-R3: shift 0 returns a new array (callers may modify it)."""
    a = np.array([1, 2, 3], dtype=np.int64)
    out = shift_round_half_up(a, 0)
    out[0] = 99
    assert a[0] == 1


# ---- FXP-R4 -----------------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), st.integers(2, 32))
def test_saturate_matches_model(a, bits):
    """FXP-R4: clamp to [-2^(b-1), 2^(b-1) - 1]; int8 for b = 8, int64 otherwise."""
    got = saturate(np.array(a, dtype=np.int64), bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert got.dtype == (np.int8 if bits == 8 else np.int64)
    assert got.tolist() == [min(hi, max(lo, v)) for v in a]


def test_saturate_int8_bounds():
    """FXP-R4: the int8 range is the full [-128, 127] (no narrow range)."""
    got = saturate(np.array([-129, -128, -127, 126, 127, 128, 10**12]))
    assert got.dtype == np.int8
    assert got.tolist() == [-128, -128, -127, 126, 127, 127, 127]
    with pytest.raises(ValueError):
        saturate(np.array([1.0]))
