"""rANS entropy coder over integer CDF tables (rules ENT-1 ... ENT-8, ENT-E1 ... ENT-E3 in docs/entropy.md).

Parameters: 32-bit state kept in ``[L, 2**31)`` with ``L = 2**23``; byte-wise renormalization; probability
precision 16 bits. The encoder runs over the symbols in reverse order, the decoder forwards. A stream is
the final encoder state as 4 little-endian bytes followed by the renormalization bytes in the order the
decoder reads them. (This is the classic byte-oriented rANS of F. Giesen's public-domain ``rans_byte.h``
with ``scale_bits = 16``; the rules are restated in full in docs/entropy.md.)

Why bytes and not 16-bit words: with a 32-bit state, 16-bit words force ``L <= 2**16 = 2**PRECISION``,
and the state then regularly drops to where ``x // f`` loses precision: measured 0.08-0.2 % larger
streams on Gaussian tables, against < 0.01 % (beyond the 4-byte flush) for ``L = 2**23``.

A value outside its table's direct range is coded as the table's ESC symbol followed by the value as a
16-bit two's-complement word, coded as a symbol of frequency 1 at precision 16 (ENT-E1 ... ENT-E3).

Two implementations, byte-identical: ``impl="reference"`` (plain Python ints, a line-by-line transcript
of the spec) and ``impl="numba"`` (the fast path, ``_rans_numba``). ``impl=None`` picks one at run time
(:func:`default_impl`): Numba unless ``FXLIC_PURE_NUMPY=1`` is set or Numba cannot be imported. Numba is
imported only when its kernels are first used, so the plain path runs on a machine without it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
import threading
import weakref
from bisect import bisect_right
from types import ModuleType

import numpy as np

from . import _rans_status as _st
from .tables import PRECISION, PROB_TOTAL, VALUE_MAX, VALUE_MIN, TableSet

__all__ = [
    "information_bits",
    "EntropyDecodeError",
    "RANS_L",
    "STATE_END",
    "IO_BITS",
    "PURE_NUMPY_ENV",
    "default_impl",
    "encode_symbols",
    "decode_symbols",
    "search_lut",
    "warm_up",
    "numba_ready",
    "available_cpus",
]

RANS_L = 1 << 23
"""Lower bound of the normalized state interval ``[RANS_L, STATE_END)`` (ENT-1)."""
STATE_END = 1 << 31
"""Exclusive upper bound of the normalized state (``RANS_L << IO_BITS``) (ENT-1)."""
IO_BITS = 8
"""Renormalization unit: one byte (ENT-1)."""
_IO_MASK = (1 << IO_BITS) - 1
_PREC_MASK = (1 << PRECISION) - 1
_IMPLS = ("numba", "reference")
PURE_NUMPY_ENV = "FXLIC_PURE_NUMPY"
"""Environment variable: ``1`` selects the plain (no-Numba) rANS coder wherever ``impl`` is left unset."""

assert RANS_L % PROB_TOTAL == 0 and STATE_END == RANS_L << IO_BITS


def _numba_kernels() -> ModuleType:
    """The Numba kernels, imported on first use (numba's import and JIT cost is paid only here)."""
    from . import _rans_numba as nb

    assert (nb.RANS_L, nb.STATE_END, nb.PREC, nb.IO_BITS, nb.LUT_SHIFT) == (RANS_L, STATE_END, PRECISION, IO_BITS,
                                                                           LUT_SHIFT)
    return nb


LUT_SHIFT = 8
"""Slot bits dropped to index the search table of the Numba decoder (``search_lut``): 256 buckets per table."""
_LUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def search_lut(tables: TableSet) -> np.ndarray:
    """uint16 ``[T, 2^16 >> LUT_SHIFT]``: ``lut[t, b]`` = the symbol index s whose interval
    ``[cdf[t, s], cdf[t, s + 1])`` holds slot ``b << LUT_SHIFT``, the first slot of bucket b.

    The Numba decoder starts its ENT-6 search there and scans forward (the answer for any slot of the
    bucket is ≥ it), which replaces a binary search of ~7 dependent loads by one load and usually no step
    (ENT-6: the search rule is normative only in its result). Built once per table set (cached).
    """
    lut = _LUTS.get(tables)
    if lut is None:
        cdf = tables.cdf.astype(np.int64)
        firsts = np.arange(1 << (PRECISION - LUT_SHIFT), dtype=np.int64) << LUT_SHIFT
        lut = np.empty((tables.num_tables, firsts.size), dtype=np.uint16)
        for t in range(tables.num_tables):  # rows are strictly increasing up to n_t, then padded with 2^16
            lut[t] = np.searchsorted(cdf[t], firsts, side="right") - 1
        lut.setflags(write=False)
        _LUTS[tables] = lut
    return lut


_WARM = threading.Event()
_WARM_LOCK = threading.Lock()
_warm_thread: threading.Thread | None = None


def _load_kernels() -> None:
    """Import the Numba kernels and run each once on empty input: loads their cached machine code (or compiles
    it) and initializes Numba's CPU target, about 0.3 s of a process's first rANS call."""
    try:
        nb = _numba_kernels()
        empty = np.zeros((1, 1, 0), dtype=np.int32)
        # the argument types of the real calls, read-only flags included (Numba specializes on them): table
        # arrays are read-only (TableSet, search_lut), so is the stream (np.frombuffer of bytes)
        tables = (np.zeros((1, 3), dtype=np.uint32), np.zeros((1, 1 << (PRECISION - LUT_SHIFT)), dtype=np.uint16),
                  np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int32))
        for array in tables:
            array.setflags(write=False)
        state = np.frombuffer(bytes([0, 0, 0x80, 0] * 2), dtype=np.uint8)  # two streams of the initial state L
        nb.decode_tile_kernel(state, 0, 4, 0, 1, 0, 0, empty, *tables, empty)
        nb.decode_tile_pair_kernel(state, 0, 4, 0, 0, 4, 8, 0, 0, 1, 0, empty, *tables, empty)
        nb.encode_kernel(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32), tables[0], tables[2], tables[3])
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time: the first real call raises or compiles
        pass
    finally:
        _WARM.set()


