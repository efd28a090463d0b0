"""Input-image rules (fxlic.imageio docstring, docs/bitstream.md 'Input images')."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fxlic.imageio import ImageInputError, encode_png_fast, read_image


def _save(tmp_path, image: Image.Image, name: str = "in.png"):
    path = tmp_path / name
    image.save(path)
    return path


def test_grayscale_is_replicated(tmp_path) -> None:
    gray = np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) % 256
    pixels = read_image(_save(tmp_path, Image.fromarray(gray.astype(np.uint8), "L")))
    assert pixels.shape == (32, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(pixels[:, :, c], gray)


def test_sixteen_bit_gray_rounds_to_nearest(tmp_path) -> None:
    wide = np.array([[0, 128, 129, 257, 32767, 65535]], dtype=np.uint16)
    image = Image.fromarray(wide)
    pixels = read_image(_save(tmp_path, image))
    np.testing.assert_array_equal(pixels[0, :, 0], ((wide.astype(np.int64) * 255 + 32767) // 65535)[0])


def test_palette_expands(tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    np.testing.assert_array_equal(read_image(_save(tmp_path, pal)), np.asarray(pal.convert("RGB")))


def test_opaque_alpha_is_dropped_transparent_refused(tmp_path) -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    assert read_image(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png")).shape == (8, 8, 3)
    rgba[0, 0, 3] = 10
    with pytest.raises(ImageInputError, match="transparency"):
        read_image(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "b.png"))


def test_float_images_are_refused(tmp_path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.zeros((4, 4), dtype=np.float32), "F").save(path)
    with pytest.raises(ImageInputError, match="not supported"):
        read_image(path)


def test_garbage_is_refused(tmp_path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ImageInputError, match="not a readable image"):
        read_image(path)


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 200), width=st.integers(1, 40), gray=st.booleans(), bands=st.integers(1, 5),
       seed=st.integers(0, 2**31 - 1))
def test_fast_png_is_a_valid_png_of_the_same_pixels(height, width, gray, bands, seed) -> None:
    """encode_png_fast (what fxlic decode writes): band-parallel deflate joined into one zlib stream; Pillow reads
    back the same pixels, and the IDAT stream passes zlib's own checks (its Adler-32 included)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width) if gray else (height, width, 3)).astype(np.uint8)
    pixels[: height // 2] //= 16  # some compressible rows too
    data = encode_png_fast(pixels, bands=min(bands, height))
    image = Image.open(io.BytesIO(data))
    assert image.mode == ("L" if gray else "RGB")
    assert np.array_equal(np.asarray(image), pixels)
    length = struct.unpack(">I", data[33:37])[0]  # the IDAT chunk follows the 8-byte signature and IHDR (25)
    assert data[37:41] == b"IDAT"
    rows = zlib.decompress(data[41 : 41 + length])  # raises on a bad stream or checksum
    assert len(rows) == height * (1 + width * (1 if gray else 3))
