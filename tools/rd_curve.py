"""Copy an RD curve (CompressAI's JSON layout) keeping its first K points and/or under another name, or with
one point replaced by a new measurement.

A release's measurement compares its ladder with the previous one over the rate points they share (q0–q8,
the first five of a six-point ladder) and under names that say which ladder is which:

    python tools/rd_curve.py results/kodak/meanscale.json results/kodak/meanscale-q0-q8.json \\
        --first 5 --name "fxlic-meanscale-int8 (q0-q8)"

A release that changes one rate point measures only that point (every evaluation is deterministic, so the
unchanged points' figures stand) and puts it in its place in the ladder's curve, in file order:

    python tools/rd_curve.py results/kodak/meanscale.json results/kodak/meanscale.json \\
        --replace-point 2 results/kodak/point-q4/meanscale.json
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


def replace_point(curve: dict, index: int, point: dict) -> dict:
    """The curve with point ``index`` (file order) of every per-point list, in ``results`` and ``meta``,
    replaced by the only point of ``point`` (a one-point curve of the same layout)."""
    points = len(curve["results"]["bpp"])
    if not 0 <= index < points:
        raise ValueError(f"--replace-point {index}: the curve has {points} points")
    if len(point["results"]["bpp"]) != 1:
        raise ValueError(f"the replacement has {len(point['results']['bpp'])} points, expected 1")
    out = dict(curve)
    for section in ("results", "meta"):
        if section not in curve:
            continue
        fields = dict(curve[section])
        for key, values in curve[section].items():
            if not (isinstance(values, list) and len(values) == points):
                continue
            new = point.get(section, {}).get(key)
            if key == "qualities" and section == "meta":
                if new != [values[index]]:
                    raise ValueError(f"the replacement is quality {new}, point {index} is q{values[index]}")
                continue
            if not (isinstance(new, list) and len(new) == 1):
                raise ValueError(f"the replacement has no single {section}.{key} value")
            fields[key] = values[:index] + new + values[index + 1:]
        out[section] = fields
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--first", type=int, help="keep the first K points (in the file's order, lowest rate first)")
    p.add_argument("--name", help="the curve's new name (legend and BD-rate tables)")
    p.add_argument("--replace-point", nargs=2, metavar=("K", "CURVE"),
                   help="replace point K (0-based, file order) by the only point of CURVE (applied first)")
    args = p.parse_args(argv)
    curve = json.loads(args.source.read_text())
    if args.replace_point:
        index, path = args.replace_point
        curve = replace_point(curve, int(index), json.loads(Path(path).read_text()))
    curve = subset(curve, args.first, args.name)
    args.target.write_text(json.dumps(curve, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
