"""Numba kernels of the rANS coder (fast path of ``fxlic.entropy.rans``; spec: ``docs/entropy.md``).

These kernels trust their inputs (``rans.py`` validates tables and table indices before calling them)
except for the compressed bytes, which may be anything: the decoder never reads outside ``data`` and
reports problems through a status code instead of raising, so that ``rans.py`` can turn them into
``EntropyDecodeError`` with a readable message. State arithmetic is done in int64, where every
intermediate value of the 32-bit rANS (ENT-3, ENT-6) fits without overflow.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Decoder status codes (rans.py maps them to messages); numba reads them as compile-time constants.
from ._rans_status import ERR_BAD_ESCAPE, ERR_FINAL_STATE, ERR_INITIAL_STATE, ERR_TRAILING, ERR_TRUNCATED, OK

# Keep in sync with rans.py (checked there at import).
RANS_L = 1 << 23  # normalized state interval [RANS_L, STATE_END)               (ENT-1)
STATE_END = 1 << 31
PREC = 16  # probability precision                                            (ENT-T2)
IO_BITS = 8  # renormalization unit: one byte                                   (ENT-1)
IO_MASK = (1 << IO_BITS) - 1
PREC_MASK = (1 << PREC) - 1
# ENT-3: x_max(f) = ((RANS_L >> PREC) << IO_BITS) * f = f << XMAX_SHIFT
XMAX_SHIFT = 23 - PREC + IO_BITS


@njit(cache=True, nogil=True)
def encode_kernel(values, table_index, cdf, num_symbols, offset):  # pragma: no cover - numba
    """Encode (ENT-2 ... ENT-4, ENT-E2). Returns (uint8 buffer, start): the stream is buf[start:].

    values, table_index: int32 [n]; cdf uint32 [T, W]; num_symbols, offset int32 [T]. Every value must
    be int16 (checked by the caller). Bytes are written back to front. A coded symbol emits at most
    2 bytes (ENT-3), an escaped value codes two symbols, the flush writes 4: 4 n + 4 bytes suffice.
    """
    n = values.shape[0]
    buf = np.empty(4 * n + 4, dtype=np.uint8)
    p = buf.shape[0]
    x = np.int64(RANS_L)
    for i in range(n - 1, -1, -1):
        t = table_index[i]
        v = np.int64(values[i])
        nt = np.int64(num_symbols[t])
        k = v - offset[t]
        if k >= 0 and k < nt - 1:
            c = np.int64(cdf[t, k])
            f = np.int64(cdf[t, k + 1]) - c
        else:
            # ENT-E2: first (the decoder reads it second) the 16-bit word as a symbol with f=1, c=word.
            while x >= (np.int64(1) << XMAX_SHIFT):  # runs exactly twice: x >= 2^23
                p -= 1
                buf[p] = x & IO_MASK
                x >>= IO_BITS
            x = (x << PREC) + (v & PREC_MASK)
            # ... then the ESC symbol itself.
            c = np.int64(cdf[t, nt - 1])
            f = (np.int64(1) << PREC) - c
        x_max = f << XMAX_SHIFT  # ENT-3
        while x >= x_max:
            p -= 1
            buf[p] = x & IO_MASK
            x >>= IO_BITS
        x = ((x // f) << PREC) + (x % f) + c
    # ENT-4: flush the 32-bit state; after reversal it is little-endian at the start of the stream.
    p -= 4
    buf[p] = x & IO_MASK
    buf[p + 1] = (x >> 8) & IO_MASK
    buf[p + 2] = (x >> 16) & IO_MASK
    buf[p + 3] = (x >> 24) & IO_MASK
    return buf, p


@njit(cache=True, nogil=True)
def decode_kernel(data, table_index, cdf, num_symbols, offset, out):  # pragma: no cover - numba
    """Decode (ENT-5 ... ENT-8, ENT-E3). Returns (status, i, pos): symbol index and byte position at exit.

    data: uint8 [m] (any content, m >= 4); table_index int32 [n] (in range); out int32 [n].
    The loop runs exactly n times, each renormalization reads at most 2 bytes, and every read is
    bounds-checked, so it cannot hang or read out of bounds whatever ``data`` holds.
    """
    n = table_index.shape[0]
    m = data.shape[0]
    x = (  # ENT-5
        np.int64(data[0]) | (np.int64(data[1]) << 8) | (np.int64(data[2]) << 16) | (np.int64(data[3]) << 24)
    )
    pos = 4
    if x < RANS_L or x >= STATE_END:
        return ERR_INITIAL_STATE, 0, pos
    for i in range(n):
        t = table_index[i]
        nt = num_symbols[t]
        slot = x & PREC_MASK
        # ENT-6: the s with cdf[t, s] <= slot < cdf[t, s + 1] (binary search: cdf[t,0]=0 <= slot < cdf[t,n_t]).
        # Branch-free form: keep a base and halve the span (the result is the same for any search).
        lo = 0
        span = nt
        while span > 1:
            half = span >> 1
            mid = lo + half
            lo = mid if cdf[t, mid] <= slot else lo
            span -= half
        c = np.int64(cdf[t, lo])
        x = (np.int64(cdf[t, lo + 1]) - c) * (x >> PREC) + slot - c
        while x < RANS_L:  # ENT-7: at most twice (x >= 2^7 here)
            if pos >= m:
                return ERR_TRUNCATED, i, pos
            x = (x << IO_BITS) | np.int64(data[pos])
            pos += 1
        if lo == nt - 1:
            # ENT-E3: a symbol with f = 1 at precision 16: the word is the slot, x -> x >> 16.
            raw = x & PREC_MASK
            x = x >> PREC
            while x < RANS_L:  # exactly twice
                if pos >= m:
                    return ERR_TRUNCATED, i, pos
                x = (x << IO_BITS) | np.int64(data[pos])
                pos += 1
            v = raw - 65536 if raw >= 32768 else raw
            k = v - offset[t]
            if k >= 0 and k < nt - 1:
                return ERR_BAD_ESCAPE, i, pos
            out[i] = v
        else:
            out[i] = offset[t] + lo
    if x != RANS_L:  # ENT-8
        return ERR_FINAL_STATE, n, pos
    if pos != m:
        return ERR_TRAILING, n, pos
    return OK, n, pos
