"""Rate-distortion plots (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .results import RDCurve

__all__ = ["plot_rd"]

_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_ANCHOR_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _label_anchor(
    ax: Any, name: str, xs: list[float], ys: list[float], xr: tuple[float, float] | None
) -> Any:
    """Name an anchor curve at its right end, or where it leaves the plot on the right."""
    if xr is not None and xs[-1] > xr[1] and xs[0] < xr[1]:
        x = xr[1]
        y = float(np.interp(x, xs, ys))
        return ax.annotate(
            name,
            (x, y),
            xytext=(-3, 2),
            textcoords="offset points",
            fontsize=6.5,
            color="0.4",
            ha="right",
            va="bottom",
            zorder=2,
        )
    elif xr is None or xr[0] <= xs[-1] <= xr[1]:
        return ax.annotate(
            name,
            (xs[-1], ys[-1]),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=6.5,
            color="0.4",
            ha="left",
            va="center",
            zorder=2,
            annotation_clip=True,
        )


def _spread_labels(fig: Any, labels: list[Any], gap_px: float = 1.0) -> None:
    """Move anchor labels vertically so that no two overlap (several anchors often end at one point).

    Labels are stacked in clusters, each centred on the mean of its members' own positions (so a label
    stays as close to its curve as the others allow), clusters merged while they overlap, and a cluster
    that would leave the axes is shifted back inside where it fits."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if len(labels) < 2:
        return
    renderer = FigureCanvasAgg(fig).get_renderer()
    to_points = 72.0 / fig.dpi
    boxes = [label.get_window_extent(renderer) for label in labels]
    order = sorted(range(len(labels)), key=lambda i: boxes[i].y0)
    heights = [boxes[i].height + gap_px for i in order]
    wanted = [boxes[i].y0 for i in order]
    clusters: list[list[int]] = []  # positions in `order`
    for k in range(len(order)):
        clusters.append([k])
        while len(clusters) > 1:
            low, high = clusters[-2], clusters[-1]
            if _cluster_bottom(low, wanted, heights) + sum(heights[j] for j in low) <= \
                    _cluster_bottom(high, wanted, heights):
                break
            clusters[-2:] = [low + high]
    axes_box = labels[0].axes.get_window_extent(renderer)
    for cluster in clusters:
        bottom = _cluster_bottom(cluster, wanted, heights)
        total = sum(heights[j] for j in cluster)
        if total <= axes_box.height:
            bottom = min(max(bottom, axes_box.y0), axes_box.y1 - total)
        for j in cluster:
            label = labels[order[j]]
            dx, dy = label.xyann
            label.xyann = (dx, dy + (bottom - wanted[j]) * to_points)
            bottom += heights[j]


def _cluster_bottom(cluster: list[int], wanted: list[float], heights: list[float]) -> float:
    """Bottom of a stack of labels centred on the mean of the members' wanted centres."""
    total = sum(heights[j] for j in cluster)
    centre = sum(wanted[j] + heights[j] / 2 for j in cluster) / len(cluster)
    return centre - total / 2


def _auto_range(focus: Sequence[RDCurve]) -> tuple[float, float] | None:
    """x range around the focused curves (so anchors spanning 0-4 bpp don't squash them)."""
    if not focus:
        return None
    hi = max(max(c.bpp) for c in focus)
    lo = min(min(c.bpp) for c in focus)
    pad = 0.08 * (hi - lo if hi > lo else hi)
    return max(0.0, lo - pad), hi + pad


