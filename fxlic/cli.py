"""``fxlic`` command line: encode, decode, info, models (golden path, no torch), plus golden-vector,
board, training, export, evaluation and BD-rate commands (the torch ones import torch lazily).

Every failure on bad input ends with one line on stderr, ``fxlic: error: …``, exit code 1, no traceback
and no partial output file. ``FXLIC_DEBUG=1`` shows tracebacks. When standard output is closed early
(``fxlic models --json | head -1``) a command stops quietly with exit code 141, as a shell reports a process
killed by SIGPIPE (128 + 13); ``--help`` and ``--version`` end quietly with 0 (argparse ignores the failed
write).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fxlic.errors import OutputError, UsageError
from fxlic.options import add_model_options, add_substream_option, add_tile_option

EXIT_ERROR = 1
EXIT_INTERNAL = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`'s writer


def _known_errors() -> tuple[type[BaseException], ...]:
    from fxlic.codec import DecodeError
    from fxlic.entropy.bitstream import BitstreamError
    from fxlic.entropy.rans import EntropyDecodeError
    from fxlic.imageio import ImageInputError
    from fxlic.models import UnknownModelError
    from fxlic.reference.modelfile import ModelFileError

    return (UsageError, OutputError, ImageInputError, BitstreamError, DecodeError, EntropyDecodeError,
            ModelFileError, UnknownModelError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError)


# ---- model loading (cached: one load per model file per process) --------------------------------
_CODECS: dict[tuple[int, int | None], object] = {}


def load_codec(name: str | None = None, quality: int | None = None, model_file: str | None = None,
               tile: int | None = None, decoder: str | None = None, decoder_file: str | None = None):
    """The golden codec of a shipped model (name, quality) or a model file (``fxlic.models.load``),
    running its transforms in tiles of ``tile`` pixels (None: the codec's default; 0: whole image), with the
    model's own synthesis or a lite decoder (``decoder``: a shipped one's name; ``decoder_file``)."""
    from fxlic import models
    from fxlic.families import open_codec

    model = models.load(name, quality, model_file, decoder=decoder, decoder_file=decoder_file)
    key = (id(model), tile)
    if key not in _CODECS:
        _CODECS[key] = open_codec(model) if tile is None else open_codec(model, tile=tile)
    return _CODECS[key]


def _warn(message: str) -> None:
    print(f"fxlic: warning: {message}", file=sys.stderr)


def _naming(path: Path, message: str) -> str:
    """The message, prefixed with the file's name unless it already names it."""
    return message if str(path) in message else f"{path}: {message}"


def _progress(items: list, desc: str):
    """A progress bar over several files on a terminal; otherwise the items themselves (tqdm is not even
    imported: with its importlib.metadata lookup it cost 36 ms of every one-file command's start)."""
    if len(items) < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img")


def _run_batch(jobs: list, verb: str, work) -> int:
    """Run ``work(job)`` for every job; a known error on one file is reported with the file's name and the
    batch goes on. Several inputs end with a summary line; exit 1 if any failed."""
    failed: list[Path] = []
    for job in _progress(jobs, verb):
        try:
            try:
                job.target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(exc.errno, f"cannot write {job.target}: cannot create its folder "
                                             f"{job.target.parent} ({exc.strerror})") from None
            work(job)
        except _known_errors() as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"fxlic: error: {_naming(job.source, message)}", file=sys.stderr)
            failed.append(job.source)
        except MemoryError:  # numpy's _ArrayMemoryError too: say what to do, not "internal error"
            print(f"fxlic: error: {_naming(job.source, 'out of memory; a smaller --tile needs less')}",
                  file=sys.stderr)
            failed.append(job.source)
    if len(jobs) > 1:
        done = len(jobs) - len(failed)
        summary = f"fxlic: {verb}d {done} of {len(jobs)} files"
        if failed:
            summary += f"; {len(failed)} failed: {', '.join(map(str, failed))}"
        print(summary, file=sys.stderr)
    return EXIT_ERROR if failed else 0


# ---- golden-path commands -----------------------------------------------------------------------
def cmd_encode(args: argparse.Namespace) -> int:
    from fxlic.batch import collect_inputs, plan_outputs
    from fxlic.imageio import IMAGE_SUFFIXES, read_image_with_colour, write_atomically

    codec = load_codec(args.model, args.quality, args.model_file, args.tile)
    jobs = plan_outputs(args.inputs, collect_inputs(args.inputs, IMAGE_SUFFIXES), args.output, args.out_dir, ".fxl")
    if args.output is not None and jobs[0].target.suffix.lower() != ".fxl":
        _warn(f"{jobs[0].target} does not end in .fxl (it is an fxlic bitstream, not an image)")

    def encode_one(job) -> None:
        pixels, colour = read_image_with_colour(job.source)
        bitstream = codec.encode(pixels, colour=colour, substream_tile=args.substream_tile).bitstream
        write_atomically(job.target, bitstream)
        if not args.quiet:
            bpp = 8 * len(bitstream) / (pixels.shape[0] * pixels.shape[1])
            print(f"{job.source} -> {job.target}: {len(bitstream)} bytes, {bpp:.4f} bpp")

    return _run_batch(jobs, "encode", encode_one)


