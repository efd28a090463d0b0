"""The generated Vitis AI quantizer route (fxlic board vitis-script) and fxlic board check-quant-info (docs/board.md
§2.2), against the file format, node naming and call order of the Vitis-AI 3.5 sources, with a stand-in of the
quantizer's API that records the calls (tests/vitis_standin/). What the stand-in cannot prove: docs/board.md §8."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fxlic import models
from fxlic.board.cli import main as board_main
from fxlic.board.partition import partition_from_model
from fxlic.board.vitis import (
    QUANT_CONFIG,
    VitisRouteError,
    _same_values,
    check_quant_info,
    format_quant_info_report,
    load_quant_info,
    vitis_script,
)

REPO = Path(__file__).resolve().parents[1]
STANDIN = REPO / "tests" / "vitis_standin"
FIXTURE = REPO / "tests" / "fixtures" / "vitis" / "decoder-q4"
CROP = REPO / "tests" / "fixtures" / "kodak" / "kodim23_100_200.png"
GRAPHS = {"encoder": "Encoder", "hyper_decoder": "HyperDecoder", "decoder": "Decoder"}
SECTION_2_2 = [("torch_quantizer", "calib"), ("quant_model.forward", "calib"), ("export_quant_config", "calib"),
               ("torch_quantizer", "test"), ("quant_model.forward", "test"), ("export_xmodel", "test")]


def _q4():
    return models.load("meanscale", 4)


# ---- check-quant-info (fixtures) ----------------------------------------------------------------------------------
def test_fixture_has_the_vai_q_layout() -> None:
    info = load_quant_info(FIXTURE / "quant_info.json")
    assert set(info) == {"param", "output", "input", "fast_finetuned", "bias_corrected", "version", "graph_md5"}
    assert all(re.fullmatch(r"Decoder::g_s\.[0-3]\.(weight|bias)", k) for k in info["param"])
    assert all(re.fullmatch(r"Decoder::nndct_[a-z_0-9]+_\d+", k) for k in info["output"])
    assert all(len(v) == 1 and v[0][0] == 8 for table in ("param", "output") for v in info[table].values())


def test_quant_info_with_the_model_files_positions_matches() -> None:
    model = _q4()
    report = check_quant_info(load_quant_info(FIXTURE / "quant_info.json"), model,
                              json.loads((FIXTURE / "fxlic_nodes.json").read_text()))
    assert report.matches and not report.differing and not report.problems
    assert len(report.checks) == 1 + 3 * 4  # ŷ, and weight / bias / output of g_s.0 … g_s.3


@pytest.mark.parametrize(("table", "key", "value", "layer"), [
    ("output", "Decoder::nndct_relu_4", 3, "g_s.1"),
    ("param", "Decoder::g_s.2.bias", 4, "g_s.2"),
    ("output", "Decoder::nndct_input_0", 1, "y_hat"),
])
def test_one_differing_position_names_its_layer(tmp_path: Path, capsys: pytest.CaptureFixture, table: str, key: str,
                                                value: int, layer: str) -> None:
    info = load_quant_info(FIXTURE / "quant_info.json")
    info[table][key] = [[8, value]]
    (tmp_path / "quant_info.json").write_text(json.dumps(info))
    (tmp_path / "fxlic_nodes.json").write_text((FIXTURE / "fxlic_nodes.json").read_text())
    assert board_main(["check-quant-info", str(tmp_path / "quant_info.json"), "--model", "meanscale",
                       "--quality", "4"]) == 1
    out = capsys.readouterr().out
    differing = [line for line in out.splitlines() if "DIFFERS" in line]
    assert len(differing) == 1 and differing[0].split()[0] == layer, out
    assert f"Change: quant_info['{table}']['{key}'] = [[8, " in out
    assert out.strip().endswith("would match the golden model: no")


def test_a_parameter_position_is_exact_only_when_the_values_survive() -> None:
    """Another weight / bias position gives the same real weights (so bit-exact outputs) exactly when the codes
    shift without saturating (finer) or drop only zero bits (coarser)."""
    codes = np.array([-64, 63, 2, 0], dtype=np.int8)
    assert _same_values(codes, 7, 8) and not _same_values(codes, 7, 9)
    assert _same_values(np.array([-128, 64, 2], dtype=np.int8), 7, 6)
    assert not _same_values(np.array([3, 64], dtype=np.int8), 7, 6)
    model = _q4()
    info = load_quant_info(FIXTURE / "quant_info.json")
    nodes = json.loads((FIXTURE / "fxlic_nodes.json").read_text())
    info["param"]["Decoder::g_s.3.weight"] = [[8, model.layers["g_s.3"].fix_w + 1]]  # its codes reach ±125
    report = check_quant_info(info, model, nodes)
    assert [(c.layer, c.exact) for c in report.differing] == [("g_s.3", False)] and not report.matches
    assert "other int8 values" in format_quant_info_report(report, model)


def test_without_a_node_map_parameters_are_still_checked() -> None:
    model = _q4()
    info = load_quant_info(FIXTURE / "quant_info.json")
    info["param"]["Decoder::g_s.1.weight"] = [[8, 5]]
    report = check_quant_info(info, model)
    assert [c.layer for c in report.differing] == ["g_s.1"] and not report.matches
    assert any("not in the node map" in p for p in report.problems)


# ---- vitis-script ---------------------------------------------------------------------------------------------------
def test_script_embeds_the_partition_and_imports_no_fxlic() -> None:
    model = _q4()
    text = vitis_script(model, "meanscale-q4.npz", "golden", None)
    assert not re.search(r"^\s*(import|from) fxlic", text, re.M)
    assert "from pytorch_nndct.apis import torch_quantizer" in text
    compile(text, "vitis_quantize.py", "exec")
    spec = json.loads(text.split('SPEC = json.loads(r"""', 1)[1].split('""")', 1)[0])
    assert spec["model"]["hash"] == model.content_hash().hex()
    assert spec["quant_config"] == QUANT_CONFIG
    assert not QUANT_CONFIG["include_cle"] and not QUANT_CONFIG["include_bias_corr"]
    partition = partition_from_model(model)
    assert [sg["name"] for sg in spec["subgraphs"]] == [sg.name for sg in partition.subgraphs]
    for sg in spec["subgraphs"]:
        for layer in sg["layers"]:
            q = model.layers[layer["name"]]
            assert layer["fix"] == [q.fix_in, q.fix_w, q.fix_b, q.fix_out]


def test_script_refuses_charm() -> None:
    with pytest.raises(VitisRouteError, match="mean-scale family"):
        vitis_script(models.load("charm", 4), "charm-q4.npz")


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_generated_route_against_the_standin(tmp_path: Path) -> None:
    """The script makes §2.2's calls in order for every subgraph, loads the model file's positions in the test pass,
    and its deploy-check dump equals the golden set (fxlic board compare)."""
    pytest.importorskip("torch", reason="the generated script runs torch (inside the container: its own)")
    from fxlic.golden.cli import main as golden_main

    model = _q4()
    work = tmp_path / "work"
    work.mkdir()
    (work / "meanscale-q4.npz").write_bytes(Path(model.path).read_bytes())
    assert golden_main(["make", "--images", str(CROP), "--out", str(work / "golden")]) == 0
    assert board_main(["vitis-script", "--model-file", str(work / "meanscale-q4.npz"), "--golden", "golden",
                       "-o", str(work / "vitis_quantize.py")]) == 0
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "FXLIC_STANDIN_LOG": str(log), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "vitis_quantize.py"], cwd=work, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    calls = _calls(log)
    by_graph: dict[str, list[dict]] = {}
    graph = None
    for call in calls:
        graph = call.get("module", graph)
        by_graph.setdefault(graph, []).append(call)
    assert list(by_graph) == list(GRAPHS.values())
    golden_input = np.load(next((work / "golden").glob("*/input.npy")))
    for name, graph in GRAPHS.items():
        seq = by_graph[graph]
        assert [(c["call"], c["quant_mode"]) for c in seq] == SECTION_2_2
        assert seq[-1]["deploy_check"] is True and seq[-1]["output_dir"] == f"quantize_result/{name}"
        for c in (seq[0], seq[3]):
            assert c["quant_config_file"].endswith("fxlic_quant_config.json")
            assert c["include_cle"] is False and c["include_bias_corr"] is False and c["device"] == "cpu"
        # the test pass loaded exactly the model file's positions
        nodes = json.loads((work / "quantize_result" / name / "fxlic_nodes.json").read_text())
        loaded = seq[3]["loaded"]
        for layer, entry in nodes["layers"].items():
            q = model.layers[layer]
            assert loaded["param"][entry["weight"]] == q.fix_w and loaded["param"][entry["bias"]] == q.fix_b
            assert loaded["output"][entry["output"]] == q.fix_out
            first = np.asarray(seq[3]["weights"][layer]) * 2.0 ** q.fix_w  # integer-exact float weights
            assert np.array_equal(first, q.weight.ravel()[:4])
        for tensor, entry in nodes["inputs"].items():
            assert loaded["output"][entry["output"]] == partition_from_model(model).tensors[tensor].fix_pos
        if name == "encoder":
            assert seq[0]["input_shapes"] == [[1, *golden_input.shape]]
        # the quantizer's integer dump is the golden set, tensor for tensor
        dump = work / "quantize_result" / name / "deploy_check_data_int" / graph
        assert board_main(["compare", "--golden", str(work / "golden"), "--dump", str(dump), "--names",
                           str(work / "quantize_result" / name / "names.json"), "--subgraph", name]) == 0
        assert board_main(["check-quant-info", str(work / "quantize_result" / name / "quant_info.json"),
                           "--model-file", str(work / "meanscale-q4.npz")]) == 0
    # another model file is refused before anything runs
    other = copy.deepcopy(models.load("meanscale", 2))
    other.save(work / "meanscale-q4.npz")
    refused = subprocess.run([sys.executable, "vitis_quantize.py"], cwd=work, env=env, capture_output=True,
                             text=True)
    assert refused.returncode != 0 and "not the model file this script was generated for" in refused.stderr
