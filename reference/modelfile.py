"""The integer model file: everything a decoder needs, integers only (spec: docs/model-file.md).

An ``.npz`` archive (NumPy's zip of ``.npy`` arrays, readable without torch) holding:

* ``meta``: UTF-8 JSON as a uint8 array — format, version, name, quality, architecture, the layer list
  (kind, stride, padding, activation, fix positions), entropy-model parameters, training record;
* ``<layer>.weight`` (int8, PyTorch layouts) and ``<layer>.bias`` (int8) for every layer;
* ``scale_lut`` (uint8 [256]): scale-table index for every int8 code of the log2 σ head;
* ``y_tables.*`` and ``z_tables.*``: the integer CDF tables (``fxlic.entropy.tables.TableSet``).

The content hash is SHA-256 over the canonical JSON of ``meta`` and, for each array in name order, its
name, dtype, shape and bytes, all in little-endian form (``<u4``, whatever the host's byte order), so the
hash is the same on every machine. Bitstreams carry its first 16 bytes, so a stream made with other
weights is refused rather than decoded into garbage.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fxlic.entropy.tables import TableSet
from fxlic.fxp.layer import QuantConv

FORMAT = "fxlic-model"
FORMAT_VERSION = 3
"""Newest model-file version this module reads. A writer uses the lowest version that can say what it has to:
1 for the mean-scale / scale hyperprior, 2 for ``charm`` (a ``charm`` object in meta, one scale LUT per slice:
docs/charm.md), 3 for either with the ŷ twin layer ``g_a_y_hat`` (ŷ rounded once from g_a's accumulator,
docs/fixed-point.md FXP-Q6), so an older reader refuses the file rather than encode ŷ with two roundings."""
CHARM_FORMAT_VERSION = 2
Y_HAT_TWIN_FORMAT_VERSION = 3
Y_HAT_TWIN = "g_a_y_hat"
DECODER_FORMAT = "fxlic-decoder"
DECODER_FORMAT_VERSION = 1
FULL_DECODER = "full"
"""The name of a model's own synthesis transform, the decoder used when none is named."""
"""Name of the ŷ twin layer: g_a's last conv (same int8 weights and bias, same input) with output fix 0."""


class ModelFileError(ValueError):
    """A model file that cannot be used (foreign, newer format, inconsistent)."""


@dataclass
class ModelFile:
    """An integer model: metadata, int8 layers and integer entropy tables."""

    meta: dict
    layers: dict[str, QuantConv]
    scale_lut: np.ndarray
    y_tables: TableSet
    z_tables: TableSet
    path: Path | None = field(default=None, compare=False)
    decoder: DecoderFile | None = field(default=None, compare=False)
    """The lite decoder whose layers replace this model's g_s (``with_decoder``), or None: the full decoder."""

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def decoder_name(self) -> str:
        """``full`` for the model's own g_s, else the attached decoder's name (e.g. ``lite48``)."""
        return FULL_DECODER if self.decoder is None else self.decoder.name

    def stream_hash(self) -> bytes:
        """The hash streams of this model carry (docs/bitstream.md BS-4): the model file's content hash. With a
        lite decoder attached it is still the *parent's*: a decoder changes no stream, only the pixels."""
        if self.decoder is None:
            return self.content_hash()
        return bytes.fromhex(self.decoder.parent_hash)

    @property
    def quality(self) -> int:
        return int(self.meta["quality"])

    @property
    def y_hat_twin(self) -> QuantConv | None:
        """The ŷ twin layer (format version 3), or None: then ŷ = requantize(y → fix 0) (FXP-Q6)."""
        return self.layers.get(Y_HAT_TWIN)

    @property
    def mean_frac_bits(self) -> int:
        return int(self.meta["entropy"]["mean_frac_bits"])

    def arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for name, layer in self.layers.items():
            arrays[f"{name}.weight"] = np.ascontiguousarray(layer.weight, dtype=np.int8)
            arrays[f"{name}.bias"] = np.ascontiguousarray(layer.bias, dtype=np.int8)
        arrays["scale_lut"] = np.ascontiguousarray(self.scale_lut, dtype=np.uint8)
        arrays.update(self.y_tables.to_arrays("y_tables"))
        arrays.update(self.z_tables.to_arrays("z_tables"))
        return arrays

    def content_hash(self) -> bytes:
        """SHA-256 of the canonical metadata and every array (name, dtype, shape, bytes).

        Arrays are hashed in their little-endian form, dtype string included (``|i1``, ``<u4``, ``<i4``):
        a big-endian host computes the same hash as a little-endian one (docs/model-file.md). On a
        little-endian host this is exactly the bytes in memory, so hashes made before this rule hold.
        """
        return _content_hash(self.meta, self.arrays())

    def save(self, path: str | Path) -> None:
        if self.decoder is not None:
            raise ValueError("a model with an attached decoder is not a model file: save the decoder file itself")
        _save_npz(path, self.meta, self.arrays())


