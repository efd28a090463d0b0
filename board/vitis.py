"""The route through the Vitis AI quantizer (vai_q_pytorch), generated and checked (docs/board.md §2.2).

Two commands, no torch on this side:

* ``fxlic board vitis-script`` writes the Python script a user runs inside the Vitis AI 3.5 PyTorch container. Per
  DPU subgraph of the model's partition it builds a plain float module (``nn.Conv2d`` / ``nn.ConvTranspose2d`` /
  ``nn.ReLU``) whose weights are the model file's integers times 2^−f (exact in float32, so the quantizer's STD_ROUND
  gives the integers back), then — each step in its own process, as the vai_q_pytorch examples run calib and test —
  ``torch_quantizer("calib", …)``, one forward, ``export_quant_config()``; forces ``quant_info.json`` to the model
  file's positions (with a node map from the quantizer's graph: parameter name → conv node → the node that ends
  the layer); ``torch_quantizer("test", …)``, one forward on the golden input, ``export_xmodel(…, deploy_check=True)``.
  It passes a quantization config that keeps the DPU defaults but switches off cross-layer equalization and bias
  correction (both on by default: either changes the weights or the bias, so the xmodel would not be the model
  file). The script imports torch, numpy and pytorch_nndct only; it reads the model file with numpy.
* ``fxlic board check-quant-info`` compares a vai_q ``quant_info.json`` (from the script, or from the user's own
  calibration) with a model file: which positions differ, layer by layer, whether the xmodel built from it would
  still compute the golden model's integers, and what to change where not.

The file format (``{"param": {name: [[bit_width, fix_point]]}, "output": {node: [[…]]}, "input": {…},
"fast_finetuned", "bias_corrected", "version", "graph_md5"}``), the node names (``<Graph>::nndct_<op>_<n>``,
topological) and the call order are those of the Vitis-AI 3.5 sources (``src/vai_quantizer/vai_q_pytorch``:
``nndct_shared/quantization/quant_config_imp.py``, ``base_quantizer.py``, ``quant_strategy.py``,
``pytorch_binding/pytorch_nndct/apis.py``, ``qproc/base.py``, ``qproc/utils.py``,
``nndct_shared/nndct_graph/base_graph.py::assign_node_topological_name``, ``nndct_shared/quantization/quant_config.py``,
``nndct_shared/compile/deploy_checker.py``); they are tested against a stand-in of the quantizer's API
(``tests/vitis_standin/``) that records the calls — not against Vitis AI itself (docs/board.md §8).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fxlic.fxp.fixpos import encodable_on_dpuczdx8g, shifts_in_dpu_range
from fxlic.reference.modelfile import ModelFile

from .partition import Partition, partition_from_model

NODE_MAP_FORMAT = "fxlic-vitis-nodes"
NODE_MAP_FILE = "fxlic_nodes.json"
SCRIPT_NAME = "vitis_quantize.py"
BIT_WIDTH = 8

# The quantization config the script passes (vai_q_pytorch doc/Quant_Config.md, nndct_shared/quantization/
# quant_config.py): the DPU defaults (int8, diffs, power-of-two, per-tensor, symmetric, full range; activations
# half_up, everything else std_round; modal statistics), with cross-layer equalization and bias correction off.
QUANT_CONFIG = {
    "convert_relu6_to_relu": False,
    "convert_silu_to_hswish": False,
    "include_cle": False,
    "include_bias_corr": False,
    "keep_first_last_layer_accuracy": False,
    "keep_add_layer_accuracy": False,
    "target_device": "DPU",
    "quantizable_data_type": ["input", "weights", "bias", "activation"],
    "overall_quantize_config": {"datatype": "int", "bit_width": 8, "method": "diffs", "round_mode": "std_round",
                                "symmetry": True, "per_channel": False, "signed": True, "narrow_range": False,
                                "scale_type": "poweroftwo", "calib_statistic_method": "modal"},
    "tensor_quantize_config": {"activation": {"round_mode": "half_up"}},
}

# Which subgraph input comes from which golden file (docs/golden.md), per family the script handles.
GOLDEN_INPUTS = {"input": "input.npy", "z_hat": "z_hat.npy", "y_hat": "y_hat.npy"}
GRAPH_NAMES = {"encoder": "Encoder", "hyper_decoder": "HyperDecoder", "decoder": "Decoder"}


class VitisRouteError(ValueError):
    """A model the generated route does not cover, or an unreadable quant_info.json / node map."""


# ---- the spec the script embeds ------------------------------------------------------------------------------------
def script_spec(model: ModelFile, model_path: str, golden: str | None, image: str | None) -> dict:
    """Everything the generated script needs, as JSON: the subgraphs (graph name, inputs with their fix positions and
    golden files, outputs, layers in dataflow order with geometry and positions), the model file's hash."""
    architecture = model.meta.get("architecture", "meanscale")
    if architecture not in ("meanscale", "scalehyper"):
        raise VitisRouteError(f"the generated Vitis route covers the mean-scale family; a {architecture} model's "
                              "S + 2 slice calls still go by hand (docs/board.md §2.2)")
    if model.decoder is not None:
        raise VitisRouteError("a model with a lite decoder: generate the route for the model file alone")
    partition = partition_from_model(model)
    subgraphs = []
    for sg in partition.subgraphs:
        layers = []
        for name in sg.layers:
            spec = partition.layers[name]
            layers.append({"name": name, "input": spec.input, "transposed": spec.transposed,
                           "in_channels": spec.in_channels, "out_channels": spec.out_channels,
                           "kernel": spec.kernel[0], "stride": spec.stride, "padding": spec.padding,
                           "activation": spec.activation,
                           "fix": [spec.fix_in, spec.fix_w, spec.fix_b, spec.fix_out]})
        inputs = [{"name": t, "fix": partition.tensors[t].fix_pos, "channels": partition.tensors[t].channels,
                   "golden": GOLDEN_INPUTS.get(t, f"{t}.npy")} for t in sg.inputs]
        subgraphs.append({"name": sg.name, "graph": GRAPH_NAMES.get(sg.name, sg.name.title().replace("_", "")),
                          "inputs": inputs, "outputs": list(sg.outputs), "layers": layers})
    return {"model": {"name": model.name, "quality": model.quality, "hash": model.content_hash().hex(),
                      "file": model_path},
            "golden": golden, "image": image, "quant_config": QUANT_CONFIG, "subgraphs": subgraphs}


