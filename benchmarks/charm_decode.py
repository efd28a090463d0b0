"""Decode time of a charm model file next to a mean-scale model file, on the same images, in one run.

For every image both models encode it (untimed warm-up of the JIT on the first image, then timed) and decode
their own stream ``--repeat`` times (the fastest run counts); the decoded image must equal the first decode.
Each decode is split by where the time goes, measured around every integer layer call (whole-image
transforms, ``--tile 0`` semantics, for both models: the charm codec codes whole images):

* ``h_s``      the hyper synthesis and the support / scale-mean heads,
* ``slices``   charm's slice stacks ``cc_scales.i`` and ``cc_means.i`` (the autoregression, CH-7),
* ``lrp``      charm's ``lrp.i`` stacks,
* ``g_s``      the synthesis transform,
* ``cpu``      everything else: rANS decoding, table selection, ŷ hand-over and ỹ, padding and pixels.

Times are CPU seconds of this process (``time.process_time``, one thread by default): a shared, busy machine
inflates wall time, not CPU time. Also printed: MACs per pixel of each part (``fxlic board partition``),
bytes and bpp. Kodak is the *test* set: measure on it, never train on it.

    python benchmarks/charm_decode.py --charm-model models/charm-q4.npz            # shipped mean-scale, 3 Kodak images
    python benchmarks/charm_decode.py --charm-model C.npz --meanscale-model M.npz --images a.png b.png --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PARTS = ("h_s", "slices", "lrp", "g_s", "cpu")
DEFAULT_KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"


class _Timed:
    """Stands in for one QuantConv of a network: calls it and adds the CPU time to ``totals[part]``."""

    def __init__(self, layer, part: str, totals: dict[str, float]) -> None:
        self.layer, self.part, self.totals = layer, part, totals

    def __call__(self, x, *args, **kwargs):
        start = time.process_time()
        out = self.layer(x, *args, **kwargs)
        self.totals[self.part] += time.process_time() - start
        return out

    def __getattr__(self, name: str):
        return getattr(self.layer, name)


def _part(name: str) -> str:
    if name.startswith(("cc_scales.", "cc_means.")):
        return "slices"
    if name.startswith("lrp."):
        return "lrp"
    if name.startswith("g_s."):
        return "g_s"
    return "h_s" if name.startswith("h_s") else "encoder"


def instrument(codec, totals: dict[str, float]) -> None:
    """Wrap every layer the decoder calls (h_s, heads, slice stacks, g_s) in a timer."""
    net = codec.net
    for chain in (net.h_s, net.g_s):
        chain[:] = [_Timed(layer, _part(layer.name), totals) for layer in chain]
    net.h_s_scales = _Timed(net.h_s_scales, "h_s", totals)
    if net.h_s_means is not None:
        net.h_s_means = _Timed(net.h_s_means, "h_s", totals)
    for stacks in getattr(net, "stacks", {}).values():
        for stack in stacks:
            stack[:] = [_Timed(layer, _part(layer.name), totals) for layer in stack]


def macs_per_pixel(model) -> dict[str, float]:
    """Decoder-side MACs per image pixel by part, from the board partition's layer geometry."""
    from fxlic.board.partition import partition_from_model

    partition = partition_from_model(model)
    shapes = partition.shapes(1024, 1024)
    macs = dict.fromkeys(PARTS, 0.0)
    for name, spec in partition.layers.items():
        part = _part(name)
        if part in macs:
            _, h, w, _ = shapes[spec.input if spec.transposed else name]
            macs[part] += h * w * spec.in_channels * spec.out_channels * spec.kernel[0] * spec.kernel[1] / 1024**2
    return macs


def measure(label: str, model, images: list[Path], repeat: int) -> dict:
    """Encode and decode every image with one model file; per-image and mean times, parts, sizes."""
    from fxlic.families import open_codec
    from fxlic.imageio import read_image

    codec = open_codec(model, tile=0, workers=1)
    totals = dict.fromkeys([*PARTS, "encoder"], 0.0)
    instrument(codec, totals)
    warm = read_image(images[0])[:64, :64]
    codec.decode(codec.encode(warm).bitstream)  # JIT and BLAS warm-up, not timed
    rows = []
    for path in images:
        pixels = read_image(path)
        start = time.process_time()
        bitstream = codec.encode(pixels).bitstream
        encode_s = time.process_time() - start
        best = None
        reference = None
        for _ in range(repeat):
            for key in totals:
                totals[key] = 0.0
            start = time.process_time()
            decoded = codec.decode(bitstream)
            total = time.process_time() - start
            if reference is None:
                reference = decoded
            elif not (decoded == reference).all():
                raise AssertionError(f"{label}: {path.name} decodes differently on run 2")
            parts = {p: totals[p] for p in PARTS if p != "cpu"}
            parts["cpu"] = max(total - sum(parts.values()), 0.0)
            if best is None or total < best["decode_s"]:
                best = {"decode_s": total, "parts_s": parts}
        height, width = pixels.shape[:2]
        rows.append({"image": path.name, "width": width, "height": height, "bytes": len(bitstream),
                     "bpp": 8 * len(bitstream) / (width * height), "encode_s": encode_s, **best})
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("encode_s", "decode_s", "bytes", "bpp")}
    mean["parts_s"] = {p: sum(r["parts_s"][p] for r in rows) / len(rows) for p in PARTS}
    return {"model": {"label": label, "name": model.name, "quality": model.quality,
                      "architecture": model.meta.get("architecture", "meanscale"),
                      "hash": model.content_hash().hex()[:12], "path": str(model.path),
                      "config": model.meta.get("config")},
            "macs_per_pixel": macs_per_pixel(model), "images": rows, "mean": mean}


