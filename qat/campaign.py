"""The training campaign's measured curve: Kodak BD-rate vs VTM of each shipped int8 ladder against the
CPU-minutes in that ladder's history, with a power-law extrapolation and the issue's stop rule.

Input is ``results/campaign.csv``, one row per release, every number measured when the release shipped
(``tools/measure_release.sh``, the model card's total minutes):

    release, q4_base_steps, cpu_minutes, gpu_minutes, bdrate_vs_vtm_pct, vs_previous_pct, architecture, note

``bdrate_vs_vtm_pct`` is over the ladder's q0–q8 points, the λs every release shipped (q10, added in the
third release of 2026-12-02, extends the span and is left out so that releases compare over like ranges);
``cpu_minutes`` are those in the history of those points. ``vs_previous_pct`` is the BD-rate of the ladder
against the previous ladder, measured directly (two RD curves, one ``fxlic bdrate``), which is more precise
than the difference of two BD-rates against VTM.

**Extrapolation.** Over the releases of the current architecture, the rate ratio against VTM,
``r = 1 + BD/100``, is fitted as a power law of the CPU-minutes, ``r(t) = a · t^(−k)`` (least squares on
``log r`` against ``log t``). It is an extrapolation from a handful of points, printed as such: it says
what the measured trend needs, not what would happen.

**Recent trend.** The same fit over the latest stretches only: the releases of the stop rule's window and
the one before it (``STOP_STRETCHES + 1`` releases of the current architecture). The all-releases fit mixes
the early gains of method changes (the fast path, ReLU, the QAT's conversions) with those of training
minutes; the recent one is what more minutes of the current recipe buy now, the figure the stop rule's
block states.

**Stop rule** (issue 11): if three stretches of about two training hours in a row each gain less than 2 %
BD-rate, stop, publish this curve and block. A stretch is one release; its gain is ``−vs_previous_pct``.

    python -m fxlic.qat.campaign results/campaign.csv -o results/campaign.png
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

from .figures import pyplot, save_figure

STOP_GAIN_PCT = 2.0  # a stretch that gains less than this counts towards the stop rule
STOP_STRETCHES = 3  # ... this many in a row stop the campaign
BARS_PCT = (60.0, 35.0)  # the bars, BD-rate vs VTM
FLAT_MINUTES = 1e7  # extrapolations beyond this (19 CPU-years) are printed in powers of ten, as flat


@dataclass(frozen=True)
class Release:
    name: str
    q4_base_steps: int
    cpu_minutes: float
    gpu_minutes: float
    bdrate_vs_vtm_pct: float
    vs_previous_pct: float | None  # None: not measured against a previous ladder
    architecture: str
    note: str


def read_campaign(path: Path) -> list[Release]:
    """Rows of ``results/campaign.csv`` in file order (oldest first)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{path}: no releases")
    releases = []
    for row in rows:
        previous = row["vs_previous_pct"].strip()
        releases.append(Release(row["release"], int(row["q4_base_steps"]), float(row["cpu_minutes"]),
                                float(row["gpu_minutes"]), float(row["bdrate_vs_vtm_pct"]),
                                float(previous) if previous else None, row["architecture"], row["note"]))
    return releases


@dataclass(frozen=True)
class PowerLaw:
    """``r(t) = a · t^(−k)``: rate ratio against VTM after ``t`` training minutes."""

    a: float
    k: float

    def ratio(self, minutes: float) -> float:
        return self.a * minutes ** (-self.k)

    def minutes_for(self, bdrate_pct: float) -> float:
        """Minutes at which the fitted curve reaches ``bdrate_pct``; ``inf`` if it never does (k ≤ 0)."""
        if self.k <= 0:
            return math.inf
        return (self.a / (1 + bdrate_pct / 100)) ** (1 / self.k)


def fit_power_law(minutes: list[float], bdrates_pct: list[float]) -> PowerLaw:
    """Least-squares fit of ``log(1 + BD/100) = log a − k · log t``; needs two distinct ``t``."""
    if len(set(minutes)) < 2:
        raise ValueError("a power law needs releases at two or more distinct CPU-minutes")
    xs = [math.log(t) for t in minutes]
    ys = [math.log(1 + b / 100) for b in bdrates_pct]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return PowerLaw(a=math.exp(my - slope * mx), k=-slope)


def stretches_under_bar(releases: list[Release]) -> int:
    """How many of the latest releases in a row gained less than ``STOP_GAIN_PCT`` against their previous."""
    count = 0
    for release in reversed(releases):
        if release.vs_previous_pct is None or -release.vs_previous_pct >= STOP_GAIN_PCT:
            break
        count += 1
    return count


def current_releases(releases: list[Release]) -> list[Release]:
    """The releases of the newest architecture: the ones a trend is fitted to."""
    return [r for r in releases if r.architecture == releases[-1].architecture]


def recent_releases(releases: list[Release]) -> list[Release]:
    """The stop rule's window and the release before it: the latest ``STOP_STRETCHES + 1`` releases of the
    newest architecture (fewer if there are fewer)."""
    return current_releases(releases)[-(STOP_STRETCHES + 1):]