def cmd_decode(args: argparse.Namespace) -> int:
    from fxlic.batch import collect_inputs, plan_outputs
    from fxlic.entropy.bitstream import COLOUR_GRAY, unpack
    from fxlic.imageio import encode_png, to_gray, write_atomically

    jobs = plan_outputs(args.inputs, collect_inputs(args.inputs, (".fxl",)), args.output, args.out_dir, ".png")
    if args.output is not None and jobs[0].target.suffix.lower() != ".png":
        _warn(f"{jobs[0].target}: the decoded image is written as PNG, but the name ends in "
              f"{jobs[0].target.suffix or 'no extension'}")

    def decode_one(job) -> None:
        data = job.source.read_bytes()
        header, _ = unpack(data)
        codec = load_codec(header.model_name, header.quality, args.model_file, args.tile, args.decoder,
                           args.decoder_file)
        pixels = codec.decode(data)
        if header.colour == COLOUR_GRAY:
            pixels = to_gray(pixels)
        write_atomically(job.target, encode_png(pixels, fast=True))
        if not args.quiet:
            kind = "gray" if header.colour == COLOUR_GRAY else "RGB"
            decoder = "" if codec.model.decoder is None else f" (decoder {codec.model.decoder_name})"
            print(f"{job.source} -> {job.target}: {header.width}x{header.height} {kind}{decoder}")

    return _run_batch(jobs, "decode", decode_one)


def cmd_info(args: argparse.Namespace) -> int:
    from fxlic.entropy.bitstream import COLOUR_TYPES, unpack

    data = Path(args.file).read_bytes()
    try:
        header, streams = unpack(data)
    except ValueError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    info = {"file": args.file, "bytes": len(data), "format": header.version, "model": header.model_name,
            "quality": header.quality, "model_hash": header.model_hash.hex(), "width": header.width,
            "height": header.height, "colour": COLOUR_TYPES[header.colour],
            "bpp": 8 * len(data) / (header.width * header.height),
            # what the stream itself states (docs/bitstream.md BS-11): hyperprior (versions 1, 2) or charm (3)
            "architecture": header.architecture,
            "model_architecture": _architecture(header.model_name, header.quality),
            # hyperprior: z, y; charm: z, then one stream per latent slice (docs/charm.md CH-6)
            "streams": {name: len(s) for name, s in zip(_stream_names(header.architecture, len(streams)), streams)},
            # y substreams (BS-12, version 4): one per substream_tile × substream_tile pixels; 1 before version 4
            "substreams": header.substreams, "substream_tile": header.substream_tile}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        for key, value in info.items():
            if key == "model_architecture" and value is None:
                value = "(model not shipped)"
            print(f"{key:18s} {value:.4f}" if isinstance(value, float) else f"{key:18s} {value}")
    return 0


def _stream_names(architecture: str, count: int) -> tuple[str, ...]:
    if architecture == "hyperprior" and count == 2:
        return ("z", "y")
    return ("z", *(f"y{i}" for i in range(count - 1)))


def _architecture(name: str, quality: int) -> str | None:
    """The architecture of the shipped model a stream names (None when that model is not shipped)."""
    from fxlic import models

    try:
        return models.load(name, quality).meta.get("architecture", "meanscale")
    except ValueError:
        return None


