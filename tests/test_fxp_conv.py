"""Integer conv / transposed-conv accumulators (docs/fixed-point.md FXP-C1, FXP-C2, FXP-A1, FXP-A2).

Every implementation ("reference", "numba", "blas") must give the same int64 array, equal to a
pure-Python-int model of the definition and to PyTorch's float64 conv on integer-valued tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fxlic.fxp.conv as conv_mod
from fxlic.fxp import conv2d_acc, conv_transpose2d_acc

IMPLS = ("reference", "numba", "blas")
SETTINGS = settings(max_examples=60, deadline=None)


# ---- pure-Python models of the definitions ----------------------------------------------------------
def conv2d_model(x, w, s, p):
    """acc[o,y,x] = sum_{c,i,j} w[o,c,i,j] * x[c, y*s+i-p, x*s+j-p] over in-bounds taps (FXP-C1)."""
    C, H, W = len(x), len(x[0]), len(x[0][0])
    O, kh, kw = len(w), len(w[0][0]), len(w[0][0][0])
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    out = [[[0] * Wo for _ in range(Ho)] for _ in range(O)]
    for o in range(O):
        for y in range(Ho):
            for xx in range(Wo):
                acc = 0
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            r, q = y * s + i - p, xx * s + j - p
                            if 0 <= r < H and 0 <= q < W:
                                acc += w[o][c][i][j] * x[c][r][q]
                out[o][y][xx] = acc
    return out


def conv_transpose2d_model(x, w, s, p):
    """Scatter: x[c,y,xx] * w[c,o,i,j] added to out[o, y*s+i-p, xx*s+j-p] when in range (FXP-C2)."""
    C, H, W = len(x), len(x[0]), len(x[0][0])
    O, kh, kw = len(w[0]), len(w[0][0]), len(w[0][0][0])
    Ho, Wo = (H - 1) * s - 2 * p + kh, (W - 1) * s - 2 * p + kw
    out = [[[0] * Wo for _ in range(Ho)] for _ in range(O)]
    for c in range(C):
        for y in range(H):
            for xx in range(W):
                for o in range(O):
                    for i in range(kh):
                        for j in range(kw):
                            r, q = y * s + i - p, xx * s + j - p
                            if 0 <= r < Ho and 0 <= q < Wo:
                                out[o][r][q] += x[c][y][xx] * w[c][o][i][j]
    return out


@st.composite
def conv_case(draw, transposed: bool, max_hw: int = 7, max_c: int = 3):
    C = draw(st.integers(1, max_c))
    O = draw(st.integers(1, max_c))
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    H = draw(st.integers(1, max_hw))
    W = draw(st.integers(1, max_hw))
    if transposed:
        if (H - 1) * s - 2 * p + k < 1 or (W - 1) * s - 2 * p + k < 1:
            p = 0
    else:
        H, W = max(H, k - 2 * p), max(W, k - 2 * p)
    extremes = st.sampled_from([-128, 127, -127, 0])
    vals = st.one_of(st.integers(-128, 127), extremes)
    x = np.array(draw(st.lists(vals, min_size=C * H * W, max_size=C * H * W)), dtype=np.int8).reshape(C, H, W)
    wshape = (C, O, k, k) if transposed else (O, C, k, k)
    n = int(np.prod(wshape))
    w = np.array(draw(st.lists(vals, min_size=n, max_size=n)), dtype=np.int8).reshape(wshape)
    return x, w, s, p


@SETTINGS
@given(conv_case(transposed=False))
def test_conv2d_all_impls_equal_python_model(case):
    """FXP-C1: reference, numba and blas equal the Python-int definition (zero padding, any stride)."""
    x, w, s, p = case
    want = np.array(conv2d_model(x.tolist(), w.tolist(), s, p), dtype=np.int64)
    for impl in IMPLS:
        got = conv2d_acc(x, w, s, p, impl=impl)
        assert got.dtype == np.int64
        assert np.array_equal(got, want), impl


@SETTINGS
@given(conv_case(transposed=True))
def test_conv_transpose2d_all_impls_equal_python_model(case):
    """FXP-C2: reference, numba and blas equal the Python-int scatter definition."""
    x, w, s, p = case
    want = np.array(conv_transpose2d_model(x.tolist(), w.tolist(), s, p), dtype=np.int64)
    for impl in IMPLS:
        got = conv_transpose2d_acc(x, w, s, p, impl=impl)
        assert got.dtype == np.int64
        assert np.array_equal(got, want), impl


def _random_case(rng, transposed):
    C, O = rng.integers(1, 20, 2)
    k = int(rng.integers(1, 6))
    s = int(rng.integers(1, 3))
    p = int(rng.integers(0, 3))
    H, W = (int(v) for v in rng.integers(max(1, k - 2 * p), 24, 2))
    if transposed and ((H - 1) * s - 2 * p + k < 1 or (W - 1) * s - 2 * p + k < 1):
        p = 0
    x = rng.integers(-128, 128, (C, H, W)).astype(np.int8)
    w = rng.integers(-128, 128, (C, O, k, k) if transposed else (O, C, k, k)).astype(np.int8)
    return x, w, s, p


def test_conv2d_matches_torch_float64():
    """FXP-C1: equals torch.nn.functional.conv2d in float64 on integer-valued tensors (exact there)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for _ in range(25):
        x, w, s, p = _random_case(rng, False)
        want = torch.nn.functional.conv2d(
            torch.from_numpy(x[None].astype(np.float64)), torch.from_numpy(w.astype(np.float64)), stride=s, padding=p
        )[0].numpy()
        for impl in IMPLS:
            assert np.array_equal(conv2d_acc(x, w, s, p, impl=impl), want.astype(np.int64)), impl


