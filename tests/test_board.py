"""On-board validation (board/): simulator = reference, fault attribution, VART code path, dump layouts, CLI.

The VART path runs against fake ``vart`` / ``xir`` modules put in ``sys.modules`` here: they mimic the
Python API the runner uses (``xir.Graph.deserialize``, child subgraphs with a ``device`` attribute,
tensors with ``name`` / ``dims`` / ``fix_point``, ``vart.Runner.create_runner``, ``execute_async`` /
``wait`` on C-contiguous int8 buffers, the ``XLNX_ENABLE_DUMP`` dump folder) and compute with the
simulator. That checks our side of the API contract, not VART itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fxlic.board.compare import DIVERGES, FOLLOWS, compare_image, diff_pattern
from fxlic.board.dumps import (
    NameMap,
    chw_to_nhwc,
    default_names,
    nhwc_to_chw,
    open_dump,
    quantizer_stem,
    vart_stem,
    weight_from_ohwi,
    weight_ohwi,
    write_deploy_check,
    write_golden_dir,
    write_vart_dump,
)
from fxlic.board.partition import partition_from_model
from fxlic.board.runner import VART_MISSING, BoardError, SimulatedDpuRunner, VartRunner
from fxlic.board.session import run_golden_set
from fxlic.cli import main
from fxlic.fxp import DpuAssumptions, conv2d_acc, conv_transpose2d_acc, requantize_accumulator
from fxlic.golden.goldenset import GoldenSet

CROP = (100, 200, 120, 176)  # kodim23, not a multiple of 64: exercises padding (128 x 192)


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory, codec, kodak_image) -> Path:
    from fxlic.golden.vectors import make_set

    folder = tmp_path_factory.mktemp("board") / "golden"
    make_set(codec, {"k23": kodak_image(23, CROP)}, folder)
    return folder


@pytest.fixture(scope="module")
def golden(golden_dir) -> GoldenSet:
    return GoldenSet(golden_dir)


@pytest.fixture(scope="module")
def partition(codec):
    return partition_from_model(codec.model)


def simulate(codec, golden, out: Path, **kwargs) -> Path:
    runner = SimulatedDpuRunner(codec.model, **kwargs)
    names = default_names(runner.partition)
    run_golden_set(runner, golden, names, out, log=lambda *_: None)
    return out / "k23"


def compare(codec, golden, partition, folder: Path):
    return compare_image(golden, "k23", open_dump(folder), default_names(partition), partition, codec.model)


# --------------------------------------------------------------------------------------------------
# simulator = reference
# --------------------------------------------------------------------------------------------------
def test_partition_covers_every_layer(partition, codec) -> None:
    in_subgraphs = [layer for sg in partition.subgraphs for layer in sg.layers]
    assert sorted(in_subgraphs) == sorted(codec.model.layers)
    assert [sg.name for sg in partition.subgraphs] == ["encoder", "hyper_decoder", "decoder"]
    shapes = partition.shapes(*CROP[2:])
    assert shapes["input"] == (1, 128, 192, 3)
    assert shapes["g_s.3"] == shapes["input"]
    for name, layer in codec.model.layers.items():  # fix positions come from the model file
        assert partition.tensors[name].fix_pos == layer.fix_out
        assert partition.tensors[partition.layer_input(name)].fix_pos == layer.fix_in


def test_simulated_runner_equals_reference_every_layer(codec, golden, partition, tmp_path) -> None:
    folder = simulate(codec, golden, tmp_path)
    store = open_dump(folder)
    names = default_names(partition)
    shapes = partition.shapes(*CROP[2:])
    for t in partition.dpu_tensors():
        dumped = store.get(names, t)
        assert dumped is not None, t
        expected = golden.dpu_tensor("k23", t, partition)
        assert np.array_equal(nhwc_to_chw(dumped.reshape(shapes[t])), expected), t
    comparison = compare(codec, golden, partition, folder)
    assert comparison.ok and comparison.first_divergence is None
    assert len(comparison.layers) == len(partition.dpu_tensors())


# --------------------------------------------------------------------------------------------------
# fault injection: each fault is found and attributed to the layer it was injected in
# --------------------------------------------------------------------------------------------------
def flip_one_value(layer, x):
    out = layer(x)
    c, h, w = (n // 2 for n in out.shape)
    out.view(np.uint8)[c, h, w] ^= 0x20
    return out


def floor_rounding(layer, x):
    """Round toward −∞ instead of half up: floor(t / 2^s) = R((t − 2^(s−1)) / 2^s) (exact for relu/none)."""
    assert layer.activation in ("none", "relu") and layer.shift_bias >= 0
    acc = layer.accumulate(x)
    return requantize_accumulator(acc - (1 << (layer.shift_cut - 1)), layer.bias, layer.shift_bias,
                                  layer.shift_cut, layer.activation)


def swap_two_channels(layer, x):
    out = layer(x)
    other = next(c for c in range(1, out.shape[0]) if not np.array_equal(out[0], out[c]))
    out[[0, other]] = out[[other, 0]]
    return out


def fix_out_plus_one(layer, x):
    return dataclasses.replace(layer, fix_out=layer.fix_out + 1)(x)


def fix_in_plus_one(layer, x):
    return dataclasses.replace(layer, fix_in=layer.fix_in + 1)(x)


def _first_relu_transposed(partition) -> str:
    return next(n for n in partition.subgraph("decoder").layers[1:] if partition.layers[n].activation == "relu")


def _faults(partition) -> dict[str, tuple[str, dict, str]]:
    """fault → (layer injected, layer functions, expected pattern keyword)."""
    encoder = partition.subgraph("encoder").layers
    h_s = [n for n in partition.subgraph("hyper_decoder").layers if n.startswith("h_s.")]
    rounding_layer = _first_relu_transposed(partition)
    return {
        "one flipped value": (encoder[1], {encoder[1]: flip_one_value}, "isolated"),
        "floor instead of round-half-up": (rounding_layer, {rounding_layer: floor_rounding}, "truncation"),
        "fix position +1": (h_s[0], {h_s[0]: fix_out_plus_one, h_s[1]: fix_in_plus_one}, "fix position"),
        "two channels swapped": (encoder[3], {encoder[3]: swap_two_channels}, "channel order"),
    }


@pytest.mark.parametrize("fault", ["one flipped value", "floor instead of round-half-up", "fix position +1",
                                   "two channels swapped"])
def test_fault_is_attributed_to_its_layer(fault, codec, golden, partition, tmp_path) -> None:
    injected, fns, keyword = _faults(partition)[fault]
    folder = simulate(codec, golden, tmp_path, layer_fns=fns)
    comparison = compare(codec, golden, partition, folder)
    first = comparison.first_divergence
    assert not comparison.ok
    assert first is not None and first.tensor == injected, comparison.to_json()
    assert keyword in first.pattern
    assert first.first_nhwc is not None and first.first_chw == (first.first_nhwc[3], *first.first_nhwc[1:3])
    assert first.expected != first.got and first.max_abs_diff > 0
    for report in comparison.layers:  # everything else is equal or follows from the injected layer
        if report is not first and not report.equal:
            assert report.status == FOLLOWS and report.origin == injected, report


def test_relu_model_is_immune_to_the_leaky_assumption(codec, golden, partition, tmp_path) -> None:
    """The shipped models use ReLU in h_a/h_s: FXP-A-LEAKY (LeakyReLU rounding) cannot change them."""
    assert not [t for t in partition.layers if partition.layers[t].activation == "leaky_relu"]
    folder = simulate(codec, golden, tmp_path, assumptions=DpuAssumptions(leaky_relu_rounding="double"))
    assert compare(codec, golden, partition, folder).first_divergence is None


LEAKY_LAYERS = ("h_a.0", "h_a.1", "h_s.0", "h_s.1")


@pytest.fixture(scope="module")
def leaky_model_file(tmp_path_factory) -> Path:
    """The shipped weights with LeakyReLU(26/256) in h_a/h_s, as the first released models had."""
    from fxlic import models
    from fxlic.reference.modelfile import load_model_file

    model = load_model_file(models.resolve())
    model.meta = {**model.meta, "config": {**model.meta["config"], "hyper_activation": "leaky_relu"},
                  "layers": [{**entry, "activation": "leaky_relu"} if entry["name"] in LEAKY_LAYERS else entry
                             for entry in model.meta["layers"]]}
    path = tmp_path_factory.mktemp("leaky") / "meanscale-leaky.npz"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def leaky_codec(leaky_model_file):
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    codec = Codec(load_model_file(leaky_model_file))
    assert {codec.model.layers[name].activation for name in LEAKY_LAYERS} == {"leaky_relu"}
    return codec


@pytest.fixture(scope="module")
def leaky_golden_dir(tmp_path_factory, leaky_codec, kodak_image) -> Path:
    from fxlic.golden.vectors import make_set

    folder = tmp_path_factory.mktemp("leaky-golden") / "golden"
    make_set(leaky_codec, {"k23": kodak_image(23, CROP)}, folder)
    return folder


def test_leaky_double_rounding_diverges_first_at_the_first_leaky_layer(leaky_codec, leaky_golden_dir,
                                                                       tmp_path) -> None:
    golden = GoldenSet(leaky_golden_dir)
    partition = partition_from_model(leaky_codec.model)
    folder = simulate(leaky_codec, golden, tmp_path, assumptions=DpuAssumptions(leaky_relu_rounding="double"))
    comparison = compare(leaky_codec, golden, partition, folder)
    leaky = [t for t in partition.dpu_tensors() if t in partition.layers
             and partition.layers[t].activation == "leaky_relu"]
    first = comparison.first_divergence
    assert first is not None and first.tensor == leaky[0]
    assert "LeakyReLU" in first.pattern and "--assume leaky=double" in first.pattern
    diverging = [r for r in comparison.layers if r.status == DIVERGES]
    assert diverging and all(r.tensor in leaky and "LeakyReLU" in r.pattern for r in diverging)
    assert all(r.status == FOLLOWS for r in comparison.layers if not r.equal and r.tensor not in leaky)


def test_dataflow_attribution_without_model(codec, golden, partition, tmp_path) -> None:
    injected, fns, _ = _faults(partition)["two channels swapped"]
    folder = simulate(codec, golden, tmp_path, layer_fns=fns)
    comparison = compare_image(golden, "k23", open_dump(folder), default_names(partition), partition, None)
    assert comparison.first_divergence.tensor == injected
    followers = [r for r in comparison.layers if r.status == FOLLOWS]
    assert followers and all(r.origin == injected and "dataflow" in r.note for r in followers)


def test_diff_pattern_classes() -> None:
    rng = np.random.default_rng(1)
    e = rng.integers(-60, 60, size=(1, 4, 5, 6), dtype=np.int64).astype(np.int8)
    assert "scale" in diff_pattern(e, np.clip(e.astype(int) * 2, -128, 127).astype(np.int8))[0]
    assert diff_pattern(e, np.clip(e.astype(int) * 2, -128, 127).astype(np.int8))[1] == 1
    assert "channel order" in diff_pattern(e, e[..., ::-1].copy())[0]
    g = e.copy()
    g[0, 1, 1, 1] += 3
    assert "isolated" in diff_pattern(e, g)[0]
    g = (e.astype(int) + rng.integers(-1, 2, size=e.shape)).clip(-128, 127).astype(np.int8)
    assert "±1" in diff_pattern(e, g)[0]


# --------------------------------------------------------------------------------------------------
# dump layouts
# --------------------------------------------------------------------------------------------------
def test_name_mangling() -> None:
    assert vart_stem("MeanScale/Conv2d[g_a]/ret.3(TransferMethod)_fix") == "MeanScale_Conv2d_g_a__ret_3_fix"
    assert vart_stem("a(x(y))b") == "ab"
    assert quantizer_stem("MeanScale::MeanScale/Conv2d[g_a]/input.1") == "MeanScale__MeanScale_Conv2d_g_a__input_1"


def test_dumps_round_trip_every_layout(partition, tmp_path) -> None:
    rng = np.random.default_rng(0)
    shapes = partition.shapes(64, 128)
    tensors = {t: rng.integers(-128, 128, size=shapes[t], dtype=np.int64).astype(np.int8)
               for t in partition.dpu_tensors()}
    names = NameMap(tensors={t: f"Net/{t}(TransferMethod)_fix" for t in tensors},
                    subgraphs={"encoder": "subgraph_Net/enc"}, graph="Net")
    names = names.merged(partition)
    names.save(tmp_path / "names.json")
    assert NameMap.load(tmp_path / "names.json") == names
    for sg in partition.subgraphs:
        write_vart_dump(tmp_path / "vart" / "dump", partition, names, sg.name, tensors)
    write_golden_dir(tmp_path / "golden", names, tensors)
    write_deploy_check(tmp_path / "qt", names, tensors)
    for folder, layout in ((tmp_path / "vart", "vart-dump"), (tmp_path / "golden", "flat"),
                           (tmp_path / "qt" / "deploy_check_data_int", "flat")):
        store = open_dump(folder)
        assert store.layout == layout
        for t, value in tensors.items():
            assert np.array_equal(store.get(names, t).reshape(value.shape), value), (layout, t)
    store = open_dump(tmp_path / "vart")
    assert store.where[vart_stem(names.xir("g_a.0"))] == "subgraph_Net_enc/internal"
    assert (tmp_path / "qt" / "deploy_check_data_int" / "Net" / "shape.txt").read_text().startswith("[1, 64, 128, 3]")
    # VART's own naming quirks: other engines are ignored, upload/download suffixes are aliases
    folder = tmp_path / "quirks" / "dump" / "subgraph_x" / "output"
    folder.mkdir(parents=True)
    (folder / "0.g_s_3_fix_download_0.bin").write_bytes(b"\x01\x02")
    (folder / "1.g_s_2_fix.bin").write_bytes(b"\x03")
    store = open_dump(tmp_path / "quirks")
    assert list(store.get(default_names(partition), "g_s.3")) == [1, 2]
    assert store.get(default_names(partition), "g_s.2") is None


def test_golden_export_round_trip(golden_dir, tmp_path, capsys) -> None:
    assert main(["board", "export-golden", "--golden", str(golden_dir), "--out", str(tmp_path / "vitis")]) == 0
    image = tmp_path / "vitis" / "k23"
    for dump in (image / "golden", image / "deploy_check_data_int"):
        assert main(["board", "compare", "--golden", str(golden_dir), "--dump", str(dump),
                     "--names", str(tmp_path / "vitis" / "names.json")]) == 0
    assert "BIT-EXACT" in capsys.readouterr().out
    params = sorted(p.name for p in (image / "deploy_check_data_int").glob("*/*weight_fix.bin"))
    assert params and (tmp_path / "vitis" / "README.txt").is_file()


@pytest.mark.parametrize("transposed", [False, True])
def test_weight_ohwi_reading(transposed) -> None:
    """OHWI round-trips; for a transposed conv the flipped OHWI kernel is the stride-1 conv kernel over the
    zero-inserted input (how the DPU runs it), which pins down our reading of the quantizer's flip."""
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, size=(5, 4, 4, 4), dtype=np.int64).astype(np.int8)
    ohwi = weight_ohwi(w, transposed)
    assert np.array_equal(weight_from_ohwi(ohwi, transposed), w)
    if not transposed:
        assert ohwi.shape == (5, 4, 4, 4) and ohwi[1, 2, 3, 0] == w[1, 0, 2, 3]
        return
    x = rng.integers(-128, 128, size=(5, 6, 7), dtype=np.int64).astype(np.int8)
    s, p, k = 2, 1, 4
    up = np.zeros((5, (6 - 1) * s + 1, (7 - 1) * s + 1), dtype=np.int8)
    up[:, ::s, ::s] = x
    up = np.pad(up, ((0, 0), (k - 1 - p,) * 2, (k - 1 - p,) * 2))
    as_conv = np.ascontiguousarray(ohwi.transpose(0, 3, 1, 2))  # OHWI -> [O, C, kh, kw]
    assert np.array_equal(conv2d_acc(up, as_conv, 1, 0), conv_transpose2d_acc(x, w, s, p))


