"""Integer convolution, transposed convolution and the DPU requantizer.

Rules (``docs/fixed-point.md``): FXP-C1 conv accumulator, FXP-C2 transposed-conv accumulator,
FXP-C3..FXP-C8 bias alignment, shift, fused activation and saturation (``requantize_accumulator``),
FXP-A1..FXP-A3 accumulator bounds and the exactness of the float BLAS path.

Three interchangeable implementations of the accumulators, all returning identical int64 arrays:

* ``"reference"``: plain NumPy int64, one tensordot per kernel tap (small shapes / tests).
* ``"numba"``:     direct loops, parallel over (block of output channels, output row); int32
  accumulators when the FXP-A1 bound proves them exact (FXP-A3), int64 otherwise.
* ``"blas"``:      im2col (conv) / col2im (transposed conv) and one float GEMM per row block.
  Exact because every product is an integer with |q_x q_w| <= 2^14 and every partial sum is bounded
  by K * max|x| * max|w| (K = terms per output); float64 holds all integers up to 2^53, float32 up
  to 2^24, so no rounding can happen in any summation order (FXP-A2). float32 is used only when the
  data bound proves it exact, float64 otherwise (asserted < 2^53).
"""

from __future__ import annotations

import numpy as np

from .assumptions import DEFAULT, DpuAssumptions
from .rounding import saturate, shift_round_half_up

__all__ = [
    "IMPLS",
    "ACTIVATIONS",
    "LEAKY_RELU_NUMERATOR",
    "LEAKY_RELU_SHIFT",
    "conv2d_output_size",
    "conv_transpose2d_output_size",
    "conv2d_acc",
    "conv_transpose2d_acc",
    "requantize_accumulator",
]

IMPLS = ("reference", "numba", "blas")
ACTIVATIONS = ("none", "relu", "leaky_relu")
# LeakyReLU slope 26/256 = 0.1015625: the only slope the DPU accepts (FXP-C8).
LEAKY_RELU_NUMERATOR = 26
LEAKY_RELU_SHIFT = 8

