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

from .figures import pyplot, save_figure


def read_log(run: Path) -> dict[str, list[float]]:
    with (run / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(r[key]) for r in rows] for key in ("step", "loss", "bpp", "psnr", "elapsed_s")}


def run_parent(run: Path) -> Path | None:
    """The run whose checkpoint this run was initialised from, if it is a run folder."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    init = (state.get("args") or {}).get("init")
    return Path(init).parent if init else None


def step_offsets(runs: list[Path], key: str = "step") -> dict[Path, float]:
    """Cumulative ``key`` (steps, or elapsed_s) at which each run starts: its ancestors' final values, summed."""
    parents = {run: run_parent(run) for run in runs}
    last = {run: read_log(run)[key][-1] if read_log(run)[key] else 0.0 for run in runs}
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


def run_device(run: Path) -> str:
    """"GPU" or "CPU": where the run trained (its checkpoint's ``--device``)."""
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    return "GPU" if str((state.get("args") or {}).get("device", "cpu")).startswith("cuda") else "CPU"


def plot_learning_curves(runs: list[Path], out: Path, title: str = "") -> None:
    plt = pyplot()
    runs = [r for r in runs if (r / "log.csv").is_file() and (r / "checkpoint.pt").is_file()]
    if not runs:
        raise SystemExit("no run folders with log.csv and checkpoint.pt")
    offsets = step_offsets(runs)
    minute_offsets = step_offsets(runs, "elapsed_s")
    fig, grid = plt.subplots(2, 3, figsize=(16, 8.4))
    minutes = {"CPU": 0.0, "GPU": 0.0}
    for run in sorted(runs, key=lambda r: offsets[r]):
        log = read_log(run)
        if not log["step"]:
            continue
        device = run_device(run)
        minutes[device] += log["elapsed_s"][-1] / 60
        steps = [offsets[run] + s for s in log["step"]]
        elapsed = [(minute_offsets[run] + e) / 60 for e in log["elapsed_s"]]
        with (run / "log.csv").open() as handle:  # the phase each log row records, not the folder's name
            phases = {row["phase"] for row in csv.DictReader(handle)}
        style = "--" if phases == {"qat"} else "-"
        for ax_steps, ax_minutes, key in zip(grid[0], grid[1], ("loss", "psnr", "bpp")):
            ax_steps.plot(steps, log[key], style, lw=1.2, label=f"{run.name} ({device})")
            ax_minutes.plot(elapsed, log[key], style, lw=1.2)
    labels = ("loss λ·255²·MSE + bpp", "PSNR (dB), training crops", "bpp, training crops")
    for row, xlabel in ((grid[0], "cumulative training steps"),
                        (grid[1], "cumulative training minutes (wall clock of each run's device)")):
        for ax, label in zip(row, labels):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        row[0].set_yscale("log")
    grid[0][2].legend(fontsize=7, loc="upper right")
    title = title or "fxlic training runs (solid: float, dashed: QAT)"
    title += f" — {minutes['CPU']:.0f} CPU-minutes, {minutes['GPU']:.0f} GPU-minutes in these runs"
    fig.suptitle(title)
    save_figure(fig, out)


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
