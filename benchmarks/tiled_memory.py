"""Peak memory and time against image size: `fxlic encode/decode` tiled vs whole-image, beside CompressAI's
float pipeline with the same weights (the shipped int8 model dequantized, float32 PyTorch transforms +
CompressAI's rANS coders), each in its own process measured by ``/usr/bin/time -v`` (peak RSS, wall
time, user + system CPU seconds).

Images are synthetic camera-size photos (``benchmarks/large_image.py``: a training photo mirrored and
tiled, never Kodak). Every tiled and whole-image run of one size must give the same stream and the same
decoded pixels (checked; the table says so). A configuration is skipped when its memory, extrapolated
from the previous size, would exceed ``--mem-fraction`` of the available memory.

    nice -n 15 python benchmarks/tiled_memory.py --sizes 1 6 24 64 --tiles 256 0 --float \\
        --photo ../shared/data/train/001.png --work /tmp/fxlic-bench --out results/tiled_memory.md
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def size_for(megapixels: float) -> tuple[int, int]:
    """(width, height) of a 4:3 image of about ``megapixels`` MP, both sides odd (not multiples of 64)."""
    width = int(math.sqrt(megapixels * 1e6 * 4 / 3)) | 1
    height = int(width * 3 / 4) | 1
    return width, height


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; peak RSS (GiB), wall and CPU seconds."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    err = proc.stderr
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", err).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", err).group(1))
    wall_text = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err).group(1)
    wall = 0.0
    for part in wall_text.split(":"):
        wall = wall * 60 + float(part)
    return {"rss_gib": rss_kb / 2**20, "wall_s": wall, "cpu_s": user + system, "command": " ".join(cmd)}


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def float_worker(mode: str, source: str, target: str, model_file: str | None) -> int:
    """One float-pipeline step in this process: encode an image to a pickle, or decode the pickle."""
    import torch

    from fxlic import models
    from fxlic.codec import pad_image
    from fxlic.imageio import read_image
    from fxlic.qat.evaluate_float import FloatCodec
    from fxlic.qat.export import model_from_model_file
    from fxlic.qat.layers import qconvs
    from fxlic.qat.models import pixels_to_input

    model = model_from_model_file(models.load(path=model_file))
    for _, layer in qconvs(model):
        layer.quantized.fill_(False)  # same weights, plain float32 convs
    codec = FloatCodec(model)
    with torch.no_grad():
        if mode == "encode":
            pixels = read_image(source)
            x = pixels_to_input(torch.from_numpy(pad_image(pixels)).permute(2, 0, 1)[None])
            strings, z_size = codec.encode(x)
            Path(target).write_bytes(pickle.dumps((strings, z_size)))
        else:
            strings, z_size = pickle.loads(Path(source).read_bytes())
            codec.decode(strings, z_size)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=float, nargs="+", default=[1, 6, 24, 64], help="megapixels")
    p.add_argument("--tiles", type=int, nargs="+", default=[256, 0], help="--tile values (0 = whole image)")
    p.add_argument("--extra-up-to", type=float, default=float("inf"), metavar="MP",
                   help="run the tiles after the first only up to this size (whole image and float: memory rule)")
    p.add_argument("--float", action="store_true", help="also run CompressAI's float pipeline")
    p.add_argument("--photo", default="../shared/data/train/001.png")
    p.add_argument("--work", default="/tmp/fxlic-bench")
    p.add_argument("--out", default="results/tiled_memory.md")
    p.add_argument("--mem-fraction", type=float, default=0.7)
    p.add_argument("--model-file")
    args = p.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fxlic = [sys.executable, "-m", "fxlic.cli"]
    model_args = ["--model-file", args.model_file] if args.model_file else []
    rows: list[dict] = []
    per_pixel: dict[str, float] = {}  # configuration -> GiB per MP at the last size (skip rule, conservative)
    out = Path(args.out)

    def write_table() -> None:
        lines = [
            "# Peak memory and time against image size (benchmarks/tiled_memory.py)",
            "",
            f"Command: `nice -n 15 python benchmarks/tiled_memory.py --sizes {' '.join(map(str, args.sizes))} "
            f"--tiles {' '.join(map(str, args.tiles))}{' --float' if args.float else ''} "
            f"--extra-up-to {args.extra_up_to:g}` "
            f"(2-core VM shared with a training job: times are indicative, memory is not affected).",
            "Each cell: peak RSS (`/usr/bin/time -v`, GiB) / wall time (s) / CPU time user+system (s).",
            "`same` = stream and decoded pixels identical to the first integer configuration of that size.",
            "",
            "| MP | size | pipeline | encode GiB / s / cpu s | decode GiB / s / cpu s | bytes | same |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            def cell(m):
                if isinstance(m, str):
                    return "skipped: " + m
                return f"{m['rss_gib']:.2f} / {m['wall_s']:.0f} / {m['cpu_s']:.0f}"
            lines.append(f"| {r['mp']:g} | {r['size']} | {r['pipeline']} | {cell(r['encode'])} | "
                         f"{cell(r['decode'])} | {r.get('bytes', '')} | {r.get('same', '')} |")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")

    for mp in args.sizes:
        width, height = size_for(mp)
        image = work / f"{mp:g}mp.png"
        if not image.exists():
            subprocess.run([sys.executable, str(HERE / "large_image.py"), args.photo, f"{width}x{height}",
                            str(image)], check=True)
        first_stream: bytes | None = None
        first_pixels: np.ndarray | None = None
        configs = [(f"integer --tile {t}" if t else "integer whole image (--tile 0)", t) for t in args.tiles]
        if args.float:
            configs.append(("CompressAI float32", None))
        if mp > args.extra_up_to:  # the first tile, whole image and float; the memory rule decides the rest
            configs = [c for i, c in enumerate(configs) if i == 0 or not c[1]]
        for label, tile in configs:
            real_mp = width * height / 1e6
            estimate = per_pixel.get(label, 0.0) * real_mp
            row = {"mp": mp, "size": f"{width}x{height}", "pipeline": label}
            if estimate > args.mem_fraction * available_gib():
                row["encode"] = row["decode"] = f"needs ~{estimate:.0f} GiB"
                rows.append(row)
                write_table()
                continue
            stem = work / f"{mp:g}mp.{'float' if tile is None else tile}"
            if tile is None:
                worker = [sys.executable, str(Path(__file__).resolve()), "--float-worker"]
                enc = timed([*worker, "encode", str(image), f"{stem}.pkl", args.model_file or ""])
                dec = timed([*worker, "decode", f"{stem}.pkl", "-", args.model_file or ""])
            else:
                enc = timed([*fxlic, "encode", str(image), "-o", f"{stem}.fxl", "--tile", str(tile), "-q",
                             *model_args])
                dec = timed([*fxlic, "decode", f"{stem}.fxl", "-o", f"{stem}.png", "--tile", str(tile), "-q",
                             *model_args])
                stream = Path(f"{stem}.fxl").read_bytes()
                from PIL import Image

                Image.MAX_IMAGE_PIXELS = None
                pixels = np.asarray(Image.open(f"{stem}.png").convert("RGB"))
                row["bytes"] = len(stream)
                if first_stream is None:
                    first_stream, first_pixels = stream, pixels
                    row["same"] = "(first)"
                else:
                    row["same"] = "yes" if stream == first_stream and np.array_equal(pixels, first_pixels) else "NO"
                Path(f"{stem}.png").unlink()
            row["encode"], row["decode"] = enc, dec
            per_pixel[label] = max(enc["rss_gib"], dec["rss_gib"]) / real_mp
            rows.append(row)
            write_table()
            print(f"{mp:g} MP {label}: encode {enc['rss_gib']:.2f} GiB {enc['wall_s']:.0f} s, "
                  f"decode {dec['rss_gib']:.2f} GiB {dec['wall_s']:.0f} s", flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--float-worker":
        sys.exit(float_worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None))
    t0 = time.time()
    sys.exit(main())
