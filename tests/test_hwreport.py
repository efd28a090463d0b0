"""`fxlic hw-report`: the JSON schema the issue asks for, and the counts checked against hand-computed ones;
the frame-rate keys (1080p and 720p, per frame and pipelined), the timings and the g_s width options."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.cli import main as cli_main  # noqa: E402
from fxlic.qat import hwreport  # noqa: E402


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


# ---- frame rates: 720p, pipelined, timings, entropy cores, g_s widths ------------------------------------

def test_frame_rate_keys(capsys) -> None:
    """The fitted default: 1080p and 720p, per frame and pipelined, on both boards, and what they assume."""
    report = _report(capsys, "meanscale")
    assert report["timing"]["mode"] == "fitted" and report["timing"]["entropy_cores"] == 1
    assert report["frames"] == {"1080p": [1088, 1920], "720p": [768, 1280]}
    assert report["config"]["g_s_widths"] == [96, 96, 96] and report["config"]["decoder"] == "full"
    for size in ("1080p", "720p"):
        rates = report["totals"][f"frame_rate_{size}_decode"]
        for platform in ("KV260", "ZCU102"):
            v = rates[platform]
            assert {"fps", "fps_pipelined", "dpu_ms", "cpu_ms", "call_overhead_ms", "dpu_cores", "clock_mhz"} <= set(v)
            assert 0 < v["fps"] < v["fps_pipelined"]
            assert v["fps"] == pytest.approx(1e3 / (v["dpu_ms"] + v["cpu_ms"] + v["call_overhead_ms"]))
            assert v["fps_pipelined"] == pytest.approx(1e3 / max(v["dpu_ms"], v["cpu_ms"] + v["call_overhead_ms"]))
    r1080, r720 = report["totals"]["frame_rate_1080p_decode"], report["totals"]["frame_rate_720p_decode"]
    # entropy decoding is per symbol: 720p (1280×768) has 0.47 of 1080p's (1920×1088) latents
    assert r720["KV260"]["cpu_ms"] / r1080["KV260"]["cpu_ms"] == pytest.approx(768 * 1280 / (1088 * 1920))
    assert r720["KV260"]["fps"] > r1080["KV260"]["fps"]
    assert r1080["ZCU102"]["dpu_cores"] == 3 and r1080["ZCU102"]["clock_mhz"] == 281


def test_widths_change_only_the_decoder(capsys) -> None:
    """--widths replaces g_s's hidden widths: the encoder side and h_s are untouched, and each k4 s2 transposed
    conv costs 4·C_in·C_out MACs per output pixel (output at 1/8, 1/4, 1/2, 1 of the image side)."""
    default = _report(capsys, "meanscale")
    assert cli_main(["hw-report", "--model", "meanscale", "--json", "--widths", "64", "48", "32"]) == 0
    lite = json.loads(capsys.readouterr().out)
    assert lite["config"]["g_s_widths"] == [64, 48, 32] and lite["config"]["decoder"] is None
    layers = {layer["name"]: layer for layer in lite["layers"]}
    base = {layer["name"]: layer for layer in default["layers"]}
    assert set(layers) == set(base)
    expected = {"g_s.0": 4 * 128 * 64 / 8**2, "g_s.1": 4 * 64 * 48 / 4**2, "g_s.2": 4 * 48 * 32 / 2**2,
                "g_s.3": 4 * 32 * 3}
    for name, macs in expected.items():
        assert layers[name]["macs_per_pixel"] == pytest.approx(macs)
    for name, layer in base.items():
        if not name.startswith("g_s."):
            assert layers[name] == layer, name
    g_s_default = sum(base[n]["macs_per_pixel"] for n in expected)
    assert g_s_default == pytest.approx(4 * 128 * 96 / 64 + 4 * 96 * 96 / 16 + 4 * 96 * 96 / 4 + 4 * 96 * 3)
    assert lite["totals"]["decode_macs_per_pixel"] == pytest.approx(
        default["totals"]["decode_macs_per_pixel"] - g_s_default + sum(expected.values()))
    for size in ("1080p", "720p"):
        for platform in ("KV260", "ZCU102"):
            assert lite["totals"][f"frame_rate_{size}_decode"][platform]["dpu_ms"] < \
                default["totals"][f"frame_rate_{size}_decode"][platform]["dpu_ms"]


def test_decoder_names(capsys) -> None:
    """--decoder full is the default g_s; another name goes through fxlic.models.decoder_widths, and an unknown
    one is a one-line error; --widths applies to meanscale only."""
    assert cli_main(["hw-report", "--model", "meanscale", "--json", "--decoder", "full"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["config"]["g_s_widths"] == [96, 96, 96] and full["config"]["decoder"] == "full"
    assert cli_main(["hw-report", "--model", "meanscale", "--decoder", "no-such-decoder"]) == 1
    assert "error" in capsys.readouterr().err
    assert cli_main(["hw-report", "--model", "charm", "--widths", "32", "32", "32"]) == 1
    assert "meanscale only" in capsys.readouterr().err


def test_timings_and_entropy_cores() -> None:
    """--timing optimistic is the former estimate (unchanged at 1080p with one entropy core); the fitted timing
    puts the default g_s on the DPU faster than the former 50 %-of-peak assumption (its layers are wide and
    compute-bound: fitted efficiency ≈ 0.9 on used lanes); more entropy cores only shorten the CPU side."""
    layers = hwreport.build("meanscale")[1]
    optimistic = hwreport.frame_rates(layers, hwreport.FRAME, "optimistic")
    assert optimistic["KV260"]["fps"] == pytest.approx(5.08, abs=0.01)  # 5.12 at the former 20 M symbols/s
    assert optimistic["ZCU102"]["fps"] == pytest.approx(9.68, abs=0.01)  # 9.81
    fitted = hwreport.frame_rates(layers, hwreport.FRAME, "fitted")
    for platform in ("KV260", "ZCU102"):
        assert fitted[platform]["cpu_ms"] == pytest.approx(optimistic[platform]["cpu_ms"])
        assert fitted[platform]["dpu_ms"] < optimistic[platform]["dpu_ms"]
    four = hwreport.frame_rates(layers, hwreport.FRAME, "fitted", hwreport.assumptions(4))
    rate = hwreport.ASSUMPTIONS.entropy_symbols_per_s
    z_ms = 1e3 * 96 * (1088 // 64) * (1920 // 64) / rate  # ẑ is one stream, decoded on one core
    for platform in ("KV260", "ZCU102"):
        assert four[platform]["cpu_ms"] == pytest.approx(z_ms + (fitted[platform]["cpu_ms"] - z_ms) / 4)
        assert four[platform]["cpu_ms"] < 33.0  # the ARM entropy budget of a 30-fps 1080p decode
        assert four[platform]["dpu_ms"] == pytest.approx(fitted[platform]["dpu_ms"])
        assert four[platform]["fps_pipelined"] >= fitted[platform]["fps_pipelined"]
    with pytest.raises(ValueError, match="entropy-cores"):
        hwreport.assumptions(5)


def test_zero_insertion_sensitivity() -> None:
    """The sensitivity case: transposed convs over zero-inserted inputs cost 4× the cycles of the k4 s2 phases."""
    layer = hwreport.dpu_timing.DpuLayer("g_s.2", "tconv", 96, 96, 544, 960, 4, 4, 2)
    assert hwreport.zero_inserted(layer).cycles == 4 * layer.cycles
