"""``fxlic.qat.dpu_timing``: the calibration data, the built network shapes, the engine cycle rules and the fit
(pure NumPy: no torch needed)."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest

from fxlic.qat import dpu_timing
from fxlic.qat.dpu_timing import BOARDS, CALIBRATION_CSV, FIT_JSON, FITTED, NETWORKS, DpuLayer, TimingParams

CSV_COLUMNS = {"network", "board", "dpu_config", "clock_mhz", "input_size", "gops_published", "fps_published",
               "threads", "source", "vitis_ai", "zoo_name"}


def _close(a: TimingParams, b: TimingParams, rel: float = 1e-3) -> bool:
    return all(math.isclose(getattr(a, f), getattr(b, f), rel_tol=rel, abs_tol=1e-15)
               for f in a.__dataclass_fields__)


def test_calibration_rows_are_cited() -> None:
    """Every row names the vendor's table it comes from (repository at a commit, file, line) and the Vitis AI
    version; boards and clocks are the published configurations."""
    with open(CALIBRATION_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and CSV_COLUMNS <= set(rows[0])
    for row in rows:
        assert re.search(r"github\.com/Xilinx/Vitis-AI@[0-9a-f]{40} .* model_zoo/README\.md line \d+", row["source"])
        assert row["vitis_ai"] and row["threads"] in ("1", "multi")
        assert float(row["fps_published"]) > 0
        assert float(row["clock_mhz"]) * 1e6 == BOARDS[row["board"]].clock_hz
        assert row["dpu_config"].startswith(f"{BOARDS[row['board']].cores}xB4096")
    boards = {row["board"] for row in rows}
    assert boards == {"KV260", "ZCU104", "ZCU102"}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_built_shapes_match_published_gops(name: str) -> None:
    """A built network's MACs are half the Model Zoo's published operation count (within 1.5 %)."""
    check = {c["zoo_name"]: c for c in dpu_timing.shape_check()}[name]
    assert check["ratio"] == pytest.approx(1.0, abs=0.015)


def test_transposed_conv_cost() -> None:
    """A k4 s2 transposed conv costs 4·C_in·C_out MACs per output pixel; on the engine its 4 phases of 2×2 taps
    take ⌈C_in/16⌉·⌈C_out/16⌉·4 cycles per 8 output pixels; thin outputs pay for idle lanes."""
    layer = DpuLayer("g_s.2", "tconv", 96, 96, 544, 960, 4, 4, 2)
    assert layer.macs == 4 * 96 * 96 * 544 * 960
    assert layer.cycles == 544 * (960 // 8) * 6 * 6 * 4
    assert layer.in_hw == (272, 480)
    assert layer.bytes == 96 * 272 * 480 + 96 * 544 * 960 + 96 * 96 * 16 + 96
    last = DpuLayer("g_s.3", "tconv", 96, 3, 1088, 1920, 4, 4, 2)
    assert last.cycles / last.macs == pytest.approx(16 / 3 / 2048)  # 3 of 16 output lanes used


def test_channel_augmentation() -> None:
    """The 3-channel image layer of a k3 conv uses 9 of 16 input lanes (kernel width folded in), not 3."""
    first = DpuLayer("conv1", "conv", 3, 64, 224, 224, 3, 3, 1)
    assert first.cycles == 224 * 28 * 1 * 4 * 3
    wide = DpuLayer("conv", "conv", 64, 64, 224, 224, 3, 3, 1)
    assert wide.cycles == 224 * 28 * 4 * 4 * 9


def test_fit_reproduces_from_the_csv() -> None:
    """Refitting the committed CSV gives the constants in the code, and every row is modelled."""
    rows = dpu_timing.read_rows()
    shaped = [row for row in rows if row.shaped]
    assert len(shaped) == 6 * len(NETWORKS)
    assert _close(dpu_timing.fit(shaped), FITTED)
    table = dpu_timing.error_table(rows, FITTED)
    assert len(table) == len(rows)
    assert all(t["fps_modelled"] > 0 and math.isfinite(t["error"]) for t in table)
    in_sample = dpu_timing.summary([t for t in table if t["shapes"]])
    assert in_sample["rms_log_error"] < 0.15


def test_committed_fit_json_matches() -> None:
    """results/dpu-calibration/fit.json is the output of the fit command for the committed CSV: same constants,
    a row for every calibration row, a leave-one-network-out prediction for every fitted row."""
    fit = json.loads(FIT_JSON.read_text())
    assert _close(TimingParams(**fit["params"]), FITTED)
    rows = dpu_timing.read_rows()
    assert len(fit["in_sample"]) == len(rows)
    assert len(fit["leave_one_network_out"]) == sum(row.shaped for row in rows)
    assert fit["command"] == "python -m fxlic.qat.dpu_timing --fit results/dpu-calibration/published.csv"


def test_leave_one_network_out() -> None:
    """Cross-validation predicts every fitted row from the other networks, and the DPU-bound rows stay close."""
    loo = dpu_timing.leave_one_network_out(dpu_timing.read_rows())
    assert len(loo) == 6 * len(NETWORKS)
    dpu_bound = [t for t in loo if t["board"] == "KV260" and t["threads"] == "multi"]
    assert dpu_bound and max(abs(t["error"]) for t in dpu_bound) < 0.25


def test_multi_core_bandwidth_is_shared() -> None:
    """With three cores streaming, each gets at most a third of the shared bandwidth."""
    assert FITTED.bandwidth(1) == FITTED.bandwidth_bytes_per_s
    assert FITTED.bandwidth(3) == pytest.approx(min(FITTED.bandwidth_bytes_per_s,
                                                    FITTED.shared_bandwidth_bytes_per_s / 3))