def test_conv_transpose2d_matches_torch_float64():
    """FXP-C2: equals torch.nn.functional.conv_transpose2d in float64 (PyTorch [C_in, C_out, kh, kw] layout)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for _ in range(25):
        x, w, s, p = _random_case(rng, True)
        want = torch.nn.functional.conv_transpose2d(
            torch.from_numpy(x[None].astype(np.float64)), torch.from_numpy(w.astype(np.float64)), stride=s, padding=p
        )[0].numpy()
        for impl in IMPLS:
            assert np.array_equal(conv_transpose2d_acc(x, w, s, p, impl=impl), want.astype(np.int64)), impl


def test_transposed_conv_is_zero_insertion_conv():
    """FXP-C2: tconv = stride-1 conv of the zero-inserted input padded by k-1-p, kernel flipped and
    channel axes swapped (the form the DPU compiler emits)."""
    rng = np.random.default_rng(3)
    C, O, k, s, p, H, W = 3, 4, 4, 2, 1, 5, 6
    x = rng.integers(-128, 128, (C, H, W)).astype(np.int8)
    w = rng.integers(-128, 128, (C, O, k, k)).astype(np.int8)
    z = np.zeros((C, (H - 1) * s + 1, (W - 1) * s + 1), dtype=np.int8)
    z[:, ::s, ::s] = x
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    want = conv2d_acc(z, wf, 1, k - 1 - p, impl="reference")
    assert np.array_equal(conv_transpose2d_acc(x, w, s, p, impl="reference"), want)


def test_extreme_values_full_range():
    """FXP-A1: all -128 inputs and weights (the largest product, 2^14) in a deep layer stay exact."""
    C, k = 64, 5
    x = np.full((C, 9, 9), -128, dtype=np.int8)
    w = np.full((2, C, k, k), -128, dtype=np.int8)
    want = C * k * k * 2**14
    for impl in IMPLS:
        acc = conv2d_acc(x, w, 1, 0, impl=impl)
        assert int(acc.max()) == int(acc.min()) == want, impl
    wt = np.full((C, 2, k, k), -128, dtype=np.int8)
    for impl in IMPLS:
        acc = conv_transpose2d_acc(x, wt, 1, 0, impl=impl)
        assert int(acc.max()) == want, impl


def test_blas_float32_and_float64_paths_and_row_blocks(monkeypatch):
    """FXP-A2: the float32 path (chosen when K max|x| max|w| <= 2^24) and the float64 path agree with the
    reference, also when the im2col / col2im buffer is split into many row blocks."""
    rng = np.random.default_rng(4)
    monkeypatch.setattr(conv_mod, "_BLAS_BLOCK_BYTES", 4096)
    for transposed in (False, True):
        for _ in range(6):
            x, w, s, p = _random_case(rng, transposed)
            if transposed:
                C, H, W = x.shape
                Ho, Wo = conv_mod.conv_transpose2d_output_size(H, W, w.shape[2], w.shape[3], s, p)
                ref = conv_transpose2d_acc(x, w, s, p, impl="reference")
                fn = conv_mod._conv_transpose2d_blas
            else:
                C, H, W = x.shape
                Ho, Wo = conv_mod.conv2d_output_size(H, W, w.shape[2], w.shape[3], s, p)
                ref = conv2d_acc(x, w, s, p, impl="reference")
                fn = conv_mod._conv2d_blas
            for dtype in (np.float64, np.float32, None):
                if dtype is np.float32 and conv_mod._product_bound(C * w.shape[2] * w.shape[3], x, w) > 2**24:
                    continue  # float32 not provably exact here
                assert np.array_equal(fn(x, w, s, p, Ho, Wo, dtype), ref), (transposed, dtype)


@settings(max_examples=60, deadline=None)
@given(conv_case(transposed=False, max_hw=9, max_c=4), st.integers(1, 16))
def test_conv2d_split_k_float32_path(case, limit_bits):
    """FXP-A2b: with the float32 limit lowered to 2^limit_bits (so that small cases need it), the blas conv
    takes float32 GEMMs over chunks of kernel rows summed in float64 whenever one row's bound fits, float64
    otherwise; either way the reference's integers."""
    x, w, s, p = case
    ref = conv2d_acc(x, w, s, p, impl="reference")
    saved = conv_mod._F32_EXACT
    conv_mod._F32_EXACT = 1 << limit_bits
    try:
        assert np.array_equal(conv2d_acc(x, w, s, p, impl="blas"), ref)
    finally:
        conv_mod._F32_EXACT = saved


