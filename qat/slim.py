"""Weights-only checkpoints: small enough to commit and to carry to and from a GPU lease.

A training checkpoint (``fxlic train``) holds the model, both Adam optimizers (two moments per weight),
the crop sampler's RNG state and the step: about 3× the weights, 35 MB for N=96, M=128. A lease returns
files of at most 16 MiB, and the repository keeps weights small. The slim file keeps the model state
(floating tensors optionally as float16), the config, step, λ, phase, sampler and torch RNG states and the
elapsed time; ``fxlic train`` resumes from it with fresh Adam moments (it says so).

float16 is for float-phase weights that are only a starting point. Keep float32 for a QAT checkpoint that
will be exported: its int8 weights are rounded from the float32 values.

    python -m fxlic.qat.slim runs/meanscale-q4-float/checkpoint.pt models/float/meanscale-q4-float.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

KEEP = ("config", "step", "lmbda", "phase", "sampler", "torch_rng", "elapsed_s", "args",
        "record", "val_psnr")  # record, val_psnr: lite decoder checkpoints (fxlic.qat.lite)


def slim_checkpoint(src: str | Path, dst: str | Path, dtype: torch.dtype = torch.float16) -> dict:
    """Write ``dst`` with the model and the resume metadata of ``src``; returns the slim state."""
    state = torch.load(src, map_location="cpu", weights_only=False)
    model = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state["model"].items()}
    slim = {"model": model, "weights_only": True, **{k: state[k] for k in KEEP if k in state}}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    torch.save(slim, tmp)
    tmp.replace(dst)
    return slim


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.slim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="training checkpoint (checkpoint.pt)")
    p.add_argument("dst", help="weights-only file to write")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    args = p.parse_args(argv)
    slim_checkpoint(args.src, args.dst, getattr(torch, args.dtype))
    size = Path(args.dst).stat().st_size
    print(f"{args.dst}: {size / 2**20:.1f} MiB ({args.dtype} weights, no optimizer state)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
