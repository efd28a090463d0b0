"""The owner of golden-vector sets on disk: where the bundled sets live, and reading a set back.

Writing and verifying a set (which recompute everything) is ``golden/vectors.py``; this module only
reads (spec: docs/golden.md). The bundled sets are package data (``fxlic.golden`` / ``vectors/``), read
through ``importlib.resources`` so that they work from a wheel as from a source checkout.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

DECODER_PREFIX = "decoder."  # tensors recomputed by the decoder from the bitstream
BUNDLED_PACKAGE = "fxlic.golden"
BUNDLED_FOLDER = "vectors"


def bundled_root() -> AbstractContextManager[Path]:
    """Context manager yielding the folder that holds the bundled golden sets, one ``<model>-q<quality>/``
    folder per set (e.g. ``meanscale-q4/``, and a ``charm-q4/`` beside it once a charm model ships)."""
    return resources.as_file(resources.files(BUNDLED_PACKAGE) / BUNDLED_FOLDER)


def bundled_set(name: str | None = None, quality: int | None = None) -> AbstractContextManager[Path]:
    """Context manager yielding the folder of the bundled golden set of (name, quality) (defaults: the default
    model and its default quality). The folder may not exist: callers check ``manifest.json``."""
    from fxlic import models

    name = name or models.default_model()
    quality = models.default_quality(name) if quality is None else quality
    return resources.as_file(resources.files(BUNDLED_PACKAGE) / BUNDLED_FOLDER / f"{name}-q{quality}")


def bundled_sets(root: Path) -> list[Path]:
    """Every bundled set under ``root`` (``bundled_root()``): the folders holding a ``manifest.json``, the
    default model's set first, then the others by name. ``fxlic golden verify`` checks all of them."""
    from fxlic import models

    sets = sorted(d for d in root.iterdir() if (d / "manifest.json").is_file()) if root.is_dir() else []
    try:
        default = f"{models.default_model()}-q{models.default_quality(models.default_model())}"
    except models.UnknownModelError:
        default = None
    return sorted(sets, key=lambda d: (d.name != default, d.name))


class _Subgraph(Protocol):
    name: str


class _Partition(Protocol):
    """What ``GoldenSet.dpu_tensor`` needs of a DPU partition (``fxlic.board.partition.Partition``)."""

    subgraphs: list

    def subgraph_of(self, tensor: str) -> _Subgraph: ...


class GoldenSet:
    """A golden-vector set, read without recomputing anything.

    The encoder subgraph's tensors come from the encode trace (``<name>.npy``); the decoder subgraphs'
    (and their inputs ẑ, ŷ) from the decoder's recomputation from the bitstream (``decoder.<name>.npy``),
    falling back to the encode trace — both are equal in a valid set (``fxlic golden verify``).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{self.folder}: no manifest.json; not a golden set (fxlic golden make)")
        self.manifest = json.loads(manifest.read_text())
        self.model: dict = self.manifest["model"]
        self.images: list[dict] = self.manifest["images"]
        self.decoder: str | None = (self.manifest.get("decoder") or {}).get("name")
        """The lite decoder the set was made with (docs/golden.md), or None: the model's own g_s."""
        self.tile: int = int(self.manifest.get("tile", 0))
        """The DPU tile (pixels, docs/board.md "Tiles") the set was made for; 0: whole images."""

    def image(self, name: str) -> dict:
        for image in self.images:
            if image["name"] == name:
                return image
        raise KeyError(f"golden set has no image {name!r}; it has {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [image["name"] for image in self.images]

    def array(self, image: str, key: str) -> np.ndarray | None:
        entry = self.image(image)["arrays"].get(key)
        return None if entry is None else np.load(self.folder / entry["file"], allow_pickle=False)

    def dpu_tensor(self, image: str, tensor: str, partition: _Partition) -> np.ndarray | None:
        """int8 C×H×W golden value of a DPU-boundary tensor (see the class docstring for the source)."""
        decoder_side = partition.subgraph_of(tensor).name != partition.subgraphs[0].name
        keys = [DECODER_PREFIX + tensor, tensor] if decoder_side else [tensor]
        for key in keys:
            value = self.array(image, key)
            if value is not None:
                return value
        return None

    def bitstream(self, image: str) -> bytes:
        return (self.folder / self.image(image)["bitstream"]["file"]).read_bytes()

    def find_by_bitstream(self, data: bytes) -> str | None:
        digest = hashlib.sha256(data).hexdigest()
        for image in self.images:
            if image["bitstream"]["sha256"] == digest:
                return image["name"]
        return None

    def decoded_path(self, image: str) -> Path:
        return self.folder / self.image(image)["decoded"]["file"]
