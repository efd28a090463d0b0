"""Parallel rANS substreams (docs/entropy.md ENT-S1 ... ENT-S4, docs/bitstream.md BS-12).

The fast path (``impl="numba"``: threads, two tiles in lockstep per thread, the slot look-up table) is
checked against the plain reference (``impl="reference"``: each tile coded by the plain-Python coder),
never the other way round; bytes, values and errors must not depend on the tile size's effect on threads,
the thread count or the order the tiles finish in.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxlic.entropy import decode_symbols, encode_symbols, gaussian_pmf, table_set_from_pmfs
from fxlic.entropy.rans import EntropyDecodeError, search_lut
from fxlic.entropy.substreams import (
    decode_substreams,
    encode_substreams,
    join_substreams,
    split_substreams,
    tile_bounds,
)


def _tables():
    """16 Gaussian tables, σ from 0.2 to 40 (large ones have long rows, small ones frequency-1 tails)."""
    pmfs, offsets = [], []
    for sigma in np.geomspace(0.2, 40.0, 8):
        for mean in (0.0, 0.5):
            pmf, offset = gaussian_pmf(float(sigma), mean, max_half_width=60)
            pmfs.append(pmf)
            offsets.append(offset)
    return table_set_from_pmfs(pmfs, offsets)


TABLES = _tables()


def _data(shape: tuple[int, int, int], seed: int, escapes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Values drawn from their tables (plus some escapes: values far outside the direct range)."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, TABLES.num_tables, shape).astype(np.int32)
    sigma = np.geomspace(0.2, 40.0, 8)[table // 2]
    values = np.round(rng.normal(0.5 * (table % 2), sigma)).astype(np.int32)
    if escapes:
        hits = rng.random(shape) < 0.01
        values[hits] = rng.integers(-32768, 32768, int(hits.sum()))
    return values, table


def test_tile_bounds_cover_the_grid_in_raster_order() -> None:
    """ENT-S1: tiles from the top left, raster order, the last row and column narrower."""
    assert tile_bounds(5, 7, 3) == [(0, 3, 0, 3), (0, 3, 3, 6), (0, 3, 6, 7), (3, 5, 0, 3), (3, 5, 3, 6),
                                    (3, 5, 6, 7)]
    assert tile_bounds(5, 7, 0) == tile_bounds(5, 7, 8) == [(0, 5, 0, 7)]


def test_search_lut_starts_every_search_at_or_below_the_answer() -> None:
    """ENT-6 through the look-up table: lut[t, b] is the symbol whose interval holds slot b·256, so a forward
    scan from it finds the unique s with cdf[s] <= slot < cdf[s+1] for every slot of the bucket."""
    lut = search_lut(TABLES)
    assert lut is search_lut(TABLES)  # built once per table set
    cdf = TABLES.cdf.astype(np.int64)
    for t in range(TABLES.num_tables):
        slots = np.arange(1 << 16)
        answer = np.searchsorted(cdf[t, : TABLES.num_symbols[t] + 1], slots, side="right") - 1
        start = lut[t, slots >> 8].astype(np.int64)
        assert np.all(start <= answer)
        assert np.all(cdf[t, start] <= (slots >> 8) << 8)


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 4), height=st.integers(1, 23), width=st.integers(1, 23),
       tile=st.integers(0, 12), workers=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       escapes=st.booleans())
def test_substreams_match_the_reference_for_any_tile_and_thread_count(channels, height, width, tile, workers,
                                                                      seed, escapes) -> None:
    """ENT-S1 ... S3: the fast path writes the reference's bytes and decodes the reference's values, for any
    grid, tile size and thread count; substream k is the tile's symbols coded as one ENT-2 … ENT-8 stream."""
    values, table = _data((channels, height, width), seed, escapes)
    reference = encode_substreams(values, table, TABLES, tile, impl="reference")
    tiles = tile_bounds(height, width, tile)
    assert len(reference) == len(tiles)
    r0, r1, c0, c1 = tiles[-1]
    assert reference[-1] == encode_symbols(values[:, r0:r1, c0:c1], table[:, r0:r1, c0:c1], TABLES, impl="reference")
    assert encode_substreams(values, table, TABLES, tile, impl="numba", workers=workers) == reference
    np.testing.assert_array_equal(decode_substreams(reference, table, TABLES, tile, impl="reference"), values)
    np.testing.assert_array_equal(decode_substreams(reference, table, TABLES, tile, impl="numba", workers=workers),
                                  values)


