"""Tests of fxlic.entropy.bitstream (rules BS-1 ... BS-12 in docs/bitstream.md)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.entropy.bitstream import (
    ARCH_CHARM,
    ARCH_HYPERPRIOR,
    COLOUR_GRAY,
    FORMAT_VERSION,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    BitstreamError,
    StreamHeader,
    pack,
    unpack,
)

HASH = bytes(range(16))
HEADER = StreamHeader(model_name="mbt2018-mean-q3", model_hash=HASH, quality=3, width=768, height=512)
STREAMS = [b"\x00\x00\x80\x00z", b"\x01\x02\x03\x04yyyy"]
CHARM_HEADER = StreamHeader(model_name="charm", model_hash=HASH, quality=4, width=64, height=48,
                            architecture=ARCH_CHARM)
CHARM_STREAMS = [b"zzzz", b"y0y0", b"y1y1y", b"y2"]


def _recrc(body: bytes) -> bytes:
    """Append a valid CRC, so that a test reaches the check behind the CRC (BS-9)."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_layout() -> None:
    """BS-1 ... BS-8: the exact byte layout of a small file."""
    data = pack(HEADER, STREAMS)
    name = HEADER.model_name.encode()
    expected = (
        b"FXLC"
        + bytes([1, 3])
        + struct.pack("<II", 768, 512)
        + HASH
        + bytes([len(name)])
        + name
        + bytes([2])
        + struct.pack("<II", 5, 8)
        + STREAMS[0]
        + STREAMS[1]
    )
    assert data == _recrc(expected)
    assert unpack(data) == (HEADER, STREAMS)


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255),
    model_hash=st.binary(min_size=16, max_size=16),
    quality=st.integers(0, 255),
    width=st.integers(1, MAX_SIDE),
    height=st.integers(1, MAX_SIDE),
    streams=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=16),
    colour=st.sampled_from([0, COLOUR_GRAY]),
    architecture=st.sampled_from([ARCH_HYPERPRIOR, ARCH_CHARM]),
)
def test_round_trip(name: str, model_hash: bytes, quality: int, width: int, height: int, streams: list[bytes],
                    colour: int, architecture: str) -> None:
    """pack/unpack round trip for every valid header (BS-2 ... BS-5, BS-10, BS-11) and stream list (BS-6, BS-7);
    BS-11 "a writer uses the lowest version that can say what it has to": the version byte is 1 (RGB
    hyperprior), 2 (gray hyperprior) or 3 (any other architecture), and the bytes re-pack identically."""
    if width * height > MAX_PIXELS:
        height = MAX_PIXELS // width
    h = StreamHeader(name, model_hash, quality, width, height, colour, architecture)
    data = pack(h, streams)
    assert unpack(data) == (h, streams)
    assert data[4] == (3 if architecture != ARCH_HYPERPRIOR else 1 + colour)
    assert pack(*unpack(data)) == data  # one canonical byte string per header


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"\x89PNG\r\n\x1a\n" + bytes(60), r"not an fxlic bitstream \(magic b'\\x89PNG'\)"),
        (b"FX", "truncated"),
        (b"FXL", "truncated"),
        (b"FXLC", "truncated"),
        (b"FXLD" + bytes(60), "not an fxlic bitstream"),
        (b"FXLC\x05" + bytes(60), r"format version 5 is newer than this decoder \(4\)"),
        (b"FXLC\x00" + bytes(60), "unsupported format version 0"),
        (b"FXLC\x01\x00" + bytes(10), "truncated"),
    ],
)
def test_bad_prefix(data: bytes, message: str) -> None:
    """BS-1/BS-2: empty, foreign, short and wrong-version inputs."""
    with pytest.raises(BitstreamError, match=message):
        unpack(data)


