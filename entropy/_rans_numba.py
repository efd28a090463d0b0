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


# ENT-6 search through a slot look-up table (the search rule is normative only in its result, ENT-6): bucket
# b = slot >> LUT_SHIFT of table t starts the scan at lut[t, b], the symbol whose interval holds the bucket's
# first slot; a forward scan then finds the s with cdf[t, s] <= slot < cdf[t, s + 1] (usually 0 or 1 steps).
# The scan terminates because cdf[t, n_t] = 2^16 > slot (ENT-T2).
#
# The decoding step (ENT-6, ENT-7, ENT-E3) is written out in each kernel below, once per rANS state: as a
# shared @njit helper, even with inline="always", the same loops measured 10-45 % slower (the helper's tuple
# of (status, value, state, position) defeats LLVM's register allocation of the state).
LUT_SHIFT = 8


@njit(cache=True, nogil=True)
def _initial_state(data, start):  # pragma: no cover - numba
    """ENT-5: the 4 little-endian bytes at data[start:start + 4] (the caller checked they exist)."""
    return (np.int64(data[start]) | (np.int64(data[start + 1]) << 8) | (np.int64(data[start + 2]) << 16)
            | (np.int64(data[start + 3]) << 24))


@njit(cache=True, nogil=True)
def decode_tile_kernel(data, start, end, r0, r1, c0, c1, table_index, cdf, lut, num_symbols, offset,
                       out):  # pragma: no cover - numba
    """Decode one rANS stream (ENT-5 ... ENT-8, ENT-E3) from data[start:end] (end - start >= 4, checked by
    the caller): the symbols of table_index[:, r0:r1, c0:c1] in C order, into out[:, r0:r1, c0:c1]. A whole
    stream of n symbols is the tile [0:1, 0:n] of arrays shaped [1, 1, n].

    table_index: int32 [C, H, W] (in range); cdf uint32 [T, W]; lut uint16 [T, 2^16 >> LUT_SHIFT]
    (``rans.search_lut``); num_symbols, offset int32 [T]; out int32 [C, H, W]. Returns (status, i, pos):
    symbols decoded and byte position (relative to start) at exit. The loop runs at most once per symbol,
    each renormalization reads at most 2 bytes and every read is bounds-checked, so it cannot hang or read
    out of bounds whatever ``data`` holds.
    """
    x = _initial_state(data, start)  # ENT-5
    pos = start + 4
    if x < RANS_L or x >= STATE_END:
        return ERR_INITIAL_STATE, 0, pos - start
    i = 0
    for ch in range(table_index.shape[0]):
        for r in range(r0, r1):
            row = table_index[ch, r, c0:c1]
            out_row = out[ch, r, c0:c1]
            for j in range(c1 - c0):
                t = row[j]
                slot = x & PREC_MASK  # ENT-6
                s = np.int64(lut[t, slot >> LUT_SHIFT])
                while cdf[t, s + 1] <= slot:
                    s += 1
                c = np.int64(cdf[t, s])
                x = (np.int64(cdf[t, s + 1]) - c) * (x >> PREC) + slot - c
                while x < RANS_L:  # ENT-7: at most twice (x >= 2^7 here)
                    if pos >= end:
                        return ERR_TRUNCATED, i, pos - start
                    x = (x << IO_BITS) | np.int64(data[pos])
                    pos += 1
                nt = np.int64(num_symbols[t])
                if s != nt - 1:
                    out_row[j] = offset[t] + s
                else:  # ENT-E3: a symbol with f = 1 at precision 16: the word is the slot, x -> x >> 16
                    raw = x & PREC_MASK
                    x = x >> PREC
                    while x < RANS_L:  # exactly twice
                        if pos >= end:
                            return ERR_TRUNCATED, i, pos - start
                        x = (x << IO_BITS) | np.int64(data[pos])
                        pos += 1
                    v = raw - 65536 if raw >= 32768 else raw
                    k = v - offset[t]
                    if k >= 0 and k < nt - 1:
                        return ERR_BAD_ESCAPE, i, pos - start
                    out_row[j] = v
                i += 1
    if x != RANS_L:  # ENT-8
        return ERR_FINAL_STATE, i, pos - start
    if pos != end:
        return ERR_TRAILING, i, pos - start
    return OK, i, pos - start


