"""Golden-vector sets of charm model files (docs/golden.md, "charm"; docs/charm.md): every slice's tensors are
recorded and verified, a fault in one slice stack is located by layer, slice and element, and `fxlic golden
verify` checks every bundled set (a charm set beside the mean-scale one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fxlic.families import open_codec
from fxlic.golden.vectors import DECODER_PREFIX, make_set, verify_set

CROPS = {"a": (23, (100, 200, 70, 90)), "b": (5, (0, 0, 64, 64))}


@pytest.fixture(scope="module")
def charm_codec(tiny_charm):
    return open_codec(tiny_charm[1])


@pytest.fixture()
def charm_set(charm_codec, kodak_image, tmp_path) -> Path:
    folder = tmp_path / "golden-charm"
    make_set(charm_codec, {name: kodak_image(index, crop) for name, (index, crop) in CROPS.items()}, folder)
    return folder


def test_charm_set_records_every_slice_and_verifies(charm_codec, charm_set) -> None:
    """docs/golden.md: a charm set records, per slice i, the contexts (CH-2), every layer of cc_scales.i,
    cc_means.i (encoder and decoder) and lrp.i (decoder), ỹ (CH-8), with their fix positions; the stream is a
    version-3 charm stream (BS-11); `verify` recomputes all of it bit for bit."""
    net = charm_codec.net
    manifest = json.loads((charm_set / "manifest.json").read_text())
    arrays = manifest["images"][0]["arrays"]
    slices = net.slices
    for i in range(slices):
        for kind in ("cc_scales", "cc_means"):
            for j in range(3):
                assert f"{kind}.{i}.{j}" in arrays and f"{DECODER_PREFIX}{kind}.{i}.{j}" in arrays
        assert f"{DECODER_PREFIX}lrp.{i}.2" in arrays and f"lrp.{i}.2" not in arrays  # LRP: decoder only
    for i in range(1, slices):
        assert arrays[f"scale_context.{i}"]["fix_pos"] == net.h_s_scales.fix_out
        assert arrays[f"{DECODER_PREFIX}mean_context.{i}"]["shape"][0] == net.latent_channels + i * net.slice_channels
    assert arrays[f"{DECODER_PREFIX}mean_context.{slices}"]["fix_pos"] == net.h_s_means.fix_out
    assert arrays[f"{DECODER_PREFIX}y_tilde"]["fix_pos"] == net.fix_y_tilde
    assert arrays["cc_means.1.2"]["fix_pos"] == net.stacks["cc_means"][1][-1].fix_out
    assert arrays["y_table"]["shape"][0] == net.latent_channels
    assert (charm_set / "a" / "bitstream.fxl").read_bytes()[4] == 3
    reports = verify_set(charm_codec, charm_set)
    assert [r.ok for r in reports] == [True, True], [r.mismatches for r in reports]
    assert reports[0].checked == len(arrays) + 2


def flip_one(layer_name: str):
    """A QuantConv.__call__ that flips one bit of one output value of ``layer_name`` (a platform fault)."""
    from fxlic.fxp.layer import QuantConv

    original = QuantConv.__call__

    def call(self: QuantConv, x: np.ndarray, impl: str = "blas", **kwargs) -> np.ndarray:
        out = original(self, x, impl, **kwargs)
        if self.name == layer_name:
            out = out.copy()
            out.view(np.uint8)[0, 1, 1] ^= 0x10
        return out

    return call


@pytest.mark.parametrize("layer", ["cc_means.1.1", "cc_scales.0.2", "lrp.2.0"])
def test_a_fault_in_one_slice_stack_is_located(charm_codec, charm_set, monkeypatch, layer: str) -> None:
    """docs/golden.md: "a divergence is located by layer (for charm: slice stack and slice) and element": a
    platform whose ``layer`` gets one value wrong is reported with that layer, recomputed from its committed
    input, first — and only that layer (encoder and decoder side) differs in isolation."""
    from fxlic.fxp.layer import QuantConv

    monkeypatch.setattr(QuantConv, "__call__", flip_one(layer))
    reports = verify_set(charm_codec, charm_set)
    for report in reports:
        assert not report.ok and report.mismatches
        side = DECODER_PREFIX if layer.startswith("lrp") else ""  # LRP runs in the decoder only
        assert report.first_divergence.startswith(f"{side}{layer} (from its committed input): 1 of "), \
            report.layer_mismatches
        assert "first at (0, 1, 1)" in report.first_divergence
        names = {line.split(" (from")[0] for line in report.layer_mismatches}
        assert names <= {layer, DECODER_PREFIX + layer}


def test_a_corrupted_slice_stream_is_located_at_its_slice(charm_codec, charm_set) -> None:
    """CH-6/CH-7: one rANS stream per slice; a committed stream whose slice-1 payload is corrupted (CRC made
    valid again) is reported, not raised, and the first step that disagrees is that slice's entropy decode
    (or the decode of a later slice, never an encoder step)."""
    import struct
    import zlib

    from fxlic.entropy.bitstream import pack, unpack

    path = charm_set / "a" / "bitstream.fxl"
    header, streams = unpack(path.read_bytes())
    broken = bytearray(streams[2])
    broken[len(broken) // 2] ^= 0xFF
    data = pack(header, [*streams[:2], bytes(broken), *streams[3:]])
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
    path.write_bytes(data)
    report = verify_set(charm_codec, charm_set)[0]
    assert any(line.startswith("bitstream:") for line in report.mismatches)
    assert all(line.startswith(DECODER_PREFIX) for line in report.layer_mismatches), report.layer_mismatches
    assert report.first_divergence.startswith(f"{DECODER_PREFIX}y_hat slice "), report.layer_mismatches
    assert int(report.first_divergence.split("slice ")[1].split(" ")[0]) >= 1


def test_verify_checks_every_bundled_set(tiny_charm, kodak_image, tmp_path, monkeypatch, capsys) -> None:
    """docs/golden.md: bundled sets live in golden/vectors/<model>-q<quality>/; a charm set beside the
    mean-scale one is verified too by `fxlic golden verify` (no argument), each with its shipped model; one
    failing set fails the command and is named. `golden make` writes a charm set from a charm model file."""
    from fxlic import models
    from fxlic.cli import main
    from fxlic.golden import goldenset
    from fxlic.imageio import encode_png

    shipped = tmp_path / "models"
    shipped.mkdir()
    (shipped / "meanscale-q4.npz").symlink_to(models.resolve("meanscale", 4))
    shutil.copy(tiny_charm[1].path, shipped / "charm-q2.npz")
    (shipped / "index.json").write_text(json.dumps({"default": "meanscale", "default_quality": {"meanscale": 4}}))
    monkeypatch.setattr(models, "MODELS_DIR", shipped)
    monkeypatch.setattr(models, "_LOADED", {})
    source = tmp_path / "k.png"
    source.write_bytes(encode_png(kodak_image(13, (200, 400, 64, 64))))
    vectors = tmp_path / "vectors"
    for name in ("meanscale", "charm"):
        quality = "4" if name == "meanscale" else "2"
        assert main(["golden", "make", "--model", name, "--quality", quality, "--images", str(source),
                     "--out", str(vectors / f"{name}-q{quality}")]) == 0
    monkeypatch.setattr(goldenset, "bundled_root", lambda: _as_context(vectors))
    capsys.readouterr()
    assert main(["golden", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.index("meanscale-q4") < out.index("charm-q2")  # the default model's set first
    assert "charm q2" in out and ", charm)" in out
    assert out.strip().splitlines()[-1].startswith("2/2 images bit-exact in 2 bundled golden sets")
    # --model-file without a folder: the bundled set of that model only
    assert main(["golden", "verify", "--model-file", str(shipped / "charm-q2.npz")]) == 0
    assert "meanscale-q4" not in capsys.readouterr().out
    # a broken charm set fails the whole verification and is named
    entry = json.loads((vectors / "charm-q2" / "manifest.json").read_text())["images"][0]["arrays"]["cc_means.1.2"]
    array = np.load(vectors / "charm-q2" / entry["file"])
    array.flat[0] ^= 1
    np.save(vectors / "charm-q2" / entry["file"], array)
    assert main(["golden", "verify"]) == 1
    assert "failed: charm-q2" in capsys.readouterr().out


class _as_context:  # noqa: N801 - stands in for importlib.resources.as_file
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        return None
