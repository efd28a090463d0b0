"""`fxlic hw-report`: the JSON schema the issue asks for, and the counts checked against hand-computed ones."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.cli import main as cli_main  # noqa: E402


def _report(capsys, name: str) -> dict:
    assert cli_main(["hw-report", "--model", name, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _check_schema(report: dict) -> None:
    assert isinstance(report["layers"], list) and report["layers"]
    for layer in report["layers"]:
        assert {"name", "op", "device", "side", "macs_per_pixel", "params", "elements_1080p"} <= set(layer)
        assert layer["device"] in ("dpu", "cpu") and layer["side"] in ("encode", "decode")
    totals = report["totals"]
    for key in ("macs_per_pixel", "params", "dpu_mac_fraction", "cpu_ops", "round_trips"):
        assert key in totals, key
    assert 0.0 <= totals["dpu_mac_fraction"] <= 1.0
    assert totals["macs_per_pixel"] == pytest.approx(sum(layer["macs_per_pixel"] for layer in report["layers"]))
    for platform in ("KV260", "ZCU102"):
        assert totals["frame_rate_1080p_decode"][platform]["fps"] > 0


def test_meanscale_report(capsys) -> None:
    report = _report(capsys, "meanscale")
    _check_schema(report)
    layers = {layer["name"]: layer for layer in report["layers"]}
    # g_a.0: conv k5, 3 → 96 channels at half resolution: 96·3·25 / 4 MACs per image pixel
    assert layers["g_a.0"]["macs_per_pixel"] == pytest.approx(96 * 3 * 25 / 4)
    # g_s.3: transposed conv k4, 96 → 3, input at half resolution: 96·3·16 / 4
    assert layers["g_s.3"]["macs_per_pixel"] == pytest.approx(96 * 3 * 16 / 4)
    totals = report["totals"]
    assert totals["dpu_mac_fraction"] == 1.0  # every conv runs on the DPU
    assert totals["round_trips"] == 2  # h_s (with its heads), then g_s
    assert set(totals["cpu_ops"]) == {"entropy_encode", "entropy_decode"}


def test_charm_report(capsys) -> None:
    """ChARM: one DPU call for h_s + slice 0's stacks, one per later slice (its stacks + the previous
    slice's LRP), one for the last LRP, one for g_s: S + 2 calls; all convs on the DPU."""
    report = _report(capsys, "charm")
    _check_schema(report)
    slices = report["config"]["slices"]
    assert report["totals"]["round_trips"] == slices + 2
    assert report["totals"]["dpu_mac_fraction"] == 1.0
    assert "lrp_add" in report["totals"]["cpu_ops"]


@pytest.mark.slow
def test_wacnn_report(capsys) -> None:
    """WACNN as published: attention, GDN and GELU on the CPU; the DPU-legal variant keeps only attention's."""
    report = _report(capsys, "wacnn")
    _check_schema(report)
    cpu_ops = set(report["totals"]["cpu_ops"])
    assert {"softmax", "gdn", "gelu", "matmul_qk", "matmul_av"} <= cpu_ops
    assert report["totals"]["dpu_mac_fraction"] < 1.0
    legal = _report(capsys, "wacnn-dpu")
    assert not {"gdn", "gelu", "conv_transpose2d_output_padding"} & set(legal["totals"]["cpu_ops"])
    assert {"softmax", "matmul_qk"} <= set(legal["totals"]["cpu_ops"])
    assert legal["totals"]["round_trips"] < report["totals"]["round_trips"]
