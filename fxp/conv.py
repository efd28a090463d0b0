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

An ``epilogue`` (``QuantConv`` passes its requantizer) is an *elementwise* function of the int64 accumulator;
``conv2d_acc(..., epilogue=f)`` returns ``f(acc)``. The BLAS path applies it to each GEMM block as the block is
produced, so the layer's int64 accumulator is never held whole: the same values (``f`` is elementwise, and every
output belongs to exactly one block), a quarter of the memory traffic (1.5–2× faster per layer, results/speed).
"""

from __future__ import annotations

from collections.abc import Callable

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
# With an epilogue, blocks small enough that a block's GEMM result and its requantization stay in cache.
_FUSED_BLOCK_BYTES = 4 * 2**20

# An elementwise function of an int64 accumulator block [O, rows, cols] (e.g. the requantizer, int8 out).
Epilogue = Callable[[np.ndarray], np.ndarray]


class _BlockOutput:
    """A BLAS path's output [O, H', W'], written one GEMM block at a time: the int64 accumulator itself, or
    ``epilogue(block)`` of every block (the array is made at the first block, in the epilogue's dtype). Every
    output element must be written exactly once; ``result`` of an empty output applies the epilogue to zeros."""

    def __init__(self, shape: tuple[int, int, int], epilogue: Epilogue | None) -> None:
        self.shape, self.epilogue = shape, epilogue
        self.array = np.empty(shape, dtype=np.int64) if epilogue is None else None
        self.block_bytes = _BLAS_BLOCK_BYTES if epilogue is None else _FUSED_BLOCK_BYTES

    def write(self, where: tuple[slice, slice, slice], block: np.ndarray) -> None:
        """``block``: exact integers (float GEMM result or int64) for ``array[where]``."""
        if self.epilogue is None:
            self.array[where] = block  # exact float -> int64
            return
        values = self.epilogue(block.astype(np.int64))  # exact float -> int64, then elementwise
        if self.array is None:
            self.array = np.empty(self.shape, dtype=values.dtype)
        self.array[where] = values

    def result(self) -> np.ndarray:
        if self.array is None:  # no block at all: an empty output
            zeros = np.zeros(self.shape, dtype=np.int64)
            return zeros if self.epilogue is None else self.epilogue(zeros)
        return self.array
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
def conv2d_acc(x: np.ndarray, w: np.ndarray, stride: int, padding: int, impl: str = "blas",
               epilogue: Epilogue | None = None) -> np.ndarray:
    """Integer conv accumulator (FXP-C1), zero padding, no bias.

    acc[o, y, x] = sum_{c, i, j} w[o, c, i, j] * xpad[c, y*s + i, x*s + j]

    Args:
        x: int8 [C, H, W] activations.
        w: int8 [O, C, kh, kw] weights.
        stride: s >= 1 (both axes).
        padding: p >= 0 zero rows/columns on every side.
        impl: "reference" | "numba" | "blas" (identical results).
        epilogue: an elementwise function of the accumulator (module docstring); None: the accumulator itself.

    Returns:
        int64 [O, H', W'], H' = (H + 2p - kh) // s + 1; |acc| <= C*kh*kw*2^14; with an epilogue, epilogue(acc).
    """
    s, p = _check_arguments(x, w, stride, padding, impl)
    C, H, W = x.shape
    O, Cw, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"weight expects {Cw} input channels, input has {C}")
    Ho, Wo = conv2d_output_size(H, W, kh, kw, s, p)
    if impl == "blas":
        return _conv2d_blas(x, w, s, p, Ho, Wo, epilogue=epilogue)
    acc = _conv2d_reference(x, w, s, p, Ho, Wo) if impl == "reference" else _conv2d_numba(x, w, s, p, Ho, Wo)
    return acc if epilogue is None else epilogue(acc)


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


def _row_chunks(kh: int, row_terms: int, x: np.ndarray, w: np.ndarray) -> list[tuple[int, int]] | None:
    """Kernel-row chunks ``[(i0, i1), ...]`` whose partial sums provably stay <= 2^24 (FXP-A2b), so that each
    chunk's GEMM is exact in float32; None when one kernel row (``row_terms`` products per output) already
    exceeds the bound."""
    per_row = _product_bound(row_terms, x, w)
    if per_row > _F32_EXACT:
        return None
    step = kh if per_row == 0 else max(1, min(kh, _F32_EXACT // per_row))
    return [(i, min(i + step, kh)) for i in range(0, kh, step)]


def _conv2d_blas(
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """im2col + float GEMM, exact by FXP-A2: float32 when the data bound of all K products is <= 2^24; else,
    when one kernel row's bound is, float32 GEMMs over chunks of kernel rows whose exact integer results are
    summed in float64 (FXP-A2b: 1.5-2× faster than one float64 GEMM, and the column buffer shrinks with the
    chunk); else float64. ``dtype`` forces one GEMM in that type (tests)."""
    C, H, W = x.shape
    O, _, kh, kw = w.shape
    K = C * kh * kw
    chunks: list[tuple[int, int]] | None = [(0, kh)]
    if dtype is None:
        dtype = _exact_float_dtype(K, x, w)
        if dtype is np.float64:
            split = _row_chunks(kh, C * kw, x, w)
            if split is not None:
                dtype, chunks = np.float32, split
    # the padded input split into its s × s phases, so that every tap's strided window is a plain slice of one
    # phase (im2col copies rows instead of gathering every s-th element: 2× faster)
    Hq, Wq = Ho + (kh - 1) // s, Wo + (kw - 1) // s
    xp = np.zeros((C, Hq * s, Wq * s), dtype=dtype)
    hh, ww = max(0, min(H, Hq * s - p)), max(0, min(W, Wq * s - p))  # inputs no output reads are dropped
    xp[:, p : p + hh, p : p + ww] = x[:, :hh, :ww]
    phases = xp.reshape(C, Hq, s, Wq, s).transpose(2, 4, 0, 1, 3).copy() if s > 1 else xp[None, None]
    itemsize = np.dtype(dtype).itemsize
    rows_max = max(i1 - i0 for i0, i1 in chunks)
    out = _BlockOutput((O, Ho, Wo), epilogue)
    rows = max(1, min(Ho, out.block_bytes // (C * rows_max * kw * Wo * itemsize)))
    weights = [w[:, :, i0:i1, :].reshape(O, C * (i1 - i0) * kw).astype(dtype) for i0, i1 in chunks]
    total = np.empty((O, rows * Wo), dtype=np.float64) if len(chunks) > 1 else None
    for y0 in range(0, Ho, rows):
        nb = min(rows, Ho - y0)
        for n, ((i0, i1), w2) in enumerate(zip(chunks, weights)):
            c5 = np.empty((C, i1 - i0, kw, nb, Wo), dtype=dtype)  # contiguous: the GEMM reads it without a copy
            for i in range(i0, i1):
                r0 = y0 + i // s
                for j in range(kw):
                    c5[:, i - i0, j] = phases[i % s, j % s, :, r0 : r0 + nb, j // s : j // s + Wo]
            res = w2 @ c5.reshape(C * (i1 - i0) * kw, nb * Wo)  # exact: integers below 2^24 (f32) / 2^53 (f64)
            if total is None:
                block = res
            elif n == 0:
                total[:, : nb * Wo] = res  # exact float32 -> float64
            else:
                total[:, : nb * Wo] += res  # exact: integers below 2^53
        if total is not None:
            block = total[:, : nb * Wo]
        out.write((slice(None), slice(y0, y0 + nb), slice(None)), block.reshape(O, nb, Wo))
    return out.result()


# --------------------------------------------------------------------------------------------------
# transposed conv2d
# --------------------------------------------------------------------------------------------------
def conv_transpose2d_acc(x: np.ndarray, w: np.ndarray, stride: int, padding: int, impl: str = "blas",
                         epilogue: Epilogue | None = None) -> np.ndarray:
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
        epilogue: an elementwise function of the accumulator (module docstring); None: the accumulator itself.

    Returns:
        int64 [O, (H-1)s - 2p + kh, (W-1)s - 2p + kw]; |acc| <= C*ceil(kh/s)*ceil(kw/s)*2^14; with an epilogue,
        epilogue(acc).
    """
    s, p = _check_arguments(x, w, stride, padding, impl)
    C, H, W = x.shape
    Cw, O, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"transposed-conv weight expects {Cw} input channels, input has {C}")
    Ho, Wo = conv_transpose2d_output_size(H, W, kh, kw, s, p)
    if impl == "blas":
        return _conv_transpose2d_blas(x, w, s, p, Ho, Wo, epilogue=epilogue)
    if impl == "reference":
        acc = _conv_transpose2d_reference(x, w, s, p, Ho, Wo)
    else:
        from ._numba_kernels import conv_transpose2d_gather

        proto = _numba_proto(_transposed_terms(C, kh, kw, s), x, w)
        acc = conv_transpose2d_gather(np.ascontiguousarray(x), np.ascontiguousarray(w), s, p, Ho, Wo, proto)
    return acc if epilogue is None else epilogue(acc)


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
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """Transposed conv as GEMM + col2im (``_conv_transpose2d_col2im``) or as one GEMM per output phase
    (``_conv_transpose2d_polyphase``), whichever moves less memory: both sum, for every output, exactly the
    products of FXP-C2 (float GEMM exact by FXP-A2). Measured on the codec's k4 s2 layers (one core):
    polyphase 1.2-1.4× faster for C_in ≈ C_out, col2im 10× faster for the 3-channel image layer."""
    C, H, W = x.shape
    _, O, kh, kw = w.shape
    if dtype is None:
        # Each output sums at most C*ceil(kh/s)*ceil(kw/s) products; every partial sum of a GEMM and of the
        # col2im scatter-add is a sub-sum of those, so the same bound covers all of them.
        dtype = _exact_float_dtype(_transposed_terms(C, kh, kw, s), x, w)
    if C <= 2 * O:
        return _conv_transpose2d_polyphase(x, w, s, p, Ho, Wo, dtype, epilogue)
    acc = _conv_transpose2d_col2im(x, w, s, p, Ho, Wo, dtype)
    return acc if epilogue is None else epilogue(acc)