def format_table(results: list[dict], images: list[Path], threads: int) -> str:
    lines = [f"{len(images)} image(s): {', '.join(p.name for p in images)}; {threads} thread(s); CPU seconds "
             "(process_time), fastest of --repeat decodes; whole-image transforms"]
    head = f"{'model':28s} {'bpp':>6s} {'encode s':>9s} {'decode s':>9s}  " + " ".join(f"{p:>7s}" for p in PARTS)
    lines += [head, "-" * len(head)]
    for r in results:
        m, mean = r["model"], r["mean"]
        name = f"{m['name']} q{m['quality']} ({m['architecture']})"
        lines.append(f"{name:28s} {mean['bpp']:6.3f} {mean['encode_s']:9.3f} {mean['decode_s']:9.3f}  "
                     + " ".join(f"{mean['parts_s'][p]:7.3f}" for p in PARTS))
        lines.append(f"{'  MACs/pixel':28s} {'':6s} {'':9s} {sum(r['macs_per_pixel'].values()):9,.0f}  "
                     + " ".join(f"{r['macs_per_pixel'][p]:7,.0f}" for p in PARTS))
    if len(results) == 2 and results[1]["mean"]["decode_s"] > 0:
        ratio = results[0]["mean"]["decode_s"] / results[1]["mean"]["decode_s"]
        slices = results[0]["mean"]["parts_s"]["slices"] + results[0]["mean"]["parts_s"]["lrp"]
        share = slices / results[0]["mean"]["decode_s"] if results[0]["mean"]["decode_s"] else 0.0
        lines.append(f"decode time {results[0]['model']['label']} / {results[1]['model']['label']}: {ratio:.2f}; "
                     f"slice stacks + LRP: {100 * share:.0f} % of the charm decode")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--charm-model", metavar="FILE.npz", help="charm model file (default: the shipped charm model)")
    p.add_argument("--charm-quality", type=int, help="quality of the shipped charm model (default: its default)")
    p.add_argument("--meanscale-model", metavar="FILE.npz",
                   help="mean-scale model file (default: the shipped meanscale model)")
    p.add_argument("--meanscale-quality", type=int, help="quality of the shipped meanscale model")
    p.add_argument("--images", nargs="+", metavar="PNG", help=f"images (default: the first --limit of {DEFAULT_KODAK})")
    p.add_argument("--limit", type=int, default=3, help="how many default Kodak images (default 3)")
    p.add_argument("--crop", type=int, metavar="PIXELS", help="decode only the top-left PIXELS × PIXELS of each image")
    p.add_argument("--repeat", type=int, default=1, help="decodes per image and model; the fastest counts")
    p.add_argument("--threads", type=int, default=1, help="BLAS / Numba threads (default 1)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (- for stdout, then no table)")
    args = p.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from fxlic import models

    charm = models.load("charm" if not args.charm_model else None, args.charm_quality, args.charm_model)
    meanscale = models.load("meanscale" if not args.meanscale_model else None, args.meanscale_quality,
                            args.meanscale_model)
    if charm.meta.get("architecture") != "charm":
        p.error(f"--charm-model {charm.path} is a {charm.meta.get('architecture', 'meanscale')} model")
    if meanscale.meta.get("architecture", "meanscale") == "charm":
        p.error(f"--meanscale-model {meanscale.path} is a charm model")
    images = [Path(i) for i in args.images] if args.images else sorted(DEFAULT_KODAK.glob("*.png"))[: args.limit]
    if not images:
        p.error(f"no images (looked in {DEFAULT_KODAK}); pass --images")
    if args.crop:
        images = _cropped(images, args.crop)
    results = [measure("charm", charm, images, args.repeat), measure("meanscale", meanscale, images, args.repeat)]
    record = {"threads": args.threads, "repeat": args.repeat, "crop": args.crop,
              "images": [str(p) for p in images], "results": results}
    if args.json == "-":
        print(json.dumps(record, indent=1))
        return 0
    print(format_table(results, images, args.threads))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


def _cropped(images: list[Path], size: int) -> list[Path]:
    """Top-left crops written to a temporary folder (the codec reads files, as ``fxlic decode`` would)."""
    import tempfile

    from fxlic.imageio import encode_png, read_image

    folder = Path(tempfile.mkdtemp(prefix="charm-decode-"))
    out = []
    for path in images:
        target = folder / path.name
        target.write_bytes(encode_png(read_image(path)[:size, :size]))
        out.append(target)
    return out


if __name__ == "__main__":
    sys.exit(main())
