"""Image input/output rules (documented in docs/bitstream.md, "Input images").

fxlic codes 8-bit RGB. Other inputs are converted by a fixed rule or refused:

| input                         | rule                                                                |
|-------------------------------|---------------------------------------------------------------------|
| RGB, 8 bit                    | as is                                                               |
| grayscale (L), 1-bit (1)      | replicated to R = G = B (decoded output is RGB)                      |
| palette (P)                   | expanded through the palette; transparency as for alpha below       |
| 16-bit (I;16*, I) grayscale   | p8 = (p16 · 255 + 32767) // 65535 (nearest), then as grayscale       |
| 16-bit RGB PNG                | Pillow delivers it reduced to 8 bits per channel                    |
| CMYK, YCbCr, LAB, HSV         | Pillow's conversion to RGB                                          |
| with alpha (RGBA, LA, PA)     | alpha dropped if fully opaque; otherwise refused (flatten it first) |
| float (F), other modes        | refused                                                             |

Sizes above ``MAX_PIXELS`` or ``MAX_SIDE`` are refused before decoding the pixels.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from fxlic.entropy.bitstream import MAX_PIXELS, MAX_SIDE


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
                pixels = _to_rgb(image, name)
    except ImageInputError:
        raise
    except FileNotFoundError:
        raise ImageInputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageInputError(f"{name}: is a directory") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(pixels)


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: no partial output on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 H×W×3 → PNG bytes (lossless)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()
