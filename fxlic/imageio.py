"""Image input/output rules (documented in docs/bitstream.md, "Input images").

fxlic codes 8-bit RGB. Other inputs are converted by a fixed rule or refused:

| input                         | rule                                                                |
|-------------------------------|---------------------------------------------------------------------|
| RGB, 8 bit                    | as is                                                               |
| grayscale (L), 1-bit (1)      | replicated to R = G = B; the stream records "gray" (BS-10) and the   |
|                               | decoder writes one gray channel, (R + G + B + 1) // 3                |
| palette (P)                   | expanded through the palette; transparency as for alpha below       |
| 16-bit (I;16*, I) grayscale   | p8 = (p16 · 255 + 32767) // 65535 (nearest), then as grayscale       |
| 16-bit RGB PNG                | Pillow delivers it reduced to 8 bits per channel                    |
| CMYK, YCbCr, LAB, HSV         | Pillow's conversion to RGB                                          |
| with alpha (RGBA, LA, PA)     | alpha dropped if fully opaque; otherwise refused (flatten it first) |
| float (F), other modes        | refused                                                             |

A JPEG/TIFF/WebP EXIF orientation tag is applied first (the pixels are turned the way viewers show
them). Sizes above ``MAX_PIXELS`` or ``MAX_SIDE`` are refused before decoding the pixels.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fxlic.entropy.bitstream import COLOUR_GRAY, COLOUR_RGB, MAX_PIXELS, MAX_SIDE
from fxlic.entropy.rans import available_cpus
from fxlic.errors import OutputError

if TYPE_CHECKING:  # Pillow is imported where images are read: a decode writes its PNG without it
    from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp")
"""File extensions ``fxlic encode`` / ``fxlic eval`` pick up from a folder (any file Pillow reads is accepted
when named explicitly)."""
GRAY_MODES = ("L", "1", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


class ImageInputError(ValueError):
    """An input image that fxlic refuses, with a one-line reason."""


def _to_rgb(image: Image.Image, name: str) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            raise ImageInputError(f"{name}: has transparency ({mode}); fxlic codes opaque RGB only, flatten it first")
        image = image.convert("RGB" if mode.startswith("RGB") else "L")
        mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        wide = np.asarray(image, dtype=np.int64)
        if wide.min() < 0 or wide.max() > 65535:
            raise ImageInputError(f"{name}: {mode} values outside 0..65535 are not supported")
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("L", "1"):
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
        mode = "RGB"
    if mode != "RGB":
        raise ImageInputError(f"{name}: image mode {mode} is not supported (8/16-bit gray, palette, RGB, RGBA)")
    return np.asarray(image, dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB by the rules above; raises ImageInputError."""
    return read_image_with_colour(path)[0]


def read_image_with_colour(path: str | Path) -> tuple[np.ndarray, int]:
    """(uint8 H×W×3 RGB by the rules above, colour type of the source: COLOUR_GRAY or COLOUR_RGB)."""
    from PIL import Image, ImageOps

    path = Path(path)
    name = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageInputError(f"{name}: empty image ({width}x{height})")
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise ImageInputError(
                        f"{name}: {width}x{height} exceeds the limit ({MAX_PIXELS} pixels, {MAX_SIDE} per side)"
                    )
                image.load()
                colour = COLOUR_GRAY if image.mode in GRAY_MODES else COLOUR_RGB
                image = ImageOps.exif_transpose(image)  # viewers honour EXIF orientation; so do we
                pixels = _to_rgb(image, name)
    except ImageInputError:
        raise
    except FileNotFoundError:
        raise ImageInputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageInputError(f"{name}: is a directory") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(pixels), colour


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 → uint8 H×W: the nearest integer to the channel mean, (R + G + B + 1) // 3.

    A gray source was coded as R = G = B; the lossy decode differs a little per channel (colour noise),
    and the mean is the natural single-channel estimate."""
    total = pixels.astype(np.uint16).sum(axis=2)
    return ((total + 1) // 3).astype(np.uint8)


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: no partial output on failure."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    except OSError as exc:  # name the user's path, not the hidden temporary file
        raise OutputError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(pixels: np.ndarray, fast: bool = False) -> bytes:
    """uint8 H×W×3 (RGB) or H×W (gray) → PNG bytes (lossless). ``fast`` (what ``fxlic decode`` writes):
    :func:`encode_png_fast`; otherwise Pillow's default (zlib level 6, adaptive filters)."""
    if fast:
        return encode_png_fast(pixels)
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L").save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png_fast(pixels: np.ndarray, bands: int | None = None) -> bytes:
    """uint8 H×W×3 or H×W → PNG bytes, written for speed (a Kodak image: 12–25 ms instead of Pillow's 36–55 at
    zlib level 1, and 10 % larger than Pillow's level-1 file; the same pixels).

    Every row has PNG filter type 1 ("Sub": each byte minus the byte one pixel to its left, modulo 256). The
    filtered rows are cut into ``bands`` (default: one per available core, at least 64 rows each), each band
    deflated at level 1 on its own thread (zlib releases the GIL) and ended with a sync flush, which
    byte-aligns it, so the bands concatenate into one valid zlib stream (a band never refers back into the one
    before it); the stream's Adler-32 is that of all filtered rows (PNG specification, ISO/IEC 15948, §10;
    RFC 1950 / 1951)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"expected uint8 H×W×3 or H×W pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    channels = 3 if pixels.ndim == 3 else 1
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    filtered = np.empty((height, 1 + width * channels), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub
    filtered[:, 1 : 1 + channels] = rows[:, :channels]
    np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])  # uint8: modulo 256
    raw = filtered.reshape(-1)
    if bands is None:
        bands = max(1, min(available_cpus(), height // 64))
    cuts = [height * k // bands * filtered.shape[1] for k in range(bands + 1)]

    def deflate(k: int) -> bytes:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate: the zlib header is written once
        last = k == bands - 1
        return compressor.compress(raw[cuts[k] : cuts[k + 1]]) + compressor.flush(
            zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    if bands == 1:
        parts = [deflate(0)]
    else:
        with ThreadPoolExecutor(max_workers=bands) as pool:
            parts = list(pool.map(deflate, range(bands)))
    stream = b"\x78\x01" + b"".join(parts) + struct.pack(">I", zlib.adler32(raw))  # CMF/FLG: deflate, level 1
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b"")
