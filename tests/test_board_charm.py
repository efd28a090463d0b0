"""On-board validation of charm model files (docs/board.md, "charm"; docs/charm.md): the partition's S + 2
decoder-side DPU calls, a bit-exact simulated session, and a fault in one slice stack reported by its name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fxlic.board.compare import DIVERGES, FOLLOWS, compare_image, format_report
from fxlic.board.dumps import default_names, open_dump
from fxlic.board.partition import partition_from_model
from fxlic.board.runner import SimulatedDpuRunner
from fxlic.board.session import run_golden_set
from fxlic.cli import main
from fxlic.golden.goldenset import GoldenSet

CROP = (100, 200, 70, 90)  # kodim23, padded to 128 × 128


@pytest.fixture(scope="module")
def charm_model(tiny_charm):
    return tiny_charm[1]


@pytest.fixture(scope="module")
def charm_golden(tmp_path_factory, charm_model, kodak_image) -> Path:
    from fxlic.families import open_codec
    from fxlic.golden.vectors import make_set

    folder = tmp_path_factory.mktemp("board-charm") / "golden"
    make_set(open_codec(charm_model), {"k23": kodak_image(23, CROP)}, folder)
    return folder


def test_charm_partition_has_one_dpu_call_per_decoded_slice(charm_model) -> None:
    """docs/board.md (charm): "DPU call j = 0 … S runs every slice stack whose context holds j decoded slices:
    hyper_decoder (h_s, both supports, cc_scales.0, cc_means.0), slice_j (cc_scales.j, cc_means.j, lrp.{j−1}),
    slice_S (lrp.{S−1}), then decoder (g_s on ỹ): S + 2 DPU calls per decoded image"; every layer runs on the
    DPU exactly once; the contexts are CPU-made inputs at the support's fix position (CH-2)."""
    partition = partition_from_model(charm_model)
    slices = int(charm_model.meta["charm"]["slices"])
    names = [sg.name for sg in partition.subgraphs]
    assert names == ["encoder", "hyper_decoder", *(f"slice_{j}" for j in range(1, slices + 1)), "decoder"]
    assert partition.decode_calls == slices + 2 and partition.encode_calls == slices + 1
    placed = [layer for sg in partition.subgraphs for layer in sg.layers]
    assert sorted(placed) == sorted(charm_model.layers)
    assert set(partition.subgraph("hyper_decoder").layers) >= {"cc_scales.0.2", "cc_means.0.0"}
    assert partition.subgraph("slice_1").inputs == ("scale_context.1", "mean_context.1")
    assert set(partition.subgraph("slice_1").outputs) == {"cc_scales.1.2", "cc_means.1.2", "lrp.0.2"}
    assert partition.subgraph(f"slice_{slices}").inputs == (f"mean_context.{slices}",)
    assert partition.subgraph("decoder").inputs == ("y_tilde",)
    f_cm, f_cs = charm_model.layers["h_s_means"].fix_out, charm_model.layers["h_s_scales"].fix_out
    latent = charm_model.layers["g_a.3"].out_channels
    assert partition.tensors["mean_context.2"].fix_pos == f_cm and partition.tensors["scale_context.2"].fix_pos == f_cs
    assert partition.tensors["mean_context.2"].channels == latent + 2 * latent // slices
    assert partition.layers["lrp.1.0"].input == "mean_context.2" == partition.layers["cc_means.2.0"].input
    assert partition.stack_of("cc_means.1.1") == "cc_means.1" and partition.stack_of("g_s.0") is None
    shapes = partition.shapes(*CROP[2:])
    assert shapes["mean_context.3"] == (1, 8, 8, latent + 3 * latent // slices) and shapes["g_s.3"] == (1, 128, 128, 3)
    # MACs per pixel: every layer counted once, on the DPU call that runs it
    macs = partition.macs_per_pixel()
    assert set(macs) == set(names) and all(v > 0 for v in macs.values())
    cc = charm_model.layers["cc_means.1.0"]  # conv k3 at 1/16 of the image side
    assert macs["slice_3"] < macs["slice_2"]  # one stack against three
    assert cc.in_channels == latent + latent // slices


def simulate(model, golden: GoldenSet, out: Path, **kwargs) -> Path:
    runner = SimulatedDpuRunner(model, **kwargs)
    run_golden_set(runner, golden, default_names(runner.partition), out, log=lambda *_: None)
    return out / "k23"


def test_simulated_charm_session_is_bit_exact(charm_model, charm_golden, tmp_path, capsys) -> None:
    """docs/board.md: `board run --simulate` feeds every subgraph its golden inputs (the contexts and ỹ from the
    decoder's recorded tensors); `board compare` finds every tensor of all S + 3 subgraphs equal; `board
    decode --simulate` decodes the stream with the S + 2 DPU calls to the golden image."""
    g, m = str(charm_golden), ["--model-file", str(charm_model.path)]
    assert main(["board", "run", "--simulate", "--golden", g, *m, "--out", str(tmp_path / "sim")]) == 0
    capsys.readouterr()
    assert main(["board", "compare", "--golden", g, *m, "--dump", str(tmp_path / "sim"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["recomputed"] and report["images"][0]["first_divergence"] is None
    partition = partition_from_model(charm_model)
    assert len(report["images"][0]["layers"]) == len(partition.dpu_tensors())
    stream = str(charm_golden / "k23" / "bitstream.fxl")
    assert main(["board", "decode", "--simulate", "--stream", stream, *m, "--out", str(tmp_path / "d.png"),
                 "--golden", g]) == 0
    out = capsys.readouterr().out
    assert "decoded image: BIT-EXACT" in out and "(5 calls)" in out and " missing" not in out
    assert main(["board", "run", "--simulate", "--golden", g, *m, "--out", str(tmp_path / "x"),
                 "--subgraph", "slice_9"]) == 2
    assert main(["board", "partition", *m, "--tile", "256"]) == 1


def flip_one_value(layer, x):
    out = layer(x)
    c, h, w = (n // 2 for n in out.shape)
    out.view(np.uint8)[c, h, w] ^= 0x20
    return out


@pytest.mark.parametrize(("layer", "subgraph"), [("cc_means.1.1", "slice_1"), ("cc_scales.0.2", "hyper_decoder"),
                                                  ("lrp.2.0", "slice_3")])
def test_fault_in_one_slice_stack_is_named(charm_model, charm_golden, tmp_path, layer: str, subgraph: str) -> None:
    """docs/board.md (charm): "an injected fault in one slice stack is reported as the first diverging layer,
    with its DPU call, slice stack and slice"; the layers after it in that stack follow from it, every other
    tensor (other calls start from golden inputs) is equal."""
    golden = GoldenSet(charm_golden)
    partition = partition_from_model(charm_model)
    folder = simulate(charm_model, golden, tmp_path, layer_fns={layer: flip_one_value})
    comparison = compare_image(golden, "k23", open_dump(folder), default_names(partition), partition, charm_model)
    first = comparison.first_divergence
    assert not comparison.ok and first is not None and first.tensor == layer and first.status == DIVERGES
    stack = layer.rsplit(".", 1)[0]
    assert first.subgraph == subgraph and first.stack == stack and "isolated" in first.pattern
    text = format_report([comparison])
    assert f"first diverging layer: {layer} ({subgraph}; slice stack {stack}, slice {stack[-1]})" in text
    for report in comparison.layers:
        if report is not first and not report.equal:
            assert report.status == FOLLOWS and report.origin == layer and report.stack == stack, report


def test_vart_runner_runs_the_charm_calls(charm_model, charm_golden, tmp_path, monkeypatch, capsys) -> None:
    """docs/board.md (charm): the VART path pairs each of the S + 3 xmodel DPU subgraphs (two context inputs of
    one shape per slice call, told apart by the name map), checks every fix_point, runs the calls and dumps
    every layer; `board compare` and `board decode` are bit-exact (fake vart/xir modules, tests/test_board.py)."""
    from test_board import fake_xmodel, install_fake_vitis

    from fxlic.board.dumps import NameMap

    partition = partition_from_model(charm_model)
    install_fake_vitis(monkeypatch, charm_model, tmp_path / "cwd")
    monkeypatch.setenv("XLNX_ENABLE_DEBUG_MODE", "1")
    xnames = fake_xmodel(tmp_path / "charm.xmodel", partition, partition.shapes(*CROP[2:]),
                         subgraphs=[sg.name for sg in partition.subgraphs])
    NameMap(tensors=xnames, subgraphs={}).merged(partition).save(tmp_path / "names.json")
    g, m, n = str(charm_golden), ["--model-file", str(charm_model.path)], ["--names", str(tmp_path / "names.json")]
    assert main(["board", "run", "--xmodel", str(tmp_path / "charm.xmodel"), "--golden", g, *m, *n,
                 "--out", str(tmp_path / "dump")]) == 0
    assert main(["board", "compare", "--golden", g, *m, "--dump", str(tmp_path / "dump")]) == 0
    assert "BIT-EXACT" in capsys.readouterr().out
    stream = str(charm_golden / "k23" / "bitstream.fxl")
    assert main(["board", "decode", "--xmodel", str(tmp_path / "charm.xmodel"), *m, *n, "--stream", stream,
                 "--out", str(tmp_path / "out.png"), "--golden", g]) == 0
    out = capsys.readouterr().out
    assert "decoded image: BIT-EXACT" in out and " missing" not in out
