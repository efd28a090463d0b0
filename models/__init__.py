"""Shipped integer model files: ``<name>-q<quality>.npz`` beside this file, with model cards ``<name>.md``.

``index.json`` names the default model and each model's default quality.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fxlic.reference.modelfile import ModelFile

MODELS_DIR = Path(__file__).resolve().parent
_FILE = re.compile(r"^(?P<name>[a-z0-9_-]+?)-q(?P<quality>\d+)\.npz$")


class UnknownModelError(ValueError):
    """A model name or quality that is not shipped."""


def _index() -> dict:
    path = MODELS_DIR / "index.json"
    return json.loads(path.read_text()) if path.exists() else {"default": None, "default_quality": {}}


def available() -> dict[str, dict[int, Path]]:
    """name → {quality: model file}, for every shipped model file."""
    models: dict[str, dict[int, Path]] = {}
    for path in sorted(MODELS_DIR.glob("*.npz")):
        match = _FILE.match(path.name)
        if match:
            models.setdefault(match["name"], {})[int(match["quality"])] = path
    return models


def default_model() -> str:
    name = _index().get("default")
    if not name:
        raise UnknownModelError("no default model is shipped (models/index.json)")
    return name


def default_quality(name: str) -> int:
    qualities = available().get(name)
    if not qualities:
        raise UnknownModelError(f"unknown model {name!r}; shipped: {', '.join(available()) or 'none'}")
    preferred = _index().get("default_quality", {}).get(name)
    return preferred if preferred in qualities else sorted(qualities)[len(qualities) // 2]


def resolve(name: str | None = None, quality: int | None = None) -> Path:
    """The model file for (name, quality); defaults from index.json."""
    name = name or default_model()
    qualities = available().get(name)
    if not qualities:
        raise UnknownModelError(f"unknown model {name!r}; shipped: {', '.join(available()) or 'none'}")
    quality = default_quality(name) if quality is None else quality
    if quality not in qualities:
        raise UnknownModelError(f"model {name!r} has no quality {quality}; shipped: {sorted(qualities)}")
    return qualities[quality]


_LOADED: dict[Path, ModelFile] = {}


def load(name: str | None = None, quality: int | None = None, path: str | Path | None = None) -> ModelFile:
    """The integer model file: ``path`` if given, else the shipped (name, quality) (defaults from index.json).

    The one way every front end (CLI, golden, board, eval, benchmarks) loads a model. Loaded files are
    cached per resolved path, so a batch that decodes many streams of one model reads it once.
    Raises UnknownModelError (not shipped / no such file) or ModelFileError (not a valid model file).
    """
    from fxlic.reference.modelfile import load_model_file

    file = Path(path) if path is not None else resolve(name, quality)
    file = file.resolve()
    if file not in _LOADED:
        if not file.is_file():
            raise UnknownModelError(f"model file {file} not found")
        _LOADED[file] = load_model_file(file)
    return _LOADED[file]