def _conv_transpose2d_col2im(
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type
) -> np.ndarray:
    C, H, W = x.shape
    _, O, kh, kw = w.shape
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


def _conv_transpose2d_polyphase(
    x: np.ndarray, w: np.ndarray, s: int, p: int, Ho: int, Wo: int, dtype: type, epilogue: Epilogue | None = None
) -> np.ndarray:
    """Polyphase transposed conv: the outputs of one phase (oy + p ≡ ry, ox + p ≡ rx mod s) form an ordinary
    correlation of the input with the taps (ry + s·my, rx + s·mx), so each phase is one im2col of the (small)
    input and one GEMM, written to every s-th output row and column. It sums, for every output, exactly the
    products of FXP-C2's scatter definition, so FXP-A2's bound holds unchanged; no col2im scatter-add over the
    s²-times larger output is needed. Its im2col copies the input kh·kw times, where col2im adds into the
    output kh·kw times: cheaper when the input has fewer channels than about twice the output's. Every output
    belongs to exactly one phase and one row block of it: ``epilogue`` sees each once (a phase without taps
    has accumulator 0)."""
    C, H, W = x.shape
    _, O, kh, kw = w.shape
    out = _BlockOutput((O, Ho, Wo), epilogue)
    taps_y, taps_x = -(-kh // s), -(-kw // s)  # most taps of a phase per axis
    # output o of phase r (per axis) is o = s·q + r − p and reads inputs q − m, m < taps: pad so every read is
    # inside (zeros outside the input, FXP-C2's in-bounds rule)
    pad_y = max(taps_y - 1, 0)
    pad_x = max(taps_x - 1, 0)
    q_max_y = (Ho - 1 + p) // s
    q_max_x = (Wo - 1 + p) // s
    xp = np.zeros((C, pad_y + max(H, q_max_y + 1), pad_x + max(W, q_max_x + 1)), dtype=dtype)
    xp[:, pad_y : pad_y + H, pad_x : pad_x + W] = x
    itemsize = np.dtype(dtype).itemsize

    def phase_rows(y0: int, nb: int, o_x: int, n_x: int) -> tuple[slice, slice, slice]:
        """Output rows y0, y0 + s, … (nb of them) and columns o_x, o_x + s, … (n_x) of one phase."""
        return slice(None), slice(y0, y0 + s * (nb - 1) + 1, s), slice(o_x, o_x + s * (n_x - 1) + 1, s)

    for ry in range(s):
        m_y = max(0, -(-(kh - ry) // s))  # taps ry, ry + s, ... < kh
        o_y = (ry - p) % s  # first output row of the phase: o ≡ ry − p (mod s)
        if o_y >= Ho:
            continue  # no output row in this phase
        q_y0 = (o_y + p - ry) // s
        n_y = (Ho - 1 - o_y) // s + 1
        for rx in range(s):
            m_x = max(0, -(-(kw - rx) // s))
            o_x = (rx - p) % s
            if o_x >= Wo:
                continue
            q_x0 = (o_x + p - rx) // s
            n_x = (Wo - 1 - o_x) // s + 1
            if m_y == 0 or m_x == 0:  # no tap: the accumulator is 0 here
                out.write(phase_rows(o_y, n_y, o_x, n_x), np.zeros((O, n_y, n_x), dtype=np.int64))
                continue
            K = m_y * m_x * C
            # weights of the phase, tap-major: row (my, mx, c) of the GEMM's inner dimension
            wp = w[:, :, ry::s, rx::s][:, :, :m_y, :m_x].transpose(1, 2, 3, 0).reshape(O, K).astype(dtype)
            rows = max(1, min(n_y, out.block_bytes // (K * n_x * itemsize)))
            cols = np.empty((m_y, m_x, C, rows, n_x), dtype=dtype)
            for b0 in range(0, n_y, rows):
                nb = min(rows, n_y - b0)
                c5 = cols[:, :, :, :nb, :]
                for my in range(m_y):
                    r0 = pad_y + q_y0 + b0 - my
                    for mx in range(m_x):
                        c0 = pad_x + q_x0 - mx
                        c5[my, mx] = xp[:, r0 : r0 + nb, c0 : c0 + n_x]
                res = wp @ c5.reshape(K, nb * n_x)  # exact: integers below 2^24 (f32) / 2^53 (f64)
                out.write(phase_rows(o_y + s * b0, nb, o_x, n_x), res.reshape(O, nb, n_x))
    return out.result()


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

    if activation in ("none", "relu") and s >= 0:
        # t is this function's own array: FXP-C6/C7, FXP-R3 and FXP-R4 in place, the same integer operations as
        # shift_round_half_up and saturate without a new int64 array per step (2× faster on large tensors)
        if activation == "relu":
            np.maximum(t, 0, out=t)
        if s > 0:
            t += np.int64(1 << (s - 1))
            t >>= np.int64(s)
        np.clip(t, -128, 127, out=t)
        return t.astype(np.int8)
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
