"""Command-line entry points ``fxlic bdrate`` and ``fxlic plot`` (wired into ``fxlic.cli``).

Examples::

    fxlic bdrate anchors/kodak/vtm.json anchors/kodak/bpg_444_x265_ycbcr.json ours.json
    fxlic bdrate vtm.json ours.json --metric ms-ssim --method cubic --json
    fxlic plot rd.png ours.json --anchors anchors/kodak/vtm.json --anchors anchors/kodak/hm.json
    fxlic plot rd.png ours.json --anchors anchors/kodak-measured --highlight "HEVC intra x265 4:4:4"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .bdrate import METHODS, BDResult, compare_curves
from .results import RDCurve, load_curve, load_curves

__all__ = ["bdrate_main", "plot_main", "bdrate_parser", "plot_parser"]


def bdrate_parser(prog: str = "fxlic bdrate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Bjøntegaard delta rate / quality of RD curves (CompressAI JSON layout) "
        "against a reference.",
    )
    p.add_argument("ref", metavar="REF.json", help="reference curve (e.g. anchors/kodak/vtm.json)")
    p.add_argument("tests", metavar="TEST.json", nargs="+", help="curve(s) to compare against the reference")
    p.add_argument(
        "--metric",
        choices=("psnr", "ms-ssim"),
        default="psnr",
        help="quality axis: PSNR, or MS-SSIM in dB (default: psnr)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="pchip",
        help="interpolation: pchip (JVET CTC, default) or cubic (VCEG-M33 polynomial fit)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    return p


def _format_table(rows: list[BDResult | tuple[str, str]], ref: RDCurve, metric: str, method: str) -> str:
    qname = "BD-PSNR" if metric == "psnr" else "BD-MSSSIM"
    qunit = "PSNR" if metric == "psnr" else "MS-SSIM"
    names = [r.test if isinstance(r, BDResult) else r[0] for r in rows]
    w = max([len("test"), *map(len, names)])
    lines = [
        f"reference: {ref.name}   metric: {metric}   method: {method}",
        f"{'test':<{w}}  {'BD-rate':>9}  {qname + ' dB':>12}  {'overlap bpp':>15}  "
        f"{'overlap ' + qunit + ' dB':>21}",
    ]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        if isinstance(r, BDResult):
            bpp = f"{r.bpp_range[0]:.3f}-{r.bpp_range[1]:.3f}"
            q = f"{r.quality_range[0]:.2f}-{r.quality_range[1]:.2f}"
            lines.append(f"{r.test:<{w}}  {r.bd_rate:>+8.2f}%  {r.bd_quality:>+12.3f}  {bpp:>15}  {q:>21}")
        else:
            lines.append(f"{r[0]:<{w}}  error: {r[1]}")
    return "\n".join(lines)


def bdrate_main(argv: Sequence[str] | None = None) -> int:
    """``fxlic bdrate REF.json TEST.json [TEST2.json ...] [--metric psnr|ms-ssim] [--method pchip|cubic]
    [--json]``.

    Prints one row per test curve: BD-rate (%), BD-quality (dB), overlapping bpp and quality ranges.
    Returns 0, or 1 when any comparison failed (its row says why), 2 when the reference is unreadable.
    """
    args = bdrate_parser().parse_args(argv)
    try:
        ref = load_curve(args.ref)
    except (OSError, ValueError) as exc:
        print(f"fxlic bdrate: cannot read reference: {exc}", file=sys.stderr)
        return 2
    rows: list[BDResult | tuple[str, str]] = []
    for path in args.tests:
        try:
            rows.append(compare_curves(ref, load_curve(path), args.metric, args.method))
        except (OSError, ValueError) as exc:
            rows.append((Path(path).stem, str(exc)))
    if args.json:
        out = [r.as_dict() if isinstance(r, BDResult) else {"test": r[0], "error": r[1]} for r in rows]
        print(json.dumps(out, indent=2))
    else:
        print(_format_table(rows, ref, args.metric, args.method))
    return 1 if any(not isinstance(r, BDResult) for r in rows) else 0


def plot_parser(prog: str = "fxlic plot") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Plot RD curves (PSNR and MS-SSIM dB vs bpp) to a PNG."
    )
    p.add_argument("out", metavar="OUT.png", help="output image")
    p.add_argument(
        "curves",
        metavar="CURVE.json",
        nargs="*",
        help="curves to show highlighted (bold, coloured, in the legend)",
    )
    p.add_argument(
        "--anchors",
        metavar="PATH",
        action="append",
        default=[],
        help="anchor curve file or folder of *.json (drawn thin grey); repeatable; "
        "files in a folder that are not RD results are skipped",
    )
    p.add_argument(
        "--highlight",
        metavar="NAME",
        action="append",
        default=[],
        help="also highlight the curve with this name (e.g. an anchor); repeatable",
    )
    p.add_argument("--title", help="figure title (default: the data set the curves record, e.g. kodak; "
                                    "else 'Rate-distortion')")
    p.add_argument(
        "--bpp-max", type=float, default=None, help="x-axis upper limit (default: fit the highlighted curves)"
    )
    return p


def default_title(curves: Sequence[RDCurve]) -> str:
    """The data set the curves were measured on (``meta.dataset``, written by ``fxlic eval``), if they agree."""
    sets = {str(c.extra.get("meta", {}).get("dataset")) for c in curves if isinstance(c.extra.get("meta"), dict)}
    sets.discard("None")
    return sets.pop() if len(sets) == 1 else "Rate-distortion"


def plot_main(argv: Sequence[str] | None = None) -> int:
    """``fxlic plot OUT.png CURVE.json ... [--anchors DIR] [--highlight NAME] [--title T] [--bpp-max X]``."""
    args = plot_parser().parse_args(argv)
    try:
        import matplotlib  # noqa: F401  (checked before anything is read or written)
    except ImportError:
        print("fxlic plot: needs matplotlib, which the base install leaves out: pip install 'fxlic[rd]'",
              file=sys.stderr)
        return 1
    try:
        own = [load_curve(p) for p in args.curves]
        anchors: list[RDCurve] = []
        for a in args.anchors:
            anchors.extend(load_curves([a], skip_invalid=Path(a).is_dir()))
    except (OSError, ValueError) as exc:
        print(f"fxlic plot: {exc}", file=sys.stderr)
        return 2
    curves = own + [a for a in anchors if a.name not in {c.name for c in own}]
    if not curves:
        print("fxlic plot: no curves given (CURVE.json or --anchors)", file=sys.stderr)
        return 2
    names = {c.name for c in curves}
    missing = [h for h in args.highlight if h not in names]
    if missing:
        print(
            f"fxlic plot: --highlight names not found: {missing}; curves are: {sorted(names)}",
            file=sys.stderr,
        )
        return 2
    highlight = [c.name for c in own] + [h for h in args.highlight if h not in {c.name for c in own}]
    bpp_range = (0.0, args.bpp_max) if args.bpp_max is not None else None
    from .plot import plot_rd

    out = plot_rd(curves, args.out, args.title or default_title(own or curves), highlight=highlight,
                  bpp_range=bpp_range)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(bdrate_main())