def warm_up() -> None:
    """Start loading the Numba kernels in a background thread (once per process; no-op without Numba or with
    ``FXLIC_PURE_NUMPY=1``), so that Numba's start-up overlaps the transforms that precede the first rANS call
    (the codec calls this when it is created). Changes no result: a call before the warm-up ends waits for it
    inside Numba."""
    global _warm_thread
    if default_impl() != "numba":
        return
    with _WARM_LOCK:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_load_kernels, name="fxlic-numba-warm-up", daemon=True)
            _warm_thread.start()
            # a process that ends early (a bad stream) lets the loading finish rather than stop it mid-compile
            atexit.register(_warm_thread.join)


def numba_ready() -> bool:
    """True once the kernels are loaded (by :func:`warm_up` or a first call): a call now costs no start-up."""
    if not _WARM.is_set() and "fxlic.entropy._rans_numba" in sys.modules:
        nb = sys.modules["fxlic.entropy._rans_numba"]
        # the module may be half-imported by the warm-up thread right now: its kernels may not exist yet
        kernels = [getattr(nb, name, None) for name in ("decode_tile_kernel", "encode_kernel")]
        if all(getattr(kernel, "signatures", None) for kernel in kernels):
            _WARM.set()  # loaded by real calls
    return _WARM.is_set()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_impl() -> str:
    """``"reference"`` when ``FXLIC_PURE_NUMPY=1`` or Numba is not importable, else ``"numba"``.

    Both give identical bytes and values (tests/test_rans.py), so the choice only affects speed.
    Read on every call, so that a process can switch (tests do).
    """
    if os.environ.get(PURE_NUMPY_ENV, "") == "1":
        return "reference"
    try:  # whether Numba is installed, without importing it (0.15 s): it is imported when the kernels are used
        found = importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        found = False
    return "numba" if found else "reference"


class EntropyDecodeError(ValueError):
    """The compressed data is not a valid stream for these tables and table indices."""


def _check_impl(impl: str | None) -> str:
    """The implementation to run: ``impl``, or :func:`default_impl` for None."""
    if impl is None:
        return default_impl()
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    return impl


def _table_index_array(table_index: np.ndarray, tables: TableSet) -> np.ndarray:
    """Flatten (C order) and range-check the table indices; int32 ``[n]``."""
    ti = np.asarray(table_index)
    if ti.dtype.kind not in "iu":
        raise ValueError(f"table_index must be an integer array, got dtype {ti.dtype}")
    flat = ti.reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= tables.num_tables):
        raise ValueError(f"table_index out of range [0, {tables.num_tables})")
    return np.ascontiguousarray(flat, dtype=np.int32)


# ---------------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------------


def information_bits(values: np.ndarray, table_index: np.ndarray, tables: TableSet) -> np.ndarray:
    """Bits per symbol under the integer tables, what an ideal coder spends (float64, same shape as ``values``):
    −log2(f / 2^16) for a direct symbol; for an escaped one (ENT-E) the ESC symbol plus its 16-bit word.
    The real stream adds only the rANS flush and byte granularity (ENT-4)."""
    values = np.asarray(values, dtype=np.int64)
    table_index = np.asarray(table_index, dtype=np.int64)
    count = tables.num_symbols.astype(np.int64)[table_index]
    index = values - tables.offset.astype(np.int64)[table_index]
    direct = (index >= 0) & (index < count - 1)
    index = np.where(direct, index, count - 1)
    cdf = tables.cdf.astype(np.int64)
    freq = cdf[table_index, index + 1] - cdf[table_index, index]
    return PRECISION - np.log2(freq) + np.where(direct, 0, 16)


