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

    @property
    def name(self) -> str:
        return str(self.meta["name"])

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
        h = hashlib.sha256()
        h.update(json.dumps(self.meta, sort_keys=True, separators=(",", ":")).encode())
        for name, array in sorted(self.arrays().items()):
            canonical = little_endian(array)
            h.update(name.encode())
            h.update(canonical.dtype.str.encode())
            h.update(repr(canonical.shape).encode())
            h.update(canonical.tobytes())
        return h.digest()

    def save(self, path: str | Path) -> None:
        payload = dict(self.arrays())
        payload["meta"] = np.frombuffer(json.dumps(self.meta, indent=1, sort_keys=True).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **payload)
        Path(path).write_bytes(buffer.getvalue())


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
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: _native(archive[key]) for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc})") from None
    if "meta" not in arrays:
        raise ModelFileError(f"{path}: no metadata; not an fxlic model file")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: unreadable metadata ({exc})") from None
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
