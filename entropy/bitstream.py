"""The fxlic container: header, entropy-coded streams, CRC32 (rules BS-1 ... BS-12 in docs/bitstream.md).

Layout (all integers little-endian)::

    magic "FXLC" | u8 version | u8 quality | u32 width | u32 height | 16 B model hash |
    u8 name length k | k B model name (printable ASCII) | [version >= 2: u8 colour type] |
    [version >= 3: u8 architecture id] | [version 4: u16 substream tile S] | u8 stream count m |
    m x u32 stream length | [version 4: (K - 1) x u32 substream offset] |
    payload (the m streams, concatenated) | u32 CRC32 of every byte before it

A writer uses the lowest version that can say what it has to (BS-10 ... BS-12): version 1 for an RGB
hyperprior stream (every stream written before version 2 existed is such a stream), version 2 for a
grayscale hyperprior stream, version 3 for any other architecture (``charm``), which it names explicitly,
and version 4 for a hyperprior stream whose y stream is split into K >= 2 independent rANS substreams,
one per tile of S x S pixels (BS-12).

:func:`unpack` never trusts a field before checking it, and reports every problem as a one-line
:class:`BitstreamError`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "COLOUR_RGB",
    "COLOUR_GRAY",
    "ARCH_HYPERPRIOR",
    "ARCH_CHARM",
    "ARCHITECTURE_IDS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MAX_STREAMS",
    "MODEL_HASH_BYTES",
    "SUBSTREAM_VERSION",
    "SUBSTREAM_UNIT",
    "BitstreamError",
    "StreamHeader",
    "pack",
    "stream_architecture",
    "substream_grid",
    "substream_count",
    "unpack",
]

MAGIC = b"FXLC"
FORMAT_VERSION = 4
"""The newest version this module reads and writes (BS-2); it reads every version from 1 on."""
SUBSTREAM_VERSION = 4
"""The format version that splits the y stream into substreams (BS-12)."""
SUBSTREAM_UNIT = 64
"""Substream tiles (BS-12) are multiples of 64 pixels: the padding unit (ENT-M1), so a tile is whole ŷ latents
(÷16) and whole ẑ latents (÷64), and tiles line up with the transform tiles of ``--tile`` (docs/tiling.md)."""
LATENT_STRIDE = 16
"""Pixels per ŷ latent (ENT-M1): the substream grid over ŷ is the pixel tile grid divided by 16."""
MAX_SUBSTREAM_TILE = 16384
"""Largest substream tile side (BS-12): MAX_SIDE; a u16 holds it."""
COLOUR_RGB = 0
"""Colour type (BS-10): the source was RGB; decode to RGB. Implied by a version-1 stream."""
COLOUR_GRAY = 1
"""Colour type (BS-10): the source was grayscale (coded as R = G = B); decode to one gray channel."""
COLOUR_TYPES = {COLOUR_RGB: "rgb", COLOUR_GRAY: "gray"}
ARCH_HYPERPRIOR = "hyperprior"
"""Stream architecture (BS-11) of the mean-scale and scale-only hyperpriors (model-file architectures
``meanscale``, ``scalehyper``): streams z, y (ENT-M1). Implied by versions 1 and 2, never written as a byte."""
ARCH_CHARM = "charm"
"""Stream architecture (BS-11) of ChARM (docs/charm.md): streams z, y_0 … y_{S−1}; version 3, id 1."""
ARCHITECTURE_IDS = {0: ARCH_HYPERPRIOR, 1: ARCH_CHARM}
"""u8 architecture id (version 3) → stream architecture (BS-11). Id 0 names the architecture versions 1 and 2
imply; a version-3 stream never carries it (canonical form: the lowest version, BS-10/BS-11)."""
_ARCH_ID = {name: code for code, name in ARCHITECTURE_IDS.items()}
MODEL_ARCHITECTURES = {"meanscale": ARCH_HYPERPRIOR, "scalehyper": ARCH_HYPERPRIOR, "charm": ARCH_CHARM}
"""Model-file architecture (``meta["architecture"]``, docs/model-file.md) → the stream architecture its codec
writes (BS-11). meanscale and scalehyper share one decoding procedure (ENT-M3, μ = 0 without a mean head)
and one stream layout; the model hash (BS-4) tells them apart."""
MAX_PIXELS = 1 << 26
"""Pixel limit (67.1 MP, e.g. 9248 × 6936 = 64.1 MP fits), checked before anything is allocated (BS-5).
The decoder runs its transforms in tiles (docs/tiling.md), so what it allocates grows with the latents
and the output image only: 3 bytes (image) + about 8 bytes (latents and their entropy parameters:
M channels at 1/256 of the pixels, three int8 and three int32 arrays, M = 128) per image pixel, plus a
fixed amount per tile and thread. Measured figures: docs/bitstream.md (BS-5). It was 2^24 while the decoder held
whole feature maps (~800 B per pixel); the fields are u32, so no format change was needed."""
MAX_SIDE = 16384
"""Side limit (BS-5): 2^14, a multiple of 64 (the padding unit), and the largest side Vitis/DPU
pipelines and common image libraries handle; also keeps latent sizes small integers."""
MAX_STREAMS = 16
"""Most streams a file may declare (the hyperprior codec uses 2: z, then y; charm 1 + S)."""
MODEL_HASH_BYTES = 16
MAX_NAME_BYTES = 255

_FIXED = struct.Struct("<4sBBII16sB")  # magic, version, quality, width, height, hash, name length
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class BitstreamError(ValueError):
    """The input is not a valid fxlic bitstream; the message is one human-readable line."""


def _check_name(name: object) -> str | None:
    """Return a problem description for a model name, or None if it is valid (BS-3)."""
    if not isinstance(name, str):
        return f"model name must be a str, got {type(name).__name__}"
    if not 1 <= len(name) <= MAX_NAME_BYTES:
        return f"model name length {len(name)} outside [1, {MAX_NAME_BYTES}]"
    if not all(0x20 <= ord(ch) <= 0x7E for ch in name):
        return f"model name {name!r} is not printable ASCII"
    return None


def stream_architecture(model_architecture: str | None) -> str:
    """The stream architecture (BS-11) a model file's codec writes, from ``meta["architecture"]``
    (None: a model file from before the field existed, a mean-scale hyperprior).

    Raises ``ValueError`` for an architecture no stream can name.
    """
    key = "meanscale" if model_architecture is None else model_architecture
    if key not in MODEL_ARCHITECTURES:
        raise ValueError(f"model architecture {model_architecture!r} has no bitstream architecture "
                         f"(known: {', '.join(sorted(MODEL_ARCHITECTURES))})")
    return MODEL_ARCHITECTURES[key]


def _check_size(width: int, height: int) -> str | None:
    """Return a problem description for the image size, or None if it is valid (BS-5)."""
    if width < 1 or height < 1:
        return f"declared size {width}x{height} is empty"
    if width * height > MAX_PIXELS:
        return f"declared size {width}x{height} exceeds the {MAX_PIXELS}-pixel limit"
    if width > MAX_SIDE or height > MAX_SIDE:
        return f"declared size {width}x{height} exceeds the {MAX_SIDE}-pixel side limit"
    return None


def substream_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """(rows, columns) of the substream tile grid (BS-12) of an image of ``width`` × ``height`` pixels with
    tiles of ``tile`` pixels: the image padded to multiples of 64 (ENT-M1), cut into ``tile`` × ``tile``
    squares from the top left (the last row and column may be narrower). ``tile`` = 0: one tile."""
    if tile == 0:
        return 1, 1
    padded_h = -(-height // SUBSTREAM_UNIT) * SUBSTREAM_UNIT
    padded_w = -(-width // SUBSTREAM_UNIT) * SUBSTREAM_UNIT
    return -(-padded_h // tile), -(-padded_w // tile)


def substream_count(width: int, height: int, tile: int) -> int:
    """K, the number of y substreams (BS-12): the tiles of :func:`substream_grid`."""
    rows, cols = substream_grid(width, height, tile)
    return rows * cols


def _check_substream_tile(tile: object) -> str | None:
    """A problem description for a substream tile side in pixels (BS-12), or None."""
    if not isinstance(tile, int) or not SUBSTREAM_UNIT <= tile <= MAX_SUBSTREAM_TILE or tile % SUBSTREAM_UNIT:
        return (f"substream tile {tile!r} is not a multiple of {SUBSTREAM_UNIT} pixels in "
                f"[{SUBSTREAM_UNIT}, {MAX_SUBSTREAM_TILE}]")
    return None


def _check_substream_offsets(offsets: tuple[int, ...], length: int) -> str | None:
    """A problem description for the substream offsets (BS-12) of a y stream of ``length`` bytes, or None.

    ``offsets[k - 1]`` is where substream ``k`` (1 ≤ k < K) starts; substream 0 starts at 0 and each ends
    where the next starts, the last at the end of the stream. Every substream holds at least the 4 bytes of
    its rANS state (ENT-4), so the offsets must increase by at least 4 and stay 4 bytes inside the stream."""
    previous = 0
    for k, offset in enumerate(offsets, start=1):
        if offset > length:
            return f"substream {k} offset {offset} lies outside the {length}-byte y stream"
        if offset < previous:
            return (f"substream {k} offset {offset} precedes substream {k - 1} offset {previous}: "
                    "substreams out of order")
        if offset - previous < 4:
            return (f"substream {k} offset {offset} overlaps substream {k - 1} at offset {previous} "
                    "(a substream holds at least its 4-byte rANS state)")
        previous = offset
    if length - previous < 4:
        return (f"substream {len(offsets)} at offset {previous} has {length - previous} bytes of the "
                f"{length}-byte y stream, fewer than its 4-byte rANS state")
    return None


@dataclass(frozen=True)
class StreamHeader:
    """Header fields (BS-2 ... BS-5, BS-10, BS-11).

    Attributes:
        model_name: printable ASCII, 1-255 characters (e.g. ``"mbt2018-mean-q3"``).
        model_hash: 16 bytes: the first 16 bytes of the SHA-256 of the model file's contents.
        quality: 0-255, the quality index of the model.
        width, height: original image size in pixels (before padding to a multiple of 64), each in
            ``[1, MAX_SIDE]`` and ``width * height <= MAX_PIXELS``.
        colour: colour type of the source (BS-10): ``COLOUR_RGB`` (0) or ``COLOUR_GRAY`` (1).
        architecture: the stream architecture (BS-11): ``ARCH_HYPERPRIOR`` (implied by versions 1 and 2)
            or ``ARCH_CHARM`` (version 3, architecture id 1).
        substream_tile: 0 (one y stream), or the side in pixels of the tiles whose ŷ symbols form one rANS
            substream each (BS-12, version 4): a multiple of 64 that cuts the image into K ≥ 2 tiles.
        substream_offsets: for K substreams, the K − 1 byte offsets within the y stream (stream 1) where
            substreams 1 … K − 1 start (substream 0 starts at 0); empty without substreams.
    """

    model_name: str
    model_hash: bytes
    quality: int
    width: int
    height: int
    colour: int = COLOUR_RGB
    architecture: str = ARCH_HYPERPRIOR
    substream_tile: int = 0
    substream_offsets: tuple[int, ...] = ()

    @property
    def version(self) -> int:
        """The lowest format version that can carry this header (BS-10, BS-11, BS-12)."""
        if self.substream_tile:
            return SUBSTREAM_VERSION
        if self.architecture != ARCH_HYPERPRIOR:
            return 3
        return 1 if self.colour == COLOUR_RGB else 2

    @property
    def substreams(self) -> int:
        """K, the number of y substreams (1 without substreams)."""
        return substream_count(self.width, self.height, self.substream_tile)

    def validate(self) -> None:
        """Raise ``ValueError`` if a field cannot be written (used by :func:`pack`)."""
        problem = _check_name(self.model_name)
        if problem is None and not (isinstance(self.model_hash, bytes) and len(self.model_hash) == 16):
            problem = f"model hash must be {MODEL_HASH_BYTES} bytes"
        if problem is None and not (isinstance(self.quality, int) and 0 <= self.quality <= 255):
            problem = f"quality {self.quality!r} outside [0, 255]"
        if problem is None and not (isinstance(self.width, int) and isinstance(self.height, int)):
            problem = "width and height must be int"
        if problem is None:
            problem = _check_size(self.width, self.height)
        if problem is None and self.colour not in COLOUR_TYPES:
            problem = f"colour type {self.colour!r} is not one of {sorted(COLOUR_TYPES)}"
        if problem is None and self.architecture not in _ARCH_ID:
            problem = f"architecture {self.architecture!r} is not one of {sorted(_ARCH_ID)}"
        if problem is None and self.substream_tile:
            problem = _check_substream_tile(self.substream_tile)
            if problem is None and self.architecture != ARCH_HYPERPRIOR:
                problem = f"substreams (BS-12) are defined for hyperprior streams only, not {self.architecture}"
            if problem is None and self.substreams < 2:
                problem = (f"substream tile {self.substream_tile} gives one substream for {self.width}x{self.height}:"
                           " write substream_tile 0 (BS-12: a single y stream is format version 1 or 2)")
            if problem is None and len(self.substream_offsets) != self.substreams - 1:
                problem = (f"{self.substreams} substreams need {self.substreams - 1} offsets, "
                           f"got {len(self.substream_offsets)}")
        elif problem is None and self.substream_offsets:
            problem = "substream offsets without a substream tile"
        if problem is not None:
            raise ValueError(problem)


def pack(header: StreamHeader, streams: list[bytes]) -> bytes:
    """Serialize a header and 1-16 non-empty streams (BS-1 ... BS-8, BS-12).

    With substreams (``header.substream_tile``), ``streams[1]`` is the y stream: its K substreams concatenated,
    substream k starting at ``header.substream_offsets[k - 1]``.
    Raises ``ValueError`` for a header or stream list that :func:`unpack` would reject.
    """
    header.validate()
    if not 1 <= len(streams) <= MAX_STREAMS:
        raise ValueError(f"need 1 to {MAX_STREAMS} streams, got {len(streams)}")
    payload = [bytes(s) for s in streams]
    for j, s in enumerate(payload):
        if not 1 <= len(s) <= 0xFFFFFFFF:
            raise ValueError(f"stream {j} has length {len(s)}; must be 1 to 2^32-1 bytes")
    version = header.version
    if version == SUBSTREAM_VERSION:
        if len(payload) < 2:
            raise ValueError("substreams (BS-12) split stream 1 (y): need at least 2 streams")
        problem = _check_substream_offsets(header.substream_offsets, len(payload[1]))
        if problem is not None:
            raise ValueError(problem)
    name = header.model_name.encode("ascii")
    parts = [
        _FIXED.pack(MAGIC, version, header.quality, header.width, header.height, header.model_hash, len(name)),
        name,
        _U8.pack(header.colour) if version >= 2 else b"",
        _U8.pack(_ARCH_ID[header.architecture]) if version >= 3 else b"",
        _U16.pack(header.substream_tile) if version >= SUBSTREAM_VERSION else b"",
        _U8.pack(len(payload)),
        b"".join(_U32.pack(len(s)) for s in payload),
        b"".join(_U32.pack(o) for o in header.substream_offsets),
        *payload,
    ]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[StreamHeader, list[bytes]]:
    """Parse and check a container (BS-1 ... BS-12); inverse of :func:`pack`.

    Raises:
        BitstreamError: empty or short input, wrong magic, unsupported version, invalid header field
            (size, name, colour type, architecture id, substream tile), zero or absurd stream count or length,
            substream offsets outside the y stream, out of order or overlapping, truncation, trailing bytes,
            CRC mismatch.
    """
    try:
        buf = bytes(data)
    except TypeError as e:
        raise BitstreamError(f"not a bytes-like object: {type(data).__name__}") from e
    size = len(buf)
    if size == 0:
        raise BitstreamError("empty input: not an fxlic bitstream")
    if buf[:4] != MAGIC[: min(size, 4)]:
        raise BitstreamError(f"not an fxlic bitstream (magic {buf[:4]!r})")
    if size < 4:
        raise BitstreamError(f"truncated: {size} bytes, shorter than the 4-byte magic")
    if size < 5:
        raise BitstreamError("truncated: file ends before the format version")
    version = buf[4]
    if version > FORMAT_VERSION:
        raise BitstreamError(f"format version {version} is newer than this decoder ({FORMAT_VERSION})")
    if version < 1:
        raise BitstreamError(f"unsupported format version {version} (this decoder reads 1 to {FORMAT_VERSION})")
    if size < _FIXED.size:
        raise BitstreamError(f"truncated: file has {size} bytes, the fixed header needs {_FIXED.size}")
    _, _, quality, width, height, model_hash, name_len = _FIXED.unpack_from(buf, 0)
    problem = _check_size(width, height)
    if problem is not None:
        raise BitstreamError(problem)
    pos = _FIXED.size
    if pos + name_len + 1 > size:
        raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + name_len + 1}")
    raw_name = buf[pos : pos + name_len]
    pos += name_len
    name = raw_name.decode("latin-1")  # 1 byte -> 1 char, never fails; ASCII checked next
    problem = _check_name(name)
    if problem is not None:
        raise BitstreamError(problem.replace(repr(name), repr(raw_name)))
    colour = COLOUR_RGB
    if version >= 2:
        colour = buf[pos]
        pos += 1
        if colour not in COLOUR_TYPES:
            raise BitstreamError(f"unknown colour type {colour} (known: {sorted(COLOUR_TYPES)})")
        if pos + 1 > size:
            raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 1}")
    architecture = ARCH_HYPERPRIOR  # implied by versions 1 and 2 (BS-11)
    if version >= 3:
        code = buf[pos]  # inside the input: checked just above
        pos += 1
        if code not in ARCHITECTURE_IDS:
            known = ", ".join(f"{k} = {v}" for k, v in ARCHITECTURE_IDS.items() if v != ARCH_HYPERPRIOR)
            raise BitstreamError(f"unknown architecture id {code} (this decoder knows {known})")
        architecture = ARCHITECTURE_IDS[code]
        if version == 3 and architecture == ARCH_HYPERPRIOR:
            raise BitstreamError(f"architecture id {code} ({architecture}) in a version-{version} stream: "
                                 "hyperprior streams are version 1 or 2")
        if version == SUBSTREAM_VERSION and architecture != ARCH_HYPERPRIOR:
            raise BitstreamError(f"architecture id {code} ({architecture}) in a version-{version} stream: "
                                 "substreams are defined for hyperprior streams only")
        if pos + 1 > size:
            raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 1}")
    tile = 0
    if version >= SUBSTREAM_VERSION:
        if pos + 3 > size:
            raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 3}")
        (tile,) = _U16.unpack_from(buf, pos)
        pos += 2
        problem = _check_substream_tile(tile)
        if problem is not None:
            raise BitstreamError(problem)
        if substream_count(width, height, tile) < 2:
            raise BitstreamError(f"substream tile {tile} gives one substream for {width}x{height} in a version-"
                                 f"{version} stream: a single y stream is version 1 or 2")
    (count,) = _U8.unpack_from(buf, pos)
    pos += 1
    if not 1 <= count <= MAX_STREAMS:
        raise BitstreamError(f"stream count {count} outside [1, {MAX_STREAMS}]")
    if tile and count < 2:
        raise BitstreamError(f"stream count {count}: substreams split stream 1 (y), which is missing")
    if pos + 4 * count > size:
        raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 4 * count}")
    lengths = [_U32.unpack_from(buf, pos + 4 * j)[0] for j in range(count)]
    pos += 4 * count
    for j, n in enumerate(lengths):
        if n == 0:
            raise BitstreamError(f"stream {j} has zero length")
    offsets: tuple[int, ...] = ()
    if tile:
        table = 4 * (substream_count(width, height, tile) - 1)  # BS-5 bounds it: K ≤ 257² at 64-pixel tiles
        if pos + table > size:
            raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + table}")
        offsets = tuple(v for (v,) in _U32.iter_unpack(buf[pos : pos + table]))
        pos += table
        problem = _check_substream_offsets(offsets, lengths[1])
        if problem is not None:
            raise BitstreamError(problem)
    declared = sum(lengths)
    available = size - pos - 4  # the last 4 bytes are the CRC
    if available < declared:
        raise BitstreamError(f"truncated: header declares {declared} payload bytes, file has {max(available, 0)}")
    if available > declared:
        raise BitstreamError(f"trailing garbage: file has {available - declared} bytes more than the header declares")
    (crc,) = _U32.unpack_from(buf, size - 4)
    if zlib.crc32(memoryview(buf)[: size - 4]) != crc:
        raise BitstreamError("CRC mismatch: file corrupted")
    streams = []
    for n in lengths:
        streams.append(buf[pos : pos + n])
        pos += n
    header = StreamHeader(model_name=name, model_hash=model_hash, quality=quality, width=width, height=height,
                          colour=colour, architecture=architecture, substream_tile=tile, substream_offsets=offsets)
    return header, streams
