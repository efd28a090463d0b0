"""ŷ coded as K independent rANS substreams, one per tile of the latent grid (rules ENT-S1 ... ENT-S4 in
docs/entropy.md; their byte offsets are carried by the container, BS-12 in docs/bitstream.md).

Substream k holds the symbols of tile k (tiles in raster order over the latent grid, ``tile`` latents per side,
the last row and column narrower), in C order over ``[C, rows of the tile, columns of the tile]``, coded as
an ordinary ENT-2 … ENT-8 stream. Substreams share nothing, so they can be coded and decoded in any order
and on any number of threads: the bytes and the values never depend on the thread count (``workers``).

Two implementations, identical in bytes, values and error messages: ``impl="reference"`` codes each tile
with the plain-Python coder of ``fxlic.entropy.rans`` (the definition), ``impl="numba"`` decodes tiles on
``workers`` threads with ``nogil`` kernels, two tiles of the same shape at a time in lockstep (two
independent rANS states per thread, so the CPU overlaps their dependency chains). ``impl=None``:
``rans.default_impl()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _rans_status as _st
from .rans import (
    EntropyDecodeError,
    _check_impl,
    _numba_kernels,
    _raise,
    _table_index_array,
    available_cpus,
    decode_symbols,
    encode_symbols,
    search_lut,
)
from .tables import TableSet

__all__ = ["Tile", "tile_bounds", "encode_substreams", "decode_substreams", "split_substreams", "join_substreams"]

Tile = tuple[int, int, int, int]
"""``(r0, r1, c0, c1)``: half-open rows and columns of one tile of the latent grid."""


def tile_bounds(height: int, width: int, tile: int) -> list[Tile]:
    """The tiles of a ``height`` × ``width`` latent grid cut into ``tile`` × ``tile`` squares from the top left,
    in raster order (ENT-S1); ``tile`` = 0 or ≥ both sides: one tile."""
    if tile <= 0:
        return [(0, height, 0, width)]
    return [(r, min(r + tile, height), c, min(c + tile, width))
            for r in range(0, height, tile) for c in range(0, width, tile)]


def _workers(workers: int | None) -> int:
    return available_cpus() if workers is None else max(1, int(workers))


def _map(function, jobs: Sequence, workers: int | None) -> list:
    """``[function(job) for job in jobs]`` on up to ``workers`` threads (the kernels release the GIL)."""
    n = min(len(jobs), _workers(workers))
    if n <= 1:
        return [function(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(function, jobs))


def _check_shapes(values_shape: tuple[int, ...], table_index: np.ndarray) -> None:
    if table_index.ndim != 3:
        raise ValueError(f"table_index must be C×H×W, got shape {table_index.shape}")
    if values_shape != table_index.shape:
        raise ValueError(f"values {values_shape} and table_index {table_index.shape} differ in shape")


# ---------------------------------------------------------------------------------------------------
# Container helpers
# ---------------------------------------------------------------------------------------------------


def join_substreams(substreams: Sequence[bytes]) -> tuple[bytes, tuple[int, ...]]:
    """The y stream (the substreams concatenated) and the offsets of substreams 1 … K − 1 (BS-12)."""
    offsets, position = [], 0
    for sub in substreams[:-1]:
        position += len(sub)
        offsets.append(position)
    return b"".join(substreams), tuple(offsets)


def split_substreams(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    """Inverse of :func:`join_substreams` (the offsets are checked by the container, BS-12)."""
    bounds = [0, *offsets, len(data)]
    return [bytes(data[a:b]) for a, b in zip(bounds, bounds[1:])]


# ---------------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------------


def encode_substreams(values: np.ndarray, table_index: np.ndarray, tables: TableSet, tile: int,
                      impl: str | None = None, workers: int | None = None) -> list[bytes]:
    """Code ``values[c, i, j]`` with table ``table_index[c, i, j]`` as one rANS stream per tile (ENT-S1, S2).

    Args:
        values: integer C×H×W, every value int16 (ENT-E1).
        table_index: integer C×H×W, entries in ``[0, T)``.
        tables: the tables.
        tile: tile side in latents (0: one tile).
        impl: ``"numba"`` or ``"reference"`` (identical bytes); None: ``rans.default_impl()``.
        workers: threads (None: every core); never changes a byte.

    Returns:
        The K substreams in raster order of the tiles.
    """
    impl = _check_impl(impl)
    values = np.asarray(values)
    table_index = np.asarray(table_index)
    _check_shapes(values.shape, table_index)
    tiles = tile_bounds(table_index.shape[1], table_index.shape[2], tile)

    def encode_tile(bounds: Tile) -> bytes:
        r0, r1, c0, c1 = bounds
        return encode_symbols(np.ascontiguousarray(values[:, r0:r1, c0:c1]),
                              np.ascontiguousarray(table_index[:, r0:r1, c0:c1]), tables, impl=impl)

    return _map(encode_tile, tiles, workers if impl == "numba" else 1)


# ---------------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------------


def _substream_error(k: int, count: int, message: str) -> EntropyDecodeError:
    return EntropyDecodeError(f"substream {k} of {count}: {message}")


def decode_substreams(substreams: Sequence[bytes], table_index: np.ndarray, tables: TableSet, tile: int,
                      impl: str | None = None, workers: int | None = None) -> np.ndarray:
    """Decode what :func:`encode_substreams` coded with the same ``table_index``, ``tables`` and ``tile``.

    Args:
        substreams: the K substreams (``split_substreams`` of the y stream); K must match the tile grid.
        table_index: integer C×H×W, entries in ``[0, T)``.
        tables: the tables.
        tile: tile side in latents (0: one tile).
        impl: ``"numba"`` or ``"reference"``; None: ``rans.default_impl()``.
        workers: threads (None: every core); never changes a value or the error reported.

    Returns:
        int32 C×H×W.

    Raises:
        EntropyDecodeError: a substream is not a valid stream for its tile (ENT-5 … ENT-8, ENT-E3). The error
            names the lowest-numbered bad substream, "substream k of K: …", whatever the thread count.
        ValueError: invalid ``table_index``, ``impl``, or a substream count that does not match the tiles.
    """
    impl = _check_impl(impl)
    table_index = np.asarray(table_index)
    _check_shapes(table_index.shape, table_index)
    channels, height, width = table_index.shape
    tiles = tile_bounds(height, width, tile)
    count = len(tiles)
    if len(substreams) != count:
        raise ValueError(f"{len(substreams)} substreams for {count} tiles of {tile} latents on {height}×{width}")
    ti = _table_index_array(table_index, tables).reshape(table_index.shape)
    if impl == "reference":
        out = np.empty(table_index.shape, dtype=np.int32)
        for k, ((r0, r1, c0, c1), sub) in enumerate(zip(tiles, substreams)):
            try:
                out[:, r0:r1, c0:c1] = decode_symbols(sub, ti[:, r0:r1, c0:c1], tables, impl="reference")
            except EntropyDecodeError as exc:
                raise _substream_error(k, count, str(exc)) from None
        return out
    return _decode_numba(substreams, ti, tables, tiles, workers)


def _decode_numba(substreams: Sequence[bytes], ti: np.ndarray, tables: TableSet, tiles: list[Tile],
                  workers: int | None) -> np.ndarray:
    nb = _numba_kernels()
    count = len(tiles)
    for k, sub in enumerate(substreams):
        if len(sub) < 4:
            raise _substream_error(k, count, f"rANS stream of {len(sub)} bytes is shorter than its 4-byte state")
    data = np.frombuffer(b"".join(bytes(s) for s in substreams), dtype=np.uint8)
    ends = np.cumsum([len(s) for s in substreams], dtype=np.int64)
    starts = ends - np.asarray([len(s) for s in substreams], dtype=np.int64)
    out = np.empty(ti.shape, dtype=np.int32)
    cdf, lut, num_symbols, offset = tables.cdf, search_lut(tables), tables.num_symbols, tables.offset

    def single(k: int) -> tuple[int, int, int]:
        r0, r1, c0, c1 = tiles[k]
        status, i, pos = nb.decode_tile_kernel(data, starts[k], ends[k], r0, r1, c0, c1, ti, cdf, lut, num_symbols,
                                               offset, out)
        return int(status), int(i), int(pos)

    # Jobs: same-shape tiles in pairs (lockstep, two rANS states per thread), in raster order; the rest alone.
    by_shape: dict[tuple[int, int], list[int]] = {}
    for k, (r0, r1, c0, c1) in enumerate(tiles):
        by_shape.setdefault((r1 - r0, c1 - c0), []).append(k)
    jobs: list[tuple[int, ...]] = []
    for group in by_shape.values():
        jobs += [tuple(group[j : j + 2]) for j in range(0, len(group), 2)]
    jobs.sort()

    def run(job: tuple[int, ...]) -> bool:
        if len(job) == 1:
            return single(job[0])[0] == _st.OK
        a, b = job
        ra, ra1, ca, ca1 = tiles[a]
        rb, _, cb, _ = tiles[b]
        status = nb.decode_tile_pair_kernel(data, starts[a], ends[a], ra, ca, starts[b], ends[b], rb, cb,
                                            ra1 - ra, ca1 - ca, ti, cdf, lut, num_symbols, offset, out)
        return int(status) == _st.OK

    failed = sorted(k for job, ok in zip(jobs, _map(run, jobs, workers)) if not ok for k in job)
    for k in failed:  # rare: find the lowest bad substream and its exact error, decoding each alone
        status, i, pos = single(k)
        if status != _st.OK:
            r0, r1, c0, c1 = tiles[k]
            try:
                _raise(status, i, ti.shape[0] * (r1 - r0) * (c1 - c0), pos, len(substreams[k]))
            except EntropyDecodeError as exc:
                raise _substream_error(k, count, str(exc)) from None
    return out
