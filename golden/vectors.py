"""Golden-vector sets: every integer tensor of an encode and a decode, with a manifest of hashes.

Layout of a set (spec: docs/golden.md)::

    DIR/manifest.json                 spec version, model name/quality/hash, per image: arrays and files
    DIR/<image>/source.png            the input (uint8 RGB)
    DIR/<image>/<tensor>.npy          int8 CHW arrays: input, every layer output, y_hat, z_hat;
                                      int32: y_table (table index), y_mean (μ_r)
    DIR/<image>/bitstream.fxl         the encoded stream
    DIR/<image>/decoded.png           the decoded image

Every array's manifest entry carries shape, dtype, fix position and the SHA-256 of its C-order bytes.
``verify_set`` recomputes everything with the integer reference and reports, per image, the first
mismatch (tensor, index, expected, got).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fxlic.codec import Codec
from fxlic.imageio import encode_png, read_image

from .goldenset import DECODER_PREFIX

SPEC_VERSION = 1


def sha256_array(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _fix_positions(codec: Codec) -> dict[str, int]:
    return codec.net.fix_positions()


def _entry(folder: Path, image: str, name: str, array: np.ndarray, fixes: dict[str, int]) -> dict:
    file = f"{image}/{name}.npy"
    np.save(folder / file, array, allow_pickle=False)
    base = name.removeprefix(DECODER_PREFIX)
    return {"file": file, "shape": list(array.shape), "dtype": str(array.dtype), "fix_pos": fixes.get(base),
            "layout": "CHW", "sha256": sha256_array(array)}


def golden_tensors(codec: Codec, pixels: np.ndarray) -> tuple[dict[str, np.ndarray], bytes, np.ndarray]:
    """All golden tensors of one image: encoder side, then ``decoder.*`` recomputed from the bitstream."""
    result = codec.encode(pixels, keep_trace=True)
    tensors = dict(result.trace)
    tensors["y_table"] = result.y_table_index
    tensors["y_mean"] = result.y_mean
    decoder_trace: dict[str, np.ndarray] = {}
    decoded = codec.decode(result.bitstream, trace=decoder_trace)
    tensors.update({DECODER_PREFIX + k: v for k, v in decoder_trace.items()})
    return tensors, result.bitstream, decoded


def make_set(codec: Codec, images: dict[str, np.ndarray], out: str | Path, tile: int = 0) -> dict:
    """Write a golden set for ``images`` (name → uint8 H×W×3) and return its manifest. ``tile``: the DPU
    tile in pixels the board runs (recorded; the tensors never depend on it, docs/tiling.md)."""
    folder = Path(out)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    fixes = _fix_positions(codec)
    manifest = {"spec_version": SPEC_VERSION, "model": {"name": codec.model.name, "quality": codec.model.quality,
                "hash": codec.model_hash.hex()}, "images": []}
    if tile:
        manifest["tile"] = int(tile)
    for name, pixels in images.items():
        (folder / name).mkdir()
        (folder / name / "source.png").write_bytes(encode_png(pixels))
        tensors, bitstream, decoded = golden_tensors(codec, pixels)
        (folder / name / "bitstream.fxl").write_bytes(bitstream)
        (folder / name / "decoded.png").write_bytes(encode_png(decoded))
        manifest["images"].append({
            "name": name, "width": int(pixels.shape[1]), "height": int(pixels.shape[0]),
            "source": f"{name}/source.png",
            "bitstream": {"file": f"{name}/bitstream.fxl", "bytes": len(bitstream),
                          "sha256": hashlib.sha256(bitstream).hexdigest()},
            "decoded": {"file": f"{name}/decoded.png", "sha256": sha256_array(decoded)},
            "arrays": {k: _entry(folder, name, k, v, fixes) for k, v in tensors.items()},
        })
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


@dataclass
class ImageReport:
    name: str
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def first_mismatch(expected: np.ndarray, got: np.ndarray) -> str | None:
    """None if equal, else 'index (c, i, j): expected e, got g' (or the shape/dtype difference)."""
    if expected.shape != got.shape:
        return f"shape {tuple(got.shape)} != expected {tuple(expected.shape)}"
    diff = np.flatnonzero(expected.reshape(-1) != got.reshape(-1))
    if diff.size == 0:
        return None
    index = np.unravel_index(diff[0], expected.shape)
    return (f"{diff.size} of {expected.size} differ; first at {tuple(int(i) for i in index)}: "
            f"expected {expected[index]}, got {got[index]}")


def verify_set(codec: Codec, folder: str | Path) -> list[ImageReport]:
    """Recompute every tensor, the bitstream and the decoded image of a golden set; report mismatches."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("spec_version") != SPEC_VERSION:
        raise ValueError(f"golden set spec version {manifest.get('spec_version')} != {SPEC_VERSION}")
    if manifest["model"]["hash"] != codec.model_hash.hex():
        raise ValueError(f"golden set is for model hash {manifest['model']['hash'][:12]}, "
                         f"this model is {codec.model_hash.hex()[:12]}")
    reports = []
    for image in manifest["images"]:
        report = ImageReport(image["name"])
        pixels = read_image(folder / image["source"])
        tensors, bitstream, decoded = golden_tensors(codec, pixels)
        for name, entry in image["arrays"].items():
            stored = np.load(folder / entry["file"], allow_pickle=False)
            if sha256_array(stored) != entry["sha256"]:
                report.mismatches.append(f"{name}: stored file does not match its manifest hash")
                continue
            problem = first_mismatch(stored, tensors.get(name, np.empty(0)))
            report.checked += 1
            if problem:
                report.mismatches.append(f"{name}: {problem}")
        stored_stream = (folder / image["bitstream"]["file"]).read_bytes()
        report.checked += 1
        if stored_stream != bitstream:
            report.mismatches.append(f"bitstream: {len(bitstream)} bytes, expected {len(stored_stream)}; "
                                     f"first differing byte {_first_byte_diff(stored_stream, bitstream)}")
        # the committed bitstream must decode to the committed image (decoder-only determinism)
        report.checked += 1
        # identical bytes decode identically (already done above); otherwise decode the committed stream
        from_stored = decoded if stored_stream == bitstream else codec.decode(stored_stream)
        problem = first_mismatch(read_image(folder / image["decoded"]["file"]), from_stored)
        if problem:
            report.mismatches.append(f"decoded image: {problem}")
        problem = first_mismatch(from_stored, decoded)
        if problem:
            report.mismatches.append(f"re-encoded decode differs: {problem}")
        reports.append(report)
    return reports


def _first_byte_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