# Row blocks keep the im2col / col2im buffer below this many bytes (memory stays ~0.3 GB).
_BLAS_BLOCK_BYTES = 256 * 2**20
# Largest integer magnitude below which every integer is exact in float32 / float64.
_F32_EXACT = 2**24
_F64_EXACT = 2**53


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------
def _check_int8(a: np.ndarray, name: str, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.int8:
        raise ValueError(f"{name} must have dtype int8, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _check_geometry(stride: int, padding: int) -> tuple[int, int]:
    s, p = int(stride), int(padding)
    if s != stride or p != padding or s < 1 or p < 0:
        raise ValueError(f"stride must be an int >= 1 and padding an int >= 0, got {stride}, {padding}")
    return s, p


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def _check_arguments(x: np.ndarray, w: np.ndarray, stride: int, padding: int, impl: str) -> tuple[int, int]:
    """Shared checks of both convolutions: int8 CHW input, int8 4-D weight, geometry, impl. Returns (s, p)."""
    _check_int8(x, "x", 3)
    _check_int8(w, "w", 4)
    s, p = _check_geometry(stride, padding)
    _check_impl(impl)
    return s, p


def conv2d_output_size(h: int, w: int, kh: int, kw: int, stride: int, padding: int) -> tuple[int, int]:
    """(H', W') of a conv: H' = (H + 2p - kh) // s + 1 (FXP-C1). Raises if not positive."""
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    if h + 2 * padding < kh or w + 2 * padding < kw or ho < 1 or wo < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit the padded input {h}x{w} (padding {padding})")
    return ho, wo


def conv_transpose2d_output_size(h: int, w: int, kh: int, kw: int, stride: int, padding: int) -> tuple[int, int]:
    """(H', W') of a transposed conv without output padding: H' = (H-1)s - 2p + kh (FXP-C2)."""
    ho = (h - 1) * stride - 2 * padding + kh
    wo = (w - 1) * stride - 2 * padding + kw
    if ho < 1 or wo < 1:
        raise ValueError(f"transposed conv output would be {ho}x{wo}: padding {padding} too large")
    return ho, wo


def _product_bound(n_terms: int, x: np.ndarray, w: np.ndarray) -> int:
    """Upper bound of every partial sum: n_terms * max|x| * max|w| (FXP-A1)."""
    mx = int(np.max(np.abs(x.astype(np.int16)))) if x.size else 0
    mw = int(np.max(np.abs(w.astype(np.int16)))) if w.size else 0
    return int(n_terms) * mx * mw


def _exact_float_dtype(n_terms: int, x: np.ndarray, w: np.ndarray) -> type:
    """float32 if every partial sum provably stays <= 2^24, else float64 (asserting <= 2^53) (FXP-A2)."""
    bound = _product_bound(n_terms, x, w)
    if bound <= _F32_EXACT:
        return np.float32
    if bound > _F64_EXACT:  # needs n_terms >= 2^39: far beyond any conv layer
        raise ValueError(f"accumulator bound {bound} exceeds 2^53: float64 GEMM would not be exact")
    return np.float64


def _numba_proto(n_terms: int, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """1-element array typing the numba accumulator: int32 when the FXP-A1 bound is < 2^31."""
    dtype = np.int32 if _product_bound(n_terms, x, w) < 2**31 else np.int64
    return np.zeros(1, dtype=dtype)


def _transposed_terms(C: int, kh: int, kw: int, s: int) -> int:
    """Most products summed into one transposed-conv output: C * ceil(kh/s) * ceil(kw/s) (FXP-A1)."""
    return C * (-(-kh // s)) * (-(-kw // s))


# --------------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------------
def conv2d_acc(x: np.ndarray, w: np.ndarray, stride: int, padding: int, impl: str = "blas") -> np.ndarray:
    """Integer conv accumulator (FXP-C1), zero padding, no bias.

    acc[o, y, x] = sum_{c, i, j} w[o, c, i, j] * xpad[c, y*s + i, x*s + j]

    Args:
        x: int8 [C, H, W] activations.
        w: int8 [O, C, kh, kw] weights.
        stride: s >= 1 (both axes).
        padding: p >= 0 zero rows/columns on every side.
        impl: "reference" | "numba" | "blas" (identical results).

    Returns:
        int64 [O, H', W'], H' = (H + 2p - kh) // s + 1; |acc| <= C*kh*kw*2^14.
    """
    s, p = _check_arguments(x, w, stride, padding, impl)
    C, H, W = x.shape
    O, Cw, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"weight expects {Cw} input channels, input has {C}")
    Ho, Wo = conv2d_output_size(H, W, kh, kw, s, p)
    if impl == "reference":
        return _conv2d_reference(x, w, s, p, Ho, Wo)
    if impl == "numba":
        return _conv2d_numba(x, w, s, p, Ho, Wo)
    return _conv2d_blas(x, w, s, p, Ho, Wo)


def _conv2d_reference(x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int) -> np.ndarray:
    C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.zeros((C, H + 2 * p, W + 2 * p), dtype=np.int64)
    xp[:, p : p + H, p : p + W] = x
    w64 = w.astype(np.int64)
    out = np.zeros((O, Ho, Wo), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + s * (Ho - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s]  # [C, Ho, Wo]
            # integer tensordot: exact int64 arithmetic (numpy uses no BLAS for integer types)
            out += np.tensordot(w64[:, :, i, j], patch, axes=([1], [0]))
    return out


def _conv2d_numba(x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int) -> np.ndarray:
    from ._numba_kernels import conv2d_polyphase

    C, H, W = x.shape
    _, _, kh, kw = w.shape
    # Padded input split into s x s phases (see conv2d_polyphase); sized so every read is in bounds.
    Hq = Ho + (kh - 1) // s
    Wq = Wo + (kw - 1) // s
    xp = np.zeros((C, Hq * s, Wq * s), dtype=np.int8)
    # Input rows/columns past the last one any output reads are dropped (they may not fit the buffer).
    hh = max(0, min(H, Hq * s - p))
    ww = max(0, min(W, Wq * s - p))
    xp[:, p : p + hh, p : p + ww] = x[:, :hh, :ww]
    ph = np.ascontiguousarray(xp.reshape(C, Hq, s, Wq, s).transpose(0, 2, 4, 1, 3))
    proto = _numba_proto(C * kh * kw, x, w)
    return conv2d_polyphase(ph, np.ascontiguousarray(w), s, Ho, Wo, proto)


def _conv2d_blas(
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type | None = None
) -> np.ndarray:
    C, H, W = x.shape
    O, _, kh, kw = w.shape
    K = C * kh * kw
    if dtype is None:
        dtype = _exact_float_dtype(K, x, w)
    xp = np.zeros((C, H + 2 * p, W + 2 * p), dtype=dtype)
    xp[:, p : p + H, p : p + W] = x
    w2 = w.reshape(O, K).astype(dtype)
    itemsize = np.dtype(dtype).itemsize
    rows = max(1, min(Ho, _BLAS_BLOCK_BYTES // (K * Wo * itemsize)))
    out = np.empty((O, Ho, Wo), dtype=np.int64)
    cols = np.empty((C, kh, kw, rows, Wo), dtype=dtype)
    for y0 in range(0, Ho, rows):
        nb = min(rows, Ho - y0)
        c5 = cols[:, :, :, :nb, :]
        for i in range(kh):
            r0 = y0 * s + i
            for j in range(kw):
                c5[:, i, j] = xp[:, r0 : r0 + s * (nb - 1) + 1 : s, j : j + s * (Wo - 1) + 1 : s]
        res = w2 @ c5.reshape(K, nb * Wo)  # exact: integers below 2^24 (f32) / 2^53 (f64)
        out[:, y0 : y0 + nb, :] = res.reshape(O, nb, Wo)  # exact float -> int64
    return out


# --------------------------------------------------------------------------------------------------
# transposed conv2d
# --------------------------------------------------------------------------------------------------
def conv_transpose2d_acc(x: np.ndarray, w: np.ndarray, stride: int, padding: int, impl: str = "blas") -> np.ndarray:
    """Integer transposed-conv accumulator (FXP-C2), PyTorch ``conv_transpose2d`` semantics, no bias,
    no output padding (the DPU op filter rejects output_padding != 0).

    Scatter definition: every input pixel x[c, y, xx] adds x[c, y, xx] * w[c, o, i, j] to
    full[o, y*s + i, xx*s + j]; the result is full cropped by p on every side.
    Equivalently a stride-1 conv of the input with s-1 zeros inserted between pixels, padded by
    k-1-p, with the kernel flipped and its channel axes swapped (what the DPU compiler emits).

    Args:
        x: int8 [C, H, W].
        w: int8 [C, O, kh, kw] (PyTorch ConvTranspose2d layout).
        stride: s >= 1.
        padding: p >= 0.
        impl: "reference" | "numba" | "blas" (identical results).

    Returns:
        int64 [O, (H-1)s - 2p + kh, (W-1)s - 2p + kw]; |acc| <= C*ceil(kh/s)*ceil(kw/s)*2^14.
    """
    s, p = _check_arguments(x, w, stride, padding, impl)
    C, H, W = x.shape
    Cw, O, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"transposed-conv weight expects {Cw} input channels, input has {C}")
    Ho, Wo = conv_transpose2d_output_size(H, W, kh, kw, s, p)
    if impl == "reference":
        return _conv_transpose2d_reference(x, w, s, p, Ho, Wo)
    if impl == "numba":
        from ._numba_kernels import conv_transpose2d_gather

        proto = _numba_proto(_transposed_terms(C, kh, kw, s), x, w)
        return conv_transpose2d_gather(np.ascontiguousarray(x), np.ascontiguousarray(w), s, p, Ho, Wo, proto)
    return _conv_transpose2d_blas(x, w, s, p, Ho, Wo)


def _conv_transpose2d_reference(x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int) -> np.ndarray:
    C, H, W = x.shape
    _, O, kh, kw = w.shape
    x64 = x.astype(np.int64)
    w64 = w.astype(np.int64)
    full = np.zeros((O, (H - 1) * s + kh, (W - 1) * s + kw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            # tap (i, j) of every input pixel (y, xx) lands on full[:, y*s + i, xx*s + j]
            contrib = np.tensordot(w64[:, :, i, j], x64, axes=([0], [0]))  # [O, H, W]
            full[:, i : i + s * (H - 1) + 1 : s, j : j + s * (W - 1) + 1 : s] += contrib
    return full[:, p : p + Ho, p : p + Wo].copy()


def _conv_transpose2d_blas(
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type | None = None
) -> np.ndarray:
    C, H, W = x.shape
    _, O, kh, kw = w.shape
    if dtype is None:
        # Each output sums at most C*ceil(kh/s)*ceil(kw/s) products; every partial sum of the GEMM and
        # of the col2im scatter-add is a sub-sum of those, so the same bound covers all of them.
        dtype = _exact_float_dtype(_transposed_terms(C, kh, kw, s), x, w)
    M = O * kh * kw
    wt = np.ascontiguousarray(w.reshape(C, M).T).astype(dtype)  # [O*kh*kw, C]
    xf = x.reshape(C, H * W).astype(dtype)
    full = np.zeros((O, (H - 1) * s + kh, (W - 1) * s + kw), dtype=dtype)
    itemsize = np.dtype(dtype).itemsize
    rows = max(1, min(H, _BLAS_BLOCK_BYTES // (M * W * itemsize)))
    for y0 in range(0, H, rows):
        nb = min(rows, H - y0)
        cols = (wt @ xf[:, y0 * W : (y0 + nb) * W]).reshape(O, kh, kw, nb, W)  # col2im source
        for i in range(kh):
            r0 = y0 * s + i
            for j in range(kw):
                full[:, r0 : r0 + s * (nb - 1) + 1 : s, j : j + s * (W - 1) + 1 : s] += cols[:, i, j]
    return full[:, p : p + Ho, p : p + Wo].astype(np.int64)


# --------------------------------------------------------------------------------------------------
# requantization
# --------------------------------------------------------------------------------------------------
def _check_width(a: np.ndarray, bits: int | None, what: str) -> None:
    if bits is None or a.size == 0:
        return
    lim = 1 << (bits - 1)
    hi, lo = int(a.max()), int(a.min())
    if hi >= lim or lo < -lim:
        raise OverflowError(f"{what} range [{lo}, {hi}] exceeds the assumed {bits}-bit accumulator (FXP-A-ACC)")


def requantize_accumulator(
    acc: np.ndarray,
    bias: np.ndarray | None,
    shift_bias: int,
    shift_cut: int,
    activation: str,
    assumptions: DpuAssumptions = DEFAULT,
) -> np.ndarray:
    """Bias alignment, fused activation, rounding shift and saturation of a conv accumulator.

    FXP-C4/C5 bias alignment:
        shift_bias >= 0:  t = acc + (b << shift_bias),            s = shift_cut
        shift_bias <  0:  t = (acc << -shift_bias) + b,           s = shift_cut - shift_bias
                          (assumption ``negative_shift_bias="scale_accumulator"``; with
                          ``"floor_bias"``: t = 2 acc + floor(b * 2^(shift_bias+1)), s = shift_cut + 1)
    FXP-C6 "none":        out = R(t / 2^s)                       (``shift_round_half_up``)
    FXP-C7 "relu":        out = R(max(t, 0) / 2^s)
    FXP-C8 "leaky_relu":  slope 26/256. ``"single"``: t >= 0 -> R(t / 2^s); t < 0 -> R(26 t / 2^(s+8)).
                          ``"double"``: o = R(t / 2^s); o < 0 -> R(26 o / 2^8).
    FXP-R4 finally:       saturate to int8.

    This equals the float fake-quant clamp(floor(act(acc 2^-(f_w+f_in) + b 2^-f_b) 2^f_out + 1/2))
    for the default assumptions (FXP-C9).

    Args:
        acc: integer [O, ...] accumulator (int64 from ``conv2d_acc`` / ``conv_transpose2d_acc``).
        bias: int8 [O] (broadcast along all axes but the first), or None for no bias.
        shift_bias: f_w + f_in - f_b.
        shift_cut: f_w + f_in - f_out.
        activation: "none" | "relu" | "leaky_relu".
        assumptions: the open-point switches (``DpuAssumptions``).

    Returns:
        int8 array, same shape as ``acc``.
    """
    a = np.asarray(acc)
    if not np.issubdtype(a.dtype, np.integer) or a.dtype == np.uint64:
        raise ValueError(f"acc must have a signed integer dtype, got {a.dtype}")
    if a.ndim < 1:
        raise ValueError("acc must have at least one dimension (the output-channel axis)")
    a = a.astype(np.int64, copy=False)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    O = a.shape[0]
    if bias is None:
        b = np.zeros((O,) + (1,) * (a.ndim - 1), dtype=np.int64)
    else:
        bias = np.asarray(bias)
        if not np.issubdtype(bias.dtype, np.integer) or bias.shape != (O,):
            raise ValueError(f"bias must be an integer array of shape ({O},), got {bias.dtype} {bias.shape}")
        b = bias.astype(np.int64).reshape((O,) + (1,) * (a.ndim - 1))
    sb, sc = int(shift_bias), int(shift_cut)
    bits = assumptions.accumulator_bits
    _check_width(a, bits, "accumulator")

    if sb >= 0:
        t = a + (b << np.int64(sb))
        s = sc
    elif assumptions.negative_shift_bias == "scale_accumulator":
        t = shift_round_half_up(a, sb) + b  # acc << -sb (shift_round_half_up with a negative shift)
        s = sc - sb
    else:  # "floor_bias": one extra accumulator bit, bias right-shifted with floor (arithmetic >>)
        t = 2 * a + (b >> np.int64(-sb - 1))
        s = sc + 1
    _check_width(t, bits, "bias-aligned accumulator")

    if activation == "none":
        out = shift_round_half_up(t, s)
    elif activation == "relu":
        out = shift_round_half_up(np.maximum(t, 0), s)
    elif assumptions.leaky_relu_rounding == "single":
        neg = t < 0
        out = shift_round_half_up(t, s)
        if np.any(neg):
            out[neg] = shift_round_half_up(t[neg] * LEAKY_RELU_NUMERATOR, s + LEAKY_RELU_SHIFT)
    else:  # "double"
        out = shift_round_half_up(t, s)
        neg = out < 0
        if np.any(neg):
            out[neg] = shift_round_half_up(out[neg] * LEAKY_RELU_NUMERATOR, LEAKY_RELU_SHIFT)
    return saturate(out, 8)