# --------------------------------------------------------------------------------------------------
# VART code path against fake vart / xir modules
# --------------------------------------------------------------------------------------------------
def _mangle(name: str) -> str:  # VART's layer_name, written independently of board.dumps
    return re.sub(r"[^0-9A-Za-z_]", "_", re.sub(r"\([^()]*\)", "", name))


def fake_xmodel(path: Path, partition, shapes, subgraphs=("encoder", "hyper_decoder", "decoder"),
                fix_offset: int = 0, wrong_fix: str | None = None) -> dict[str, str]:
    """A JSON 'xmodel' for the fake xir: Vitis-style names, CPU subgraphs around the DPU ones.
    ``fix_offset`` shifts every tensor's fix_point, ``wrong_fix`` only that tensor's.
    Returns our tensor name → fake xmodel tensor name."""
    xnames = {t: f"MeanScale/{t.replace('.', '/')}/ret(TransferMethod)_fix" for t in partition.tensors}

    def tensor(t: str) -> dict:
        fix = partition.tensors[t].fix_pos + fix_offset + (1 if t == wrong_fix else 0)
        return {"name": xnames[t], "dims": list(shapes[t]), "fix_point": fix, "fxlic": t}

    children = [{"name": "subgraph_MeanScale__input", "device": "CPU"}]
    for sg in partition.subgraphs:
        if sg.name in subgraphs:
            children.append({"name": f"subgraph_MeanScale/{sg.name}", "device": "DPU", "fxlic": sg.name,
                             "inputs": [tensor(t) for t in sg.inputs],
                             "outputs": [tensor(t) for t in reversed(sg.outputs)],  # order must not matter
                             "internal": [tensor(t) for t in sg.internal]})
            children.append({"name": f"subgraph_MeanScale/{sg.name}_cpu", "device": "CPU"})
    path.write_text(json.dumps({"subgraphs": children}))
    return xnames


