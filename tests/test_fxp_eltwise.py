"""Element-wise add and concat (docs/fixed-point.md FXP-E1, FXP-E2, FXP-A-ADD).

The default add is the DPUCZDX8G ELEW instruction ("floor_read_2bit", settled against the DPU instruction
simulator in issue 33, tests/test_dpu_oracle_replay.py); "exact" is the quantizer's fake-quant, used for
adds fxlic runs on the CPU."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp import DEFAULT, DpuAssumptions, add_int, concat_int

SETTINGS = settings(max_examples=150, deadline=None)
int8s = st.lists(st.integers(-128, 127), min_size=1, max_size=12)
FLOOR2 = DpuAssumptions(eltwise_add="floor_read_2bit")
EXACT = DpuAssumptions(eltwise_add="exact")


def r_model(x: Fraction) -> int:
    return math.floor(Fraction(x) + Fraction(1, 2))


def sat8(v: int) -> int:
    return min(127, max(-128, v))


def p2(k: int) -> Fraction:
    return Fraction(2) ** k


@SETTINGS
@given(int8s, st.data(), st.integers(-4, 12), st.integers(-4, 12), st.integers(-4, 12))
def test_add_exact_model(a, data, fa, fb, fo):
    """FXP-E1: out = sat8(R((a 2^-f_a + b 2^-f_b) 2^f_out)), i.e. one rounding of the exact real sum."""
    b = data.draw(st.lists(st.integers(-128, 127), min_size=len(a), max_size=len(a)))
    got = add_int(np.array(a, np.int8), fa, np.array(b, np.int8), fb, fo, EXACT)
    assert got.dtype == np.int8
    want = [sat8(r_model((x * p2(-fa) + y * p2(-fb)) * p2(fo))) for x, y in zip(a, b, strict=True)]
    assert got.tolist() == want


@SETTINGS
@given(int8s, st.data(), st.integers(-4, 12), st.integers(-4, 12), st.integers(-4, 12))
def test_add_floor_read_model(a, data, fa, fb, fo):
    """FXP-A-ADD "floor_read_2bit": inputs floored to the coarser position + 2 bits, then R and saturate."""
    b = data.draw(st.lists(st.integers(-128, 127), min_size=len(a), max_size=len(a)))
    m = min(fa, fb)
    got = add_int(np.array(a, np.int8), fa, np.array(b, np.int8), fb, fo)  # the default
    assert np.array_equal(got, add_int(np.array(a, np.int8), fa, np.array(b, np.int8), fb, fo, FLOOR2))
    want = []
    for x, y in zip(a, b, strict=True):
        tot = math.floor(x * p2(2 - (fa - m))) + math.floor(y * p2(2 - (fb - m)))
        want.append(sat8(r_model(tot * p2(fo - m - 2))))
    assert got.tolist() == want


@SETTINGS
@given(int8s, st.data(), st.integers(-4, 12), st.integers(0, 2), st.integers(-4, 12))
def test_add_modes_agree_within_two_positions(a, data, fa, d, fo):
    """FXP-A-ADD: the two modes are identical when the input positions differ by at most 2."""
    b = data.draw(st.lists(st.integers(-128, 127), min_size=len(a), max_size=len(a)))
    A, B = np.array(a, np.int8), np.array(b, np.int8)
    assert np.array_equal(add_int(A, fa, B, fa + d, fo, EXACT), add_int(A, fa, B, fa + d, fo, FLOOR2))


@SETTINGS
@given(int8s, st.data(), st.integers(-4, 12), st.integers(-4, 12), st.integers(-12, 1))
def test_add_modes_agree_when_output_is_coarse(a, data, fa, fb, dout):
    """FXP-E3: for any position gap the modes agree when f_out <= min(f_a, f_b) + 1: the bits the DPU drops lie
    below the final rounding point."""
    b = data.draw(st.lists(st.integers(-128, 127), min_size=len(a), max_size=len(a)))
    A, B, fo = np.array(a, np.int8), np.array(b, np.int8), min(fa, fb) + dout
    assert np.array_equal(add_int(A, fa, B, fb, fo, EXACT), add_int(A, fa, B, fb, fo, FLOOR2))


def test_add_modes_differ_beyond_two_positions():
    """FXP-A-ADD: a = 1 at f = 3 (0.125) plus b = 0 at f = 0, output f = 2: exact R(0.5) = 1;
    floor_read_2bit drops the bit (floor(1/2) = 0) -> 0."""
    a, b = np.array([1], np.int8), np.array([0], np.int8)
    assert add_int(a, 3, b, 0, 2, EXACT).tolist() == [1]
    assert add_int(a, 3, b, 0, 2, FLOOR2).tolist() == [0]
    assert DEFAULT.eltwise_add == "floor_read_2bit" and add_int(a, 3, b, 0, 2).tolist() == [0]


def test_add_validation():
    """FXP-E1: shapes must match; float inputs refused."""
    with pytest.raises(ValueError):
        add_int(np.zeros(3, np.int8), 0, np.zeros(4, np.int8), 0, 0)
    with pytest.raises(ValueError):
        add_int(np.zeros(3), 0, np.zeros(3, np.int8), 0, 0)


@SETTINGS
@given(st.lists(st.tuples(int8s, st.integers(-4, 12)), min_size=1, max_size=4), st.integers(-4, 12))
def test_concat_model(parts, fo):
    """FXP-E2: each input requantized to f_out with R and saturation, then concatenated."""
    tensors = [np.array(q, np.int8) for q, _ in parts]
    fixes = [f for _, f in parts]
    got = concat_int(tensors, fixes, fo)
    want = [sat8(r_model(v * p2(fo - f))) for q, f in parts for v in q]
    assert got.dtype == np.int8
    assert got.tolist() == want


def test_concat_chw_axis_and_identity():
    """FXP-E2: channel concat of CHW tensors; inputs already at f_out are copied unchanged."""
    a = np.arange(-8, 8, dtype=np.int8).reshape(1, 4, 4)
    b = np.arange(16, dtype=np.int8).reshape(1, 4, 4)
    out = concat_int([a, b], [5, 5], 5, axis=0)
    assert out.shape == (2, 4, 4) and np.array_equal(out[0], a[0]) and np.array_equal(out[1], b[0])
    with pytest.raises(ValueError):
        concat_int([a, b], [5], 5)
    with pytest.raises(ValueError):
        concat_int([], [], 5)