def test_one_tile_is_the_single_stream() -> None:
    """A grid of one tile codes exactly the single stream of ENT-M1 (versions 1 and 2)."""
    values, table = _data((3, 9, 11), 1)
    assert encode_substreams(values, table, TABLES, 0) == [encode_symbols(values, table, TABLES)]
    np.testing.assert_array_equal(decode_substreams([encode_symbols(values, table, TABLES)], table, TABLES, 16),
                                  decode_symbols(encode_symbols(values, table, TABLES), table, TABLES))


def test_join_and_split_are_inverse() -> None:
    """BS-12: the y stream is the substreams concatenated; the offsets of substreams 1 … K − 1 locate them."""
    subs = [b"abcd", b"efghij", b"klmn"]
    data, offsets = join_substreams(subs)
    assert (data, offsets) == (b"abcdefghijklmn", (4, 10))
    assert split_substreams(data, offsets) == subs


def _bad(substreams: list[bytes], k: int, how: str) -> list[bytes]:
    out = list(substreams)
    if how == "truncated":
        out[k] = out[k][:-1]
    elif how == "extended":
        out[k] = out[k] + b"\x00"
    elif how == "short":
        out[k] = out[k][:3]
    elif how == "swapped":
        out[k], out[k + 1] = out[k + 1], out[k]
    else:  # "state": an initial state below L
        out[k] = b"\x00\x00\x00\x00" + out[k][4:]
    return out


@pytest.mark.parametrize("how, message", [
    ("truncated", "truncated|final state mismatch"),
    ("extended", "unread bytes|final state mismatch"),
    ("short", "shorter than its 4-byte state"),
    ("swapped", "truncated|final state mismatch|unread bytes|invalid escape"),
    ("state", "initial state outside"),
])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_bad_substream_names_the_lowest_bad_one_for_any_thread_count(how, message, workers) -> None:
    """ENT-S4: a damaged substream raises EntropyDecodeError naming the lowest-numbered bad substream
    ("substream k of K: …"), the same message from the reference and the fast path, whatever the thread count
    (even when a later substream is damaged too, and when the bad one shares a lockstep pair)."""
    values, table = _data((2, 20, 20), 7)
    subs = encode_substreams(values, table, TABLES, 5)
    assert len(subs) == 16
    for k in (0, 5, 14):
        bad = _bad(subs, k, how)
        if how != "swapped":
            bad = _bad(bad, 15, "truncated")  # a second bad substream after it
        with pytest.raises(EntropyDecodeError, match=f"^substream {k} of 16: .*({message})") as reference:
            decode_substreams(bad, table, TABLES, 5, impl="reference")
        with pytest.raises(EntropyDecodeError) as fast:
            decode_substreams(bad, table, TABLES, 5, impl="numba", workers=workers)
        assert str(fast.value) == str(reference.value)


def test_substream_count_must_match_the_tiles() -> None:
    values, table = _data((1, 8, 8), 3)
    subs = encode_substreams(values, table, TABLES, 4)
    with pytest.raises(ValueError, match="3 substreams for 4 tiles"):
        decode_substreams(subs[:3], table, TABLES, 4)