def _with(**fields: object) -> bytes:
    """A CRC-valid file whose header fields are overwritten in place (bypassing pack's checks)."""
    good = bytearray(pack(HEADER, STREAMS))
    for name, value in fields.items():
        if name == "width":
            good[6:10] = struct.pack("<I", value)
        elif name == "height":
            good[10:14] = struct.pack("<I", value)
        elif name == "name_byte":
            good[31] = value  # first character of the model name
        elif name == "name_len":
            good[30] = value
        elif name == "count":
            good[31 + len(HEADER.model_name)] = value
        elif name == "len0":
            at = 32 + len(HEADER.model_name)
            good[at : at + 4] = struct.pack("<I", value)
    return _recrc(bytes(good[:-4]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(width=100000, height=100000), r"declared size 100000x100000 exceeds the 67108864-pixel limit"),
        (_with(width=20000, height=16), "16384-pixel side limit"),
        (_with(width=0), "declared size 0x512 is empty"),
        (_with(height=0), "is empty"),
        (_with(width=0xFFFFFFFF, height=0xFFFFFFFF), "pixel limit"),
        (_with(name_byte=0x00), "not printable ASCII"),
        (_with(name_byte=0xC3), "not printable ASCII"),
        (_with(name_len=0), "model name length 0"),
        (_with(name_len=200), "truncated"),
        (_with(count=0), "stream count 0"),
        (_with(count=17), "stream count 17"),
        (_with(count=3), "truncated: header declares"),
        (_with(len0=0), "stream 0 has zero length"),
        (_with(len0=1200), "truncated: header declares 1208 payload bytes, file has 13"),
        (_with(len0=0xFFFFFFFF), "truncated: header declares"),
        (_with(len0=1), "trailing garbage: file has 4 bytes more"),
        (pack(HEADER, STREAMS)[:-1], "truncated"),
        (pack(HEADER, STREAMS)[:-10], "truncated"),
        (pack(HEADER, STREAMS)[:20], "truncated"),
        (pack(HEADER, STREAMS) + b"\x00", "trailing garbage: file has 1 bytes more"),
        (pack(HEADER, STREAMS)[:-1] + b"\x00", "CRC mismatch: file corrupted"),
    ],
)
def test_bad_fields(data: bytes, message: str) -> None:
    """BS-3 ... BS-9: each invalid field or length gives its one-line message."""
    with pytest.raises(BitstreamError, match=message) as info:
        unpack(data)
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corruption_always_rejected(data: st.DataObject) -> None:
    """BS-9: any single-byte change, truncation or extension raises BitstreamError (never another error)."""
    good = pack(HEADER, STREAMS)
    bad = _corrupted(data, good, data.draw(st.sampled_from(["set", "cut", "append"])))
    with pytest.raises(BitstreamError):
        unpack(bytes(bad))