@njit(cache=True, nogil=True)
def decode_tile_pair_kernel(data, start_a, end_a, ra, ca, start_b, end_b, rb, cb, height, width, table_index,
                            cdf, lut, num_symbols, offset, out):  # pragma: no cover - numba
    """Decode two substreams whose tiles have the same shape (height × width at (ra, ca) and at (rb, cb)) in
    lockstep, each exactly as decode_tile_kernel: the two rANS states are independent, so the CPU overlaps
    their dependency chains (the interleaving of Giesen 2014, across substreams instead of inside one).
    Returns OK, or a failure status of either (the caller then decodes each alone for the exact error)."""
    xa = _initial_state(data, start_a)
    xb = _initial_state(data, start_b)
    pa = start_a + 4
    pb = start_b + 4
    if xa < RANS_L or xa >= STATE_END or xb < RANS_L or xb >= STATE_END:
        return ERR_INITIAL_STATE
    for ch in range(table_index.shape[0]):
        for r in range(height):
            row_a = table_index[ch, ra + r, ca : ca + width]
            row_b = table_index[ch, rb + r, cb : cb + width]
            out_a = out[ch, ra + r, ca : ca + width]
            out_b = out[ch, rb + r, cb : cb + width]
            for j in range(width):
                ta = row_a[j]
                tb = row_b[j]
                slot_a = xa & PREC_MASK
                slot_b = xb & PREC_MASK
                sa = np.int64(lut[ta, slot_a >> LUT_SHIFT])
                sb = np.int64(lut[tb, slot_b >> LUT_SHIFT])
                while cdf[ta, sa + 1] <= slot_a:
                    sa += 1
                while cdf[tb, sb + 1] <= slot_b:
                    sb += 1
                c_a = np.int64(cdf[ta, sa])
                c_b = np.int64(cdf[tb, sb])
                xa = (np.int64(cdf[ta, sa + 1]) - c_a) * (xa >> PREC) + slot_a - c_a
                xb = (np.int64(cdf[tb, sb + 1]) - c_b) * (xb >> PREC) + slot_b - c_b
                while xa < RANS_L:
                    if pa >= end_a:
                        return ERR_TRUNCATED
                    xa = (xa << IO_BITS) | np.int64(data[pa])
                    pa += 1
                while xb < RANS_L:
                    if pb >= end_b:
                        return ERR_TRUNCATED
                    xb = (xb << IO_BITS) | np.int64(data[pb])
                    pb += 1
                nt = np.int64(num_symbols[ta])
                if sa != nt - 1:
                    out_a[j] = offset[ta] + sa
                else:
                    raw = xa & PREC_MASK
                    xa = xa >> PREC
                    while xa < RANS_L:
                        if pa >= end_a:
                            return ERR_TRUNCATED
                        xa = (xa << IO_BITS) | np.int64(data[pa])
                        pa += 1
                    v = raw - 65536 if raw >= 32768 else raw
                    k = v - offset[ta]
                    if k >= 0 and k < nt - 1:
                        return ERR_BAD_ESCAPE
                    out_a[j] = v
                nt = np.int64(num_symbols[tb])
                if sb != nt - 1:
                    out_b[j] = offset[tb] + sb
                else:
                    raw = xb & PREC_MASK
                    xb = xb >> PREC
                    while xb < RANS_L:
                        if pb >= end_b:
                            return ERR_TRUNCATED
                        xb = (xb << IO_BITS) | np.int64(data[pb])
                        pb += 1
                    v = raw - 65536 if raw >= 32768 else raw
                    k = v - offset[tb]
                    if k >= 0 and k < nt - 1:
                        return ERR_BAD_ESCAPE
                    out_b[j] = v
    if xa != RANS_L or xb != RANS_L:  # ENT-8
        return ERR_FINAL_STATE
    if pa != end_a or pb != end_b:
        return ERR_TRAILING
    return OK
