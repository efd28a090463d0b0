"""End-to-end encode and decode seconds per image: ``fxlic encode`` / ``fxlic decode`` as a user runs them (one
process each: interpreter start, imports, model load, Numba's compiled-code cache, transforms, entropy coding,
file I/O) against CompressAI's float ``mbt2018_mean`` in-process, on the same image and the same cores.

CompressAI's pretrained weights cannot be downloaded here: its model is built with random initial weights of the
same architecture (``mbt2018_mean(quality=Q, pretrained=False)``; quality 1–4 is N = 128, M = 192, its smallest
size). The transforms' time does not depend on the weights; its entropy coder sees what random weights produce
(a short ŷ stream), so its coding time is if anything shorter than a trained model's.

Both sides get the same cores: every run (the CLI's processes and this process, where CompressAI runs) is pinned
with ``taskset``/``sched_setaffinity`` to the first ``--threads`` CPUs, torch uses that many threads, and fxlic
uses every CPU it may run on (its tiles and entropy substreams). Runs alternate fxlic / CompressAI ``--repeat``
times; the ratios are of the medians (and of the fastest runs), wall clock and CPU seconds (user + system of the
process; CompressAI's in-process CPU time is this process's). Ratios, not absolute times, are the result: on a
shared, loaded machine both slow down together.

    python benchmarks/codec_speed.py --images ../shared/data/kodak [--limit 1] [--threads 1] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def run_process(command: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process (run in ``cwd``, so that ``python -m fxlic.cli`` imports
    the installed fxlic, not a source tree in the current folder)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(function) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds of this process) of one in-process call."""
    c0, t0 = time.process_time(), time.perf_counter()
    function()
    return time.perf_counter() - t0, time.process_time() - c0


def summary(samples: list[tuple[float, float]]) -> dict:
    walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
    return {"wall_median": round(statistics.median(walls), 3), "wall_min": round(min(walls), 3),
            "cpu_median": round(statistics.median(cpus), 3), "cpu_min": round(min(cpus), 3)}


def ratio(a: dict, b: dict) -> dict:
    return {key: round(a[key] / b[key], 2) for key in ("wall_median", "wall_min", "cpu_median", "cpu_min")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="folder of PNG images (or one PNG)")
    p.add_argument("--limit", type=int, default=1, help="first N images of the folder (default 1)")
    p.add_argument("--threads", type=int, default=1, help="CPUs for both pipelines (default 1)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quality", type=int, default=4, help="CompressAI mbt2018_mean quality (architecture size)")
    p.add_argument("--fxlic", default=None, help="the fxlic command (default: this interpreter's -m fxlic.cli)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, cpus)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = os.environ[var] = str(args.threads)
    # A user's Python imports fxlic from its bytecode cache: pip compiles it at install, and an editable install
    # writes __pycache__ at the first import. A sandbox that sets PYTHONDONTWRITEBYTECODE=1 (this project's
    # development VM does) makes every CLI process of an editable install compile its modules from source
    # (results/speed/README.md measures what that costs): the warm-up runs below write the cache, as a user's
    # first run would.
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    import numpy as np
    import torch
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from compressai.zoo import mbt2018_mean

    torch.set_num_threads(args.threads)
    source = Path(args.images).resolve()  # the CLI runs in a scratch folder: relative paths would break
    images = [source] if source.is_file() else sorted(source.glob("*.png"))[: args.limit]
    fxlic = args.fxlic.split() if args.fxlic else [sys.executable, "-m", "fxlic.cli"]
    taskset = ["taskset", "-c", ",".join(map(str, cpus))]
    torch.manual_seed(0)
    net = mbt2018_mean(quality=args.quality, pretrained=False).eval()
    net.update(force=True)

    load = [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        stream, decoded = Path(tmp) / "x.fxl", Path(tmp) / "x.png"
        for path in images:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            h, w = pixels.shape[:2]
            x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
            pad_h, pad_w = (-h) % 64, (-w) % 64
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            encode = [*taskset, *fxlic, "encode", str(path), "-o", str(stream), "-q"]
            decode = [*taskset, *fxlic, "decode", str(stream), "-o", str(decoded), "-q"]
            run_process(encode, env, tmp)  # warm the file cache, the bytecode cache and Numba's on-disk cache
            run_process(decode, env, tmp)
            compressed = net.compress(x)
            net.decompress(compressed["strings"], compressed["shape"])
            samples: dict[str, list] = {k: [] for k in ("fxlic_encode", "fxlic_decode", "compressai_encode",
                                                        "compressai_decode")}

            def compress(x=x) -> None:  # noqa: ANN001
                net.compress(x)

            def decompress(compressed=compressed, h=h, w=w) -> None:  # noqa: ANN001
                out = net.decompress(compressed["strings"], compressed["shape"])["x_hat"]
                (out[0, :, :h, :w].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

            for _ in range(args.repeat):
                samples["fxlic_encode"].append(run_process(encode, env, tmp))
                samples["compressai_encode"].append(timed(compress))
                samples["fxlic_decode"].append(run_process(decode, env, tmp))
                samples["compressai_decode"].append(timed(decompress))
            stats = {k: summary(v) for k, v in samples.items()}
            rows.append({"image": path.name, "size": [w, h], "fxlic_bytes": stream.stat().st_size,
                         **stats, "encode_ratio": ratio(stats["fxlic_encode"], stats["compressai_encode"]),
                         "decode_ratio": ratio(stats["fxlic_decode"], stats["compressai_decode"])})
            load.append(os.getloadavg()[0])
    result = {"threads": args.threads, "cpus": cpus, "repeat": args.repeat,
              "bytecode_cache": "written by the warm-up runs (PYTHONDONTWRITEBYTECODE removed for the CLI)",
              "compressai": f"mbt2018_mean(quality={args.quality}, pretrained=False), in-process, torch "
                            f"{torch.__version__}, {args.threads} thread(s)",
              "fxlic": "the CLI, one process per encode / decode (start-up, imports, model load, Numba cache, "
                       "transforms, entropy coding, PNG / .fxl I/O)",
              "load_average_1min": [round(v, 2) for v in load], "cpu_count": os.cpu_count(), "images": rows}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{len(rows)} image(s), {args.threads} CPU(s) {cpus}, {args.repeat} runs each, load average "
          f"{', '.join(f'{v:.1f}' for v in load)}; CompressAI: {result['compressai']}")
    print(f"{'image':12s} {'step':7s} {'fxlic CLI s':>12s} {'CompressAI s':>13s} {'ratio wall':>11s} "
          f"{'ratio cpu':>10s}   (medians; fastest runs: wall ratio)")
    for row in rows:
        for step in ("encode", "decode"):
            f, c, r = row[f"fxlic_{step}"], row[f"compressai_{step}"], row[f"{step}_ratio"]
            print(f"{row['image']:12s} {step:7s} {f['wall_median']:12.3f} {c['wall_median']:13.3f} "
                  f"{r['wall_median']:11.2f} {r['cpu_median']:10.2f}   ({r['wall_min']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
