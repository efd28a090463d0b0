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
mismatch (tensor, index, expected, got); when anything differs it also recomputes every layer from its
committed input (``localize``), which names the first layer and element the platform gets wrong.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fxlic.codec import Codec, DecodeError, pad_image, pixels_to_input
from fxlic.entropy.bitstream import BitstreamError, unpack
from fxlic.entropy.conditional import factorized_table_indexes
from fxlic.entropy.rans import decode_symbols
from fxlic.entropy.substreams import decode_substreams, split_substreams
from fxlic.imageio import encode_png, read_image
from fxlic.reference.charm import MEAN_CONTEXT, SCALE_CONTEXT, IntegerCharm, context_name
from fxlic.reference.modelfile import little_endian

from .goldenset import DECODER_PREFIX

SPEC_VERSION = 1


def sha256_array(array: np.ndarray) -> str:
    """SHA-256 of the array's C-order bytes in little-endian form (the same on a big-endian host)."""
    return hashlib.sha256(little_endian(array).tobytes()).hexdigest()


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
    decoder = codec.model.decoder
    if decoder is not None:  # a lite decoder: the model's streams, this decoder's g_s and pixels
        manifest["decoder"] = {"name": decoder.name, "hash": decoder.content_hash().hex(),
                               "widths": list(decoder.widths)}
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
    """Outcome of verifying one image of a golden set.

    ``mismatches``: everything that differs, end to end (re-encode, committed stream decode).
    ``layer_mismatches``: filled only when something differs: each step (layer, latent rounding, table
    selection, entropy decode) recomputed in isolation from its *committed* input, in data-flow order —
    the first entry is the first step this platform computes differently (``first_divergence``).
    """

    name: str
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    layer_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.layer_mismatches

    @property
    def first_divergence(self) -> str | None:
        return self.layer_mismatches[0] if self.layer_mismatches else None


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


def _load_committed(folder: Path, image: dict, report: ImageReport) -> dict[str, np.ndarray]:
    """The committed arrays of one image whose files match their manifest hashes (others are reported)."""
    stored: dict[str, np.ndarray] = {}
    for name, entry in image["arrays"].items():
        array = np.load(folder / entry["file"], allow_pickle=False)
        if sha256_array(array) != entry["sha256"]:
            report.mismatches.append(f"{name}: stored file does not match its manifest hash")
            continue
        stored[name] = array
    return stored


Step = tuple[str, str, "slice | None", Callable[[], np.ndarray]]
"""(label, committed tensor, channel range of it or None for all, recompute from committed inputs)."""


