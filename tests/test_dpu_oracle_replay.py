"""Replay of the DPU instruction-simulator cases (issue 33, docs/fixed-point.md §11).

``results/dpu-oracle/cases.npz`` holds cases that ``tools/dpu_oracle/run.py`` ran on the DPU instruction
simulator of VART (sim-runner, dpuv2 = DPUCZDX8G instruction set) together with the simulator's outputs.
Here fxlic.fxp recomputes each of them from the same integers, without the simulator, and must give the
simulator's output element for element under the pinned assumptions (``DEFAULT``). The cases that
discriminate between the values of an open switch must keep discriminating: the alternatives must
differ from the simulator on at least one recorded case.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

from fxlic.fxp import (
    DEFAULT,
    IMPLS,
    DpuAssumptions,
    QuantConv,
    add_int,
    encodable_on_dpuczdx8g,
    requantize,
    requantize_accumulator,
)

CASES = Path(__file__).resolve().parent.parent / "results" / "dpu-oracle" / "cases.npz"


def _load() -> tuple[dict, np.lib.npyio.NpzFile]:
    data = np.load(CASES, allow_pickle=False)
    meta = json.loads(bytes(data["meta_json"]).decode())
    return meta, data


META, DATA = _load()
BY_OP: dict[str, list[dict]] = {}
for _case in META["cases"]:
    BY_OP.setdefault(_case["op"], []).append(_case)


FLAT = DATA["data"]


def arr(case: dict, key: str) -> np.ndarray:
    offset, shape = case["arrays"][key]
    return FLAT[offset : offset + int(np.prod(shape))].reshape(shape)


def assumptions_for(case: dict, base: DpuAssumptions = DEFAULT) -> DpuAssumptions:
    fields = {**base.__dict__, **case.get("replay_assumptions", {})}
    return DpuAssumptions(**fields)


def layer(case: dict, transposed: bool) -> QuantConv:
    """The case as a golden-model layer: positions chosen to give the recorded shift_cut / shift_bias."""
    w = arr(case, "w")
    fix_in, fix_w = 0, 24
    return QuantConv(
        name=f"oracle-{case['id']}",
        transposed=transposed,
        weight=w,
        bias=arr(case, "b"),
        stride=case["stride"],
        padding=case["padding"],
        fix_in=fix_in,
        fix_w=fix_w,
        fix_b=fix_in + fix_w - case["shift_bias"],
        fix_out=fix_in + fix_w - case["shift_cut"],
        activation=case["activation"],
    )


def conv_out(case: dict, transposed: bool, assumptions: DpuAssumptions, impl: str = "reference") -> np.ndarray:
    lay = layer(case, transposed)
    assert (lay.shift_cut, lay.shift_bias) == (case["shift_cut"], case["shift_bias"])
    return lay(arr(case, "x"), impl=impl, assumptions=assumptions)


def add_out(case: dict, assumptions: DpuAssumptions) -> np.ndarray:
    out = add_int(arr(case, "a"), case["fix_a"], arr(case, "b"), case["fix_b"], case["fix_out"], assumptions)
    return np.maximum(out, 0).astype(np.int8) if case["relu"] else out


def test_case_file_is_small_and_complete():
    """The committed replay file stays under 1 MB and covers every op the oracle drives."""
    assert CASES.stat().st_size < 1_000_000
    assert {"conv", "conv_transpose", "conv_const", "add", "requantize"} <= set(BY_OP)
    assert META["target"]["type"] == "DPUCZDX8G"
    assert META["vendor"]["sim_runner_sources_sha256"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_conv_layers_match_simulator(op, impl):
    """FXP-C1..C8 (QuantConv, every implementation) == the simulator's CONVINIT + CONV, element by element."""
    cases = BY_OP[op]
    assert cases
    for case in cases:
        got = conv_out(case, op == "conv_transpose", assumptions_for(case), impl)
        np.testing.assert_array_equal(got, arr(case, "out"), err_msg=f"case {case['id']} ({case['suite']})")


