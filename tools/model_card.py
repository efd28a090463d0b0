"""Write the model card of a shipped model from its training checkpoints and its measured Kodak results.

    python tools/model_card.py --name meanscale --runs runs --results results/kodak --out models/meanscale.md
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch


def run_facts(run: Path) -> dict:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    args = state.get("args", {})
    return {"steps": state["step"], "minutes": state.get("elapsed_s", 0.0) / 60, "lambda": state["lmbda"],
            "lr": args.get("lr"), "batch": args.get("batch"), "crop": args.get("crop"), "data": args.get("data"),
            "init": args.get("init"), "config": state["config"]}


def kodak_rows(results: Path, name: str, quality: int) -> dict:
    with (results / f"{name}-q{quality}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: sum(float(r[key]) for r in rows) / len(rows) for key in ("bpp", "psnr", "ms_ssim", "encode_s",
                                                                           "decode_s")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", default="meanscale")
    p.add_argument("--runs", default="runs")
    p.add_argument("--results", default="results/kodak")
    p.add_argument("--qualities", default="0,2,4,6,8")
    p.add_argument("--hardware", default="2 CPU cores (x86-64), no GPU, shared with development work")
    p.add_argument("--provenance", default="", help="where the q4 float base came from (a paragraph)")
    p.add_argument("--gpu-minutes", type=float, default=0.0, help="GPU minutes spent on these runs")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    runs, results = Path(args.runs), Path(args.results)
    charm = run_facts(runs / f"{args.name}-q4-float")["config"].get("architecture") == "charm"
    title, architecture = (
        ("ChARM", "Minnen & Singh 2020 channel-wise autoregressive entropy model with latent residual "
                  "prediction on the DPU-deployable transforms of the mean-scale model; slices decoded one "
                  "after another (docs/charm.md).")
        if charm else
        ("mean-scale hyperprior", "Minnen et al. 2018 mean-scale hyperprior without context model, "
                                  "DPU-deployable (ReLU instead of GDN, k4 s2 p1 transposed convs, two h_s heads; "
                                  "docs/architecture.md)."))
    lines = [f"# Model card: `{args.name}` (int8, DPU-deployable {title})", "",
             f"Architecture: {architecture}", "",
             f"Hardware: {args.hardware}. Training data: `../shared/data/train` (40 photographs, random 128² "
             "crops with flips); Kodak was used only for the measurements below.", "",
             *([f"Provenance: {args.provenance}", ""] if args.provenance else []),
             "| quality | λ | phase | from | steps | minutes | lr | batch × crop |",
             "|---|---|---|---|---|---|---|---|"]
    total = 0.0
    for q in [int(v) for v in args.qualities.split(",")]:
        for phase in ("float", "qat"):
            run = runs / f"{args.name}-q{q}-{phase}"
            if not (run / "checkpoint.pt").exists():
                continue
            f = run_facts(run)
            total += f["minutes"]
            init = Path(f["init"]).parent.name if f["init"] else "scratch"
            lines.append(f"| {q} | {f['lambda']} | {phase} | {init} | {f['steps']} | {f['minutes']:.1f} | {f['lr']} "
                         f"| {f['batch']} × {f['crop']}² |")
    config = run_facts(runs / f"{args.name}-q4-float")["config"]
    lines += ["", f"Total training time: {total:.1f} CPU-minutes (wall clock on the machine above; the "
              "fine-tune and QAT runs ran two at a time, one thread each, so the wall time is about half). "
              f"GPU minutes: {args.gpu_minutes:.0f}. Minutes of a run include its resumed history. "
              "Learning curves: `results/learning-curves.png`. "
              f"Channels: N = {config['N']}, M = {config['M']}; h_a/h_s activation: "
              f"{config.get('hyper_activation', 'leaky_relu')}.", "",
              "## Measured on Kodak (24 images, real int8 bitstreams, `fxlic eval`)", "",
              "| quality | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |", "|---|---|---|---|---|---|"]
    for q in [int(v) for v in args.qualities.split(",")]:
        if (results / f"{args.name}-q{q}.csv").exists():
            r = kodak_rows(results, args.name, q)
            lines.append(f"| {q} | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} | {r['encode_s']:.2f} "
                         f"| {r['decode_s']:.2f} |")
    bd = results / "bdrate.txt"
    if bd.exists():
        lines += ["", "## BD-rates (`tools/measure_release.sh`)", "", "```", bd.read_text().strip(), "```"]
    if charm:
        lines += ["", "Reproduce: see `docs/charm.md` (training) and `docs/training.md` §7; Kodak: `fxlic eval "
                  f"--model-files models/{args.name}-qQ.npz --images ../shared/data/kodak --out {results}`."]
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(json.dumps({"written": args.out}))
        return 0
    lines += ["", "Float twin: its Kodak results are `results/kodak/meanscale-float.json` (CompressAI-coded) and "
              "`meanscale-float-ideal.json` (ideal rate); the repository commits the float q4 base only "
              "(`models/float/meanscale-q4-float.pt`, float16 weights, the start of every run above and of GPU "
              "runs): the other four float checkpoints (5.5 MiB each) would push the working tree past what a "
              "GPU call can carry. `tools/cpu_recipe.sh RUNS 0` re-creates them from the base copied to "
              "`RUNS/meanscale-q4-float/checkpoint.pt`."]
    lines += ["", "Reproduce: `bash tools/cpu_recipe.sh runs` then `bash tools/measure_release.sh runs results/kodak`."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(json.dumps({"written": args.out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
