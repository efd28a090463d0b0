"""``fxlic golden make`` / ``fxlic golden verify``: write and check golden-vector sets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fxlic.errors import UsageError
from fxlic.options import add_model_options

from .vectors import make_set, verify_set


def default_set() -> Path:
    """The bundled golden set of the default model and quality (a folder inside the installed package)."""
    from .goldenset import bundled_set

    with bundled_set() as folder:  # a real folder for installed packages (as_file returns it as is)
        return folder


def _parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    parts = [int(v) for v in text.replace("x", ",").replace("+", ",").split(",")]
    if len(parts) != 4:
        raise ValueError(f"--crop wants TOP,LEFT,HEIGHT,WIDTH, got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def _codec(name: str | None, quality: int | None, model_file: str | None, decoder: str | None = None,
           decoder_file: str | None = None):
    """The golden codec of the model file's architecture (``fxlic.families.open_codec``: mean-scale or charm),
    with its own synthesis or a lite decoder (docs/golden.md, "Sets of a lite decoder")."""
    from fxlic import models
    from fxlic.families import open_codec

    return open_codec(models.load(name, quality, model_file, decoder=decoder, decoder_file=decoder_file))


def make_main(args: argparse.Namespace) -> int:
    from fxlic.imageio import read_image

    codec = _codec(args.model, args.quality, args.model_file, args.decoder, args.decoder_file)
    images: dict[str, np.ndarray] = {}
    for spec in args.images:
        path, _, crop_text = spec.partition("@")
        pixels = read_image(path)
        try:
            crop = _parse_crop(crop_text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        name = Path(path).stem
        if crop:
            top, left, height, width = crop
            pixels = np.ascontiguousarray(pixels[top : top + height, left : left + width])
            name = f"{name}_{top}_{left}_{height}x{width}"
        images[name] = pixels
    if args.tile and args.tile % (codec.net.latent_stride * codec.net.hyper_stride):
        raise UsageError(f"--tile must be a multiple of {codec.net.latent_stride * codec.net.hyper_stride} pixels")
    manifest = make_set(codec, images, args.out, tile=args.tile)
    count = sum(len(i["arrays"]) for i in manifest["images"])
    decoder = f", decoder {codec.model.decoder_name}" if codec.model.decoder is not None else ""
    print(f"wrote {args.out}: {len(images)} images, {count} arrays, model {manifest['model']['hash'][:12]}{decoder}")
    return 0


def verify_main(args: argparse.Namespace) -> int:
    """Verify one set (``folder``) or, without it, every bundled set (the default model's first)."""
    if args.folder:
        folder = Path(args.folder)
        if not (folder / "manifest.json").is_file():
            raise UsageError(f"{folder}: no manifest.json; not a golden set")
        passed, total = _verify_one(folder, args.model_file)
        return 0 if passed == total else 1
    from .goldenset import bundled_root, bundled_sets

    with bundled_root() as root:
        folders = bundled_sets(root)
        if not folders:
            raise UsageError(f"{root}: no bundled golden set")
        model_file = args.model_file
        if model_file:  # only for the set(s) of that model (name and quality)
            from fxlic import models

            model = models.load(path=model_file)
            folders = [f for f in folders if _manifest_model(f)[:2] == (model.name, model.quality)]
            if not folders:
                raise UsageError(f"no bundled golden set for model {model.name} q{model.quality} ({model_file})")
        passed = total = 0
        failed_sets = []
        for folder in folders:
            try:
                ok, count = _verify_one(folder, model_file)
            except UsageError as exc:  # e.g. a set whose model is not shipped: a failure, the others go on
                print(f"golden set {folder}: cannot verify: {exc}")
                ok, count = 0, 1
            passed, total = passed + ok, total + count
            if ok != count:
                failed_sets.append(folder.name)
        if len(folders) > 1:
            verdict = f"; failed: {', '.join(failed_sets)}" if failed_sets else ""
            print(f"{passed}/{total} images bit-exact in {len(folders)} bundled golden sets "
                  f"({', '.join(f.name for f in folders)}){verdict}")
    return 0 if passed == total else 1


def _manifest_model(folder: Path) -> tuple[str, int, str]:
    import json

    model = json.loads((folder / "manifest.json").read_text())["model"]
    return model["name"], int(model["quality"]), model["hash"]


def _manifest_decoder(folder: Path) -> str | None:
    """The lite decoder a set was made with (its manifest's ``decoder.name``), or None: the model's own."""
    import json

    decoder = json.loads((folder / "manifest.json").read_text()).get("decoder")
    return None if decoder is None else str(decoder["name"])


def _verify_one(folder: Path, model_file: str | None) -> tuple[int, int]:
    """Verify one set, print its report; (images bit-exact, images)."""
    from fxlic import models

    name, quality, model_hash = _manifest_model(folder)
    decoder = _manifest_decoder(folder)
    try:
        codec = _codec(name, quality, model_file, decoder)
    except (models.UnknownModelError, ValueError) as exc:
        raise UsageError(f"{folder}: {str(exc).splitlines()[0]}") from None
    start = time.perf_counter()
    try:
        reports = verify_set(codec, folder)
    except ValueError as exc:  # a set for another model or spec version
        raise UsageError(f"{folder}: {exc}") from None
    failed = [r for r in reports if not r.ok]
    architecture = codec.model.meta.get("architecture", "meanscale")
    with_decoder = "" if decoder is None else f", decoder {decoder}"
    print(f"golden set {folder} — model {name} q{quality} ({model_hash[:12]}, {architecture}{with_decoder})")
    for report in reports:
        status = "OK" if report.ok else "MISMATCH"
        print(f"  {report.name:32s} {report.checked:3d} tensors/streams checked  {status}")
        for line in report.mismatches[:5]:
            print(f"      {line}")
        if len(report.mismatches) > 5:
            more = ", ".join(line.split(":")[0] for line in report.mismatches[5:])
            print(f"      … and {len(report.mismatches) - 5} more: {more}")
        if report.layer_mismatches:
            print(f"    first divergence, layer by layer from the committed tensors: {report.first_divergence}")
            for line in report.layer_mismatches[1:5]:
                print(f"      then {line}")
    print(f"{len(reports) - len(failed)}/{len(reports)} images bit-exact "
          f"(encode → bitstream → decode, every layer) in {time.perf_counter() - start:.1f} s")
    return len(reports) - len(failed), len(reports)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxlic golden", description="Golden-vector sets (docs/golden.md): "
                                     "every integer tensor, the bitstream and the decoded image of a few images.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{make,verify}")
    p = sub.add_parser("make", help="write a golden-vector set", description="Write a golden-vector set.")
    add_model_options(p)
    p.add_argument("--images", nargs="+", required=True, metavar="IMAGE[@TOP,LEFT,HEIGHT,WIDTH]",
                   help="image files, each optionally cropped (pixel rectangle after @)")
    dec = p.add_mutually_exclusive_group()
    dec.add_argument("--decoder", metavar="NAME", help="decode with this lite decoder of the model (the encoder "
                     "side and the streams are the model's own; docs/golden.md)")
    dec.add_argument("--decoder-file", metavar="FILE.npz", help="decode with this lite decoder file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the new set (replaced if it exists)")
    p.add_argument("--tile", type=int, default=0, metavar="PIXELS",
                   help="record the DPU tile the board runs (xmodel input shapes, docs/board.md 'Tiles'); "
                        "0: whole images")
    p.set_defaults(func=make_main)
    p = sub.add_parser("verify", help="recompute a set and compare bit for bit (default: every bundled set)",
                       description="Recompute a golden set (encode → bitstream → decode, every layer) and compare. "
                       "Without FOLDER: every bundled set (golden/vectors/<model>-q<quality>/), the default "
                       "model's first.")
    p.add_argument("folder", nargs="?", help="golden set (default: every bundled set)")
    p.add_argument("--model-file", metavar="FILE.npz",
                   help="model file (default: the shipped model named in the manifest; without FOLDER it "
                        "applies to the bundled set of its model name and quality)")
    p.set_defaults(func=verify_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return args.func(args)
