"""The frontier of quality cost against modelled frame rate: what each real-time target costs.

For the full decoder and each measured lite decoder: its Kodak quality loss at the default quality (q4, same
streams, so the same rate: Δ PSNR against the full decoder) and, where its ladder has four or more points, its
BD-rate against the full decoder; against the frame rates `fxlic hw-report` models (fitted DPU timing,
pipelined, entropy substreams on four A53 cores) for the two targets: KV260 at 720p and ZCU102 at 1080p.
Reads what ``tools/measure_lite.sh`` wrote in RESULTS; writes a plot and prints the table (markdown).

    python tools/lite_frontier.py --results results/kodak-lite --decoders lite64 lite48 \\
        -o results/kodak-lite/frontier.png
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

TARGETS = (("KV260", "720p"), ("ZCU102", "1080p"))


def hw_report(results: Path, name: str, entropy_cores: int) -> dict:
    suffix = "" if entropy_cores == 1 else f"-entropy{entropy_cores}"
    path = results / f"hw-{name}{suffix}.json"
    if not path.exists():  # the full decoder's (measure_lite.sh writes the lite decoders')
        out = subprocess.run([sys.executable, "-m", "fxlic.cli", "hw-report", "--model", "meanscale", "--decoder", name,
                              "--entropy-cores", str(entropy_cores), "--json"], check=True, capture_output=True,
                             text=True).stdout
        path.write_text(out)
    return json.loads(path.read_text())


def quality_cost(results: Path, name: str) -> tuple[float, float | None]:
    """(Δ PSNR dB at q4, BD-rate % against the full decoder or None) on Kodak."""
    if name == "full":
        return 0.0, 0.0
    lite = json.loads((results / f"meanscale.{name}.json").read_text())["results"]
    full = json.loads((results / f"meanscale-full-{name}-qualities.json").read_text())["results"]
    qualities = json.loads((results / f"meanscale.{name}.json").read_text())["meta"]["qualities"]
    at = qualities.index(4)
    delta = lite["psnr-rgb"][at] - full["psnr-rgb"][at]
    bd = None
    text = (results / f"bdrate-{name}.txt").read_text()
    found = re.search(r"^reference: fxlic-meanscale-int8 .*\n.*\n-+\n\S+\s+([+-][0-9.]+)%", text, re.MULTILINE)
    if found:
        bd = float(found.group(1))
    return delta, bd


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("results/kodak-lite"))
    p.add_argument("--decoders", nargs="+", default=["lite64", "lite48"])
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    rows = []
    for name in ["full", *args.decoders]:
        delta, bd = quality_cost(args.results, name)
        hw1, hw4 = hw_report(args.results, name, 1), hw_report(args.results, name, 4)
        fps = {}
        for board, frame in TARGETS:
            for tag, hw in (("1", hw1), ("4", hw4)):
                v = hw["totals"][f"frame_rate_{frame}_decode"][board]
                fps[(board, frame, tag)] = (v["fps"], v["fps_pipelined"])
        rows.append({"name": name, "macs": hw1["totals"]["decode_macs_per_pixel"], "delta": delta, "bd": bd,
                     "fps": fps})
    print("| decoder | decode MACs/px | Kodak q4 Δ dB | BD-rate vs full | KV260 720p | ZCU102 1080p |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['fps'][(b, f, '4')][0]:.1f} / {r['fps'][(b, f, '4')][1]:.1f}" for b, f in TARGETS]
        bd = "—" if r["bd"] is None else f"{r['bd']:+.1f} %"
        print(f"| {r['name']} | {r['macs']:,.0f} | {r['delta']:+.2f} | {bd} | {cells[0]} | {cells[1]} |")
    print("(fps: per frame / pipelined, entropy substreams on four A53 cores)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (board, frame) in zip(axes, TARGETS, strict=True):
        for r in rows:
            per_frame, pipelined = r["fps"][(board, frame, "4")]
            ax.plot([per_frame, pipelined], [r["delta"]] * 2, "-", color="0.7", zorder=1)
            ax.scatter([pipelined], [r["delta"]], zorder=2, label=None)
            ax.scatter([per_frame], [r["delta"]], marker="o", facecolors="none", edgecolors="k", zorder=2)
            label = r["name"] + ("" if r["bd"] in (None, 0.0) else f" (BD {r['bd']:+.0f} %)")
            ax.annotate(label, (pipelined, r["delta"]), textcoords="offset points", xytext=(5, 5), fontsize=9)
        ax.axvline(30, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{board}, {frame} decode (modelled)")
        ax.set_xlabel("frames per second (hollow: per frame; filled: pipelined)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Kodak PSNR at q4 vs full decoder (dB, same streams)")
    fig.suptitle("Lite decoders: quality cost against modelled frame rate (entropy on four A53 cores)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
