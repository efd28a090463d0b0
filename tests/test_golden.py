"""Golden-vector sets (docs/golden.md): the bundled set verifies; tampering is found and located."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fxlic.golden.cli import default_set
from fxlic.golden.vectors import DECODER_PREFIX, first_mismatch, make_set, sha256_array, verify_set


def test_bundled_golden_set_is_bit_exact(codec) -> None:
    """The committed set of the default model: every tensor, the bitstream and the decoded image."""
    folder = default_set()
    assert (folder / "manifest.json").is_file(), f"no bundled golden set at {folder}"
    reports = verify_set(codec, folder)
    assert len(reports) >= 3
    for report in reports:
        assert report.ok, report.mismatches
        assert report.checked >= 25  # ~26 tensors + bitstream + decoded image per image


@pytest.fixture()
def fresh_set(codec, kodak_image, tmp_path):
    folder = tmp_path / "golden"
    make_set(codec, {"a": kodak_image(9, (10, 20, 70, 90)), "b": kodak_image(20, (0, 0, 64, 64))}, folder)
    return folder


def test_make_then_verify(codec, fresh_set) -> None:
    manifest = json.loads((fresh_set / "manifest.json").read_text())
    assert manifest["model"]["hash"] == codec.model_hash.hex()
    arrays = manifest["images"][0]["arrays"]
    for layer in ("input", "g_a.0", "h_a.2", "h_s_scales", "y_hat", "z_hat", "y_table", "decoder.g_s.3"):
        assert layer in arrays
    assert arrays["g_a.0"]["fix_pos"] == codec.model.layers["g_a.0"].fix_out
    assert all(r.ok for r in verify_set(codec, fresh_set))


def test_a_substream_stream_makes_and_verifies(codec, tmp_path) -> None:
    """An image of more than one 256-pixel tile is coded in y substreams (format version 4,
    docs/bitstream.md BS-12): its golden set records and re-decodes them."""
    folder = tmp_path / "golden"
    rows, cols = np.mgrid[:40, :300]
    pixels = np.stack([(cols * 7) % 256, (rows * 5 + cols) % 256, (rows * cols) % 251], axis=-1).astype(np.uint8)
    make_set(codec, {"wide": pixels}, folder)
    assert (folder / "wide" / "bitstream.fxl").read_bytes()[4] == 4
    assert all(r.ok for r in verify_set(codec, folder))


def test_a_changed_value_is_located(codec, fresh_set) -> None:
    """A flipped value in one stored layer is reported with layer, index, expected and got."""
    manifest = json.loads((fresh_set / "manifest.json").read_text())
    entry = manifest["images"][1]["arrays"]["h_a.1"]
    array = np.load(fresh_set / entry["file"])
    array[3, 1, 0] ^= 1
    np.save(fresh_set / entry["file"], array)
    entry["sha256"] = __import__("hashlib").sha256(array.tobytes()).hexdigest()
    (fresh_set / "manifest.json").write_text(json.dumps(manifest))
    reports = verify_set(codec, fresh_set)
    assert reports[0].ok and not reports[1].ok
    assert reports[1].mismatches == [f"h_a.1: 1 of {array.size} differ; first at (3, 1, 0): expected "
                                     f"{array[3, 1, 0]}, got {array[3, 1, 0] ^ 1}"]
    # recomputed from its committed input, h_a.1 is the first step that disagrees with the set
    assert reports[1].first_divergence.startswith("h_a.1 (from its committed input): 1 of ")


@pytest.mark.parametrize("layer", ["g_a.1", "h_s.1"])
def test_a_one_lsb_rounding_change_is_located(codec, fresh_set, monkeypatch, layer: str) -> None:
    """A platform whose ``layer`` rounds ties down instead of up (accumulator − 1 before the rounding
    shift) gets a report naming that layer and element, not an entropy-decoder exception, even though
    the committed stream no longer decodes (or decodes to other pixels) with it."""
    from fxlic.fxp.conv import requantize_accumulator
    from fxlic.fxp.layer import QuantConv

    original = QuantConv.__call__

    def ties_down(self: QuantConv, x: np.ndarray, impl: str = "blas", **kwargs) -> np.ndarray:
        if self.name != layer:
            return original(self, x, impl, **kwargs)
        acc = self.accumulate(x, impl) - 1
        return requantize_accumulator(acc, self.bias, self.shift_bias, self.shift_cut, self.activation)

    monkeypatch.setattr(QuantConv, "__call__", ties_down)
    reports = verify_set(codec, fresh_set)
    assert not any(r.ok for r in reports)
    for report in reports:
        assert report.mismatches  # end to end: tensors and stream differ
        assert report.first_divergence.startswith(f"{layer} (from its committed input): ")
        assert "first at (" in report.first_divergence
        # the committed input of every other layer reproduces its committed output
        names = {line.split(" ")[0] for line in report.layer_mismatches}
        assert names <= {layer, DECODER_PREFIX + layer}
        if layer.startswith("h_s"):  # the decoder's h_s also runs on the committed ẑ of the stream
            assert DECODER_PREFIX + layer in names


def test_golden_hashes_are_byte_order_independent() -> None:
    """sha256_array hashes the little-endian form: a big-endian host gets the manifest's hashes."""
    values = np.arange(-5, 7, dtype=np.int32).reshape(3, 4)
    assert sha256_array(values.astype(">i4")) == sha256_array(values.astype("<i4"))
    little = values.astype("<i4").tobytes()
    assert sha256_array(values.astype("<i4")) == __import__("hashlib").sha256(little).hexdigest()


def test_a_changed_file_without_manifest_update_is_reported(codec, fresh_set) -> None:
    entry = json.loads((fresh_set / "manifest.json").read_text())["images"][0]["arrays"]["y_hat"]
    array = np.load(fresh_set / entry["file"])
    array.flat[0] += 1
    np.save(fresh_set / entry["file"], array)
    report = verify_set(codec, fresh_set)[0]
    assert report.mismatches == ["y_hat: stored file does not match its manifest hash"]


def test_first_mismatch() -> None:
    a = np.zeros((2, 3, 4), dtype=np.int8)
    assert first_mismatch(a, a.copy()) is None
    b = a.copy()
    b[1, 2, 3] = 5
    assert first_mismatch(a, b) == "1 of 24 differ; first at (1, 2, 3): expected 0, got 5"
    assert "shape" in first_mismatch(a, a[:1])


def test_a_corrupted_committed_stream_is_reported_at_the_decoder(codec, fresh_set) -> None:
    """A flipped byte in a committed stream: reported, not raised; the layer-by-layer pass names the
    decoder's first step (entropy decoding of ẑ from the container), with the container's CRC error —
    every encoder-side step still reproduces its committed output."""
    path = fresh_set / "b" / "bitstream.fxl"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x5A
    path.write_bytes(bytes(data))
    report = verify_set(codec, fresh_set)[1]
    assert any(line.startswith("bitstream:") for line in report.mismatches)
    assert any(line.startswith("committed bitstream does not decode: ") for line in report.mismatches)
    assert report.first_divergence.startswith(DECODER_PREFIX + "z_hat (from its committed input): cannot recompute")
    assert "CRC" in report.first_divergence
    assert all(line.startswith(DECODER_PREFIX) for line in report.layer_mismatches)