def encode_symbols(values: np.ndarray, table_index: np.ndarray, tables: TableSet, impl: str | None = None) -> bytes:
    """Encode ``values[i]`` with table ``table_index[i]``.

    Args:
        values: integer array, any shape, every value in int16 ``[-32768, 32767]``; coded in C order.
        table_index: integer array of the same shape, entries in ``[0, T)``.
        tables: the tables.
        impl: ``"numba"`` (fast) or ``"reference"`` (plain Python); the bytes are identical. None:
            :func:`default_impl`.

    Returns:
        The stream (ENT-4), at least 4 bytes (an empty input gives the 4-byte initial state).

    Raises:
        ValueError: shape mismatch, non-integer input, value outside int16, table index out of range.
    """
    impl = _check_impl(impl)
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise ValueError(f"values must be an integer array, got dtype {v.dtype}")
    if v.shape != np.shape(table_index):
        raise ValueError(f"values {v.shape} and table_index {np.shape(table_index)} differ in shape")
    flat = v.reshape(-1)
    if flat.size and (int(flat.min()) < VALUE_MIN or int(flat.max()) > VALUE_MAX):
        raise ValueError("values must lie in the int16 range [-32768, 32767] (ENT-E1)")
    vals = np.ascontiguousarray(flat, dtype=np.int32)
    ti = _table_index_array(table_index, tables)
    if impl == "reference":
        return _encode_reference(vals.tolist(), ti.tolist(), tables)
    buf, start = _numba_kernels().encode_kernel(vals, ti, tables.cdf, tables.num_symbols, tables.offset)
    return buf[start:].tobytes()