def cmd_models(args: argparse.Namespace) -> int:
    from fxlic import models
    from fxlic.reference.modelfile import load_model_file

    entries = []
    for name, files in models.available().items():
        first = load_model_file(next(iter(files.values())))
        by_quality = {q: models.decoders(name, q) for q in sorted(files)}
        names = [models.FULL_DECODER, *sorted({d for ds in by_quality.values() for d in ds} - {models.FULL_DECODER})]
        entries.append({"name": name, "qualities": sorted(files), "default_quality": models.default_quality(name),
                        "architecture": first.meta.get("architecture"), "config": first.meta.get("config"),
                        "files": {str(q): str(p) for q, p in sorted(files.items())},
                        # the decoders that decode this model's streams (fxlic decode --decoder NAME)
                        "decoders": names, "decoders_by_quality": {str(q): ds for q, ds in by_quality.items()}})
    default = models.default_model() if entries else None
    if args.json:
        print(json.dumps({"default": default, "models": entries}, indent=1))
    else:
        for e in entries:
            mark = " (default)" if e["name"] == default else ""
            print(f"{e['name']}{mark}: {e['architecture']} {e['config']}, qualities {e['qualities']}")
            for decoder in e["decoders"][1:]:
                having = [q for q, ds in e["decoders_by_quality"].items() if decoder in ds]
                print(f"  decoder {decoder}: qualities {', '.join(having)}")
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
    "brevitas": ("fxlic.qat.brevitas_dpu", "main", "Brevitas both ways: check, import, from, verify (torch, brevitas)"),
    "hw-report": ("fxlic.qat.hwreport", "main", "FPGA suitability report: MACs, DPU/CPU ops, round trips, fps (torch)"),
    "eval": ("fxlic.rd.evaluate", "eval_main", "rate-distortion of the integer codec from real bitstreams"),
    "bdrate": ("fxlic.rd.cli", "bdrate_main", "Bjøntegaard delta rate between RD curves (JSON)"),
    "plot": ("fxlic.rd.cli", "plot_main", "RD plot (PNG) of curves and anchors"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxlic", description="Fixed-point bit-exact learned image codec.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="image(s) → .fxl bitstream(s)",
                       description="Encode images. Several inputs, or a folder, need --out-dir; inputs that would "
                       "write the same output are refused before anything is written. A bad file is reported "
                       "and the batch goes on; the exit code is 1 if any file failed.")
    p.add_argument("inputs", nargs="+", help="image files (PNG, JPEG, PPM/PGM, BMP, TIFF, WebP) or folders of them")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="FILE.fxl", help="output file (exactly one input)")
    out.add_argument("-d", "--out-dir", metavar="DIR", help="output folder: DIR/<name>.fxl (any number of inputs)")
    add_model_options(p)
    add_tile_option(p)
    add_substream_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help=".fxl bitstream(s) → PNG",
                       description="Decode bitstreams to PNG (gray sources to gray PNG). Same -o / --out-dir and "
                       "batch rules as encode.")
    p.add_argument("inputs", nargs="+", help=".fxl files or folders of them")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="FILE.png", help="output PNG (exactly one input)")
    out.add_argument("-d", "--out-dir", metavar="DIR", help="output folder: DIR/<name>.png (any number of inputs)")
    p.add_argument("--model-file", metavar="FILE.npz",
                   help="decode with this model file (its hash must match the stream's)")
    dec = p.add_mutually_exclusive_group()
    dec.add_argument("--decoder", metavar="NAME",
                     help="decode with this decoder of the stream's model: 'full' (default) or a lite decoder "
                     "(faster, a little lower quality; `fxlic models` lists them)")
    dec.add_argument("--decoder-file", metavar="FILE.npz", help="decode with this lite decoder file (it must name "
                     "the stream's model)")
    add_tile_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="show a bitstream's header")
    p.add_argument("file", help=".fxl bitstream")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list the shipped models")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    for name, (module, function, help_text) in DELEGATED.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of the command (fxlic NAME --help)")
        p.set_defaults(func=_delegate(module, function))
    return parser


class _VersionAction(argparse.Action):
    """--version, looked up only when asked for: importlib.metadata costs 30 ms of every command's start-up."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        try:  # as argparse's own version action: on stdout, a failed write ignored
            sys.stdout.write(f"fxlic {_version()}\n")
        except OSError:
            pass
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fxlic")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _stdout_closed() -> int:
    """The reader of stdout went away: stop quietly. Python would flush stdout again at exit and report the
    same BrokenPipeError there, so stdout is pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to flush at exit
        pass
    return EXIT_BROKEN_PIPE


def _keep_freed_memory() -> None:
    """glibc's allocator: serve arrays up to 32 MiB from the heap and keep freed memory for the next array,
    instead of a fresh mmap (and a page fault per 4 KiB page) for every large temporary. A CLI process allocates
    and frees the same tile- and layer-sized arrays again and again: 20–60 ms of a Kodak decode's 0.55 s on two
    cores (results/speed/README.md). The memory goes back to the system when the process ends. Skipped where
    the allocator is not glibc's, or where the user tunes it (any MALLOC_* variable)."""
    if not sys.platform.startswith("linux") or any(name.startswith("MALLOC_") for name in os.environ):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's ceiling on 64-bit
    mallopt(m_trim_threshold, 256 << 20)
    mallopt(m_top_pad, 64 << 20)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _keep_freed_memory()
    if argv and argv[0] in DELEGATED:  # its own parser sees every argument, --help included
        args = argparse.Namespace(func=_delegate(*DELEGATED[argv[0]][:2]), rest=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    debug = os.environ.get("FXLIC_DEBUG") == "1"
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return status
    except BrokenPipeError:
        return _stdout_closed()
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
