"""``fxlic`` command line: encode, decode, info, models (golden path, no torch), plus golden-vector,
board, training, export, evaluation and BD-rate commands (the torch ones import torch lazily).

Every failure on bad input ends with one line on stderr, ``fxlic: error: …``, exit code 1, no traceback
and no partial output file. ``FXLIC_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_ERROR = 1
EXIT_INTERNAL = 3


class CliError(Exception):
    """A user-facing error: printed as one line."""


def _known_errors() -> tuple[type[BaseException], ...]:
    from fxlic.codec import DecodeError
    from fxlic.entropy.bitstream import BitstreamError
    from fxlic.entropy.rans import EntropyDecodeError
    from fxlic.imageio import ImageInputError
    from fxlic.models import UnknownModelError
    from fxlic.reference.modelfile import ModelFileError

    return (CliError, ImageInputError, BitstreamError, DecodeError, EntropyDecodeError, ModelFileError,
            UnknownModelError, FileNotFoundError, PermissionError, IsADirectoryError)


# ---- model loading (cached: one load per model file per process) --------------------------------
_CODECS: dict[Path, object] = {}


def load_codec(name: str | None = None, quality: int | None = None, model_file: str | None = None):
    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    path = Path(model_file) if model_file else models.resolve(name, quality)
    path = path.resolve()
    if path not in _CODECS:
        if not path.is_file():
            raise CliError(f"model file {path} not found")
        _CODECS[path] = Codec(load_model_file(path))
    return _CODECS[path]


def _inputs(paths: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if not found:
                raise CliError(f"{path}: no {'/'.join(suffixes)} files in this folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{path}: no such file or folder")
    return files


def _outputs(inputs: list[Path], out: str, suffix: str) -> list[Path]:
    target = Path(out)
    if len(inputs) == 1 and not target.is_dir():
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    return [target / (p.stem + suffix) for p in inputs]


def _progress(items: list, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", disable=len(items) < 2 or not sys.stderr.isatty())


# ---- golden-path commands -----------------------------------------------------------------------
def cmd_encode(args: argparse.Namespace) -> int:
    from fxlic.imageio import read_image, write_atomically

    codec = load_codec(args.model, args.quality, args.model_file)
    inputs = _inputs(args.inputs, (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"))
    outputs = _outputs(inputs, args.output, ".fxl")
    for src, dst in zip(_progress(inputs, "encode"), outputs):
        pixels = read_image(src)
        bitstream = codec.encode(pixels).bitstream
        write_atomically(dst, bitstream)
        if not args.quiet:
            bpp = 8 * len(bitstream) / (pixels.shape[0] * pixels.shape[1])
            print(f"{src} -> {dst}: {len(bitstream)} bytes, {bpp:.4f} bpp")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from fxlic.entropy.bitstream import unpack
    from fxlic.imageio import encode_png, write_atomically

    inputs = _inputs(args.inputs, (".fxl",))
    outputs = _outputs(inputs, args.output, ".png")
    for src, dst in zip(_progress(inputs, "decode"), outputs):
        data = src.read_bytes()
        header, _ = unpack(data)
        codec = load_codec(header.model_name, header.quality, args.model_file)
        pixels = codec.decode(data)
        write_atomically(dst, encode_png(pixels))
        if not args.quiet:
            print(f"{src} -> {dst}: {header.width}x{header.height}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from fxlic.entropy.bitstream import unpack

    data = Path(args.file).read_bytes()
    header, streams = unpack(data)
    info = {"file": args.file, "bytes": len(data), "model": header.model_name, "quality": header.quality,
            "model_hash": header.model_hash.hex(), "width": header.width, "height": header.height,
            "bpp": 8 * len(data) / (header.width * header.height),
            "streams": {name: len(s) for name, s in zip(("z", "y"), streams)}}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for key, value in info.items():
            print(f"{key:11s} {value:.4f}" if isinstance(value, float) else f"{key:11s} {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fxlic import models
    from fxlic.reference.modelfile import load_model_file

    entries = []
    for name, files in models.available().items():
        first = load_model_file(next(iter(files.values())))
        entries.append({"name": name, "qualities": sorted(files), "default_quality": models.default_quality(name),
                        "architecture": first.meta.get("architecture"), "config": first.meta.get("config"),
                        "files": {str(q): str(p) for q, p in sorted(files.items())}})
    default = models.default_model() if entries else None
    if args.json:
        print(json.dumps({"default": default, "models": entries}, indent=1))
    else:
        for e in entries:
            mark = " (default)" if e["name"] == default else ""
            print(f"{e['name']}{mark}: {e['architecture']} {e['config']}, qualities {e['qualities']}")
    return 0


# ---- commands implemented elsewhere -------------------------------------------------------------
def _delegate(module: str, function: str = "main"):
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args.rest) or 0)

    return run


DELEGATED = {
    "golden": ("fxlic.golden.cli", "main", "golden-vector sets: make, verify (default: the bundled set)"),
    "board": ("fxlic.board.cli", "main", "on-board validation: run, compare, decode, export-golden"),
    "train": ("fxlic.qat.train", "main", "train a float or QAT model (torch)"),
    "export": ("fxlic.qat.export", "main", "export a QAT checkpoint to an integer model file (torch)"),
    "verify-qat": ("fxlic.qat.verify", "main", "layer-by-layer equality: QAT checkpoint vs integer model (torch)"),
    "eval": ("fxlic.rd.evaluate", "eval_main", "rate-distortion of the integer codec from real bitstreams"),
    "bdrate": ("fxlic.rd.cli", "bdrate_main", "Bjøntegaard delta rate between RD curves (JSON)"),
    "plot": ("fxlic.rd.cli", "plot_main", "RD plot (PNG) of curves and anchors"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxlic", description="Fixed-point bit-exact learned image codec.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="image(s) → .fxl bitstream(s)")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("-o", "--output", required=True, help="output file, or folder for several inputs")
    p.add_argument("--model", help="model name (default: see `fxlic models`)")
    p.add_argument("--quality", type=int, help="quality index of the model")
    p.add_argument("--model-file", help="use this model file instead of a shipped one")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help=".fxl bitstream(s) → PNG")
    p.add_argument("inputs", nargs="+", help=".fxl files or folders")
    p.add_argument("-o", "--output", required=True, help="output file, or folder for several inputs")
    p.add_argument("--model-file", help="decode with this model file (its hash must match the stream's)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="show a bitstream's header")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    for name, (module, function, help_text) in DELEGATED.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_delegate(module, function))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:  # its own parser sees every argument, --help included
        args = argparse.Namespace(func=_delegate(*DELEGATED[argv[0]][:2]), rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    debug = os.environ.get("FXLIC_DEBUG") == "1"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("fxlic: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback (unless FXLIC_DEBUG=1)
        if debug:
            raise
        known = isinstance(exc, _known_errors())
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if known:
            print(f"fxlic: error: {message}", file=sys.stderr)
            return EXIT_ERROR
        print(f"fxlic: internal error: {type(exc).__name__}: {message} (FXLIC_DEBUG=1 for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
