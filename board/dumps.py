"""Read and write the tensor layouts of the Vitis AI tools, and fxlic golden sets, for board comparisons.

Three Vitis layouts, all raw int8 bytes in NHWC order (batch 1), no header — the shape comes from the
partition (``board/partition.py``) and the image size:

* **VART dump** (``XLNX_ENABLE_DUMP=1``, read in ``vart/dpu-runner/src/dpu_runner_base_imp.cpp``):
  ``dump/<subgraph>/{input,internal,output}/<engine>.<tensor>.bin``, written into the current working
  directory. ``<engine>`` is the batch index (``0`` for one image). ``<subgraph>`` and ``<tensor>`` are
  the xmodel names passed through VART's ``layer_name``: XIR "xfix" groups ``(...)`` removed, then every
  character outside ``[0-9A-Za-z_]`` replaced by ``_``. With ``XLNX_ENABLE_DEBUG_MODE=1`` the
  ``<subgraph>`` folders are the super-layer subgraphs; tensor names stay unique, so readers here index
  by tensor name and ignore the folder. Internal tensors appear only when they live in DDR (debug mode
  puts every super layer's output there).
* **Golden dir** for ``XLNX_GOLDEN_DIR=<dir>``: ``<dir>/<tensor>.bin``, same name mangling; VART compares
  the MD5 of each downloaded tensor with it (and with ``XLNX_ENABLE_UPLOAD=1`` uploads golden inputs).
  One directory holds one image.
* **Quantizer deploy check** (``export_xmodel(dir, deploy_check=True)`` of vai_q_pytorch,
  ``nndct_shared/compile/deploy_checker.py``): ``deploy_check_data_int/<graph>/`` with
  ``<node>_fix.bin`` per quantized node output and ``<param>_fix.bin`` per parameter, names mangled
  with every character outside ``[0-9A-Za-z]`` → ``_``, plus ``shape.txt`` (``<shape>: <node>`` lines).
  Weights are OHWI; for transposed convs the quantizer flips the spatial axes (``np.flip(w, (1, 2))`` on
  the OHWI array). Our reading of that (``weight_ohwi``): the dumped transposed-conv weight is
  ``[C_out, kh, kw, C_in]`` with ``d[o, i, j, c] = w[c, o, kh-1-i, kw-1-j]`` for the PyTorch weight
  ``w[C_in, C_out, kh, kw]`` — i.e. the kernel of the equivalent stride-1 conv over the zero-inserted
  input, which is what the DPU runs. Only a real deploy-check dump can confirm the channel order.

Our tensor names (``input``, ``g_a.0`` …, ``z_hat``, ``y_hat``) never appear in a real xmodel. The
``NameMap`` (a JSON file written next to every dump and golden export, editable, passed back with
``--names``) says which xmodel tensor / subgraph / quantizer parameter each of ours is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .partition import Partition

__all__ = [
    "DumpStore", "NameMap", "chw_to_nhwc", "default_names", "nhwc_to_chw", "open_dump",
    "quantizer_stem", "vart_stem", "weight_from_ohwi", "weight_ohwi", "write_deploy_check", "write_golden_dir",
    "write_vart_dump",
]

DUMP_DIRS = ("input", "internal", "output")
NAMES_FORMAT = "fxlic-board-names"
NAMES_VERSION = 1
_XFIX = re.compile(r"\([^()]*\)")
_VART_BAD = re.compile(r"[^0-9A-Za-z_]")
_QUANT_BAD = re.compile(r"[^0-9A-Za-z]")
# VART debug dumps sometimes name a tensor with an upload/download suffix (e.g. "x_fixed_download_0").
_TRANSFER_SUFFIX = re.compile(r"_(upload|download)_\d+$")
_ENGINE_PREFIX = re.compile(r"^(\d+)\.(.+)$")


# --------------------------------------------------------------------------------------------------
# layouts and names
# --------------------------------------------------------------------------------------------------
def chw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """int8 [C, H, W] → C-contiguous int8 [1, H, W, C] (the DPU / VART layout)."""
    if x.ndim != 3:
        raise ValueError(f"expected a C×H×W array, got shape {x.shape}")
    return np.ascontiguousarray(x.transpose(1, 2, 0)[None])


def nhwc_to_chw(x: np.ndarray) -> np.ndarray:
    """int8 [1, H, W, C] → C-contiguous int8 [C, H, W] (batch index 0)."""
    if x.ndim != 4:
        raise ValueError(f"expected an N×H×W×C array, got shape {x.shape}")
    return np.ascontiguousarray(x[0].transpose(2, 0, 1))


def vart_stem(name: str) -> str:
    """VART's ``layer_name``: drop XIR xfix groups ``(...)``, then ``[^0-9A-Za-z_]`` → ``_``."""
    previous = None
    while previous != name:  # nested groups: remove innermost first
        previous, name = name, _XFIX.sub("", name)
    return _VART_BAD.sub("_", name)