def test_conv2d_split_k_chunks():
    """FXP-A2b: chunks of whole kernel rows, each row's bound at most 2^24; none when one row exceeds it."""
    x = np.full((96, 8, 8), 127, dtype=np.int8)
    w = np.full((4, 96, 5, 5), -128, dtype=np.int8)
    assert conv_mod._exact_float_dtype(96 * 25, x, w) is np.float64  # 2400 · 127 · 128 > 2^24
    assert conv_mod._row_chunks(5, 96 * 5, x, w) == [(0, 2), (2, 4), (4, 5)]  # 480 · 127 · 128 = 7.8 M per row
    assert conv_mod._row_chunks(5, 4000 * 5, x, w) is None
    rng = np.random.default_rng(8)
    xr = rng.integers(-128, 128, (96, 13, 11)).astype(np.int8)
    wr = rng.integers(-128, 128, (5, 96, 5, 5)).astype(np.int8)
    assert np.array_equal(conv2d_acc(xr, wr, 2, 2, impl="blas"), conv2d_acc(xr, wr, 2, 2, impl="reference"))


@SETTINGS
@given(conv_case(transposed=True, max_hw=8, max_c=5))
def test_conv_transpose2d_polyphase_and_col2im_both_exact(case):
    """FXP-C2: both blas transposed convs — one GEMM per output phase, or GEMM + col2im (picked by channel
    counts) — equal the reference, in float32 where the bound allows and in float64."""
    x, w, s, p = case
    C, H, W = x.shape
    Ho, Wo = conv_mod.conv_transpose2d_output_size(H, W, w.shape[2], w.shape[3], s, p)
    ref = conv_transpose2d_acc(x, w, s, p, impl="reference")
    for fn in (conv_mod._conv_transpose2d_polyphase, conv_mod._conv_transpose2d_col2im):
        for dtype in (np.float64, conv_mod._exact_float_dtype(conv_mod._transposed_terms(C, *w.shape[2:], s), x, w)):
            assert np.array_equal(fn(x, w, s, p, Ho, Wo, dtype), ref), (fn.__name__, dtype)


