"""Copy an RD curve (CompressAI's JSON layout) keeping its first K points and/or under another name.

A release's measurement compares its ladder with the previous one over the rate points they share (q0–q8,
the first five of a six-point ladder) and under names that say which ladder is which:

    python tools/rd_curve.py results/kodak/meanscale.json results/kodak/meanscale-q0-q8.json \\
        --first 5 --name "fxlic-meanscale-int8 (q0-q8)"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def subset(curve: dict, first: int | None, name: str | None) -> dict:
    """The curve with every per-point list cut to its first ``first`` entries (all if None), renamed."""
    points = len(curve["results"]["bpp"])
    if first is not None and not 1 <= first <= points:
        raise ValueError(f"--first {first}: the curve has {points} points")
    out = dict(curve)
    out["results"] = {key: (values[:first] if isinstance(values, list) and len(values) == points else values)
                      for key, values in curve["results"].items()}
    if name is not None:
        out["name"] = name
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--first", type=int, help="keep the first K points (in the file's order, lowest rate first)")
    p.add_argument("--name", help="the curve's new name (legend and BD-rate tables)")
    args = p.parse_args(argv)
    curve = subset(json.loads(args.source.read_text()), args.first, args.name)
    args.target.write_text(json.dumps(curve, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
