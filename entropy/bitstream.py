"""The fxlic container: header, entropy-coded streams, CRC32 (rules BS-1 ... BS-11 in docs/bitstream.md).

Layout (all integers little-endian)::

    magic "FXLC" | u8 version | u8 quality | u32 width | u32 height | 16 B model hash |
    u8 name length k | k B model name (printable ASCII) | [version >= 2: u8 colour type] |
    [version >= 3: u8 architecture id] | u8 stream count m | m x u32 stream length |
    payload (the m streams, concatenated) | u32 CRC32 of every byte before it

A writer uses the lowest version that can say what it has to (BS-10, BS-11): version 1 for an RGB
hyperprior stream (every stream written before version 2 existed is such a stream), version 2 for a
grayscale hyperprior stream, version 3 for any other architecture (``charm``), which it names explicitly.

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
    "BitstreamError",
    "StreamHeader",
    "pack",
    "stream_architecture",
    "unpack",
]

MAGIC = b"FXLC"
FORMAT_VERSION = 3
"""The newest version this module reads and writes (BS-2); it reads every version from 1 on."""
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
    """

    model_name: str
    model_hash: bytes
    quality: int
    width: int
    height: int
    colour: int = COLOUR_RGB
    architecture: str = ARCH_HYPERPRIOR

    @property
    def version(self) -> int:
        """The lowest format version that can carry this header (BS-10, BS-11)."""
        if self.architecture != ARCH_HYPERPRIOR:
            return 3
        return 1 if self.colour == COLOUR_RGB else 2

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
        if problem is not None:
            raise ValueError(problem)


def pack(header: StreamHeader, streams: list[bytes]) -> bytes:
    """Serialize a header and 1-16 non-empty streams (BS-1 ... BS-8).

    Raises ``ValueError`` for a header or stream list that :func:`unpack` would reject.
    """
    header.validate()
    if not 1 <= len(streams) <= MAX_STREAMS:
        raise ValueError(f"need 1 to {MAX_STREAMS} streams, got {len(streams)}")
    payload = [bytes(s) for s in streams]
    for j, s in enumerate(payload):
        if not 1 <= len(s) <= 0xFFFFFFFF:
            raise ValueError(f"stream {j} has length {len(s)}; must be 1 to 2^32-1 bytes")
    name = header.model_name.encode("ascii")
    version = header.version
    parts = [
        _FIXED.pack(MAGIC, version, header.quality, header.width, header.height, header.model_hash, len(name)),
        name,
        _U8.pack(header.colour) if version >= 2 else b"",
        _U8.pack(_ARCH_ID[header.architecture]) if version >= 3 else b"",
        _U8.pack(len(payload)),
        b"".join(_U32.pack(len(s)) for s in payload),
        *payload,
    ]
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[StreamHeader, list[bytes]]:
    """Parse and check a container (BS-1 ... BS-11); inverse of :func:`pack`.

    Raises:
        BitstreamError: empty or short input, wrong magic, unsupported version, invalid header field
            (size, name, colour type, architecture id), zero or absurd stream count or length, truncation,
            trailing bytes, CRC mismatch.
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
        if architecture == ARCH_HYPERPRIOR:
            raise BitstreamError(f"architecture id {code} ({architecture}) in a version-{version} stream: "
                                 "hyperprior streams are version 1 or 2")
        if pos + 1 > size:
            raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 1}")
    (count,) = _U8.unpack_from(buf, pos)
    pos += 1
    if not 1 <= count <= MAX_STREAMS:
        raise BitstreamError(f"stream count {count} outside [1, {MAX_STREAMS}]")
    if pos + 4 * count > size:
        raise BitstreamError(f"truncated: file has {size} bytes, the header needs {pos + 4 * count}")
    lengths = [_U32.unpack_from(buf, pos + 4 * j)[0] for j in range(count)]
    pos += 4 * count
    for j, n in enumerate(lengths):
        if n == 0:
            raise BitstreamError(f"stream {j} has zero length")
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
                          colour=colour, architecture=architecture)
    return header, streams
