"""QuantConv layers end to end (docs/fixed-point.md FXP-C1..FXP-C9) and the import contract."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fxlic.fxp import DpuAssumptions, QuantConv, dequantize

IMPLS = ("reference", "numba", "blas")


def make_layer(rng, transposed, cin, cout, k, s, p, act, fix=(5, 7, 6, 4)):
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    w = rng.integers(-128, 128, shape).astype(np.int8)
    b = rng.integers(-128, 128, cout).astype(np.int8)
    fi, fw, fb, fo = fix
    return QuantConv("L", transposed, w, b, s, p, fi, fw, fb, fo, act)


def torch_fake_quant(layer: QuantConv, x: np.ndarray) -> np.ndarray:
    """The float fake-quant forward: conv of dequantized tensors in float64, act, then the output fix op."""
    torch = pytest.importorskip("torch")
    xf = torch.from_numpy(dequantize(x, layer.fix_in)[None])
    wf = torch.from_numpy(dequantize(layer.weight, layer.fix_w))
    bf = torch.from_numpy(dequantize(layer.bias, layer.fix_b))
    fn = torch.nn.functional.conv_transpose2d if layer.transposed else torch.nn.functional.conv2d
    v = fn(xf, wf, bf, stride=layer.stride, padding=layer.padding)[0]
    if layer.activation == "relu":
        v = torch.relu(v)
    elif layer.activation == "leaky_relu":
        v = torch.nn.functional.leaky_relu(v, 26.0 / 256.0)
    q = torch.floor(v * 2.0**layer.fix_out + 0.5).clamp(-128, 127)
    return q.numpy().astype(np.int8)


@pytest.mark.parametrize("act", ["none", "relu", "leaky_relu"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("fix", [(5, 7, 6, 4), (8, 8, 8, 8), (2, 5, 9, 1), (8, 9, 2, 1)])
def test_layer_equals_torch_fake_quant(act, transposed, fix):
    """FXP-C9: a QuantConv equals the float64 fake-quant forward of the same quantized tensors
    (default assumptions), for shift_bias > 0, = 0 and < 0 and all fused activations, every impl."""
    rng = np.random.default_rng(zlib.crc32(repr((act, transposed, fix)).encode()))
    k, s, p = (4, 2, 1) if transposed else (5, 2, 2)
    layer = make_layer(rng, transposed, 6, 5, k, s, p, act, fix)
    assert layer.shifts_in_dpu_range
    x = rng.integers(-128, 128, (6, 9, 7)).astype(np.int8)
    want = torch_fake_quant(layer, x)
    for impl in IMPLS:
        got = layer(x, impl=impl)
        assert got.dtype == np.int8 and got.shape == layer.output_shape(x.shape)
        assert np.array_equal(got, want), impl


def test_shifts_and_shapes():
    """FXP-C3: shift_cut = f_w + f_in - f_out, shift_bias = f_w + f_in - f_b; codec geometries."""
    rng = np.random.default_rng(0)
    L = make_layer(rng, False, 3, 8, 5, 2, 2, "relu", (8, 9, 6, 10))
    assert (L.shift_cut, L.shift_bias) == (7, 11)
    assert (L.in_channels, L.out_channels, L.kernel_size) == (3, 8, (5, 5))
    assert L.output_shape((3, 64, 96)) == (8, 32, 48)
    T = make_layer(rng, True, 8, 3, 4, 2, 1, "none")
    assert (T.in_channels, T.out_channels) == (8, 3)
    assert T.output_shape((8, 32, 48)) == (3, 64, 96)
    assert T.accumulate(np.zeros((8, 4, 4), np.int8), impl="reference").shape == (3, 8, 8)


def test_layer_assumptions_are_passed_through():
    """FXP-A-ACC via QuantConv: accumulator_bits reaches the requantizer."""
    rng = np.random.default_rng(1)
    L = make_layer(rng, False, 64, 2, 5, 1, 0, "none", (0, 0, 0, 0))
    L.weight[:] = -128
    x = np.full((64, 5, 5), -128, np.int8)  # acc = 64 * 25 * 2^14 = 2^24.6, fits int32
    L(x, assumptions=DpuAssumptions(accumulator_bits=32))
    with pytest.raises(OverflowError):
        L(x, assumptions=DpuAssumptions(accumulator_bits=24))


def test_layer_validation():
    """FXP-C1: clear ValueErrors for wrong dtypes, shapes, channels and activations."""
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
    b = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="weight"):
        QuantConv("L", False, w.astype(np.int16), b, 1, 1, 0, 0, 0, 0, "none")
    with pytest.raises(ValueError, match="bias"):
        QuantConv("L", False, w, np.zeros(3, np.int8), 1, 1, 0, 0, 0, 0, "none")
    with pytest.raises(ValueError, match="bias"):
        QuantConv("L", True, w, b, 1, 1, 0, 0, 0, 0, "none")  # transposed: out channels = w.shape[1] = 3
    with pytest.raises(ValueError, match="activation"):
        QuantConv("L", False, w, b, 1, 1, 0, 0, 0, 0, "sigmoid")
    with pytest.raises(ValueError, match="stride"):
        QuantConv("L", False, w, b, 0, 1, 0, 0, 0, 0, "none")
    L = QuantConv("L", False, w, b, 1, 1, 0, 0, 0, 0, "none")
    with pytest.raises(ValueError, match="int8"):
        L(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="channels"):
        L(np.zeros((2, 4, 4), np.int8))
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        L(np.zeros((1, 3, 4, 4), np.int8))
    with pytest.raises(ValueError, match="impl"):
        L(np.zeros((3, 4, 4), np.int8), impl="gpu")


def test_fxp_imports_neither_torch_nor_numba():
    """Architecture contract: the golden path never imports torch; numba is loaded only for impl="numba"."""
    code = "import sys, fxlic.fxp; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@settings(max_examples=60, deadline=None)
@given(transposed=st.booleans(), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2),
       act=st.sampled_from(["none", "relu", "leaky_relu"]), block_bytes=st.sampled_from([1, 64, 4 * 2**20]),
       seed=st.integers(0, 2**31 - 1))
def test_requantizer_fused_into_gemm_blocks_equals_the_reference(transposed, k, s, p, act, block_bytes, seed):
    """fxp/conv.py "epilogue": the BLAS path requantizes each GEMM block as it is produced (blocks of one row up
    to whole phases, kernels smaller than the stride, whose phases without taps requantize an accumulator of 0);
    the layer's output equals the plain NumPy reference's requantize(accumulate(x)) bit for bit."""
    from fxlic.fxp import conv

    assume(p < k)
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, transposed, 5, 4, k, s, p, act)
    x = rng.integers(-128, 128, (5, 7, 6)).astype(np.int8)
    want = layer(x, impl="reference")
    saved = conv._FUSED_BLOCK_BYTES
    conv._FUSED_BLOCK_BYTES = block_bytes
    try:
        got = layer(x, impl="blas")
    finally:
        conv._FUSED_BLOCK_BYTES = saved
    assert got.dtype == np.int8 and np.array_equal(got, want)
