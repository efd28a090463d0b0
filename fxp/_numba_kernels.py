"""Numba direct-loop kernels for ``fxlic.fxp.conv`` (impl="numba").

Imported lazily by ``conv.py`` so that ``import fxlic.fxp`` does not pay numba's import and JIT cost.

Accumulator type: each kernel accumulates in the dtype of ``proto`` (a 1-element array), int64 or
int32. The caller picks int32 only when the bound of FXP-A1 proves it exact (every partial sum
|sum| <= n_terms * max|x| * max|w| < 2^31); int32 vectorizes twice as wide. Results are int64.
Parallelism: one task per (block of 8 output channels, output row); tasks write disjoint memory.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# Output channels per task: one converted input row feeds this many accumulator rows.
_OB = 8


@njit(cache=True, parallel=True)
def conv2d_polyphase(ph: np.ndarray, w: np.ndarray, stride: int, Ho: int, Wo: int, proto: np.ndarray) -> np.ndarray:
    """out[o, y, x] = sum_{c,i,j} w[o,c,i,j] * xp[c, y*s + i, x*s + j]   (FXP-C1)

    ``ph`` is the zero-padded input xp split into stride phases,
    ph[c, a, b, u, v] = xp[c, u*s + a, v*s + b] (zero past the edge), so that the innermost loop
    over x reads contiguous memory: xp[c, y*s + i, x*s + j] = ph[c, i % s, j % s, y + i//s, x + j//s].

    Args:
        ph: int8 [C, s, s, Hq, Wq] with Hq >= Ho + (kh-1)//s, Wq >= Wo + (kw-1)//s.
        w: int8 [O, C, kh, kw].
        stride: s >= 1.
        Ho, Wo: output size.
        proto: 1-element array whose dtype is the accumulator type (int32 or int64).

    Returns:
        int64 [O, Ho, Wo].
    """
    O, C, kh, kw = w.shape
    wa = w.astype(proto.dtype)
    nob = (O + _OB - 1) // _OB
    out = np.zeros((O, Ho, Wo), dtype=np.int64)
    for task in prange(nob * Ho):
        ob = task // Ho
        y = task - ob * Ho
        o0 = ob * _OB
        o1 = min(O, o0 + _OB)
        acc = np.zeros((_OB, Wo), dtype=proto.dtype)
        for c in range(C):
            for i in range(kh):
                a = i % stride
                di = i // stride
                for j in range(kw):
                    b = j % stride
                    dj = j // stride
                    row = ph[c, a, b, y + di, dj : dj + Wo].astype(proto.dtype)
                    for o in range(o0, o1):
                        wv = wa[o, c, i, j]
                        if wv == 0:
                            continue
                        ao = acc[o - o0]
                        for x in range(Wo):
                            ao[x] += wv * row[x]
        for o in range(o0, o1):
            for x in range(Wo):
                out[o, y, x] = acc[o - o0, x]
    return out


@njit(cache=True, parallel=True)
def conv_transpose2d_gather(
    x: np.ndarray, w: np.ndarray, stride: int, padding: int, Ho: int, Wo: int, proto: np.ndarray
) -> np.ndarray:
    """out[o, oy, ox] = sum over (c, y, xx, i, j) with oy = y*s + i - p, ox = xx*s + j - p of
    x[c, y, xx] * w[c, o, i, j]   (FXP-C2: the scatter definition, evaluated per output row)

    Output row oy receives kernel rows i with oy + p - i = y*s (0 <= y < H). Within a row, the
    accumulator is kept split by output-column phase, acc[o, b, v] for ox = v*s + b: tap column j
    sends input column xx to phase b = (j - p) mod s, index v = xx + floor((j - p) / s), so the
    innermost loop over xx is contiguous.

    Args:
        x: int8 [C, H, W].
        w: int8 [C, O, kh, kw] (PyTorch ConvTranspose2d layout).
        stride, padding: s >= 1, p >= 0.
        Ho, Wo: output size (H-1)s - 2p + kh, (W-1)s - 2p + kw.
        proto: 1-element array whose dtype is the accumulator type (int32 or int64).

    Returns:
        int64 [O, Ho, Wo].
    """
    C, H, W = x.shape
    O = w.shape[1]
    kh = w.shape[2]
    kw = w.shape[3]
    wa = w.astype(proto.dtype)
    nob = (O + _OB - 1) // _OB
    Wv = (Wo + stride - 1) // stride
    out = np.zeros((O, Ho, Wo), dtype=np.int64)
    for task in prange(nob * Ho):
        ob = task // Ho
        oy = task - ob * Ho
        o0 = ob * _OB
        o1 = min(O, o0 + _OB)
        acc = np.zeros((_OB, stride, Wv), dtype=proto.dtype)
        for i in range(kh):
            t = oy + padding - i
            if t < 0 or t % stride != 0:
                continue
            y = t // stride
            if y >= H:
                continue
            for c in range(C):
                xrow = x[c, y].astype(proto.dtype)
                for j in range(kw):
                    b = (j - padding) % stride
                    dj = (j - padding) // stride  # floor; ox = (xx + dj) * s + b
                    # input columns with 0 <= xx + dj and (xx + dj) * s + b <= Wo - 1, 0 <= xx <= W - 1
                    xlo = -dj
                    if xlo < 0:
                        xlo = 0
                    xhi = (Wo - 1 - b) // stride - dj
                    if xhi > W - 1:
                        xhi = W - 1
                    n = xhi - xlo + 1
                    if n <= 0:
                        continue
                    # slices, so the inner index is a plain range variable (no negative-index
                    # wraparound check, which would stop LLVM from vectorizing the loop)
                    src = xrow[xlo : xhi + 1]
                    for o in range(o0, o1):
                        wv = wa[c, o, i, j]
                        if wv == 0:
                            continue
                        dst = acc[o - o0, b, xlo + dj : xhi + 1 + dj]
                        for k in range(n):
                            dst[k] += wv * src[k]
        for o in range(o0, o1):
            for ox in range(Wo):
                out[o, oy, ox] = acc[o - o0, ox % stride, ox // stride]
    return out
