"""``fxlic golden make`` / ``fxlic golden verify``: write and check golden-vector sets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .vectors import make_set, verify_set

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "golden" / "vectors"


def default_set() -> Path:
    """The committed golden set of the default model and quality."""
    from fxlic import models

    name = models.default_model()
    return BUNDLED / f"{name}-q{models.default_quality(name)}"


def _parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    parts = [int(v) for v in text.replace("x", ",").replace("+", ",").split(",")]
    if len(parts) != 4:
        raise ValueError(f"--crop wants TOP,LEFT,HEIGHT,WIDTH, got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def make_main(argv: list[str]) -> int:
    from fxlic.cli import load_codec
    from fxlic.imageio import read_image

    p = argparse.ArgumentParser(prog="fxlic golden make", description="Write a golden-vector set.")
    p.add_argument("--model")
    p.add_argument("--quality", type=int)
    p.add_argument("--model-file")
    p.add_argument("--images", nargs="+", required=True, help="image files; IMAGE@TOP,LEFT,HEIGHT,WIDTH crops")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    codec = load_codec(args.model, args.quality, args.model_file)
    images: dict[str, np.ndarray] = {}
    for spec in args.images:
        path, _, crop_text = spec.partition("@")
        pixels = read_image(path)
        crop = _parse_crop(crop_text)
        name = Path(path).stem
        if crop:
            top, left, height, width = crop
            pixels = np.ascontiguousarray(pixels[top : top + height, left : left + width])
            name = f"{name}_{top}_{left}_{height}x{width}"
        images[name] = pixels
    manifest = make_set(codec, images, args.out)
    count = sum(len(i["arrays"]) for i in manifest["images"])
    print(f"wrote {args.out}: {len(images)} images, {count} arrays, model {manifest['model']['hash'][:12]}")
    return 0


def verify_main(argv: list[str]) -> int:
    from fxlic.cli import load_codec

    p = argparse.ArgumentParser(prog="fxlic golden verify",
                                description="Recompute a golden set (encode → bitstream → decode) and compare.")
    p.add_argument("folder", nargs="?", help="golden set (default: the bundled set of the default model)")
    p.add_argument("--model-file", help="model file (default: the shipped model named in the manifest)")
    args = p.parse_args(argv)
    folder = Path(args.folder) if args.folder else default_set()
    if not (folder / "manifest.json").is_file():
        from fxlic.cli import CliError

        raise CliError(f"{folder}: no manifest.json; not a golden set")
    import json

    model = json.loads((folder / "manifest.json").read_text())["model"]
    codec = load_codec(model["name"], model["quality"], args.model_file)
    start = time.perf_counter()
    reports = verify_set(codec, folder)
    failed = [r for r in reports if not r.ok]
    print(f"golden set {folder} — model {model['name']} q{model['quality']} ({model['hash'][:12]})")
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
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("make", "verify"):
        print("usage: fxlic golden {make,verify} ...", file=sys.stderr)
        return 2
    return make_main(argv[1:]) if argv[0] == "make" else verify_main(argv[1:])