def quantizer_stem(name: str) -> str:
    """vai_q_pytorch's deploy-check file stem: ``[^0-9A-Za-z]`` → ``_``."""
    return _QUANT_BAD.sub("_", name)


def weight_ohwi(weight: np.ndarray, transposed: bool) -> np.ndarray:
    """PyTorch-layout int8 weights → the quantizer's deploy-check OHWI layout.

    conv ``[O, C, kh, kw]`` → ``[O, kh, kw, C]``; transposed conv ``[C, O, kh, kw]`` → ``[O, kh, kw, C]``
    flipped on kh and kw (see the module docstring for this reading).
    """
    if weight.ndim != 4:
        raise ValueError(f"expected 4-D weights, got shape {weight.shape}")
    if transposed:
        return np.ascontiguousarray(np.flip(weight.transpose(1, 2, 3, 0), (1, 2)))
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1))


def weight_from_ohwi(ohwi: np.ndarray, transposed: bool) -> np.ndarray:
    """Inverse of ``weight_ohwi``."""
    if ohwi.ndim != 4:
        raise ValueError(f"expected 4-D weights, got shape {ohwi.shape}")
    if transposed:
        return np.ascontiguousarray(np.flip(ohwi, (1, 2)).transpose(3, 0, 1, 2))
    return np.ascontiguousarray(ohwi.transpose(0, 3, 1, 2))