def _corrupted(data: st.DataObject, good: bytes, kind: str) -> bytearray:
    """``good`` with one byte changed ("set"), cut short ("cut") or extended ("append")."""
    bad = bytearray(good)
    if kind == "set":
        pos = data.draw(st.integers(0, len(good) - 1))
        bad[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "cut":
        del bad[data.draw(st.integers(0, len(good) - 1)) :]
    else:
        bad += data.draw(st.binary(min_size=1, max_size=8))
    return bad


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    """BS-1 ... BS-9: arbitrary input either parses or raises BitstreamError."""
    try:
        unpack(MAGIC + bytes([FORMAT_VERSION]) + data)
    except BitstreamError:
        pass
    with pytest.raises(BitstreamError):
        unpack(data[:3])


def test_pack_rejects() -> None:
    """pack refuses what unpack would reject (ValueError, not a bad file)."""
    bad_headers = [
        StreamHeader("", HASH, 3, 8, 8),
        StreamHeader("é", HASH, 3, 8, 8),
        StreamHeader("a" * 256, HASH, 3, 8, 8),
        StreamHeader("m", HASH[:15], 3, 8, 8),
        StreamHeader("m", HASH, 256, 8, 8),
        StreamHeader("m", HASH, -1, 8, 8),
        StreamHeader("m", HASH, 3, 0, 8),
        StreamHeader("m", HASH, 3, MAX_SIDE + 1, 1),
        StreamHeader("m", HASH, 3, 8193, 8192),  # one row over MAX_PIXELS = 2^26
    ]
    for h in bad_headers:
        with pytest.raises(ValueError):
            pack(h, STREAMS)
    for streams in ([], [b""], [b"x"] * 17):
        with pytest.raises(ValueError):
            pack(HEADER, streams)
    assert unpack(bytearray(pack(HEADER, STREAMS)))[0] == HEADER  # bytes-like input
    with pytest.raises(BitstreamError):
        unpack(None)  # type: ignore[arg-type]


def test_colour_type_versions() -> None:
    """BS-10: RGB sources are written as version 1 (byte-identical to before version 2 existed);
    a grayscale source needs version 2 and its colour byte; unknown colour types are refused."""
    from fxlic.entropy.bitstream import COLOUR_GRAY

    rgb = pack(HEADER, STREAMS)
    assert rgb[4] == 1 and unpack(rgb)[0].colour == 0
    gray_header = StreamHeader(HEADER.model_name, HEADER.model_hash, HEADER.quality, HEADER.width, HEADER.height,
                               colour=COLOUR_GRAY)
    gray = pack(gray_header, STREAMS)
    assert gray[4] == 2 and len(gray) == len(rgb) + 1
    assert unpack(gray) == (gray_header, STREAMS)
    colour_at = 31 + len(HEADER.model_name)
    assert gray[colour_at] == COLOUR_GRAY
    import zlib

    bad = bytearray(gray)
    bad[colour_at] = 7
    bad[-4:] = zlib.crc32(bytes(bad[:-4])).to_bytes(4, "little")
    with pytest.raises(BitstreamError, match="unknown colour type 7"):
        unpack(bytes(bad))
    with pytest.raises(ValueError):
        pack(StreamHeader("m", HASH, 3, 8, 8, colour=5), STREAMS)


# --------------------------------------------------------------------------------------------------
# BS-11: the architecture byte of version 3
# --------------------------------------------------------------------------------------------------
def _charm_with(arch_id: int | None = None, cut_after_arch: bool = False) -> bytes:
    """A CRC-valid version-3 file whose architecture byte is overwritten (bypassing pack's checks)."""
    good = bytearray(pack(CHARM_HEADER, CHARM_STREAMS))
    at = 31 + len(CHARM_HEADER.model_name) + 1  # after the name and the colour byte
    if arch_id is not None:
        good[at] = arch_id
    if cut_after_arch:
        return bytes(good[: at + 1])
    return _recrc(bytes(good[:-4]))


def test_architecture_layout_version_3() -> None:
    """BS-11: "a charm stream is version 3: the colour byte (BS-10), then a u8 architecture id (1 = charm),
    then the stream count"; total size 36 + k + 2 + 4m + Σ len (BS-8)."""
    data = pack(CHARM_HEADER, CHARM_STREAMS)
    name = CHARM_HEADER.model_name.encode()
    expected = (b"FXLC" + bytes([3, 4]) + struct.pack("<II", 64, 48) + HASH + bytes([len(name)]) + name
                + bytes([0, 1, len(CHARM_STREAMS)]) + b"".join(struct.pack("<I", len(s)) for s in CHARM_STREAMS)
                + b"".join(CHARM_STREAMS))
    assert data == _recrc(expected)
    assert len(data) == 36 + len(name) + 2 + 4 * len(CHARM_STREAMS) + sum(map(len, CHARM_STREAMS))
    assert unpack(data) == (CHARM_HEADER, CHARM_STREAMS)
    gray = StreamHeader("charm", HASH, 4, 64, 48, colour=COLOUR_GRAY, architecture=ARCH_CHARM)
    assert unpack(pack(gray, CHARM_STREAMS))[0] == gray and pack(gray, CHARM_STREAMS)[4] == 3


def test_hyperprior_streams_stay_version_1_and_2() -> None:
    """BS-11: "versions 1 and 2 carry no architecture byte; they are hyperprior streams" — the default
    architecture of a header, so every mean-scale stream is byte-identical to what it was before BS-11."""
    assert HEADER.architecture == ARCH_HYPERPRIOR and HEADER.version == 1
    assert unpack(pack(HEADER, STREAMS))[0].architecture == ARCH_HYPERPRIOR
    gray = StreamHeader("m", HASH, 3, 8, 8, colour=COLOUR_GRAY)
    assert gray.version == 2 and unpack(pack(gray, STREAMS))[0].architecture == ARCH_HYPERPRIOR


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_charm_with(arch_id=7), r"unknown architecture id 7 \(this decoder knows 1 = charm\)"),
        (_charm_with(arch_id=255), "unknown architecture id 255"),
        (_charm_with(arch_id=0), "architecture id 0 \\(hyperprior\\) in a version-3 stream: hyperprior streams are "
                                 "version 1 or 2"),
        (_charm_with(cut_after_arch=True), "truncated: file has 38 bytes, the header needs 39"),
        (pack(CHARM_HEADER, CHARM_STREAMS)[: 31 + 5 + 1], "truncated"),  # ends after the colour byte
    ],
)
def test_bad_architecture(data: bytes, message: str) -> None:
    """BS-11: the architecture byte is checked before it is used — unknown ids, the implied id 0 written
    explicitly (non-canonical, BS-10/BS-11), and a file that ends at or before it — one line each."""
    with pytest.raises(BitstreamError, match=message) as info:
        unpack(data)
    assert "\n" not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_version_3_corruption_always_rejected(data: st.DataObject) -> None:
    """BS-9/BS-11: any single-byte change, truncation or extension of a version-3 file raises BitstreamError;
    a change confined to the architecture byte with a re-computed CRC is refused or names another
    architecture, never another exception."""
    good = pack(CHARM_HEADER, CHARM_STREAMS)
    kind = data.draw(st.sampled_from(["set", "cut", "append", "arch"]))
    if kind != "arch":
        bad = _corrupted(data, good, kind)
    else:
        code = data.draw(st.integers(0, 255))
        if code == 1:
            return
        bad = bytearray(_charm_with(arch_id=code))
    with pytest.raises(BitstreamError):
        unpack(bytes(bad))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_version_3(data: bytes) -> None:
    """BS-1 ... BS-11: arbitrary bytes after a version-3 prefix either parse or raise BitstreamError."""
    try:
        header, _ = unpack(MAGIC + bytes([3]) + data)
    except BitstreamError:
        return
    assert header.architecture == ARCH_CHARM