def install_fake_vitis(monkeypatch, model, tmp_cwd: Path) -> None:
    sim = SimulatedDpuRunner(model)

    class Tensor:
        def __init__(self, spec: dict) -> None:
            self.name, self.dims, self.dtype, self._spec = spec["name"], list(spec["dims"]), "xint8", spec

        def has_attr(self, key: str) -> bool:
            return key == "fix_point"

        def get_attr(self, key: str):
            return self._spec[key]

    class Subgraph:
        def __init__(self, spec: dict, children=()) -> None:
            self.spec, self.children = spec, list(children)
            self.is_leaf = not self.children

        def get_name(self) -> str:
            return self.spec["name"]

        def has_attr(self, key: str) -> bool:
            return key in self.spec

        def get_attr(self, key: str):
            return self.spec[key]

        def toposort_child_subgraph(self):
            return list(self.children)

        def get_ops(self):  # one op per layer output (the compiled subgraph's fix ops)
            return [types.SimpleNamespace(get_output_tensor=lambda t=t: Tensor(t), get_type=lambda: "conv2d-fix")
                    for t in self.spec.get("internal", []) + self.spec.get("outputs", [])]

    class Graph:
        def __init__(self, spec: dict) -> None:
            self.root = Subgraph({"name": "root"}, [Subgraph(c) for c in spec["subgraphs"]])

        @staticmethod
        def deserialize(path: str) -> Graph:
            return Graph(json.loads(Path(path).read_text()))

        def get_root_subgraph(self) -> Subgraph:
            return self.root

    class Runner:
        def __init__(self, subgraph: Subgraph) -> None:
            spec = subgraph.spec
            self.spec = spec
            self.inputs = [Tensor(t) for t in spec["inputs"]]
            self.outputs = [Tensor(t) for t in spec["outputs"]]

        @staticmethod
        def create_runner(subgraph: Subgraph, mode: str) -> Runner:
            assert mode == "run" and subgraph.get_attr("device") == "DPU"
            return Runner(subgraph)

        def get_input_tensors(self):
            return self.inputs

        def get_output_tensors(self):
            return self.outputs

        def execute_async(self, inputs, outputs):
            for buffer, tensor in zip(inputs + outputs, self.inputs + self.outputs):
                assert isinstance(buffer, np.ndarray) and buffer.dtype == np.int8
                assert buffer.flags["C_CONTIGUOUS"] and list(buffer.shape) == tensor.dims
            result = sim.run_subgraph(self.spec["fxlic"], {t._spec["fxlic"]: b for t, b in zip(self.inputs, inputs)})
            for buffer, tensor in zip(outputs, self.outputs):
                buffer[...] = result[tensor._spec["fxlic"]]
            if os.environ.get("XLNX_ENABLE_DUMP") == "1":  # like VART: into ./dump, internals in debug mode
                everything = sim.layer_outputs()
                groups = [("input", self.spec["inputs"]), ("output", self.spec["outputs"])]
                if os.environ.get("XLNX_ENABLE_DEBUG_MODE") == "1":
                    groups.append(("internal", self.spec["internal"]))
                for kind, specs in groups:
                    folder = Path("dump") / _mangle(self.spec["name"]) / kind
                    folder.mkdir(parents=True, exist_ok=True)
                    for t in specs:
                        (folder / f"0.{_mangle(t['name'])}.bin").write_bytes(everything[t["fxlic"]].tobytes())
            return (7, 0)

        def wait(self, job) -> int:
            assert job == (7, 0)
            return 0

    tmp_cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_cwd)  # a stray VART-style dump must never land in the repository
    monkeypatch.setitem(sys.modules, "xir", types.SimpleNamespace(Graph=Graph))
    monkeypatch.setitem(sys.modules, "vart", types.SimpleNamespace(Runner=Runner))
    monkeypatch.delenv("XLNX_ENABLE_DUMP", raising=False)