def little_endian(array: np.ndarray) -> np.ndarray:
    """C-contiguous copy (or view) of ``array`` with a little-endian dtype; values unchanged."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _native(array: np.ndarray) -> np.ndarray:
    """``array`` in the host's byte order (the .npy files are little-endian; a big-endian host converts)."""
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _layer_from_meta(entry: dict, arrays: dict[str, np.ndarray]) -> QuantConv:
    name = entry["name"]
    return QuantConv(
        name=name,
        transposed=bool(entry["transposed"]),
        weight=arrays[f"{name}.weight"],
        bias=arrays[f"{name}.bias"],
        stride=int(entry["stride"]),
        padding=int(entry["padding"]),
        fix_in=int(entry["fix_in"]),
        fix_w=int(entry["fix_w"]),
        fix_b=int(entry["fix_b"]),
        fix_out=int(entry["fix_out"]),
        activation=str(entry["activation"]),
    )


def load_model_file(path: str | Path) -> ModelFile:
    """Read and check a model file; raises ModelFileError with a one-line reason."""
    path = Path(path)
    meta, arrays = _read_npz(path, "model file")
    if meta.get("format") == DECODER_FORMAT:
        raise ModelFileError(f"{path}: a decoder file (of model {meta.get('decodes', {}).get('model')!r}), not a "
                             "model file: decode with --decoder-file, encode with the model it names")
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an fxlic model file (format {meta.get('format')!r})")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {meta['format_version']} is newer than this fxlic ({FORMAT_VERSION})"
        )
    try:
        layers = {entry["name"]: _layer_from_meta(entry, arrays) for entry in meta["layers"]}
        model = ModelFile(
            meta=meta,
            layers=layers,
            scale_lut=arrays["scale_lut"],
            y_tables=TableSet.from_arrays(arrays, "y_tables"),
            z_tables=TableSet.from_arrays(arrays, "z_tables"),
            path=path,
        )
        model.y_tables.validate()
        model.z_tables.validate()
        _check_y_hat_twin(model)
    except (KeyError, ValueError) as exc:
        raise ModelFileError(f"{path}: inconsistent model file ({exc})") from None
    return model