def vitis_script(model: ModelFile, model_path: str, golden: str | None = None, image: str | None = None) -> str:
    """The Python script of the generated route (run inside the Vitis AI container)."""
    spec = json.dumps(script_spec(model, model_path, golden, image), indent=1)
    return _SCRIPT.replace("@@SPEC@@", spec).replace("@@MODEL@@", f"{model.name} q{model.quality}")


_SCRIPT = r'''#!/usr/bin/env python3
"""The Vitis AI quantizer route for fxlic model @@MODEL@@ (generated by `fxlic board vitis-script`; docs/board.md §2.2).

Run inside the Vitis AI 3.5 PyTorch container (`conda activate vitis-ai-pytorch`), next to the model file and the
golden set:

    python vitis_quantize.py [--model-file F.npz] [--golden DIR] [--image NAME] [--out quantize_result]

For each DPU subgraph (encoder, hyper_decoder, decoder) it runs, each step in its own process:
  calib  torch_quantizer("calib", module, (x,), output_dir=OUT/<subgraph>, quant_config_file=…); one forward;
         export_quant_config()  -> quant_info.json; the node map fxlic_nodes.json from the quantizer's graph
  force  quant_info.json := the model file's positions (every weight, bias, layer output and the input); the
         calibrated file is kept as quant_info.calib.json
  test   torch_quantizer("test", …); one forward on the golden input; export_xmodel(OUT/<subgraph>, deploy_check=True)
         -> <Graph>_int.xmodel and deploy_check_data_int/<Graph>/; names.json for `fxlic board compare`
Then, on any host with fxlic:  fxlic board check-quant-info OUT/<subgraph>/quant_info.json --model-file F.npz
                               fxlic board compare --golden DIR --dump OUT/<subgraph>/deploy_check_data_int/<Graph> \
                                   --names OUT/<subgraph>/names.json --image NAME --subgraph <subgraph>
No hand edits are needed; the script refuses a model file other than the one it was generated for.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import torch
from torch import nn

SPEC = json.loads(r"""@@SPEC@@""")
ACTIVATION_NODES = ("nndct_relu", "nndct_leaky_relu")


def content_hash(npz):
    """The model file's content hash (docs/model-file.md): canonical meta, then each array, little-endian."""
    h = hashlib.sha256()
    meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
    h.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(k for k in npz.files if k != "meta"):
        array = np.ascontiguousarray(npz[name], dtype=npz[name].dtype.newbyteorder("<"))
        h.update(name.encode())
        h.update(array.dtype.str.encode())
        h.update(repr(array.shape).encode())
        h.update(array.tobytes())
    return h.hexdigest()


class Subgraph(nn.Module):
    """One DPU subgraph as plain float modules. Parameters are named <layer>.weight / <layer>.bias (fxlic's names),
    so the quantizer's parameter names are <Graph>::<layer>.weight."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.acts = nn.ModuleDict()
        for layer in spec["layers"]:
            cls = nn.ConvTranspose2d if layer["transposed"] else nn.Conv2d
            conv = cls(layer["in_channels"], layer["out_channels"], layer["kernel"], layer["stride"],
                       layer["padding"], bias=True)
            holder, parts = self, layer["name"].split(".")  # g_a.0 -> self.g_a["0"]: parameter g_a.0.weight
            for part in parts[:-1]:
                if part not in holder._modules:
                    holder.add_module(part, nn.ModuleDict())
                holder = holder._modules[part]
            holder.add_module(parts[-1], conv)
            if layer["activation"] == "relu":
                self.acts[layer["name"].replace(".", "_")] = nn.ReLU()
            elif layer["activation"] == "leaky_relu":
                self.acts[layer["name"].replace(".", "_")] = nn.LeakyReLU(26.0 / 256.0)

    def conv(self, name):
        holder = self
        for part in name.split("."):
            holder = holder._modules[part]
        return holder

    def forward(self, *inputs):
        tensors = {item["name"]: x for item, x in zip(self.spec["inputs"], inputs)}
        for layer in self.spec["layers"]:
            out = self.conv(layer["name"])(tensors[layer["input"]])
            act = layer["name"].replace(".", "_")
            tensors[layer["name"]] = self.acts[act](out) if act in self.acts else out
        outputs = tuple(tensors[name] for name in self.spec["outputs"])
        return outputs if len(outputs) > 1 else outputs[0]


def build(spec, npz):
    """The float module of a subgraph with integer-exact weights: q * 2^-f (exact in float32)."""
    cls = type(spec["graph"], (Subgraph,), {})  # the quantizer names the graph after the module's class
    module = cls(spec)
    with torch.no_grad():
        for layer in spec["layers"]:
            _, f_w, f_b, _ = layer["fix"]
            weight = npz[layer["name"] + ".weight"].astype(np.float64) * 2.0 ** -f_w
            bias = npz[layer["name"] + ".bias"].astype(np.float64) * 2.0 ** -f_b
            conv = module.conv(layer["name"])
            conv.weight.copy_(torch.from_numpy(weight).float())
            conv.bias.copy_(torch.from_numpy(bias).float())
            back = np.round(conv.weight.detach().double().numpy() * 2.0 ** f_w)
            assert np.array_equal(back, npz[layer["name"] + ".weight"]), layer["name"] + ": weights not exact"
    return module.eval()


def golden_inputs(spec, args):
    """Each subgraph input from the golden set: int8 codes q (CHW) at the input's fix position, as q * 2^-fix."""
    if not args.golden:
        sys.exit("the calibration and test passes need a golden set (fxlic golden make): --golden DIR")
    folder = os.path.join(args.golden, args.image) if args.image else args.golden
    if not os.path.isfile(os.path.join(folder, spec["inputs"][0]["golden"])):
        images = sorted(d for d in os.listdir(args.golden) if os.path.isdir(os.path.join(args.golden, d)))
        if not images:
            sys.exit("no golden image under " + args.golden)
        folder = os.path.join(args.golden, images[0])
    xs = []
    for item in spec["inputs"]:
        codes = np.load(os.path.join(folder, item["golden"])).astype(np.float64)
        xs.append(torch.from_numpy(codes * 2.0 ** -item["fix"]).float()[None])
    return tuple(xs)


def quantizer(mode, module, xs, out):
    from pytorch_nndct.apis import torch_quantizer

    return torch_quantizer(mode, module, xs, output_dir=out, device=torch.device("cpu"),
                           quant_config_file=os.path.join(out, "fxlic_quant_config.json"))


def short(name):
    return name.split("::", 1)[-1]


def node_map(q, spec):
    """fxlic layer -> quantizer names: its weight and bias parameters, the node that ends the layer (the ReLU when
    fused, else the conv; the node whose output quant_info.json quantizes) and each input node."""
    graph = q.processor.quantizer.Nndctgraph
    nodes = list(graph.all_nodes())
    by_param = {}
    for node in nodes:
        params = getattr(node.op, "params", None) or {}
        for tensor in params.values():
            for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
                by_param[short(t.name)] = (node, t.name)
    layers = {}
    for layer in spec["layers"]:
        name = layer["name"]
        if name + ".weight" not in by_param:
            sys.exit("the quantizer's graph has no parameter " + name + ".weight; found " + ", ".join(sorted(by_param)))
        conv, weight = by_param[name + ".weight"]
        children = graph.children(conv)
        end = children[0] if len(children) == 1 and children[0].op.type in ACTIVATION_NODES else conv
        layers[name] = {"weight": weight, "bias": by_param[name + ".bias"][1], "output": end.normalized_name,
                        "output_node": end.name, "conv": conv.normalized_name}
    inputs = [n for n in nodes if n.op.type == "nndct_input"]
    if len(inputs) != len(spec["inputs"]):
        sys.exit("expected %d input node(s), the quantizer's graph has %d" % (len(spec["inputs"]), len(inputs)))
    inputs.sort(key=lambda n: int(n.normalized_name.rsplit("_", 1)[1]))
    return {"format": "fxlic-vitis-nodes", "version": 1, "graph": spec["graph"], "subgraph": spec["name"],
            "model_hash": SPEC["model"]["hash"], "layers": layers,
            "inputs": {item["name"]: {"output": n.normalized_name, "output_node": n.name}
                       for item, n in zip(spec["inputs"], inputs)}}


def step_calib(spec, module, xs, out):
    q = quantizer("calib", module, xs, out)
    with torch.no_grad():
        q.quant_model(*xs)
    q.export_quant_config()
    with open(os.path.join(out, "fxlic_nodes.json"), "w") as f:
        json.dump(node_map(q, spec), f, indent=1)


def step_force(spec, out):
    path = os.path.join(out, "quant_info.json")
    with open(path) as f:
        info = json.load(f)
    with open(os.path.join(out, "fxlic_nodes.json")) as f:
        nodes = json.load(f)
    with open(os.path.join(out, "quant_info.calib.json"), "w") as f:
        json.dump(info, f, indent=1)
    wanted = []
    fix_of = {item["name"]: item["fix"] for item in spec["inputs"]}
    for item in spec["inputs"]:
        wanted.append(("output", nodes["inputs"][item["name"]]["output"], item["fix"], item["name"]))
    for layer in spec["layers"]:
        names = nodes["layers"][layer["name"]]
        f_in, f_w, f_b, f_out = layer["fix"]
        assert fix_of[layer["input"]] == f_in, layer["name"] + ": input position differs from its producer's"
        fix_of[layer["name"]] = f_out
        wanted += [("param", names["weight"], f_w, layer["name"] + ".weight"),
                   ("param", names["bias"], f_b, layer["name"] + ".bias"),
                   ("output", names["output"], f_out, layer["name"])]
    print("%-14s %-28s %-44s %6s %6s" % ("subgraph", "fxlic", "quant_info.json", "calib", "forced"))
    for kind, key, fix, ours in wanted:
        if key not in info[kind]:
            sys.exit("quant_info.json has no %s entry %r (for %s)" % (kind, key, ours))
        before = info[kind][key][0][1] if info[kind][key] and info[kind][key][0] else None
        info[kind][key] = [[8, int(fix)]]
        print("%-14s %-28s %-44s %6s %6d" % (spec["name"], ours, key, before, fix))
    with open(path, "w") as f:
        json.dump(info, f, indent=1)


def step_test(spec, module, xs, out):
    q = quantizer("test", module, xs, out)
    with torch.no_grad():
        q.quant_model(*xs)
    q.export_xmodel(output_dir=out, deploy_check=True)
    with open(os.path.join(out, "fxlic_nodes.json")) as f:
        nodes = json.load(f)
    tensors = {name: entry["output_node"] + "_fix" for name, entry in nodes["inputs"].items()}
    tensors.update({name: entry["output_node"] + "_fix" for name, entry in nodes["layers"].items()})
    params = {}
    for name, entry in nodes["layers"].items():
        params[name + ".weight"], params[name + ".bias"] = entry["weight"], entry["bias"]
    names = {"format": "fxlic-board-names", "version": 1, "graph": spec["graph"],
             "note": "written by the generated Vitis route from the quantizer's graph (fxlic_nodes.json)",
             "subgraphs": {spec["name"]: spec["graph"]}, "tensors": tensors, "params": params}
    with open(os.path.join(out, "names.json"), "w") as f:
        json.dump(names, f, indent=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-file", default=SPEC["model"]["file"])
    p.add_argument("--golden", default=SPEC["golden"])
    p.add_argument("--image", default=SPEC["image"])
    p.add_argument("--out", default="quantize_result")
    p.add_argument("--subgraph", action="append", help="only this subgraph (repeatable; default: all)")
    p.add_argument("--step", choices=("calib", "force", "test"), help="one step of one subgraph (internal)")
    args = p.parse_args(argv)
    npz = np.load(args.model_file, allow_pickle=False)
    if content_hash(npz) != SPEC["model"]["hash"]:
        sys.exit(args.model_file + " is not the model file this script was generated for (hash "
                 + SPEC["model"]["hash"][:16] + "); run fxlic board vitis-script again")
    chosen = [sg for sg in SPEC["subgraphs"] if not args.subgraph or sg["name"] in args.subgraph]
    if args.step is None:  # every step of every subgraph, each in a fresh process (as calib / test runs are)
        for sg in chosen:
            out = os.path.join(args.out, sg["name"])
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "fxlic_quant_config.json"), "w") as f:
                json.dump(SPEC["quant_config"], f, indent=1)
            for step in ("calib", "force", "test"):
                cmd = [sys.executable, os.path.abspath(__file__), "--model-file", args.model_file, "--out", args.out,
                       "--subgraph", sg["name"], "--step", step]
                cmd += ["--golden", args.golden] if args.golden else []
                cmd += ["--image", args.image] if args.image else []
                print("==> %s: %s" % (sg["name"], step), flush=True)
                subprocess.run(cmd, check=True)
        print("done: compile with vai_c_xir -x %s/<subgraph>/<Graph>_int.xmodel (docs/board.md §2.3)" % args.out)
        return 0
    for sg in chosen:
        out = os.path.join(args.out, sg["name"])
        if args.step == "force":
            step_force(sg, out)
            continue
        module = build(sg, npz)
        xs = golden_inputs(sg, args)
        (step_calib if args.step == "calib" else step_test)(sg, module, xs, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


# ---- check-quant-info -----------------------------------------------------------------------------------------------
@dataclass
class PositionCheck:
    """One position of one layer: the model file's and the quant_info.json's."""

    layer: str
    kind: str  # input | weight | bias | output
    key: str | None  # the quant_info.json entry ("param" or "output" key), None when unmapped
    model: int
    found: int | None
    exact: bool  # the xmodel still computes the golden model's integers with this position
    note: str = ""


@dataclass
class QuantInfoReport:
    graph: str
    checks: list[PositionCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unmapped entries, bad bit widths, DPU-illegal shifts

    @property
    def differing(self) -> list[PositionCheck]:
        return [c for c in self.checks if c.found != c.model]

    @property
    def matches(self) -> bool:
        return not self.problems and all(c.exact for c in self.checks)


def load_quant_info(path: str | Path) -> dict:
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VitisRouteError(f"{path}: unreadable quant_info.json ({exc})") from None
    if not isinstance(info, dict) or not all(isinstance(info.get(k), dict) for k in ("param", "output")):
        raise VitisRouteError(f"{path}: not a vai_q_pytorch quant_info.json (no 'param' / 'output' tables)")
    return info


def _entry(info: dict, kind: str, key: str) -> tuple[int | None, int | None]:
    """(bit width, fix point) of a quant_info entry ``[[bw, fp], …]`` (the first element, as the deploy checker reads
    ``quant_configs[kind][name][0]``); (None, None) when absent or not calibrated."""
    value = info.get(kind, {}).get(key)
    if not value or value[0] is None or len(value[0]) < 2:
        return None, None
    bits, fix = value[0][0], value[0][1]
    return (None if bits is None else int(bits)), (None if fix is None else int(fix))


def _same_values(codes: np.ndarray, model_fix: int, fix: int) -> bool:
    """Whether the xmodel's int8 codes at ``fix`` (STD_ROUND of q·2^(fix − model_fix)) are the same real numbers."""
    q = codes.astype(np.int64)
    if fix >= model_fix:
        scaled = q << (fix - model_fix)
        return bool(np.all((scaled >= -128) & (scaled <= 127)))
    return bool(np.all(q % (1 << (model_fix - fix)) == 0))


def default_node_map(info: dict, model: ModelFile, subgraph: str | None) -> dict:
    """Without fxlic_nodes.json: parameters by the generated modules' names (``<Graph>::<layer>.weight``); outputs
    cannot be told apart by name (``<Graph>::nndct_relu_<n>``), so they stay unmapped."""
    graphs = {key.split("::", 1)[0] for key in info["param"] if "::" in key}
    if len(graphs) != 1:
        raise VitisRouteError("quant_info.json's parameters are not of one graph; pass --node-map")
    graph = graphs.pop()
    layers = {}
    for key in info["param"]:
        short = key.split("::", 1)[1]
        layer, _, kind = short.rpartition(".")
        if layer in model.layers and kind in ("weight", "bias"):
            layers.setdefault(layer, {})[kind] = key
    name = subgraph or {v: k for k, v in GRAPH_NAMES.items()}.get(graph, graph)
    return {"format": NODE_MAP_FORMAT, "version": 1, "graph": graph, "subgraph": name, "layers": layers,
            "inputs": {}}


def check_quant_info(info: dict, model: ModelFile, nodes: dict | None = None,
                     partition: Partition | None = None) -> QuantInfoReport:
    """Compare a quant_info.json with a model file, layer by layer (``nodes``: the node map of the generated route;
    without it, parameters only).

    A weight or bias at another position is still exact when the xmodel's codes are the same real numbers (a finer
    position without saturation, or a coarser one that drops only zero bits) and the layer's shifts stay DPU-legal;
    an input or layer output at another position never is: the DPU then writes other integers than the golden model
    (and ``fxlic board run`` refuses the xmodel's fix_point)."""
    partition = partition or partition_from_model(model)
    if nodes is None:
        nodes = default_node_map(info, model, None)
    if nodes.get("format") != NODE_MAP_FORMAT:
        raise VitisRouteError("not an fxlic node map (fxlic_nodes.json of the generated route)")
    subgraph = partition.subgraph(nodes["subgraph"])
    report = QuantInfoReport(graph=str(nodes.get("graph", subgraph.name)))
    found_fix: dict[str, int | None] = {}
    for tensor in subgraph.inputs:
        entry = nodes.get("inputs", {}).get(tensor)
        want = partition.tensors[tensor].fix_pos
        if entry is None:
            report.problems.append(f"input {tensor}: not in the node map, its position (fix {want}) is not checked")
            found_fix[tensor] = want
            continue
        bits, fix = _entry(info, "output", entry["output"])
        found_fix[tensor] = fix
        report.checks.append(PositionCheck(tensor, "input", entry["output"], want, fix, fix == want))
        if bits not in (None, BIT_WIDTH):
            report.problems.append(f"input {tensor}: bit width {bits} in {entry['output']!r}: the DPU takes int8")
    for name in subgraph.layers:
        layer = model.layers[name]
        spec = partition.layers[name]
        entry = nodes.get("layers", {}).get(name, {})
        positions = {}
        for kind, want, codes in (("weight", layer.fix_w, layer.weight), ("bias", layer.fix_b, layer.bias)):
            key = entry.get(kind)
            if key is None:
                report.problems.append(f"{name}: no quant_info.json parameter for its {kind} (node map)")
                positions[kind] = want
                continue
            bits, fix = _entry(info, "param", key)
            positions[kind] = want if fix is None else fix
            if bits not in (None, BIT_WIDTH):
                report.problems.append(f"{name}: {kind} bit width {bits} in {key!r}: the DPU takes int8")
            exact = fix is not None and (fix == want or _same_values(codes, want, fix))
            note = "" if fix in (None, want) else ("same values at another position" if exact else
                                                    "other int8 values: the layer computes something else")
            report.checks.append(PositionCheck(name, kind, key, want, fix, exact, note))
        key = entry.get("output")
        if key is None:
            report.problems.append(f"{name}: output node not in the node map (pass the generated route's "
                                   f"{NODE_MAP_FILE}); its position (fix {layer.fix_out}) is not checked")
            positions["output"] = layer.fix_out
        else:
            bits, fix = _entry(info, "output", key)
            positions["output"] = layer.fix_out if fix is None else fix
            report.checks.append(PositionCheck(name, "output", key, layer.fix_out, fix, fix == layer.fix_out))
            if bits not in (None, BIT_WIDTH):
                report.problems.append(f"{name}: output bit width {bits} in {key!r}: the DPU takes int8")
        found_fix[name] = positions["output"]
        f_in = found_fix.get(spec.input, layer.fix_in)
        f_in = layer.fix_in if f_in is None else f_in
        shift_cut = positions["weight"] + f_in - positions["output"]
        shift_bias = positions["weight"] + f_in - positions["bias"]
        if not (shifts_in_dpu_range(shift_cut, shift_bias) and encodable_on_dpuczdx8g(shift_cut, shift_bias)):
            report.problems.append(f"{name}: with these positions shift_cut = {shift_cut}, shift_bias = {shift_bias}: "
                                   "outside what the DPU takes (FXP-P1, FXP-P5); the quantizer's export would move "
                                   "positions again")
    return report


def format_quant_info_report(report: QuantInfoReport, model: ModelFile) -> str:
    lines = [f"quant_info.json of graph {report.graph} vs model file {model.name} q{model.quality} "
             f"({model.content_hash().hex()[:12]})",
             f"  {'layer':14s} {'position':8s} {'model':>5s} {'quant_info':>10s}  entry"]
    for c in report.checks:
        mark = "" if c.found == c.model else ("  differs, still exact" if c.exact else "  DIFFERS")
        lines.append(f"  {c.layer:14s} {c.kind:8s} {c.model:5d} {str(c.found):>10s}  {c.key}{mark}")
    differing = report.differing
    lines.append(f"  {len(report.checks)} positions compared, {len(differing)} differ")
    for c in differing:
        if c.exact:
            lines.append(f"  {c.layer}: {c.kind} at fix {c.found} instead of {c.model}: {c.note}; the outputs stay "
                         "bit-exact (to match the golden set's weights file for file, set it back anyway)")
        else:
            kind = "param" if c.kind in ("weight", "bias") else "output"
            what = {"input": "the xmodel reads its input at another position than the codec feeds",
                    "output": "the DPU writes this tensor at another position than the golden model",
                    }.get(c.kind, c.note or "no position")
            lines.append(f"  {c.layer}: {c.kind} fix {c.found} instead of {c.model}: {what}. Change: "
                         f"quant_info[{kind!r}][{c.key!r}] = [[8, {c.model}]] (fxlic board vitis-script forces every "
                         "position)")
    lines += [f"  problem: {p}" for p in report.problems]
    verdict = "yes" if report.matches else "no"
    lines.append(f"  result: the xmodel built from it would match the golden model: {verdict}")
    return "\n".join(lines)


# ---- the CLI commands ---------------------------------------------------------------------------------------------
def _model(args: argparse.Namespace) -> tuple[ModelFile, str]:
    from fxlic import models

    model = models.load(args.model, args.quality, args.model_file)
    path = args.model_file or (str(model.path) if model.path is not None else f"{model.name}-q{model.quality}.npz")
    return model, path


def cmd_vitis_script(args: argparse.Namespace) -> int:
    model, path = _model(args)
    text = vitis_script(model, Path(path).name if not args.keep_path else path, args.golden, args.image)
    out = Path(args.out)
    out.write_text(text)
    out.chmod(0o755)
    print(f"wrote {out}: the vai_q_pytorch route for {model.name} q{model.quality} "
          f"({model.content_hash().hex()[:12]}); run it inside the Vitis AI container: python {out.name}")
    return 0


def cmd_check_quant_info(args: argparse.Namespace) -> int:
    from fxlic import models

    model = models.load(args.model, args.quality, args.model_file)
    info = load_quant_info(args.quant_info)
    node_path = Path(args.node_map) if args.node_map else Path(args.quant_info).with_name(NODE_MAP_FILE)
    nodes = None
    if node_path.is_file():
        nodes = json.loads(node_path.read_text())
    elif args.node_map:
        raise VitisRouteError(f"{node_path}: no such node map")
    if nodes is None:
        nodes = default_node_map(info, model, args.subgraph)
    elif args.subgraph:
        nodes = {**nodes, "subgraph": args.subgraph}
    report = check_quant_info(info, model, nodes)
    if args.json:
        print(json.dumps({"graph": report.graph, "matches": report.matches, "problems": report.problems,
                          "checks": [c.__dict__ for c in report.checks]}, indent=1))
    else:
        print(format_quant_info_report(report, model))
    return 0 if report.matches else 1


def add_vitis_commands(sub) -> None:
    """``vitis-script`` and ``check-quant-info`` under ``fxlic board``."""
    from fxlic.options import add_model_options

    p = sub.add_parser("vitis-script", help="write the Vitis AI quantizer route (run inside the Vitis AI container)")
    add_model_options(p, "generate the route for")
    p.add_argument("-o", "--out", default=SCRIPT_NAME, help=f"script to write (default {SCRIPT_NAME})")
    p.add_argument("--golden", help="golden set whose input the calibration and test passes use (default: given "
                                    "to the script at run time)")
    p.add_argument("--image", help="the golden image (default: the set's first)")
    p.add_argument("--keep-path", action="store_true", help="default the script's --model-file to the path given "
                                                           "here (default: its file name, next to the script)")
    p.set_defaults(func=cmd_vitis_script)

    p = sub.add_parser("check-quant-info", help="compare a vai_q quant_info.json with a model file, layer by layer")
    p.add_argument("quant_info", help="quant_info.json (vai_q_pytorch calibration / the generated route)")
    add_model_options(p, "compare with")
    p.add_argument("--node-map", help=f"the route's {NODE_MAP_FILE} (default: next to quant_info.json; without it "
                                      "only parameters are checked)")
    p.add_argument("--subgraph", help="which subgraph the quant_info.json is (default: from the node map / graph)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_check_quant_info)
