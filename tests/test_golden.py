"""Golden-vector sets (docs/golden.md): the bundled set verifies; tampering is found and located."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fxlic.golden.cli import default_set
from fxlic.golden.vectors import first_mismatch, make_set, verify_set


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