def test_vart_runner_board_run_and_compare(codec, golden_dir, golden, partition, tmp_path, monkeypatch,
                                           capsys) -> None:
    install_fake_vitis(monkeypatch, codec.model, tmp_path / "cwd")
    monkeypatch.setenv("XLNX_ENABLE_DEBUG_MODE", "1")
    xnames = fake_xmodel(tmp_path / "model.xmodel", partition, partition.shapes(*CROP[2:]))
    names = NameMap(tensors=xnames, subgraphs={}).merged(partition)
    names.save(tmp_path / "names.json")
    args = ["board", "run", "--xmodel", str(tmp_path / "model.xmodel"), "--golden", str(golden_dir),
            "--out", str(tmp_path / "dump"), "--names", str(tmp_path / "names.json")]
    assert main(args) == 0
    assert os.environ.get("XLNX_ENABLE_DUMP") == "1"  # the runner asked VART for its dump
    internal = tmp_path / "dump" / "k23" / "dump" / "subgraph_MeanScale_encoder" / "internal"
    assert (internal / f"0.{_mangle(xnames['g_a.0'])}.bin").is_file()
    assert main(["board", "compare", "--golden", str(golden_dir), "--dump", str(tmp_path / "dump")]) == 0
    assert "BIT-EXACT" in capsys.readouterr().out
    stream = golden_dir / "k23" / "bitstream.fxl"
    assert main(["board", "decode", "--xmodel", str(tmp_path / "model.xmodel"), "--names", str(tmp_path / "names.json"),
                 "--stream", str(stream), "--out", str(tmp_path / "out.png"), "--golden", str(golden_dir)]) == 0
    out = capsys.readouterr().out
    assert "decoded image: BIT-EXACT" in out and " missing" not in out  # internals came from VART's dump