def _check_y_hat_twin(model: ModelFile) -> None:
    """The ŷ twin must be g_a's last conv with output fix 0: same weights, bias, geometry and input position,
    in a file of version ≥ 3 (an older version cannot name it)."""
    twin = model.y_hat_twin
    if twin is None:
        return
    if int(model.meta["format_version"]) < Y_HAT_TWIN_FORMAT_VERSION:
        raise ValueError(f"layer {Y_HAT_TWIN} needs format version {Y_HAT_TWIN_FORMAT_VERSION}")
    g_a = sorted((name for name in model.layers if name.startswith("g_a.")), key=lambda n: int(n.rpartition(".")[2]))
    if not g_a:
        raise ValueError(f"{Y_HAT_TWIN} without a g_a chain")
    last = model.layers[g_a[-1]]
    same = (twin.transposed == last.transposed and twin.stride == last.stride and twin.padding == last.padding
            and twin.activation == last.activation and (twin.fix_in, twin.fix_w, twin.fix_b)
            == (last.fix_in, last.fix_w, last.fix_b) and np.array_equal(twin.weight, last.weight)
            and np.array_equal(twin.bias, last.bias))
    if not same:
        raise ValueError(f"{Y_HAT_TWIN} is not a twin of {last.name} (weights, bias, geometry, fix_in/w/b)")
    if twin.fix_out != 0:
        raise ValueError(f"{Y_HAT_TWIN} must output fix 0 (ŷ is an integer), got {twin.fix_out}")
    if not twin.shifts_in_dpu_range:
        raise ValueError(f"{Y_HAT_TWIN}: shift_cut {twin.shift_cut} / shift_bias {twin.shift_bias} "
                         "outside the DPU range")


# ---- lite decoders (docs/model-file.md, "Decoder files") ---------------------------------------------------
@dataclass
class DecoderFile:
    """Another synthesis transform g_s for the streams of one model file (a lite decoder, ``fxlic.qat.lite``).

    It holds only g_s's int8 layers and names the model whose streams it decodes by that model's content hash:
    the encoder, the entropy model and so every stream stay the parent's."""

    meta: dict
    layers: dict[str, QuantConv]
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def parent_hash(self) -> str:
        """Hex SHA-256 content hash of the model file whose streams this decoder decodes."""
        return str(self.meta["decodes"]["hash"])

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths of g_s (output channels of every layer but the last)."""
        chain = sorted(self.layers.values(), key=lambda layer: _layer_index(layer.name))
        return tuple(int(layer.weight.shape[1]) for layer in chain[:-1])

    def arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for name, layer in self.layers.items():
            arrays[f"{name}.weight"] = np.ascontiguousarray(layer.weight, dtype=np.int8)
            arrays[f"{name}.bias"] = np.ascontiguousarray(layer.bias, dtype=np.int8)
        return arrays

    def content_hash(self) -> bytes:
        """SHA-256 over the canonical meta and the arrays, by the model file's rule (``ModelFile.content_hash``)."""
        return _content_hash(self.meta, self.arrays())

    def save(self, path: str | Path) -> None:
        _save_npz(path, self.meta, self.arrays())


def _layer_index(name: str) -> int:
    return int(name.rpartition(".")[2])


