"""Training seconds per step: the fp32 baseline and the trainer's fast path, side by side in one process.

Both run ``fxlic.qat.train.rd_step`` + ``aux_step`` (the trainer's own step) on the same model
architecture, the same crops and the same thread count, alternating in rounds so that machine load
hits both alike. Baseline: float32, contiguous tensors, per-parameter Adam (the trainer before the fast
path). Fast path: what ``fxlic train`` uses for the float phase by default (``FastPath.choose("auto",
"float", cpu)``: bfloat16 autocast, channels_last, fused Adam).

    python benchmarks/train_speed.py [--threads 2] [--shapes 8x128 16x256] [--json]

``--json`` prints one object for the first shape (8×128² by default):
``{"baseline_s_per_step": …, "fast_s_per_step": …, "speedup": …, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def parse_shape(text: str) -> tuple[int, int]:
    batch, crop = text.lower().split("x")
    return int(batch), int(crop)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", nargs="+", default=["8x128", "16x256"], help="BATCHxCROP, e.g. 8x128")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round and path")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--N", type=int, default=96)
    p.add_argument("--M", type=int, default=128)
    p.add_argument("--data", default=None, help="training images (default ../shared/data/train; random if absent)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--architectures", nargs="+", metavar="ARCH",
                   help="instead of fp32 vs fast: the fast path's s/step of each architecture, side by side "
                        "(ms<N>-<M> = mean-scale, charm<N>-<M> = ChARM, 4 slices; e.g. ms96-128 charm96-128), "
                        "for the bake-off's per-CPU-minute comparison")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    from fxlic.qat.charm import CharmConfig, CharmHyperprior
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig
    from fxlic.qat.train import FastPath, aux_step, rd_step

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")

    def architecture(name: str):  # "ms96-128" / "charm96-128" → a model factory
        kind, sizes = ("charm", name[5:]) if name.startswith("charm") else ("ms", name[2:])
        n, m = (int(v) for v in sizes.split("-"))
        if kind == "charm":
            return lambda: CharmHyperprior(CharmConfig(N=n, M=m))
        return lambda: MeanScaleHyperprior(ModelConfig(N=n, M=m, hyper_activation="relu"))

    if args.architectures:
        fast_path = FastPath.choose("auto", "float", cpu)
        paths = {name: (fast_path, architecture(name)) for name in args.architectures}
    else:
        factory = architecture(f"ms{args.N}-{args.M}")
        paths = {"baseline": (FastPath.baseline(cpu), factory),
                 "fast": (FastPath.choose("auto", "float", cpu), factory)}
    data = args.data or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "train")
    results = []
    for shape in args.shapes:
        batch, crop = parse_shape(shape)
        if os.path.isdir(data):
            from fxlic.qat.data import CropSampler

            sampler = CropSampler(data, crop, seed=0)
            crops = [sampler.batch(batch) for _ in range(4)]
        else:
            rng = np.random.default_rng(0)
            crops = [torch.from_numpy(rng.integers(0, 256, (batch, 3, crop, crop)).astype(np.float32))
                     for _ in range(4)]
        runners = {}
        for name, (fast, factory) in paths.items():
            torch.manual_seed(0)
            model = factory()
            fast.prepare(model)
            model.train()
            main_params = [q for n, q in model.named_parameters() if not n.endswith(".quantiles")]
            aux_params = [q for n, q in model.named_parameters() if n.endswith(".quantiles")]
            runners[name] = (model, fast, fast.adam(main_params, 1e-4), main_params, fast.adam(aux_params, 1e-3),
                             aux_params)

        def run(name: str, steps: int, offset: int, runners: dict = runners, crops: list = crops) -> float:
            model, fast, opt, main_params, aux_opt, aux_params = runners[name]
            begin = time.perf_counter()
            for i in range(steps):
                rd_step(model, crops[(offset + i) % len(crops)], 0.013, opt, main_params, 1.0, fast)
                aux_step(model, aux_opt, aux_params)
            return time.perf_counter() - begin

        for name in paths:
            run(name, args.warmup, 0)
        totals = {name: 0.0 for name in paths}
        for r in range(args.rounds):
            for name in paths:  # alternate: a load spike hits both paths alike
                totals[name] += run(name, args.steps, r)
        per_step = {name: totals[name] / (args.rounds * args.steps) for name in paths}
        if args.architectures:
            first = args.architectures[0]
            row = {"shape": f"{batch}x{crop}x{crop}", "threads": args.threads, "fast": paths[first][0].describe(),
                   "s_per_step": {k: round(v, 4) for k, v in per_step.items()},
                   "relative_to_first": {k: round(v / per_step[first], 3) for k, v in per_step.items()},
                   "torch": torch.__version__, "steps_timed": args.rounds * args.steps}
            results.append(row)
            if not args.json:
                for name, value in per_step.items():
                    print(f"{row['shape']:>12}  {args.threads} threads  {name:>14}  {value:.3f} s/step  "
                          f"×{value / per_step[first]:.2f}", flush=True)
            continue
        row = {"shape": f"{batch}x{crop}x{crop}", "threads": args.threads,
               "baseline_s_per_step": round(per_step["baseline"], 4), "fast_s_per_step": round(per_step["fast"], 4),
               "speedup": round(per_step["baseline"] / per_step["fast"], 3),
               "baseline": paths["baseline"][0].describe(), "fast": paths["fast"][0].describe(),
               "torch": torch.__version__, "steps_timed": args.rounds * args.steps}
        results.append(row)
        if not args.json:
            print(f"{row['shape']:>12}  {args.threads} threads  baseline {row['baseline_s_per_step']:.3f} s/step  "
                  f"fast {row['fast_s_per_step']:.3f} s/step  speedup {row['speedup']:.2f}×", flush=True)
    if args.json:
        print(json.dumps({**results[0], "shapes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