def fit_releases(releases: list[Release]) -> PowerLaw | None:
    """The power law through these releases; None where they span fewer than two distinct CPU-minutes."""
    try:
        return fit_power_law([r.cpu_minutes for r in releases], [r.bdrate_vs_vtm_pct for r in releases])
    except ValueError:
        return None


def _extrapolations(fit: PowerLaw) -> list[str]:
    lines = []
    for bar in BARS_PCT:
        t = fit.minutes_for(bar)
        if math.isinf(t):
            when = "never (no measured trend down)"
        elif t > FLAT_MINUTES:
            when = f"≈ {t:.1e} CPU-minutes (≈ {t / 525_960:.1e} CPU-years: a flat trend, no budget reaches it)"
        else:
            when = f"≈ {t:,.0f} CPU-minutes ({t / 1440:,.0f} CPU-days)"
        lines.append(f"  extrapolated to reach {bar:+.0f} %: {when}")
    return lines


def summary(releases: list[Release], fit: PowerLaw | None, recent: PowerLaw | None = None) -> str:
    lines = ["release                      CPU-min  GPU-min  q4 steps   BD vs VTM   vs previous"]
    for r in releases:
        previous = f"{r.vs_previous_pct:+.2f} %" if r.vs_previous_pct is not None else "—"
        lines.append(f"{r.name:<28} {r.cpu_minutes:7.0f}  {r.gpu_minutes:7.0f}  {r.q4_base_steps:8d}"
                     f"  {r.bdrate_vs_vtm_pct:+8.1f} %   {previous:>10}")
    under = stretches_under_bar(releases)
    lines.append(f"stop rule: {under} of {STOP_STRETCHES} stretches in a row gained < {STOP_GAIN_PCT:g} % "
                 f"({'stop and block' if under >= STOP_STRETCHES else 'campaign goes on'})")
    if fit is not None:
        lines.append(f"fit (releases of {releases[-1].architecture}): 1 + BD/100 = {fit.a:.3f} · t^(−{fit.k:.4f})")
        lines += _extrapolations(fit)
    if recent is not None:
        window = recent_releases(releases)
        lines.append(f"recent trend ({window[0].name} … {window[-1].name}, {len(window)} releases): "
                     f"1 + BD/100 = {recent.a:.3f} · t^(−{recent.k:.4f})")
        lines += _extrapolations(recent)
    return "\n".join(lines)


def _draw_trend(ax, fit: PowerLaw, fitted: list[Release], style: str, color: str, what: str) -> None:
    """The fitted curve from the first fitted release to 10× the last (at least two decades)."""
    t0 = min(r.cpu_minutes for r in fitted)
    t1 = max(t0 * 100, max(r.cpu_minutes for r in fitted) * 10)
    ts = [t0 * (t1 / t0) ** (i / 200) for i in range(201)]
    ax.plot(ts, [(fit.ratio(t) - 1) * 100 for t in ts], style, color=color,
            label=f"power-law extrapolation, {what} (k = {fit.k:.3f})")


def plot_campaign(releases: list[Release], fit: PowerLaw | None, out: Path, recent: PowerLaw | None = None) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for arch in dict.fromkeys(r.architecture for r in releases):
        sel = [r for r in releases if r.architecture == arch]
        ax.plot([r.cpu_minutes for r in sel], [r.bdrate_vs_vtm_pct for r in sel], "o-",
                label=f"shipped int8 ladder, {arch}")
        for r in sel:
            ax.annotate(r.name, (r.cpu_minutes, r.bdrate_vs_vtm_pct), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    if fit is not None:
        _draw_trend(ax, fit, current_releases(releases), "--", "gray", "all releases")
    if recent is not None:
        window = recent_releases(releases)
        _draw_trend(ax, recent, window, ":", "black", f"last {len(window)} releases")
    for bar in BARS_PCT:
        ax.axhline(bar, color="tab:red", lw=0.8, ls=":")
        ax.text(0.01, bar, f" bar {bar:+.0f} %", transform=ax.get_yaxis_transform(), fontsize=7,
                color="tab:red", va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("CPU-minutes in the ladder's history (2 cores, no GPU)")
    ax.set_ylabel("Kodak BD-rate vs VTM, int8, real bitstreams (%)")
    ax.set_title("fxlic training campaign: measured releases and their trend")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.campaign", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", default="results/campaign.csv")
    p.add_argument("-o", "--out", help="PNG to write (the curve and its extrapolation)")
    args = p.parse_args(argv)
    releases = read_campaign(Path(args.csv))
    current = current_releases(releases)
    fit = fit_releases(current)
    window = recent_releases(releases)
    # the window's own fit only where it is a distinct subset; else it is the fit above
    recent = fit_releases(window) if len(window) < len(current) else None
    print(summary(releases, fit, recent))
    if args.out:
        plot_campaign(releases, fit, Path(args.out), recent)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
