"""The campaign curve (fxlic.qat.campaign): the power-law fit, the stop rule, and the committed table."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from fxlic.qat.campaign import (
    STOP_STRETCHES,
    Release,
    fit_power_law,
    read_campaign,
    recent_releases,
    stretches_under_bar,
)

ROOT = Path(__file__).resolve().parents[1]


def test_fit_recovers_a_power_law() -> None:
    a, k = 5.0, 0.2
    minutes = [100.0, 300.0, 1000.0, 4000.0]
    bdrates = [(a * t ** (-k) - 1) * 100 for t in minutes]
    fit = fit_power_law(minutes, bdrates)
    assert fit.a == pytest.approx(a) and fit.k == pytest.approx(k)
    assert (fit.ratio(fit.minutes_for(35.0)) - 1) * 100 == pytest.approx(35.0)


def test_fit_without_a_downward_trend_never_reaches_a_bar() -> None:
    fit = fit_power_law([100.0, 200.0], [150.0, 160.0])
    assert fit.k < 0 and math.isinf(fit.minutes_for(60.0))
    with pytest.raises(ValueError):
        fit_power_law([100.0, 100.0], [150.0, 140.0])


def _release(gain_pct: float | None) -> Release:
    return Release("r", 0, 1.0, 0.0, 100.0, None if gain_pct is None else -gain_pct, "a", "")


def test_stop_rule_counts_the_latest_stretches_in_a_row() -> None:
    # issue 11: "three stretches ... in a row each gain less than 2 % BD-rate"
    assert stretches_under_bar([_release(None), _release(0.5), _release(1.9)]) == 2
    assert stretches_under_bar([_release(0.5), _release(4.1)]) == 0
    assert stretches_under_bar([_release(1.0), _release(4.1), _release(0.2), _release(-1.0), _release(1.5)]) == 3


def test_recent_trend_is_the_stop_rule_window_and_the_release_before_it() -> None:
    releases = [Release(f"r{i}", 0, 100.0 * (i + 1), 0.0, 200.0 - i, -1.0, "old" if i < 2 else "new", "")
                for i in range(8)]
    window = recent_releases(releases)
    assert [r.name for r in window] == [f"r{i}" for i in range(8 - STOP_STRETCHES - 1, 8)]
    assert recent_releases(releases[:3]) == releases[2:3]  # only the newest architecture's releases


def test_committed_table_matches_the_shipped_measurement() -> None:
    """The newest row's BD-rate vs VTM is the one results/kodak/bdrate.txt measured for the shipped ladder's
    q0–q8 points (the λs every release shipped, so that releases compare over like ranges)."""
    releases = read_campaign(ROOT / "results" / "campaign.csv")
    assert [r.cpu_minutes for r in releases] == sorted(r.cpu_minutes for r in releases)
    text = (ROOT / "results" / "kodak" / "bdrate.txt").read_text()
    shipped = re.search(r"^fxlic-meanscale-int8 \(q0-q8\)\s+([+-][0-9.]+)%", text, re.MULTILINE)
    assert shipped is not None
    assert releases[-1].bdrate_vs_vtm_pct == pytest.approx(float(shipped.group(1)), abs=0.05)