def test_exact_float_dtype_choice():
    """FXP-A2: float32 only when the data bound proves every partial sum <= 2^24."""
    x = np.full((4, 3, 3), 16, dtype=np.int8)
    w = np.full((1, 4, 3, 3), 64, dtype=np.int8)
    assert conv_mod._exact_float_dtype(36, x, w) is np.float32  # 36 * 16 * 64 < 2^24
    assert conv_mod._exact_float_dtype(5000, np.full(1, -128, np.int8), np.full(1, -128, np.int8)) is np.float64


@pytest.mark.slow
def test_numba_int64_accumulator_path():
    """FXP-A1: the numba kernels give the same result with an int64 accumulator as with int32."""
    from fxlic.fxp._numba_kernels import conv2d_polyphase, conv_transpose2d_gather

    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (5, 9, 8)).astype(np.int8)
    w = rng.integers(-128, 128, (11, 5, 3, 3)).astype(np.int8)
    ref = conv2d_acc(x, w, 1, 1, impl="reference")
    xp = np.zeros((5, 9 + 2, 8 + 2), dtype=np.int8)
    xp[:, 1:-1, 1:-1] = x
    ph = np.ascontiguousarray(xp.reshape(5, 11, 1, 10, 1).transpose(0, 2, 4, 1, 3))
    for proto in (np.zeros(1, np.int64), np.zeros(1, np.int32)):
        assert np.array_equal(conv2d_polyphase(ph, w, 1, 9, 8, proto), ref)
    wt = rng.integers(-128, 128, (5, 11, 4, 4)).astype(np.int8)
    ref_t = conv_transpose2d_acc(x, wt, 2, 1, impl="reference")
    for proto in (np.zeros(1, np.int64), np.zeros(1, np.int32)):
        assert np.array_equal(conv_transpose2d_gather(x, wt, 2, 1, *ref_t.shape[1:], proto), ref_t)


def test_codec_geometries():
    """FXP-C1/C2: the codec's layer shapes: conv k5 s2 p2 halves, tconv k4 s2 p1 doubles exactly."""
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (3, 16, 24)).astype(np.int8)
    w = rng.integers(-128, 128, (4, 3, 5, 5)).astype(np.int8)
    y = conv2d_acc(x, w, 2, 2)
    assert y.shape == (4, 8, 12)
    wt = rng.integers(-128, 128, (4, 3, 4, 4)).astype(np.int8)
    assert conv_transpose2d_acc(y.clip(-128, 127).astype(np.int8), wt, 2, 1).shape == (3, 16, 24)
    w3 = rng.integers(-128, 128, (2, 3, 3, 3)).astype(np.int8)
    assert conv2d_acc(x, w3, 1, 1).shape == (2, 16, 24)


def test_validation_errors():
    """FXP-C1/C2: wrong dtype, rank, channel count, geometry or impl raise ValueError."""
    x = np.zeros((2, 5, 5), np.int8)
    w = np.zeros((3, 2, 3, 3), np.int8)
    with pytest.raises(ValueError):
        conv2d_acc(x.astype(np.int16), w, 1, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x, w.astype(np.float32), 1, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x[0], w, 1, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x, np.zeros((3, 4, 3, 3), np.int8), 1, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x, w, 0, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x, w, 1, -1)
    with pytest.raises(ValueError):
        conv2d_acc(x, np.zeros((3, 2, 7, 7), np.int8), 1, 0)
    with pytest.raises(ValueError):
        conv2d_acc(x, w, 1, 0, impl="cuda")
    with pytest.raises(ValueError):
        conv_transpose2d_acc(x, np.zeros((3, 2, 3, 3), np.int8), 1, 0)
    with pytest.raises(ValueError):
        conv_transpose2d_acc(np.zeros((2, 1, 1), np.int8), np.zeros((2, 2, 2, 2), np.int8), 1, 1)