def _ylim(
    series: list[tuple[list[float], list[float]]], xr: tuple[float, float] | None
) -> tuple[float, float] | None:
    ys = [
        y
        for xs, vals in series
        for x, y in zip(xs, vals, strict=True)
        if math.isfinite(y) and (xr is None or xr[0] <= x <= xr[1])
    ]
    if xr is not None:  # where a curve crosses the left/right edge
        for xs, vals in series:
            ys.extend(float(np.interp(e, xs, vals)) for e in xr if xs[0] < e < xs[-1])
    if not ys:
        return None
    lo, hi = min(ys), max(ys)
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def plot_rd(
    curves: Sequence[RDCurve],
    out_png: str | Path,
    title: str,
    highlight: Sequence[str] = (),
    bpp_range: tuple[float, float] | None = None,
    dpi: int = 130,
) -> Path:
    """Plot RD curves to a PNG: PSNR vs bpp and, when any curve has MS-SSIM, MS-SSIM (dB) vs bpp.

    Curves whose name is in ``highlight`` are drawn bold, in colour, with markers, and are listed
    in the legend; the others (the anchors) are thin grey lines labelled at their right end. With
    an empty ``highlight`` every curve is drawn in colour with a legend entry.

    Args:
        curves: the curves; MS-SSIM-only curves appear in the second panel only, curves without
            MS-SSIM in the first only.
        out_png: output path (parent folders are created).
        title: figure title.
        highlight: names of the curves to emphasize.
        bpp_range: x-axis limits; by default the span of the highlighted curves (all curves when
            nothing is highlighted), the y-axes fitted to the points inside it.
        dpi: output resolution.

    Returns:
        The written path.
    """
    # A bare Figure renders PNG through the Agg canvas and leaves pyplot's global state alone.
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("plot_rd: no curves to plot")
    hl = set(highlight)
    unknown = hl - {c.name for c in curves}
    if unknown:
        raise ValueError(f"plot_rd: highlighted names not among the curves: {sorted(unknown)}")
    focus = [c for c in curves if c.name in hl] if hl else list(curves)
    xr = bpp_range if bpp_range is not None else _auto_range(focus)

    panels: list[tuple[str, str]] = []
    if any(c.psnr is not None for c in curves):
        panels.append(("psnr", "PSNR RGB [dB]"))
    if any(c.ms_ssim is not None for c in curves):
        panels.append(("ms_ssim_db", "MS-SSIM RGB [dB]  (−10·log10(1−MS-SSIM))"))

    fig = Figure(figsize=(6.8 * len(panels), 5.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    # Anchors first (underneath), highlighted curves on top, each highlighted curve keeps its colour.
    order = [c for c in curves if hl and c.name not in hl] + focus
    style_idx = {c.name: i for i, c in enumerate(focus)}
    anchor_idx: dict[str, int] = {}
    anchor_labels: list[Any] = []
    for ax, (attr, ylabel) in zip(axes[0], panels, strict=True):
        focus_series: list[tuple[list[float], list[float]]] = []
        all_series: list[tuple[list[float], list[float]]] = []
        for c in order:
            vals = getattr(c, attr)
            if vals is None:
                continue
            pts = sorted((x, y) for x, y in zip(c.bpp, vals, strict=True) if math.isfinite(y))
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            all_series.append((xs, ys))
            if c.name in style_idx:
                i = style_idx[c.name]
                focus_series.append((xs, ys))
                ax.plot(
                    xs,
                    ys,
                    color=_COLORS[i % len(_COLORS)],
                    marker=_MARKERS[i % len(_MARKERS)],
                    lw=2.4 if hl else 1.6,
                    ms=6 if hl else 4,
                    label=c.name,
                    zorder=3,
                )
            else:
                k = anchor_idx.setdefault(c.name, len(anchor_idx))
                ax.plot(xs, ys, color="0.6", lw=0.9, ls=_ANCHOR_STYLES[k % len(_ANCHOR_STYLES)], zorder=1)
                label = _label_anchor(ax, c.name, xs, ys, xr)
                if label is not None:
                    anchor_labels.append(label)
        if xr is not None:
            ax.set_xlim(*xr)
        yl = _ylim(focus_series if (hl and focus_series) else all_series, xr)
        if hl and yl is not None:
            # keep the anchors' values in the visible x range in view too
            yl_all = _ylim(all_series, xr)
            if yl_all is not None:
                yl = (min(yl[0], yl_all[0]), max(yl[1], yl_all[1]))
        if yl is not None:
            ax.set_ylim(*yl)
        ax.set_xlabel("rate [bpp]")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.45)
        ax.minorticks_on()
        ax.grid(True, which="minor", alpha=0.15)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8.5, framealpha=0.9)
    fig.suptitle(title)
    fig.tight_layout()
    for ax in axes[0]:
        _spread_labels(fig, [a for a in anchor_labels if a.axes is ax])
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out
