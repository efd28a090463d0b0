"""Shipped integer model files: ``<name>-q<quality>.npz`` beside this file, with model cards ``<name>.md``.

``index.json`` names the default model and each model's default quality. Lite decoders (other synthesis
transforms for the same streams, docs/model-file.md "Decoder files") are ``decoders/<name>-q<quality>.<decoder>.npz``;
every model also has its own decoder, ``full``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fxlic.reference.modelfile import ModelFile

MODELS_DIR = Path(__file__).resolve().parent
DECODERS_DIR = MODELS_DIR / "decoders"
FULL_DECODER = "full"  # fxlic.reference.modelfile.FULL_DECODER (not imported: this module loads nothing eagerly)
_FILE = re.compile(r"^(?P<name>[a-z0-9_-]+?)-q(?P<quality>\d+)\.npz$")
_DECODER_FILE = re.compile(r"^(?P<name>[a-z0-9_-]+?)-q(?P<quality>\d+)\.(?P<decoder>[a-z0-9_]+)\.npz$")


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


def shipped_decoders() -> dict[tuple[str, int], dict[str, Path]]:
    """(model name, quality) → {decoder name: decoder file}, for every shipped lite decoder."""
    found: dict[tuple[str, int], dict[str, Path]] = {}
    for path in sorted(DECODERS_DIR.glob("*.npz")) if DECODERS_DIR.is_dir() else []:
        match = _DECODER_FILE.match(path.name)
        if match:
            found.setdefault((match["name"], int(match["quality"])), {})[match["decoder"]] = path
    return found


def decoders(name: str, quality: int) -> list[str]:
    """The decoders of a shipped (model, quality): ``full`` first, then its lite decoders by name."""
    return [FULL_DECODER, *sorted(shipped_decoders().get((name, quality), {}))]


def resolve_decoder(name: str, quality: int, decoder: str) -> Path:
    """The decoder file of a shipped (model, quality, decoder name); UnknownModelError if there is none."""
    files = shipped_decoders().get((name, quality), {})
    if decoder not in files:
        raise UnknownModelError(f"model {name!r} q{quality} has no decoder {decoder!r}; its decoders: "
                                f"{', '.join(decoders(name, quality))}")
    return files[decoder]


def decoder_widths(name: str, decoder: str, quality: int | None = None) -> tuple[int, ...] | None:
    """Hidden widths of a shipped decoder's g_s (None for ``full``): for reports that build its graph. Without
    ``quality``, the decoder of that name at the model's lowest quality that has one."""
    if decoder == FULL_DECODER:
        return None
    from fxlic.reference.modelfile import load_decoder_file

    if quality is None:
        having = sorted(q for (n, q), files in shipped_decoders().items() if n == name and decoder in files)
        if not having:
            raise UnknownModelError(f"no shipped decoder {decoder!r} for model {name!r}")
        quality = having[0]
    return load_decoder_file(resolve_decoder(name, quality, decoder)).widths


_LOADED: dict[Path, ModelFile] = {}
_DECODERS: dict[tuple[Path, Path], ModelFile] = {}


def load(name: str | None = None, quality: int | None = None, path: str | Path | None = None,
         decoder: str | None = None, decoder_file: str | Path | None = None) -> ModelFile:
    """The integer model file: ``path`` if given, else the shipped (name, quality) (defaults from index.json).

    The one way every front end (CLI, golden, board, eval, benchmarks) loads a model. Loaded files are
    cached per resolved path, so a batch that decodes many streams of one model reads it once.
    ``decoder`` (a shipped decoder's name; ``full`` or None: the model's own) or ``decoder_file`` attaches a
    lite decoder (``fxlic.reference.modelfile.with_decoder``): same encoder and streams, another g_s.
    Raises UnknownModelError (not shipped / no such file) or ModelFileError (not a valid model file).
    """
    from fxlic.reference.modelfile import load_model_file

    file = Path(path) if path is not None else resolve(name, quality)
    file = file.resolve()
    if file not in _LOADED:
        if not file.is_file():
            raise UnknownModelError(f"model file {file} not found")
        _LOADED[file] = load_model_file(file)
    model = _LOADED[file]
    if decoder_file is None and decoder not in (None, FULL_DECODER):
        decoder_file = resolve_decoder(model.name, model.quality, decoder)
    if decoder_file is None:
        return model
    from fxlic.reference.modelfile import load_decoder_file, with_decoder

    dec_path = Path(decoder_file).resolve()
    if (file, dec_path) not in _DECODERS:
        if not dec_path.is_file():
            raise UnknownModelError(f"decoder file {dec_path} not found")
        _DECODERS[(file, dec_path)] = with_decoder(model, load_decoder_file(dec_path))
    return _DECODERS[(file, dec_path)]