def test_pack_rejects_unknown_architecture() -> None:
    """BS-11: pack refuses an architecture no id names."""
    with pytest.raises(ValueError, match="architecture"):
        pack(StreamHeader("m", HASH, 3, 8, 8, architecture="wacnn"), STREAMS)


def test_stream_architecture_of_model_files() -> None:
    """BS-11: meanscale and scalehyper model files code hyperprior streams, charm files charm streams;
    a model file without the field (older files) is a mean-scale hyperprior."""
    from fxlic.entropy.bitstream import stream_architecture

    assert stream_architecture("meanscale") == stream_architecture("scalehyper") == ARCH_HYPERPRIOR
    assert stream_architecture(None) == ARCH_HYPERPRIOR and stream_architecture("charm") == ARCH_CHARM
    with pytest.raises(ValueError, match="no bitstream architecture"):
        stream_architecture("wacnn")


# --------------------------------------------------------------------------------------------------
# BS-12: y substreams (version 4)
# --------------------------------------------------------------------------------------------------
SUB_HEADER = StreamHeader(model_name="meanscale", model_hash=HASH, quality=4, width=300, height=130,
                          substream_tile=128, substream_offsets=(5, 12, 20, 24, 31))
SUB_STREAMS = [b"zzzz", b"y0y0y" + b"y1y1y1y" + b"y2y2y2y2" + b"y3y3" + b"y4y4y4y" + b"y5y5y5"]