def test_vart_runner_pairs_by_shape_and_reads_internals(codec, golden, partition, tmp_path, monkeypatch) -> None:
    install_fake_vitis(monkeypatch, codec.model, tmp_path / "cwd")
    xnames = fake_xmodel(tmp_path / "enc_dec.xmodel", partition, partition.shapes(*CROP[2:]),
                         subgraphs=("encoder", "decoder"))
    # no name map: subgraphs pair by channel signature, inputs/outputs by shape (and fix position)
    runner = VartRunner([tmp_path / "enc_dec.xmodel"], partition, dump_dir=tmp_path / "release")
    assert runner.subgraph_names == ["encoder", "decoder"] and runner.image_size == (128, 192)
    x = chw_to_nhwc(golden.dpu_tensor("k23", "input", partition))
    outputs = runner.run_subgraph("encoder", {"input": x})
    for t, value in outputs.items():
        assert np.array_equal(nhwc_to_chw(value), golden.dpu_tensor("k23", t, partition))
    assert set(runner.layer_outputs()) == {"input", *partition.subgraph("encoder").outputs}  # release: no internals
    # debug mode dumps every layer; internal tensors are found through the name map
    monkeypatch.setenv("XLNX_ENABLE_DEBUG_MODE", "1")
    runner = VartRunner([tmp_path / "enc_dec.xmodel"], partition, NameMap(tensors=xnames, subgraphs={}),
                        dump_dir=tmp_path / "debug")
    runner.run_subgraph("encoder", {"input": x})
    every = runner.layer_outputs()
    assert set(every) == set(partition.dpu_tensors("encoder"))
    for t, value in every.items():
        assert np.array_equal(nhwc_to_chw(value), golden.dpu_tensor("k23", t, partition)), t
    with pytest.raises(BoardError, match="no DPU subgraph for hyper_decoder"):
        runner.run_subgraph("hyper_decoder", {"z_hat": x})


