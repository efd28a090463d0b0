"""Learning curves of training runs, as one picture: loss, PSNR and bpp on the training crops.

Each run's ``log.csv`` (``fxlic train``) is drawn against cumulative training steps: a fine-tune or QAT
run that started from another run's checkpoint (``--init``) continues from where that run ended, so the
λ ladder reads as a tree grown from the base model. Values are the running means that ``fxlic train``
logs (exponential, 2 % per step), on random training crops, not Kodak.

    python -m fxlic.qat.curves runs -o results/learning-curves.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch


def read_log(run: Path) -> dict[str, list[float]]:
    with (run / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(r[key]) for r in rows] for key in ("step", "loss", "bpp", "psnr", "elapsed_s")}


def run_parent(run: Path) -> Path | None:
    """The run whose checkpoint this run was initialised from, if it is a run folder."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    init = (state.get("args") or {}).get("init")
    return Path(init).parent if init else None


def step_offsets(runs: list[Path]) -> dict[Path, float]:
    """Cumulative step at which each run starts (its ancestors' final steps, summed)."""
    parents = {run: run_parent(run) for run in runs}
    last = {run: read_log(run)["step"][-1] if read_log(run)["step"] else 0.0 for run in runs}
    offsets: dict[Path, float] = {}

    def offset(run: Path) -> float:
        if run not in offsets:
            parent = parents.get(run)
            resolved = next((r for r in runs if parent is not None and r.resolve() == parent.resolve()), None)
            offsets[run] = offset(resolved) + last[resolved] if resolved is not None else 0.0
        return offsets[run]

    for run in runs:
        offset(run)
    return offsets


def plot_learning_curves(runs: list[Path], out: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if (r / "log.csv").is_file() and (r / "checkpoint.pt").is_file()]
    if not runs:
        raise SystemExit("no run folders with log.csv and checkpoint.pt")
    offsets = step_offsets(runs)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for run in sorted(runs, key=lambda r: offsets[r]):
        log = read_log(run)
        if not log["step"]:
            continue
        steps = [offsets[run] + s for s in log["step"]]
        style = "-" if run.name.endswith("-float") else "--"
        for ax, key in zip(axes, ("loss", "psnr", "bpp")):
            ax.plot(steps, log[key], style, lw=1.2, label=run.name)
    for ax, label in zip(axes, ("loss λ·255²·MSE + bpp", "PSNR (dB), training crops", "bpp, training crops")):
        ax.set_xlabel("cumulative training steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[2].legend(fontsize=7, loc="upper right")
    fig.suptitle(title or "fxlic training runs (solid: float, dashed: QAT)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.curves", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders, or one folder holding run folders")
    p.add_argument("-o", "--out", required=True, help="PNG to write")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    if len(runs) == 1 and not (runs[0] / "log.csv").exists():
        runs = sorted(d for d in runs[0].iterdir() if d.is_dir())
    plot_learning_curves(runs, Path(args.out), args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