def test_wide_accumulators_match_simulator():
    """FXP-A-ACC: accumulators up to 2^34 are exact in the simulator (no 32-bit wrap): fxp's exact model."""
    cases = BY_OP["conv_const"]
    beyond = 0
    for case in cases:
        out = arr(case, "out")
        acc = np.full(out.shape, case["K"] * case["x"] * case["w"], dtype=np.int64)
        beyond += int(abs(int(acc.flat[0])) >= 2**31)
        got = requantize_accumulator(acc, arr(case, "b"), case["shift_bias"], case["shift_cut"], case["activation"])
        np.testing.assert_array_equal(got, out, err_msg=f"case {case['id']}")
        with pytest.raises(OverflowError) if abs(int(acc.flat[0])) >= 2**31 else nullcontext():
            requantize_accumulator(acc, arr(case, "b"), case["shift_bias"], case["shift_cut"], case["activation"],
                                   DpuAssumptions(accumulator_bits=32))
    assert beyond > 0


def test_adds_match_simulator():
    """FXP-E1 / FXP-A-ADD: the pinned element-wise add == the simulator's ELEWINIT + ELEW."""
    for case in BY_OP["add"]:
        np.testing.assert_array_equal(add_out(case, DEFAULT), arr(case, "out"), err_msg=f"case {case['id']}")


def test_requantize_matches_simulator():
    """FXP-Q5 == the simulator's single-input ELEW (shift_read 0, shift_write f_out − f_in)."""
    for case in BY_OP["requantize"]:
        got = requantize(arr(case, "q"), case["fix_in"], case["fix_out"])
        np.testing.assert_array_equal(got, arr(case, "out"), err_msg=f"case {case['id']}")


def test_recorded_cases_still_discriminate():
    """The alternatives of the settled switches disagree with the simulator on recorded cases, so the replay
    would catch a regression to them: LeakyReLU "double" rounding, and the other add alignment."""
    leaky = [c for op in ("conv", "conv_transpose") for c in BY_OP[op] if c["activation"] == "leaky_relu"]
    double = DpuAssumptions(leaky_relu_rounding="double")
    assert any(
        not np.array_equal(conv_out(c, c["op"] == "conv_transpose", assumptions_for(c, double)), arr(c, "out"))
        for c in leaky
    )
    other = "exact" if DEFAULT.eltwise_add == "floor_read_2bit" else "floor_read_2bit"
    alt = DpuAssumptions(eltwise_add=other)
    assert any(not np.array_equal(add_out(c, alt), arr(c, "out")) for c in BY_OP["add"])


def _shipped_layers():
    from fxlic import models

    for name, qualities in sorted(models.available().items()):
        for quality in sorted(qualities):
            model = models.load(name, quality)
            for layer_name, lay in model.layers.items():
                yield f"{name}-q{quality}", layer_name, lay
    for (name, quality), decoders in sorted(models.shipped_decoders().items()):
        for decoder in sorted(decoders):
            for layer_name, lay in models.load(name, quality, decoder=decoder).decoder.layers.items():
                yield f"{name}-q{quality}-{decoder}", layer_name, lay


def test_shipped_models_stay_where_the_oracle_vouches():
    """FXP-P5 / FXP-A-NSB. Every layer of the shipped mean-scale models (the default codec and its golden set)
    fits the DPUCZDX8G CONVINIT encoding, so the simulator-checked arithmetic applies as is. Layers with
    shift_bias <= -2 (the ChARM context stacks) have no DPUCZDX8G encoding; none of them has a LeakyReLU, so if
    the compiler realizes them as shift_bias = -1 with a floored bias (executed in issue 33: "floor_bias",
    identical to the default for none / relu) the golden model still holds; a compiler that rounds the
    bias instead would differ (docs/fixed-point.md §11)."""
    unencodable = []
    for model, name, lay in _shipped_layers():
        ok = encodable_on_dpuczdx8g(lay.shift_cut, lay.shift_bias)
        if model.startswith("meanscale"):
            assert ok, (model, name, lay.shift_cut, lay.shift_bias)
        if not ok:
            assert lay.shift_bias < -1 and lay.activation != "leaky_relu", (model, name)
            unencodable.append((model, name))
    assert all(m.startswith("charm") for m, _ in unencodable)
