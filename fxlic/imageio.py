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
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fxlic.entropy.bitstream import COLOUR_GRAY, COLOUR_RGB, MAX_PIXELS, MAX_SIDE
from fxlic.errors import OutputError

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
    """uint8 H×W×3 (RGB) or H×W (gray) → PNG bytes (lossless). ``fast``: zlib level 1 instead of Pillow's
    default 6 — what ``fxlic decode`` writes: on a Kodak image 0.03 s instead of 0.17 s, for a 14 % larger
    file (the same pixels)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L").save(
        buffer, format="PNG", **({"compress_level": 1} if fast else {}))
    return buffer.getvalue()