def _encode_reference(values: list[int], table_index: list[int], tables: TableSet) -> bytes:
    """ENT-2 ... ENT-4 and ENT-E2 with Python ints."""
    cdf = tables.cdf.tolist()
    nsym = tables.num_symbols.tolist()
    off = tables.offset.tolist()
    out = bytearray()  # bytes in emission order; the stream is this reversed

    def put(x: int, c: int, f: int) -> int:
        # ENT-3: renormalize so that the step below lands in [L, 2^31), then the rANS step.
        x_max = ((RANS_L >> PRECISION) << IO_BITS) * f
        while x >= x_max:
            out.append(x & _IO_MASK)
            x >>= IO_BITS
        return ((x // f) << PRECISION) + (x % f) + c

    # per table: its CDF row, the ESC symbol's index and the value offset (the loop below is the plain coder of
    # small images, so it is kept tight: put() is written inline for direct symbols)
    params = [(row, n - 1, o) for row, n, o in zip(cdf, nsym, off)]
    x_max_per_f = (RANS_L >> PRECISION) << IO_BITS
    append = out.append
    x = RANS_L  # ENT-2
    for i in range(len(values) - 1, -1, -1):
        row, esc, base = params[table_index[i]]
        v = values[i]
        k = v - base
        if 0 <= k < esc:
            c = row[k]
            f = row[k + 1] - c
            x_max = x_max_per_f * f  # ENT-3, as in put()
            while x >= x_max:
                append(x & _IO_MASK)
                x >>= IO_BITS
            q, r = divmod(x, f)
            x = (q << PRECISION) + r + c
        else:  # ENT-E2: escape word first (decoded second), then ESC
            x = put(x, v & _PREC_MASK, 1)
            x = put(x, row[esc], PROB_TOTAL - row[esc])
    out += x.to_bytes(4, "little")[::-1]  # ENT-4: reversed below, so the state leads, little-endian
    out.reverse()
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------------

_MESSAGES = {
    _st.ERR_TRUNCATED: "truncated: stream ended while decoding symbol {i} of {n}",
    _st.ERR_BAD_ESCAPE: "invalid escape at symbol {i}: escaped value lies in the table's direct range",
    _st.ERR_FINAL_STATE: "final state mismatch after {n} symbols: stream corrupted or wrong tables",
    _st.ERR_TRAILING: "{extra} unread bytes after {n} symbols: stream corrupted or wrong symbol count",
    _st.ERR_INITIAL_STATE: "initial state outside [2^23, 2^31): not a valid rANS stream",
}


def _raise(status: int, i: int, n: int, pos: int, m: int) -> None:
    raise EntropyDecodeError(_MESSAGES[status].format(i=i, n=n, extra=m - pos))


def decode_symbols(data: bytes, table_index: np.ndarray, tables: TableSet, impl: str | None = None) -> np.ndarray:
    """Decode the values coded by :func:`encode_symbols` with the same ``table_index`` and ``tables``.

    Args:
        data: the stream (bytes-like).
        table_index: integer array (any shape) of entries in ``[0, T)``; its size is the symbol count.
        tables: the tables.
        impl: ``"numba"`` or ``"reference"``; None: :func:`default_impl`.

    Returns:
        int32 array with the shape of ``table_index``, values in int16 range.

    Raises:
        EntropyDecodeError: the data is not a valid stream (short, truncated, corrupted, trailing bytes,
            wrong tables or symbol count) -- detected by ENT-5 ... ENT-8 and ENT-E3. Never another
            exception, a hang or an out-of-bounds read, whatever ``data`` holds.
        ValueError: invalid ``table_index`` or ``impl`` (caller errors, not data errors).
    """
    impl = _check_impl(impl)
    ti = _table_index_array(table_index, tables)
    shape = np.shape(table_index)
    buf = bytes(data)
    if len(buf) < 4:
        raise EntropyDecodeError(f"rANS stream of {len(buf)} bytes is shorter than its 4-byte state")
    n = ti.size
    if impl == "reference":
        out_list, status, i, pos = _decode_reference(buf, ti.tolist(), tables)
        if status != _st.OK:
            _raise(status, i, n, pos, len(buf))
        return np.asarray(out_list, dtype=np.int32).reshape(shape)
    out = np.empty(n, dtype=np.int32)
    arr = np.frombuffer(buf, dtype=np.uint8)
    # the whole stream is one tile [0:1, 0:n] of [1, 1, n] arrays (one kernel for streams and substreams)
    status, i, pos = _numba_kernels().decode_tile_kernel(arr, 0, len(buf), 0, 1, 0, n, ti.reshape(1, 1, n), tables.cdf,
                                                         search_lut(tables), tables.num_symbols, tables.offset,
                                                         out.reshape(1, 1, n))
    if status != _st.OK:
        _raise(int(status), int(i), n, int(pos), len(buf))
    return out.reshape(shape)


def _decode_reference(data: bytes, table_index: list[int], tables: TableSet) -> tuple[list[int], int, int, int]:
    """ENT-5 ... ENT-8 and ENT-E3 with Python ints; returns (values, status, symbol index, byte pos).

    The plain coder of small images (``fxlic.codec``: the first 2^18 symbols of a process), so its loop is kept
    tight: ENT-6's search is a binary search of the row (``bisect``; the spec fixes only its result) and ENT-7's
    renormalization is written inline."""
    # per table: its CDF row (cut after the ESC symbol's end), the ESC symbol's index and the value offset
    params = [(row[: n + 1], n - 1, o)
              for row, n, o in zip(tables.cdf.tolist(), tables.num_symbols.tolist(), tables.offset.tolist())]
    m = len(data)
    out: list[int] = []
    append = out.append
    x = int.from_bytes(data[:4], "little")  # ENT-5
    pos = 4
    if not RANS_L <= x < STATE_END:
        return out, _st.ERR_INITIAL_STATE, 0, pos
    for i, t in enumerate(table_index):
        row, esc, base = params[t]
        # ENT-6: the unique s with cdf[s] <= slot < cdf[s+1] (cdf[0] = 0 <= slot: bisect_right finds s + 1)
        slot = x & _PREC_MASK
        s = bisect_right(row, slot) - 1
        c = row[s]
        x = (row[s + 1] - c) * (x >> PRECISION) + slot - c
        while x < RANS_L:  # ENT-7
            if pos >= m:
                return out, _st.ERR_TRUNCATED, i, pos
            x = (x << IO_BITS) | data[pos]
            pos += 1
        if s < esc:
            append(base + s)
            continue
        # ENT-E3: ESC -> one 16-bit word, coded with frequency 1 and start = the word itself.
        raw = x & _PREC_MASK
        x = (x >> PRECISION) + (x & _PREC_MASK) - raw  # ENT-6 with f = 1, c = raw
        while x < RANS_L:  # ENT-7
            if pos >= m:
                return out, _st.ERR_TRUNCATED, i, pos
            x = (x << IO_BITS) | data[pos]
            pos += 1
        v = raw - 0x10000 if raw >= 0x8000 else raw
        if 0 <= v - base < esc:
            return out, _st.ERR_BAD_ESCAPE, i, pos
        append(v)
    if x != RANS_L:  # ENT-8
        return out, _st.ERR_FINAL_STATE, len(table_index), pos
    if pos != m:
        return out, _st.ERR_TRAILING, len(table_index), pos
    return out, _st.OK, len(table_index), pos