# ---------------------------------------------------------------------------------------------------
# In the codec: streams and pixels for any image size, substream tile, transform tile and thread count
# ---------------------------------------------------------------------------------------------------
def _single_stream_twin(bitstream: bytes, result, tables) -> bytes:
    """The same image as a single-y-stream file (what ``substream_tile=0`` writes, format version 1 or 2)."""
    from dataclasses import replace

    from fxlic.entropy.bitstream import pack, unpack

    header, streams = unpack(bitstream)
    y = encode_symbols(result.y_hat.astype(np.int32) - result.y_mean, result.y_table_index, tables)
    return pack(replace(header, substream_tile=0, substream_offsets=()), [streams[0], y])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 200), width=st.integers(1, 200), substream_tile=st.sampled_from([0, 64, 128]),
       tile=st.sampled_from([0, 64, 128, 256]), workers=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_codec_streams_and_pixels_do_not_depend_on_threads_or_tiles(codec, height, width, substream_tile,
                                                                    tile, workers, seed) -> None:
    """BS-12 in the codec: the encoder writes K = the tile grid's size substreams (version 4 for K ≥ 2, else the
    single stream of version 1); the y stream equals the reference coder's substreams whatever the threads and
    the transform tile; decoding it on any number of threads gives the pixels that the single-stream twin
    gives through the plain reference coder and whole-image transforms."""
    from fxlic.codec import Codec
    from fxlic.entropy.bitstream import substream_count, unpack

    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(128, 60, (height, width, 3)), 0, 255).astype(np.uint8)
    encoder = Codec(codec.model, tile=tile, workers=workers, substream_tile=substream_tile)
    result = encoder.encode(pixels)
    header, streams = unpack(result.bitstream)
    y_tables = codec.model.y_tables
    count = substream_count(width, height, substream_tile)
    assert header.substreams == count and header.version == (4 if count >= 2 else 1)
    latent_tile = header.substream_tile // 16
    symbols = result.y_hat.astype(np.int32) - result.y_mean
    assert streams[1] == b"".join(encode_substreams(symbols, result.y_table_index, y_tables, latent_tile,
                                                    impl="reference"))
    decoder = Codec(codec.model, tile=(tile + 64) % 320, workers=4 - workers)
    decoded = decoder.decode(result.bitstream)
    plain = Codec(codec.model, tile=0, workers=1, entropy_impl="reference")
    np.testing.assert_array_equal(decoded, plain.decode(_single_stream_twin(result.bitstream, result, y_tables)))