def _substream_file(offsets: tuple[int, ...] | None = None, tile: int | None = None, arch_id: int | None = None,
                    count: int | None = None, cut: int | None = None) -> bytes:
    """A CRC-valid version-4 file with a field overwritten after packing (bypassing pack's checks)."""
    good = bytearray(pack(SUB_HEADER, SUB_STREAMS))
    at = 31 + len(SUB_HEADER.model_name) + 1  # the architecture byte, after the name and the colour byte
    if arch_id is not None:
        good[at] = arch_id
    if tile is not None:
        good[at + 1 : at + 3] = struct.pack("<H", tile)
    if count is not None:
        good[at + 3] = count
    if offsets is not None:
        table = at + 4 + 4 * len(SUB_STREAMS)
        good[table : table + 4 * len(offsets)] = b"".join(struct.pack("<I", o) for o in offsets)
    if cut is not None:
        return bytes(good[:cut])
    return _recrc(bytes(good[:-4]))


def test_substream_layout_version_4() -> None:
    """BS-12: version 4 = the colour byte, the architecture byte (0: hyperprior), the u16 substream tile S,
    the stream count and lengths, then K − 1 u32 offsets of substreams 1 … K − 1 in the y stream; K is the
    tile grid of the image padded to 64 (300 × 130 → 320 × 192, S = 128: 3 × 2 tiles); total size
    36 + k + 4 + 4m + 4(K − 1) + Σ len (BS-8)."""
    assert SUB_HEADER.version == 4 and SUB_HEADER.substreams == 6
    data = pack(SUB_HEADER, SUB_STREAMS)
    name = SUB_HEADER.model_name.encode()
    expected = (b"FXLC" + bytes([4, 4]) + struct.pack("<II", 300, 130) + HASH + bytes([len(name)]) + name
                + bytes([0, 0]) + struct.pack("<H", 128) + bytes([2])
                + b"".join(struct.pack("<I", len(s)) for s in SUB_STREAMS)
                + b"".join(struct.pack("<I", o) for o in SUB_HEADER.substream_offsets) + b"".join(SUB_STREAMS))
    assert data == _recrc(expected)
    assert len(data) == 36 + len(name) + 4 + 4 * 2 + 4 * 5 + sum(map(len, SUB_STREAMS))
    assert unpack(data) == (SUB_HEADER, SUB_STREAMS)
    assert pack(*unpack(data)) == data


@settings(max_examples=150, deadline=None)
@given(width=st.integers(1, 2000), height=st.integers(1, 2000), tile=st.sampled_from([64, 128, 192, 256, 512]),
       colour=st.sampled_from([0, COLOUR_GRAY]), data=st.data())