def _isolated_steps(codec: Codec, stored: dict[str, np.ndarray], pixels: np.ndarray,
                    stored_stream: bytes) -> list[Step]:
    """Every step of the golden model, each recomputed from its committed input, in data-flow order: the
    encoder (input, g_a, ŷ, h_a, ẑ, h_s, heads, table index, μ_r), then the decoder (ẑ entropy-decoded from the
    committed stream, h_s, heads, ŷ entropy-decoded with the tables of the committed heads, g_s). For a charm
    model (docs/charm.md) the heads are the supports and every slice adds its steps: its contexts (CH-2), the
    layers of ``cc_scales.i`` and ``cc_means.i``, its table indices and μ_r, its entropy decode (CH-7), then
    each ``lrp.i``, ỹ (CH-8) and g_s."""
    net, impl = codec.net, codec.net.impl
    steps: list[Step] = []

    def chain(layers: list, source: str, prefix: str = "") -> None:
        for layer in layers:
            steps.append((prefix + layer.name, prefix + layer.name, None,
                          lambda layer=layer, source=source: layer(stored[source], impl=impl)))
            source = prefix + layer.name

    def step(name: str, recompute: Callable[[], np.ndarray]) -> None:
        steps.append((name, name, None, recompute))

    def heads(prefix: str) -> None:
        hidden = prefix + net.h_s[-1].name
        for head in [net.h_s_scales] + ([net.h_s_means] if net.h_s_means is not None else []):
            step(prefix + head.name, lambda head=head: head(stored[hidden], impl=impl))

    def stream(index: int) -> bytes:
        return unpack(stored_stream)[1][index]

    def z_from_stream() -> np.ndarray:
        shape = stored[DECODER_PREFIX + "z_hat"].shape
        return decode_symbols(stream(0), factorized_table_indexes(shape), codec.model.z_tables).reshape(shape)

    def coding_params(prefix: str) -> tuple[np.ndarray, np.ndarray]:  # mean-scale / scale hyperprior
        means = stored[prefix + net.h_s_means.name] if net.h_s_means is not None else None
        return net.y_coding_params(stored[prefix + net.h_s_scales.name], means)

    def y_from_stream() -> np.ndarray:  # mean-scale / scale hyperprior
        table, mean_r = coding_params(DECODER_PREFIX)
        header = unpack(stored_stream)[0]
        if header.substream_tile:  # version 4: one substream per tile (docs/bitstream.md BS-12)
            symbols = decode_substreams(split_substreams(stream(1), header.substream_offsets), table,
                                        codec.model.y_tables, header.substream_tile // net.latent_stride)
        else:
            symbols = decode_symbols(stream(1), table.reshape(-1), codec.model.y_tables)
        return symbols.reshape(table.shape).astype(np.int64) + mean_r

    y_name, z_name = net.g_a[-1].name, net.h_a[-1].name
    # encoder
    step("input", lambda: pixels_to_input(pad_image(pixels)))
    chain(net.g_a, "input")
    if net.y_hat_twin is None:
        step("y_hat", lambda: net.quantize_latent(stored[y_name], net.fix_y))
    else:  # ŷ from the twin of g_a's last conv, one rounding (FXP-Q6)
        chain([net.y_hat_twin], net.g_a[-2].name)
        step("y_hat", lambda: stored[net.y_hat_twin.name])
    chain(net.h_a, y_name)
    step("z_hat", lambda: net.quantize_latent(stored[z_name], net.fix_z))
    chain(net.h_s, "z_hat")
    heads("")
    if isinstance(net, IntegerCharm):
        steps.extend(_charm_slice_steps(net, stored, "", stream))
    else:
        step("y_table", lambda: coding_params("")[0])
        step("y_mean", lambda: coding_params("")[1])
    # decoder
    step(DECODER_PREFIX + "z_hat", z_from_stream)
    chain(net.h_s, DECODER_PREFIX + "z_hat", DECODER_PREFIX)
    heads(DECODER_PREFIX)
    if isinstance(net, IntegerCharm):
        steps.extend(_charm_slice_steps(net, stored, DECODER_PREFIX, stream))
        chain(net.g_s, DECODER_PREFIX + "y_tilde", DECODER_PREFIX)
    else:
        step(DECODER_PREFIX + "y_hat", y_from_stream)
        chain(net.g_s, DECODER_PREFIX + "y_hat", DECODER_PREFIX)
    return steps


def _charm_slice_steps(net: IntegerCharm, stored: dict[str, np.ndarray], prefix: str,
                       stream: Callable[[int], bytes]) -> list[Step]:
    """The slice loop of a charm model (docs/charm.md CH-2 … CH-8), step by step from committed tensors.

    Encoder side (``prefix`` ""): per slice i its contexts (i ≥ 1, from the committed supports and ŷ), the
    layers of ``cc_scales.i`` and ``cc_means.i``, and its channels of ``y_table`` / ``y_mean``. Decoder side
    (``prefix`` "decoder."): the same stacks from the decoder's committed tensors, slice i's channels of ŷ
    entropy-decoded from stream 1 + i with the tables of the committed heads, then every ``lrp.i`` from its
    committed context, and ỹ from the committed ŷ and r_i.
    """
    impl = net.impl
    steps: list[Step] = []
    scales, means = prefix + net.h_s_scales.name, prefix + net.h_s_means.name

    def slices(count: int) -> list[np.ndarray]:
        y_hat = stored[prefix + "y_hat"]
        return [y_hat[net.slice_bounds(j)] for j in range(count)]

    def chain(layers: list, source: str) -> None:
        for layer in layers:
            name = prefix + layer.name
            steps.append((name, name, None, lambda layer=layer, source=source: layer(stored[source], impl=impl)))
            source = name

    def tables(i: int) -> tuple[np.ndarray, np.ndarray]:
        heads = [stored[prefix + net.stacks[kind][i][-1].name] for kind in ("cc_scales", "cc_means")]
        return net.slice_tables(i, *heads)

    def decoded(i: int) -> np.ndarray:
        table, mean_r = tables(i)
        symbols = decode_symbols(stream(1 + i), table.reshape(-1), net.model.y_tables)
        return symbols.reshape(table.shape).astype(np.int64) + mean_r

    for i in range(net.slices):
        scale_source, mean_source = scales, means
        if i:
            scale_source = prefix + context_name(SCALE_CONTEXT, i)
            mean_source = prefix + context_name(MEAN_CONTEXT, i)
            steps.append((scale_source, scale_source, None,
                          lambda i=i: net.scale_context(stored[scales], slices(i))))
            steps.append((mean_source, mean_source, None, lambda i=i: net.mean_context(stored[means], slices(i))))
        chain(net.stacks["cc_scales"][i], scale_source)
        chain(net.stacks["cc_means"][i], mean_source)
        part = net.slice_bounds(i)
        if prefix:
            steps.append((f"{prefix}y_hat slice {i}", prefix + "y_hat", part, lambda i=i: decoded(i)))
        else:
            steps.append((f"y_table slice {i}", "y_table", part, lambda i=i: tables(i)[0]))
            steps.append((f"y_mean slice {i}", "y_mean", part, lambda i=i: tables(i)[1]))
    if not prefix:
        return steps
    for i in range(net.slices):
        context = prefix + context_name(MEAN_CONTEXT, i + 1)
        if i + 1 == net.slices:  # the last context feeds lrp.{S−1} only
            steps.append((context, context, None, lambda: net.mean_context(stored[means], slices(net.slices))))
        chain(net.stacks["lrp"][i], context)
    residuals = [prefix + stack[-1].name for stack in net.stacks["lrp"]]
    steps.append((prefix + "y_tilde", prefix + "y_tilde", None,
                  lambda: net.synthesis_input(slices(net.slices), [stored[r] for r in residuals])))
    return steps


def localize(codec: Codec, stored: dict[str, np.ndarray], pixels: np.ndarray, stored_stream: bytes) -> list[str]:
    """Recompute every step of a golden image from its committed input; one line per step that differs.

    Unlike the end-to-end check, a difference here cannot be inherited from an earlier step: the first
    line names the first layer (or latent rounding, table choice, entropy decode; for charm also the slice
    and its stack) and element this platform computes differently, even when the stream no longer decodes.
    A step over some channels of a tensor (a charm slice: ``decoder.y_hat slice 1``) gives indices inside
    that slice.
    """
    lines = []
    for label, name, part, recompute in _isolated_steps(codec, stored, pixels, stored_stream):
        if name not in stored:
            continue
        expected = stored[name] if part is None else stored[name][part]
        try:
            problem = first_mismatch(expected, np.asarray(recompute()))
        except (KeyError, ValueError) as exc:  # a missing input, an undecodable stream
            problem = f"cannot recompute from the committed input ({type(exc).__name__}: {exc})"
        if problem:
            lines.append(f"{label} (from its committed input): {problem}")
    return lines


def verify_set(codec: Codec, folder: str | Path) -> list[ImageReport]:
    """Recompute every tensor, the bitstream and the decoded image of a golden set; report mismatches.

    End to end first (re-encode the source, compare every tensor and the stream, decode the committed
    stream); if anything differs, every step is recomputed from its committed input (``localize``) so
    that the report names the first diverging layer and element. Undecodable streams are reported, not
    raised.
    """
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("spec_version") != SPEC_VERSION:
        raise ValueError(f"golden set spec version {manifest.get('spec_version')} != {SPEC_VERSION}")
    if manifest["model"]["hash"] != codec.model_hash.hex():
        raise ValueError(f"golden set is for model hash {manifest['model']['hash'][:12]}, "
                         f"this model is {codec.model_hash.hex()[:12]}")
    want = manifest.get("decoder")
    have = codec.model.decoder
    if (want is None) != (have is None) or (want and want["hash"] != have.content_hash().hex()):
        raise ValueError(f"golden set is for decoder {want['name'] if want else 'full'}"
                         f"{' (' + want['hash'][:12] + ')' if want else ''}, this codec decodes with "
                         f"{codec.model.decoder_name}"
                         f"{' (' + have.content_hash().hex()[:12] + ')' if have else ''}")
    reports = []
    for image in manifest["images"]:
        report = ImageReport(image["name"])
        pixels = read_image(folder / image["source"])
        stored = _load_committed(folder, image, report)
        stored_stream = (folder / image["bitstream"]["file"]).read_bytes()
        try:
            tensors, bitstream, decoded = golden_tensors(codec, pixels)
        except (BitstreamError, DecodeError) as exc:  # this platform's own stream does not decode
            report.mismatches.append(f"re-encode: its own bitstream does not decode: {exc}")
            tensors, bitstream, decoded = {}, b"", None
        for name, expected in stored.items():
            report.checked += 1
            problem = first_mismatch(expected, tensors[name]) if name in tensors else "not recomputed"
            if problem:
                report.mismatches.append(f"{name}: {problem}")
        report.checked += 1
        if stored_stream != bitstream:
            report.mismatches.append(f"bitstream: {len(bitstream)} bytes, expected {len(stored_stream)}; "
                                     f"first differing byte {_first_byte_diff(stored_stream, bitstream)}")
        # the committed bitstream must decode to the committed image (decoder-only determinism)
        report.checked += 1
        if stored_stream == bitstream:  # identical bytes decode identically (already done above)
            from_stored = decoded
        else:
            try:
                from_stored = codec.decode(stored_stream)
            except (BitstreamError, DecodeError) as exc:
                from_stored = None
                report.mismatches.append(f"committed bitstream does not decode: {exc}")
        if from_stored is not None:
            problem = first_mismatch(read_image(folder / image["decoded"]["file"]), from_stored)
            if problem:
                report.mismatches.append(f"decoded image: {problem}")
            if decoded is not None:
                problem = first_mismatch(from_stored, decoded)
                if problem:
                    report.mismatches.append(f"re-encoded decode differs: {problem}")
        if report.mismatches:
            report.layer_mismatches = localize(codec, stored, pixels, stored_stream)
        reports.append(report)
    return reports


def _first_byte_diff(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
