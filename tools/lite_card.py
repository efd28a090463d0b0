"""Model card of a shipped lite decoder ladder, and its weights-only checkpoints.

For each quality: the QAT student the decoder file was exported from (RUNS/qQ-NAME-qat/best.pt) and the float
student it was fine-tuned from, with the whole history of ``--init-from`` starts behind it (steps, CPU-minutes,
training data, learning rate); the Kodak figures of ``tools/measure_lite.sh`` (RESULTS); the modelled fps of
``fxlic hw-report``. ``--slim`` also writes the weights-only checkpoints that go into the repository:
models/float/lite/meanscale-qQ.NAME-float.pt (float16: a starting point for more training) and
…-qat.pt (float32: the exact source of the decoder file, for ``fxlic verify-qat --decoder-checkpoint``).

    python tools/lite_card.py --name lite48 --runs runs/lite2 --results results/kodak-lite \\
        --out models/meanscale-lite.md --slim
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from fxlic.qat.slim import slim_checkpoint


def history(checkpoint: Path) -> list[dict]:
    """The run of ``checkpoint`` and every run it was started from (``--init-from``), oldest first."""
    runs = []
    path: Path | None = checkpoint
    while path is not None and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        args = state.get("args") or {}
        runs.append({"run": os.path.relpath(path.resolve().parent),  # a symlinked run folder by its own name
                      "phase": state.get("phase", "float"), "steps": int(state["step"]),
                     "minutes": state.get("elapsed_s", 0.0) / 60, "lr": args.get("lr"),
                     "data": args.get("cache", ""), "holdout_every": args.get("holdout_every", "0"),
                     "val_psnr": state.get("val_psnr"), "record": state.get("record", {})})
        source = args.get("init_from")
        path = Path(source) if source and source != "None" else None
        if path is not None and path.name == "best.pt":
            path = path.parent / "checkpoint.pt"
    return runs[::-1]


def cache_names(data: str) -> str:
    return ", ".join(part.strip(" []'").split("/")[-1].replace("PosixPath('", "").rstrip("')")
                     for part in data.split(",") if part.strip(" []")) or "?"


def fps_row(hw: dict) -> str:
    t = hw["totals"]
    cells = []
    for frame in ("720p", "1080p"):
        for board in ("KV260", "ZCU102"):
            v = t[f"frame_rate_{frame}_decode"][board]
            cells.append(f"{v['fps']:.1f} / {v['fps_pipelined']:.1f}")
    return " | ".join(cells)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="lite48")
    p.add_argument("--runs", type=Path, default=Path("runs/lite"))
    p.add_argument("--results", type=Path, default=Path("results/kodak-lite"))
    p.add_argument("--qualities", default="0,2,4,6,8")
    p.add_argument("--hardware", default="one thread of a 2-core AMD EPYC (AVX-512 BF16), no GPU, shared with "
                   "other training and development work")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--slim", action="store_true", help="write models/float/lite/*.pt (weights only)")
    args = p.parse_args()
    qualities = [int(q) for q in args.qualities.split(",")]
    name = args.name
    lines = [f"# Lite decoder `{name}` for the meanscale ladder", "",
             f"A narrower synthesis transform g_s for the streams of the shipped `meanscale` models: any stream of "
             f"`meanscale` q{{{args.qualities}}} decodes with `fxlic decode --decoder {name}`; the stream, and so the "
             "rate, is the default encoder's. Method, choices and the experiments behind them: "
             "docs/lite-decoders.md. Recipe: `tools/lite_recipe.sh`; measurement: `tools/measure_lite.sh`.", "",
             f"Teacher: the shipped int8 model of each quality (its encoder's ŷ of the training photos, its g_s for "
             f"the pruning start). Data: the 40 training photos (`../shared/data/train`, at full and half "
             f"resolution, the latter with three flips; the runs on `cache-qQ-s07` and `cache-qQ-half-t` also at "
             f"0.7× with a half turn, its transpose and anti-transpose, and at half resolution transposed with "
             f"three flips), every fifth photo held out; never Kodak. Hardware: "
             f"{args.hardware}. GPU minutes: 0.", "",
             "## Training, per quality (oldest run first; minutes are one thread's wall clock)", "",
             "| quality | phase | run | steps | minutes | lr | data | validation dB |",
             "|---|---|---|---|---|---|---|---|"]
    totals = {}
    for q in qualities:
        qat = args.runs / f"q{q}-{name}-qat"
        best = qat / "best.pt" if (qat / "best.pt").exists() else qat / "checkpoint.pt"
        runs = history(qat / "checkpoint.pt")
        best_state = torch.load(best, map_location="cpu", weights_only=False)
        totals[q] = sum(r["minutes"] for r in runs)
        for r in runs:
            val = (r["record"].get("float_val_psnr") if r["phase"] == "float"
                   else best_state.get("val_psnr") or r["record"].get("qat_val_psnr"))
            where = "held out" if str(r["holdout_every"]) not in ("0", "None", "") else "fit set"
            shown = "—" if val is None else f"{val:.2f} ({where})"
            lines.append(f"| {q} | {r['phase']} | `{r['run']}` | {r['steps']:,} | {r['minutes']:.1f} | {r['lr']} | "
                         f"{cache_names(str(r['data']))} | {shown} |")
        lines.append(f"| {q} | **total** | | | **{totals[q]:.1f}** | | | exported: QAT step {best_state['step']:,} |")
        if args.slim:
            out = Path("models/float/lite")
            slim_checkpoint(args.runs / f"q{q}-{name}" / "checkpoint.pt", out / f"meanscale-q{q}.{name}-float.pt",
                            torch.float16)
            slim_checkpoint(best, out / f"meanscale-q{q}.{name}-qat.pt", torch.float32)
            for run, tag in ((args.runs / f"q{q}-{name}", "float"), (qat, "qat")):
                (out / f"meanscale-q{q}.{name}-{tag}-log.csv").write_text((run / "log.csv").read_text())
    lines += ["", f"CPU-minutes in all: {sum(totals.values()):.1f} (runs of different qualities ran two at a time, "
              "one thread each). Validation (`fxlic.qat.lite.psnr_on`): the centres of the held-out photos (every "
              "fifth, with its flips and scales), or, in the runs made before the hold-out existed, of every fourth "
              "training photo (\"fit set\"); the teacher's own figure on them is in each run's log. The run folders "
              "are not in the repository; the exported QAT students and the last float students are (weights only, "
              "`models/float/lite/`, with their logs).", ""]
    lite = json.loads((args.results / f"meanscale.{name}.json").read_text())["results"]
    full = json.loads((args.results / f"meanscale-full-{name}-qualities.json").read_text())["results"]
    lines += ["## Kodak (24 images, the test set; real int8 bitstreams of the default encoder)", "",
              f"| quality | bpp | PSNR full dB | PSNR {name} dB | Δ dB | MS-SSIM full | MS-SSIM {name} |",
              "|---|---|---|---|---|---|---|"]
    for q, bpp, a, b, sa, sb in zip(qualities, full["bpp"], full["psnr-rgb"], lite["psnr-rgb"], full["ms-ssim-rgb"],
                                    lite["ms-ssim-rgb"], strict=True):
        lines.append(f"| {q} | {bpp:.4f} | {a:.3f} | {b:.3f} | {b - a:+.3f} | {sa:.4f} | {sb:.4f} |")
    bd = (args.results / f"bdrate-{name}.txt").read_text()
    lines += ["", "```", bd.rstrip(), "```", ""]
    hw1 = json.loads((args.results / f"hw-{name}.json").read_text())
    hw4 = json.loads((args.results / f"hw-{name}-entropy4.json").read_text())
    t = hw1["totals"]
    lines += [f"## Decode cost and modelled frame rates (`fxlic hw-report --decoder {name}`, fitted DPU timing)", "",
              f"Decode MACs per pixel: {t['decode_macs_per_pixel']:,.0f}. Frames per second, per frame / pipelined "
              "(tiles' entropy decoding overlapping the DPU's work on the previous tile):", "",
              "| entropy decoding on | KV260 720p | ZCU102 720p | KV260 1080p | ZCU102 1080p |",
              "|---|---|---|---|---|",
              f"| one A53 core | {fps_row(hw1)} |", f"| four A53 cores (substreams) | {fps_row(hw4)} |", ""]
    eq = args.results / f"layer-equality-q4.{name}.txt"
    if eq.exists():
        lines += ["## Exactness", "", f"q4, decoder side, all 24 Kodak images: {eq.read_text().strip()} "
                  f"(`fxlic verify-qat models/meanscale-q4.npz KODAK --decoder-file "
                  f"models/decoders/meanscale-q4.{name}.npz --decoder-checkpoint "
                  f"models/float/lite/meanscale-q4.{name}-qat.pt`). Golden set: `golden/vectors/meanscale-q4.{name}`.",
                  ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