def _synthetic(height: int = 320, width: int = 384) -> np.ndarray:
    """A deterministic test image with edges, gradients and texture (no RNG: the same on every NumPy)."""
    yy, xx = np.mgrid[:height, :width].astype(np.int64)
    r = (xx * 255 // (width - 1) + 40 * ((yy // 32) % 2)) % 256
    g = (yy * 255 // (height - 1) + ((xx * yy) // 97) % 23) % 256
    b = (((xx * 131 + yy * 71) ^ (xx * yy)) & 63) + 96 * (((xx - 192) ** 2 + (yy - 160) ** 2) < 90**2)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def test_old_format_stream_still_decodes(codec) -> None:
    """A version-1 stream of a 4-tile image written by the encoder before substreams existed (tests/data, by
    commit 964a6b5) decodes to the same pixels; ``substream_tile=0`` still writes it byte for byte, and the
    version-4 stream of the same image decodes to the same pixels."""
    import hashlib
    import json
    from pathlib import Path

    data = Path(__file__).parent / "data"
    meta = json.loads((data / "synthetic-320x384-v1.json").read_text())
    old = (data / "synthetic-320x384-v1.fxl").read_bytes()
    assert old[4] == 1 and meta["model"] == f"{codec.model.name} q{codec.model.quality}"
    assert hashlib.sha256(codec.decode(old).tobytes()).hexdigest() == meta["decoded_sha256"]
    pixels = _synthetic()
    assert codec.encode(pixels, substream_tile=0).bitstream == old
    new = codec.encode(pixels).bitstream
    assert new[4] == 4
    assert hashlib.sha256(codec.decode(new).tobytes()).hexdigest() == meta["decoded_sha256"]


@pytest.fixture(scope="module")
def substream_file(tmp_path_factory, codec):
    """A real version-4 file: 192 × 130 pixels in 64-pixel substream tiles (3 × 3 = 9 substreams)."""
    rng = np.random.default_rng(5)
    pixels = np.clip(rng.normal(128, 50, (130, 192, 3)), 0, 255).astype(np.uint8)
    return codec.encode(pixels, substream_tile=64).bitstream


def _with_offsets(bitstream: bytes, offsets: tuple[int, ...]) -> bytes:
    """The file with its substream offsets overwritten and the CRC recomputed (bypassing pack's checks)."""
    import struct
    import zlib

    from fxlic.entropy.bitstream import unpack

    header, streams = unpack(bitstream)
    table = 31 + len(header.model_name) + 1 + 1 + 2 + 1 + 4 * len(streams)
    body = bytearray(bitstream[:-4])
    body[table : table + 4 * len(offsets)] = b"".join(struct.pack("<I", o) for o in offsets)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _truncated_substream(bitstream: bytes, k: int) -> bytes:
    """A valid container whose substream k lost its last byte (offsets and lengths follow)."""
    from dataclasses import replace

    from fxlic.entropy.bitstream import pack, unpack

    header, streams = unpack(bitstream)
    subs = split_substreams(streams[1], header.substream_offsets)
    subs[k] = subs[k][:-1]
    y, offsets = join_substreams(subs)
    return pack(replace(header, substream_offsets=offsets), [streams[0], y])


@pytest.mark.parametrize("case, message", [
    ("outside", "substream 8 offset 100000 lies outside the"),
    ("order", "substream 3 offset .* precedes substream 2 offset .*: substreams out of order"),
    ("overlap", "substream 3 offset .* overlaps substream 2"),
    ("truncated", "corrupted entropy-coded data: substream 4 of 9: (truncated|final state mismatch)"),
])
def test_bad_substreams_fail_in_one_line_and_write_nothing(tmp_path, capsys, substream_file, case, message) -> None:
    """BS-12 / ENT-S4 through ``fxlic decode``: an offset outside the stream, out-of-order or overlapping
    substreams, a truncated substream: one line ``fxlic: error: …``, exit code 1, no output file."""
    import re

    from fxlic.cli import main
    from fxlic.entropy.bitstream import unpack

    offsets = list(unpack(substream_file)[0].substream_offsets)
    if case == "outside":
        offsets[7] = 100000
    elif case == "order":
        offsets[1], offsets[2] = offsets[2], offsets[1]
    elif case == "overlap":
        offsets[2] = offsets[1] + 2
    bad = _truncated_substream(substream_file, 4) if case == "truncated" else _with_offsets(substream_file,
                                                                                            tuple(offsets))
    source, target = tmp_path / "bad.fxl", tmp_path / "bad.png"
    source.write_bytes(bad)
    capsys.readouterr()
    assert main(["decode", str(source), "-o", str(target)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fxlic: error: ") and re.search(message, err[0]), err
    assert not target.exists() and list(tmp_path.iterdir()) == [source]


def test_info_reports_substreams(tmp_path, capsys, substream_file) -> None:
    """``fxlic info`` names the substream tile and K (1 and 0 for a single y stream)."""
    import json

    from fxlic.cli import main

    path = tmp_path / "s.fxl"
    path.write_bytes(substream_file)
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["substreams"], info["substream_tile"]) == (4, 9, 64)


def test_numba_warm_up_and_the_plain_z_decoder_change_no_pixel(codec, monkeypatch) -> None:
    """The codec codes small streams with the plain coder while Numba's kernels are not loaded
    (fxlic.codec.PLAIN_MAX), and starts loading them in a background thread for an image that will need them
    (given a second CPU): the same bytes and pixels either way."""
    from fxlic import codec as codec_module
    from fxlic.entropy import rans

    if rans.default_impl() != "numba":
        pytest.skip("Numba switched off")
    rans.warm_up()
    rans._warm_thread.join()
    assert rans.numba_ready()
    rng = np.random.default_rng(9)
    pixels = np.clip(rng.normal(120, 40, (130, 200, 3)), 0, 255).astype(np.uint8)
    stream = codec.encode(pixels).bitstream
    fresh = codec_module.Codec(codec.model)
    assert fresh._coder(100) is None
    monkeypatch.setattr(codec_module, "numba_ready", lambda: False)  # as in a fresh process
    monkeypatch.setattr(codec_module, "_plain_left", [codec_module.PLAIN_MAX])
    assert fresh._coder(100) == "reference" and fresh._coder(codec_module.PLAIN_MAX) is None  # over the budget
    assert codec_module._plain_left == [codec_module.PLAIN_MAX - 100]
    assert codec_module.Codec(codec.model, entropy_impl="numba")._coder(100) == "numba"
    codec_module._plain_left[0] = codec_module.PLAIN_MAX
    assert fresh.encode(pixels).bitstream == stream
    np.testing.assert_array_equal(fresh.decode(stream), codec.decode(stream))