def test_substream_round_trip(width: int, height: int, tile: int, colour: int, data: st.DataObject) -> None:
    """BS-12 round trip for any image size and tile giving K ≥ 2, substreams of any sizes ≥ 4 bytes."""
    from fxlic.entropy.bitstream import substream_count

    count = substream_count(width, height, tile)
    if count < 2:
        return
    sizes = data.draw(st.lists(st.integers(4, 9), min_size=count, max_size=count))
    offsets = tuple(int(o) for o in np.cumsum(sizes)[:-1])
    header = StreamHeader("m", HASH, 1, width, height, colour, substream_tile=tile, substream_offsets=offsets)
    streams = [b"zzzz", bytes(sum(sizes))]
    packed = pack(header, streams)
    assert unpack(packed) == (header, streams) and pack(*unpack(packed)) == packed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_substream_file(offsets=(5, 12, 20, 24, 60)), "substream 5 offset 60 lies outside the 37-byte y stream"),
        (_substream_file(offsets=(5, 12, 2000000, 24, 31)), "substream 3 offset 2000000 lies outside"),
        (_substream_file(offsets=(5, 20, 12, 24, 31)), "substream 3 offset 12 precedes substream 2 offset 20: "
                                                       "substreams out of order"),
        (_substream_file(offsets=(5, 12, 14, 24, 31)), "substream 3 offset 14 overlaps substream 2 at offset 12"),
        (_substream_file(offsets=(5, 12, 12, 24, 31)), "substream 3 offset 12 overlaps substream 2"),
        (_substream_file(offsets=(0, 12, 20, 24, 31)), "substream 1 offset 0 overlaps substream 0"),
        (_substream_file(offsets=(5, 12, 20, 24, 34)), "substream 5 at offset 34 has 3 bytes of the 37-byte y "
                                                       "stream, fewer than its 4-byte rANS state"),
        (_substream_file(tile=100), "substream tile 100 is not a multiple of 64"),
        (_substream_file(tile=0), "substream tile 0 is not a multiple of 64"),
        (_substream_file(tile=320), "substream tile 320 gives one substream for 300x130 in a version-4 stream"),
        (_substream_file(arch_id=1), "architecture id 1 \\(charm\\) in a version-4 stream: substreams are "
                                     "defined for hyperprior streams only"),
        (_substream_file(arch_id=9), "unknown architecture id 9"),
        (_substream_file(count=1), "stream count 1: substreams split stream 1 \\(y\\), which is missing"),
        (_substream_file(cut=31 + 9 + 4 + 4 * 2 + 10), "truncated: .* the header needs"),
        (_substream_file(cut=31 + 9 + 2), "truncated: .* the header needs"),
    ],
)
def test_bad_substream_table(data: bytes, message: str) -> None:
    """BS-12: a substream offset outside the y stream, out-of-order or overlapping substreams (each holds at
    least its 4-byte state), a bad tile, a tile giving one substream (non-canonical: versions 1, 2), another
    architecture, a missing y stream, a file cut inside the table: one line each, checked before use."""
    with pytest.raises(BitstreamError, match=message) as info:
        unpack(data)
    assert "\n" not in str(info.value)


def test_pack_refuses_what_unpack_refuses() -> None:
    """BS-12: pack raises ValueError for offsets, tiles and architectures that unpack would reject."""
    from dataclasses import replace

    bad = [replace(SUB_HEADER, substream_offsets=(5, 12, 20, 24)),  # K − 1 = 5 offsets needed
           replace(SUB_HEADER, substream_offsets=(5, 20, 12, 24, 31)),
           replace(SUB_HEADER, substream_tile=96),
           replace(SUB_HEADER, substream_tile=384, substream_offsets=()),
           replace(SUB_HEADER, architecture=ARCH_CHARM),
           replace(HEADER, substream_offsets=(4,))]
    for header in bad:
        with pytest.raises(ValueError):
            pack(header, SUB_STREAMS)
    with pytest.raises(ValueError, match="need at least 2 streams"):
        pack(SUB_HEADER, SUB_STREAMS[1:])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_version_4_corruption_always_rejected(data: st.DataObject) -> None:
    """BS-9/BS-12: any single-byte change, truncation or extension of a version-4 file raises BitstreamError;
    any offset table with a re-computed CRC parses to valid offsets or raises BitstreamError."""
    good = pack(SUB_HEADER, SUB_STREAMS)
    kind = data.draw(st.sampled_from(["set", "cut", "append", "offsets"]))
    if kind != "offsets":
        with pytest.raises(BitstreamError):
            unpack(bytes(_corrupted(data, good, kind)))
        return
    offsets = tuple(data.draw(st.lists(st.integers(0, 60), min_size=5, max_size=5)))
    try:
        header, streams = unpack(_substream_file(offsets=offsets))
    except BitstreamError:
        return
    bounds = [0, *header.substream_offsets, len(streams[1])]
    assert all(b - a >= 4 for a, b in zip(bounds, bounds[1:]))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_version_4(data: bytes) -> None:
    """BS-1 ... BS-12: arbitrary bytes after a version-4 prefix either parse or raise BitstreamError."""
    try:
        header, _ = unpack(MAGIC + bytes([4]) + data)
    except BitstreamError:
        return
    assert header.substreams >= 2
