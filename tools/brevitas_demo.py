"""Bring your own Brevitas QAT model, end to end (docs/brevitas.md; results/brevitas/).

A small mean-scale model (default N = 32, M = 48) is pre-trained in float (fxlic), calibrated (fxlic's positions,
the Vitis export adjustment), converted to Brevitas quant layers and QAT-trained **in Brevitas** on training-photo
crops; the trained Brevitas checkpoint is then imported to an fxlic model file (refused unless DPU-legal), checked
layer by layer against the Brevitas forward pass on the Kodak crops of ``tests/fixtures/kodak`` (fixtures, never
trained or tuned on), and a golden set is made from the model file and verified.

    python tools/brevitas_demo.py --out runs/brevitas-demo            # ≈ 5 min on one core
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from fxlic.qat.brevitas_dpu import (
    brevitas_to_model_file,
    calibrated_brevitas_model,
    check_dpu_legal,
    save_brevitas_checkpoint,
    verify_brevitas,
)
from fxlic.qat.data import CropSampler
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input
from fxlic.qat.train import rd_loss
from fxlic.reference.modelfile import load_model_file

REPO = Path(__file__).resolve().parents[1]


def train(model: torch.nn.Module, sampler: CropSampler, steps: int, batch: int, lmbda: float, lr: float,
          log: list[dict], phase: str) -> None:
    main = [p for n, p in model.named_parameters() if not n.startswith("entropy_bottleneck") and p.requires_grad]
    aux = [p for n, p in model.named_parameters() if n.startswith("entropy_bottleneck")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=1e-3)
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        pixels = sampler.batch(batch)
        losses = rd_loss(model(pixels_to_input(pixels)), pixels, lmbda)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        optimizer.step()
        aux_loss = model.aux_loss()
        aux_optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        aux_optimizer.step()
        if step % 25 == 0 or step == steps:
            row = {"phase": phase, "step": step, **{k: float(losses[k].detach()) for k in ("loss", "bpp", "psnr")},
                   "seconds": round(time.perf_counter() - start, 1)}
            log.append(row)
            print(json.dumps(row), flush=True)
    model.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/brevitas-demo")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "train"), help="training photos")
    p.add_argument("--N", type=int, default=32)
    p.add_argument("--M", type=int, default=48)
    p.add_argument("--float-steps", type=int, default=300)
    p.add_argument("--qat-steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lmbda", type=float, default=0.013)
    p.add_argument("--learn-positions", action="store_true",
                   help="train the power-of-two scales too (default: frozen after calibration, as fxlic's QAT does)")
    p.add_argument("--seed", type=int, default=31)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    log: list[dict] = []
    sampler = CropSampler(args.data, args.crop, seed=args.seed)

    config = ModelConfig(N=args.N, M=args.M, hyper_activation="relu", latent_rounding="accumulator")
    float_model = MeanScaleHyperprior(config)
    train(float_model, sampler, args.float_steps, args.batch, args.lmbda, 1e-3, log, "float (fxlic)")
    calibration = CropSampler(args.data, args.crop, seed=args.seed + 1)
    model = calibrated_brevitas_model(float_model, [calibration.batch(args.batch) for _ in range(4)])
    if not args.learn_positions:
        for name, param in model.named_parameters():
            if "scaling_impl" in name:
                param.requires_grad_(False)
    train(model, sampler, args.qat_steps, args.batch, args.lmbda, 1e-4, log, "QAT (Brevitas)")
    save_brevitas_checkpoint(model, out / "brevitas.pt", log=log, args=vars(args))

    findings = check_dpu_legal(model)
    for finding in findings:
        print(finding)
    if findings:
        return 1
    training = {"lambda": args.lmbda, "steps": args.float_steps + args.qat_steps, "phase": "qat (brevitas)",
                "data": Path(args.data).name, "tool": "tools/brevitas_demo.py"}
    model_file = brevitas_to_model_file(model, "brevitas-demo", 4, training, z_tables="bottleneck")
    model_file.save(out / "brevitas-demo.npz")
    model_file = load_model_file(out / "brevitas-demo.npz")
    crops = sorted((REPO / "tests" / "fixtures" / "kodak").glob("*.png"))
    stats = verify_brevitas(model, model_file, crops)
    mismatches = sum(row["mismatches"] for row in stats.values())
    elements = sum(row["elements"] for row in stats.values())
    summary = {"model_file": str(out / "brevitas-demo.npz"), "hash": model_file.content_hash().hex(),
               "layers": {name: [layer.fix_in, layer.fix_w, layer.fix_b, layer.fix_out]
                          for name, layer in model_file.layers.items()},
               "crops": [c.name for c in crops], "elements": elements, "mismatches": mismatches, "per_layer": stats,
               "training": log}
    print(f"layer equality on {len(crops)} Kodak fixture crops: {elements} elements, {mismatches} mismatches")
    golden = out / "golden"
    fxlic = [sys.executable, "-m", "fxlic.cli"]
    images = [f"{crops[i]}" for i in (0, len(crops) - 1)]
    subprocess.run([*fxlic, "golden", "make", "--model-file", str(out / "brevitas-demo.npz"), "--images", *images,
                    "--out", str(golden)], check=True)
    verify = subprocess.run([*fxlic, "golden", "verify", str(golden), "--model-file", str(out / "brevitas-demo.npz")],
                            capture_output=True, text=True)
    print(verify.stdout.strip())
    summary["golden_verify"] = {"returncode": verify.returncode, "stdout": verify.stdout.strip().splitlines()[-1:]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if mismatches == 0 and verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
