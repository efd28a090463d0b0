"""What protects a real bitstream against accidental changes (docs/entropy.md ENT-8, docs/bitstream.md BS-9).

The guarantee: the container CRC32 rejects every single-bit change and every burst of up to 32 bits of a
file. The rANS end-of-stream check (ENT-8) is a robustness rule, not an integrity check: with the CRC
recomputed, a flipped stream either fails with a one-line error or decodes to *some* image, never crashes
— and a few flips in real streams do decode (symbols of frequency 1 carry no redundancy, like escapes).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from fxlic.codec import DecodeError
from fxlic.entropy.bitstream import BitstreamError, unpack
from fxlic.entropy.rans import EntropyDecodeError, decode_symbols


@pytest.fixture(scope="module")
def real_stream(codec, kodak_image):
    result = codec.encode(kodak_image(2, (0, 0, 64, 128)))
    return result


def test_crc_rejects_every_single_bit_flip(real_stream) -> None:
    data = real_stream.bitstream
    for bit in range(8 * len(data)):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            unpack(bytes(bad))


def test_crc_rejects_bursts_up_to_32_bits(real_stream) -> None:
    data = real_stream.bitstream
    rng = np.random.default_rng(15)
    for _ in range(2000):
        length = int(rng.integers(1, 33))
        start = int(rng.integers(0, 8 * len(data) - length + 1))
        pattern = int(rng.integers(0, 1 << length)) | 1 | (1 << (length - 1))  # first and last bit flipped
        bad = bytearray(data)
        for k in range(length):
            if pattern >> k & 1:
                bad[(start + k) // 8] ^= 1 << ((start + k) % 8)
        with pytest.raises(BitstreamError):
            unpack(bytes(bad))


def test_without_the_crc_a_flip_fails_cleanly_or_decodes(codec, real_stream) -> None:
    """Every single-bit flip of the y stream, CRC recomputed: EntropyDecodeError or n symbols, nothing else.
    Whole-file decodes of a sample: DecodeError or an image of the right size."""
    header_and_streams = unpack(real_stream.bitstream)
    y_stream = header_and_streams[1][1]
    table = real_stream.y_table_index.reshape(-1)
    passed = 0
    for bit in range(8 * len(y_stream)):
        bad = bytearray(y_stream)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            values = decode_symbols(bytes(bad), table, codec.model.y_tables)
        except EntropyDecodeError:
            continue
        assert values.shape == table.shape
        passed += 1
    assert passed < 0.2 * 8 * len(y_stream)
    data = real_stream.bitstream
    for bit in range(0, 8 * (len(data) - 4), 97):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        bad[-4:] = zlib.crc32(bytes(bad[:-4])).to_bytes(4, "little")
        try:
            pixels = codec.decode(bytes(bad))
        except (BitstreamError, DecodeError):
            continue
        assert pixels.shape == (64, 128, 3) and pixels.dtype == np.uint8