@dataclass
class NameMap:
    """Our names → Vitis names. Written as JSON next to every dump; edit it to match a real xmodel.

    Attributes:
        tensors: our tensor name → xmodel tensor name (what ``xir dump_txt`` / ``xdputil xmodel -l``
            shows; VART and the quantizer mangle it into file names, ``vart_stem`` / ``quantizer_stem``).
        subgraphs: our subgraph name → xmodel DPU subgraph name (dump folder; also used to pair
            subgraphs when several are present).
        params: ``<layer>.weight`` / ``<layer>.bias`` → quantizer parameter name (deploy-check files).
        graph: the quantizer's graph name (``deploy_check_data_int/<graph>/``).
    """

    tensors: dict[str, str]
    subgraphs: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    graph: str = "fxlic"

    def xir(self, tensor: str) -> str:
        try:
            return self.tensors[tensor]
        except KeyError:
            raise KeyError(f"tensor {tensor!r} has no entry in the name map") from None

    def node(self, tensor: str) -> str:
        """The quantizer node whose output is the tensor: the xmodel name without its ``_fix`` suffix."""
        return self.xir(tensor).removesuffix("_fix")

    def file_stems(self, tensor: str) -> list[str]:
        """Every file stem under which a layout may store the tensor (VART first, then the quantizer)."""
        stems = [vart_stem(self.xir(tensor)), quantizer_stem(self.node(tensor)) + "_fix"]
        return list(dict.fromkeys(stems))

    def to_json(self) -> dict:
        return {"format": NAMES_FORMAT, "version": NAMES_VERSION,
                "note": "our name -> Vitis name; edit to match the deployed xmodel (xir dump_txt / "
                        "xdputil xmodel -l) and pass with --names",
                "graph": self.graph, "subgraphs": self.subgraphs, "tensors": self.tensors, "params": self.params}

    @classmethod
    def from_json(cls, data: dict) -> NameMap:
        if data.get("format") != NAMES_FORMAT or int(data.get("version", 0)) > NAMES_VERSION:
            raise ValueError(f"not an fxlic name map (format {data.get('format')!r}, version {data.get('version')})")
        return cls(tensors=dict(data["tensors"]), subgraphs=dict(data.get("subgraphs", {})),
                   params=dict(data.get("params", {})), graph=str(data.get("graph", "fxlic")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> NameMap:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: unreadable name map ({exc})") from None

    def merged(self, partition: Partition) -> NameMap:
        """This map with defaults filled in for every tensor / subgraph / param it does not name."""
        base = default_names(partition)
        return NameMap(tensors=base.tensors | self.tensors, subgraphs=base.subgraphs | self.subgraphs,
                       params=base.params | self.params, graph=self.graph)


def default_names(partition: Partition) -> NameMap:
    """The names ``fxlic board run --simulate`` uses: ``g_a.0`` → ``g_a_0_fix`` (a fix op's output, as
    the quantizer names it), subgraph ``encoder`` → ``subgraph_encoder``, ``g_a.0.weight`` unchanged."""
    tensors = {t: t.replace(".", "_") + "_fix" for t in partition.tensors}
    subgraphs = {sg.name: f"subgraph_{sg.name}" for sg in partition.subgraphs}
    params = {f"{layer}.{kind}": f"{layer}.{kind}" for layer in partition.layers for kind in ("weight", "bias")}
    return NameMap(tensors=tensors, subgraphs=subgraphs, params=params, graph=f"fxlic_{partition.model_name}")


# --------------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------------
def _write_raw(path: Path, array: np.ndarray) -> None:
    if array.dtype != np.int8:
        raise ValueError(f"{path.name}: tensors are written as int8, got {array.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.ascontiguousarray(array).tobytes())


def write_vart_dump(root: str | Path, partition: Partition, names: NameMap, subgraph: str,
                    tensors: dict[str, np.ndarray], engine: int = 0, overwrite: bool = True) -> list[Path]:
    """Write one subgraph's tensors as VART does: ``root/<subgraph>/{input,internal,output}/<engine>.<t>.bin``.

    ``root`` is the ``dump`` folder itself. ``tensors`` maps our names to int8 NHWC arrays; tensors of
    the subgraph that are missing are skipped. With ``overwrite=False`` files VART already wrote are kept.
    """
    sg = partition.subgraph(subgraph)
    folder = Path(root) / vart_stem(names.subgraphs.get(subgraph, subgraph))
    written = []
    for kind, group in (("input", sg.inputs), ("internal", sg.internal), ("output", sg.outputs)):
        for name in group:
            if name not in tensors:
                continue
            path = folder / kind / f"{engine}.{vart_stem(names.xir(name))}.bin"
            if overwrite or not path.exists():
                _write_raw(path, tensors[name])
                written.append(path)
    return written


def write_golden_dir(folder: str | Path, names: NameMap, tensors: dict[str, np.ndarray]) -> list[Path]:
    """``XLNX_GOLDEN_DIR`` layout: ``folder/<vart_stem(tensor)>.bin`` (int8 NHWC), one image."""
    folder = Path(folder)
    paths = []
    for name, array in tensors.items():
        path = folder / f"{vart_stem(names.xir(name))}.bin"
        _write_raw(path, array)
        paths.append(path)
    return paths


def write_deploy_check(folder: str | Path, names: NameMap, tensors: dict[str, np.ndarray],
                       params: dict[str, tuple[np.ndarray, bool]] | None = None) -> Path:
    """The quantizer's ``deploy_check_data_int/<graph>/`` layout under ``folder``.

    Args:
        folder: the parent of ``deploy_check_data_int``.
        names: name map (graph name, tensor and parameter names).
        tensors: our tensor name → int8 NHWC array; written as ``<node>_fix.bin``.
        params: ``<layer>.weight`` → (PyTorch-layout int8 weight, transposed) and ``<layer>.bias`` →
            (int8 [O], False); weights are written OHWI (``weight_ohwi``).

    Returns:
        The graph folder.
    """
    graph_dir = Path(folder) / "deploy_check_data_int" / re.sub(r"[^0-9A-Za-z/]", "_", names.graph)
    lines = []
    for name, array in tensors.items():
        _write_raw(graph_dir / f"{quantizer_stem(names.node(name))}_fix.bin", array)
        lines.append(f"{list(array.shape)}: {names.node(name)}")
    for key, (array, transposed) in (params or {}).items():
        data = weight_ohwi(array, transposed) if array.ndim == 4 else array
        _write_raw(graph_dir / f"{quantizer_stem(names.params.get(key, key) + '_fix')}.bin", data)
    (graph_dir / "shape.txt").write_text("\n".join(lines) + "\n")
    return graph_dir


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------
@dataclass
class DumpStore:
    """Raw int8 tensors found under a folder, indexed by file stem (any of the three layouts).

    Attributes:
        root: the folder read.
        layout: ``vart-dump`` | ``flat`` (golden dir or deploy-check folder).
        files: stem → file; for VART dumps the engine prefix is removed and only engine 0 kept.
        where: stem → ``<subgraph>/<input|internal|output>`` (VART dumps only).
    """

    root: Path
    layout: str
    files: dict[str, Path]
    where: dict[str, str] = field(default_factory=dict)

    def find(self, names: NameMap, tensor: str) -> Path | None:
        for stem in names.file_stems(tensor):
            if stem in self.files:
                return self.files[stem]
        return None

    def get(self, names: NameMap, tensor: str) -> np.ndarray | None:
        """The tensor's raw bytes as a flat int8 array, or None when the layout does not hold it."""
        path = self.find(names, tensor)
        return None if path is None else np.fromfile(path, dtype=np.int8)


def _index_flat(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.bin"))}


def _is_vart_dump(folder: Path) -> bool:
    return any((sub / kind).is_dir() for sub in folder.iterdir() if sub.is_dir() for kind in DUMP_DIRS)


def open_dump(path: str | Path) -> DumpStore:
    """Open a folder in any supported layout (auto-detected).

    * a folder containing ``dump/`` (a VART working directory), or a ``dump`` folder itself;
    * a flat folder of ``*.bin`` (an ``XLNX_GOLDEN_DIR`` or one ``deploy_check_data_int/<graph>``);
    * ``deploy_check_data_int`` itself when it holds exactly one graph folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dump folder")
    if (root / "dump").is_dir():
        root = root / "dump"
    if _is_vart_dump(root):
        files: dict[str, Path] = {}
        where: dict[str, str] = {}
        for kind in DUMP_DIRS:  # outputs last: a tensor dumped twice keeps its output copy
            for file in sorted(root.glob(f"*/{kind}/*.bin")):
                match = _ENGINE_PREFIX.match(file.stem)
                engine, stem = (int(match[1]), match[2]) if match else (0, file.stem)
                if engine != 0:
                    continue
                for alias in dict.fromkeys((stem, _TRANSFER_SUFFIX.sub("", stem))):
                    files[alias] = file
                    where[alias] = f"{file.parent.parent.name}/{kind}"
        return DumpStore(root, "vart-dump", files, where)
    flat = _index_flat(root)
    if not flat:
        subdirs = [d for d in root.iterdir() if d.is_dir()]
        if len(subdirs) == 1 and _index_flat(subdirs[0]):
            return DumpStore(subdirs[0], "flat", _index_flat(subdirs[0]))
        raise ValueError(f"{root}: no tensor files (*.bin) found in any supported layout")
    return DumpStore(root, "flat", flat)