def _content_hash(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    h = hashlib.sha256()
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name, array in sorted(arrays.items()):
        canonical = little_endian(array)
        h.update(name.encode())
        h.update(canonical.dtype.str.encode())
        h.update(repr(canonical.shape).encode())
        h.update(canonical.tobytes())
    return h.digest()


def _save_npz(path: str | Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    payload = dict(arrays)
    payload["meta"] = np.frombuffer(json.dumps(meta, indent=1, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **payload)
    Path(path).write_bytes(buffer.getvalue())


def _read_npz(path: Path, what: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays in host byte order) of an fxlic ``.npz``; ModelFileError with a one-line reason."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: _native(archive[key]) for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable {what} ({exc})") from None
    if "meta" not in arrays:
        raise ModelFileError(f"{path}: no metadata; not an fxlic {what}")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable metadata ({exc})") from None
    return meta, arrays


def load_decoder_file(path: str | Path) -> DecoderFile:
    """Read and check a decoder file: format, version, a g_s chain from fix 0 to the image's fix 8."""
    path = Path(path)
    meta, arrays = _read_npz(path, "decoder file")
    if meta.get("format") != DECODER_FORMAT:
        raise ModelFileError(f"{path}: not an fxlic decoder file (format {meta.get('format')!r})")
    if int(meta.get("format_version", -1)) > DECODER_FORMAT_VERSION:
        raise ModelFileError(f"{path}: decoder format version {meta['format_version']} is newer than this fxlic "
                             f"({DECODER_FORMAT_VERSION})")
    try:
        layers = {entry["name"]: _layer_from_meta(entry, arrays) for entry in meta["layers"]}
        decoder = DecoderFile(meta=meta, layers=layers, path=path)
        bytes.fromhex(decoder.parent_hash)
        str(meta["decodes"]["model"]), int(meta["decodes"]["quality"])
        _check_decoder_chain(decoder)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: inconsistent decoder file ({exc})") from None
    return decoder


def _check_decoder_chain(decoder: DecoderFile) -> None:
    names = sorted(decoder.layers, key=_layer_index) if all(n.startswith("g_s.") for n in decoder.layers) else None
    if not names or names != [f"g_s.{i}" for i in range(len(names))]:
        raise ValueError(f"layers must be g_s.0 … g_s.K, got {sorted(decoder.layers)}")
    fix_in, channels = 0, None
    for name in names:
        layer = decoder.layers[name]
        c_in = layer.weight.shape[0] if layer.transposed else layer.weight.shape[1]
        if layer.fix_in != fix_in:
            raise ValueError(f"{name}: fix_in {layer.fix_in} but its input has fix {fix_in}")
        if channels is not None and c_in != channels:
            raise ValueError(f"{name}: {c_in} input channels but its input has {channels}")
        if not layer.shifts_in_dpu_range:
            raise ValueError(f"{name}: shift_cut {layer.shift_cut} / shift_bias {layer.shift_bias} outside the DPU "
                             "range")
        fix_in = layer.fix_out
        channels = layer.weight.shape[1] if layer.transposed else layer.weight.shape[0]
    if fix_in != 8 or channels != 3:
        raise ValueError(f"the last layer must output 3 channels at fix 8, got {channels} at fix {fix_in}")


def with_decoder(model: ModelFile, decoder: DecoderFile) -> ModelFile:
    """``model`` with ``decoder``'s layers in place of its g_s: the same encoder, entropy model and streams
    (``stream_hash`` stays the model's), another synthesis. Refuses a decoder made for another model."""
    own_hash = model.content_hash().hex()
    if decoder.parent_hash != own_hash:
        parent = decoder.meta["decodes"]
        raise ModelFileError(
            f"decoder {decoder.name!r} decodes streams of model {parent['model']!r} q{parent['quality']} "
            f"(weights {decoder.parent_hash[:12]}), not of {model.name!r} q{model.quality} (weights {own_hash[:12]})")
    if model.meta.get("architecture", "meanscale") == "charm":
        raise ModelFileError(f"decoder {decoder.name!r}: lite decoders are for the mean-scale hyperprior, "
                             f"not for {model.name!r} (charm)")
    own = {name for name in model.layers if name.startswith("g_s.")}
    if own != set(decoder.layers):
        raise ModelFileError(f"decoder {decoder.name!r} has layers {sorted(decoder.layers)}, the model's g_s has "
                             f"{sorted(own)}")
    first_in = decoder.layers["g_s.0"].weight.shape[0]
    if first_in != model.layers["g_s.0"].weight.shape[0]:
        raise ModelFileError(f"decoder {decoder.name!r} reads {first_in} latent channels, the model codes "
                             f"{model.layers['g_s.0'].weight.shape[0]}")
    layers = {name: layer for name, layer in model.layers.items() if name not in own} | decoder.layers
    meta = dict(model.meta)
    meta["decoder"] = {"name": decoder.name, "hash": decoder.content_hash().hex(), "widths": list(decoder.widths)}
    meta["layers"] = [entry for entry in model.meta["layers"] if entry["name"] not in own] + decoder.meta["layers"]
    return ModelFile(meta=meta, layers=layers, scale_lut=model.scale_lut, y_tables=model.y_tables,
                     z_tables=model.z_tables, path=model.path, decoder=decoder)