def test_vart_runner_refuses_foreign_fix_points_and_sizes(codec, partition, tmp_path, monkeypatch) -> None:
    install_fake_vitis(monkeypatch, codec.model, tmp_path / "cwd")
    fake_xmodel(tmp_path / "bad.xmodel", partition, partition.shapes(*CROP[2:]), fix_offset=1)
    with pytest.raises(BoardError, match="fix_point"):
        VartRunner([tmp_path / "bad.xmodel"], partition)
    xnames = fake_xmodel(tmp_path / "internal.xmodel", partition, partition.shapes(*CROP[2:]), wrong_fix="g_a.1")
    with pytest.raises(BoardError, match=r"\(g_a\.1\) has fix_point"):
        VartRunner([tmp_path / "internal.xmodel"], partition, NameMap(tensors=xnames, subgraphs={}))
    fake_xmodel(tmp_path / "ok.xmodel", partition, partition.shapes(*CROP[2:]))
    runner = VartRunner([tmp_path / "ok.xmodel"], partition)
    with pytest.raises(BoardError, match="recompile"):
        runner.run_subgraph("encoder", {"input": np.zeros((1, 64, 64, 3), np.int8)})


def test_vart_missing_is_one_line(codec, golden_dir, partition, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "vart", None)  # import vart -> ImportError
    with pytest.raises(BoardError, match=re.escape(VART_MISSING)):
        VartRunner([tmp_path / "x.xmodel"], partition)
    assert main(["board", "run", "--xmodel", str(tmp_path / "x.xmodel"), "--golden", str(golden_dir),
                 "--out", str(tmp_path / "d")]) == 1
    assert capsys.readouterr().err.strip() == f"fxlic: error: {VART_MISSING}"


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def test_cli_run_compare_decode_exit_codes(golden_dir, leaky_golden_dir, leaky_model_file, tmp_path,
                                           capsys) -> None:
    g = str(golden_dir)
    assert main(["board", "run", "--simulate", "--golden", g, "--out", str(tmp_path / "good")]) == 0
    capsys.readouterr()
    assert main(["board", "compare", "--golden", g, "--dump", str(tmp_path / "good"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["recomputed"] and report["images"][0]["first_divergence"] is None
    # the shipped models have no LeakyReLU: the open LeakyReLU rounding cannot change them
    assert main(["board", "run", "--simulate", "--assume", "leaky=double", "--golden", g,
                 "--out", str(tmp_path / "relu-leaky")]) == 0
    assert main(["board", "compare", "--golden", g, "--dump", str(tmp_path / "relu-leaky")]) == 0
    # a LeakyReLU model: a deliberate wrong assumption is detected and located
    lg, lm = str(leaky_golden_dir), ["--model-file", str(leaky_model_file)]
    assert main(["board", "run", "--simulate", "--assume", "leaky=double", "--golden", lg, *lm,
                 "--out", str(tmp_path / "leaky")]) == 0
    capsys.readouterr()
    assert main(["board", "compare", "--golden", lg, *lm, "--dump", str(tmp_path / "leaky"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["images"][0]["first_divergence"].startswith("h_a.")
    # confirming a hypothesis: the "board" equals the simulator under the alternative assumption
    assert main(["board", "run", "--simulate", "--assume", "leaky=double", "--golden", lg, *lm,
                 "--out", str(tmp_path / "leaky-sim")]) == 0
    assert main(["board", "compare", "--golden", lg, *lm, "--dump", str(tmp_path / "leaky"),
                 "--reference-dump", str(tmp_path / "leaky-sim")]) == 0
    stream = str(golden_dir / "k23" / "bitstream.fxl")
    assert main(["board", "decode", "--simulate", "--stream", stream, "--out", str(tmp_path / "a.png"),
                 "--golden", g]) == 0
    leaky_stream = str(leaky_golden_dir / "k23" / "bitstream.fxl")
    assert main(["board", "decode", "--simulate", "--assume", "g_s.3:leaky=double", "--stream", leaky_stream, *lm,
                 "--out", str(tmp_path / "b.png"), "--golden", lg]) == 0  # g_s.3 has no LeakyReLU: still exact
    assert main(["board", "decode", "--simulate", "--assume", "leaky=double", "--stream", leaky_stream, *lm,
                 "--out", str(tmp_path / "c.png"), "--golden", lg]) == 1
    capsys.readouterr()
    assert main(["board", "compare", "--golden", str(tmp_path / "nope"), "--dump", str(tmp_path / "good")]) == 1
    assert capsys.readouterr().err.startswith("fxlic: error:")
    assert main(["board", "run", "--simulate", "--assume", "speed=fast", "--golden", g,
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["board", "partition", "--size", "120x176", "--json"]) == 0
    shapes = json.loads(capsys.readouterr().out)["shapes_nhwc"]
    assert shapes["input"] == [1, 128, 192, 3]


def test_board_imports_no_torch() -> None:
    import subprocess

    code = ("import sys\nimport fxlic.board.cli, fxlic.board.compare, fxlic.board.runner\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'compressai'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
