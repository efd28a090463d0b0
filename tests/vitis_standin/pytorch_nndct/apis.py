"""Stand-in of ``pytorch_nndct.apis.torch_quantizer`` (vai_q_pytorch, Vitis AI 3.5) for tests: records the calls.

Written from the Vitis-AI sources (tests/vitis_standin/README.md lists them); it is not the quantizer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OP_TYPES = {nn.Conv2d: "nndct_conv2d", nn.ConvTranspose2d: "nndct_conv_transpose_2d", nn.ReLU: "nndct_relu",
            nn.LeakyReLU: "nndct_leaky_relu"}
ACTIVATIONS = ("nndct_relu", "nndct_leaky_relu")
# quant_config.py _keywords_legel
MODEL_KEYS = {"convert_relu6_to_relu", "convert_silu_to_hswish", "include_cle", "keep_first_last_layer_accuracy",
              "keep_add_layer_accuracy", "include_bias_corr", "target_device", "onnx_opset_version",
              "change_concat_input_fix", "change_pool_input_fix", "quantizable_data_type", "overall_quantize_config",
              "tensor_quantize_config", "layer_quantize_config"}
PARAM_KEYS = {"datatype", "bit_width", "method", "round_mode", "symmetry", "per_channel", "signed", "narrow_range",
              "scale_type", "calib_statistic_method", "percentage"}
CUDA = torch.device("cuda")  # the API's default device
DEFAULTS = {"include_cle": True, "include_bias_corr": True}  # doc/Quant_Config.md "Default Configurations"


def _record(call: str, **fields) -> None:
    log = os.environ.get("FXLIC_STANDIN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"call": call, **fields}, sort_keys=True) + "\n")


class Tensor:
    def __init__(self, name: str) -> None:
        self.name = name


class Op:
    def __init__(self, type_: str, params: dict | None = None) -> None:
        self.type = type_
        self.params = params or {}


class Node:
    def __init__(self, name: str, op: Op, in_nodes: list[str], module: nn.Module | None, qualname: str | None):
        self.name = name
        self.op = op
        self.in_nodes = in_nodes
        self.normalized_name = ""
        self.module = module
        self.qualname = qualname


class Graph:
    def __init__(self, name: str, nodes: list[Node]) -> None:
        self.name = name
        self.nodes = nodes
        self._by_name = {n.name: n for n in nodes}
        for i, n in enumerate(nodes):  # assign_node_topological_name: <graph>::<op type>_<counter>
            n.normalized_name = f"{name}::{re.sub('[^0-9a-zA-Z_]+', '_', n.op.type)}_{i}"

    def all_nodes(self):
        return iter(self.nodes)

    def node(self, name: str) -> Node | None:
        return self._by_name.get(name)

    def parents(self, node: Node) -> list[Node]:
        return [self._by_name[n] for n in node.in_nodes]

    def children(self, node: Node) -> list[Node]:
        return [n for n in self.nodes if node.name in n.in_nodes]

    def md5(self) -> str:
        return hashlib.md5(" ".join(n.op.type for n in self.nodes).encode()).hexdigest()


def _trace(module: nn.Module, args: tuple) -> Graph:
    """The graph of ``module`` from one forward (leaf modules in execution order: a topological order)."""
    graph_name = module._get_name()  # module_util.get_module_name
    names = {m: q for q, m in module.named_modules()}
    producer: dict[int, str] = {}
    keep: list[torch.Tensor] = []
    nodes: list[Node] = []
    for i, x in enumerate(args):
        node = Node(f"{graph_name}::input_{i}", Op("nndct_input"), [], None, None)
        producer[id(x)] = node.name
        keep.append(x)
        nodes.append(node)
    hooks = []

    def hook(mod, inputs, output):
        qualname = names[mod]
        op_type = OP_TYPES[type(mod)]
        params = {}
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            params = {"weights": Tensor(f"{graph_name}::{qualname}.weight"),
                      "bias": Tensor(f"{graph_name}::{qualname}.bias")}
        cls = type(mod).__name__
        node = Node(f"{graph_name}::{graph_name}/{cls}[{qualname}]/ret.{len(nodes)}", Op(op_type, params),
                    [producer[id(inputs[0])]], mod, qualname)
        producer[id(output)] = node.name
        keep.append(output)
        nodes.append(node)

    for mod in module.modules():
        if type(mod) in OP_TYPES:
            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = module(*args)
    finally:
        for h in hooks:
            h.remove()
    outs = out if isinstance(out, tuple) else (out,)
    nodes.append(Node(f"{graph_name}::return_0", Op("nndct_return"), [producer[id(o)] for o in outs], None, None))
    return Graph(graph_name, nodes)


def _groups(graph: Graph) -> dict[str, Node]:
    """Quantized output node of every quantizable node (quant_strategy.create_quant_config): a conv followed by its
    only ReLU / LeakyReLU is one group whose output the activation node carries; an input node carries its own."""
    outputs: dict[str, Node] = {}
    for node in graph.nodes:
        if node.op.type == "nndct_input":
            outputs[node.name] = node
        elif node.op.type in ("nndct_conv2d", "nndct_conv_transpose_2d"):
            children = graph.children(node)
            end = children[0] if len(children) == 1 and children[0].op.type in ACTIVATIONS else node
            outputs[node.name] = end
    return outputs


def _fix_from_max(value: float) -> int:
    if value <= 0:
        return 12
    mantissa, exponent = math.frexp(value)
    return min(12, 7 - (exponent - 1 if mantissa == 0.5 else exponent))


def _std_round(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def _check_config(path: str | None) -> dict:
    """Parse the quantization config as quant_config.py does (keywords, DPU constraints); the effective switches."""
    if path is None:
        return dict(DEFAULTS)
    with open(path) as f:
        config = json.load(f)
    unknown = set(config) - MODEL_KEYS
    if unknown:
        raise SystemExit(f"Unsupported keyword in quantization config: {sorted(unknown)}")
    overall = config.get("overall_quantize_config", {})
    tensors = {t: {**overall, **config.get("tensor_quantize_config", {}).get(t, {})}
               for t in config.get("quantizable_data_type", [])}
    for t, params in tensors.items():
        if set(params) - PARAM_KEYS:
            raise SystemExit(f"Unsupported keyword in quantization config: {sorted(set(params) - PARAM_KEYS)}")
        if config.get("target_device") == "DPU" and params.get("datatype", "int") == "int":
            want = "half_up" if t == "activation" else "std_round"
            if params.get("round_mode", want) != want:
                raise SystemExit(f"Only support {want} round method in {t} quantization of DPU device")
            if params.get("scale_type", "poweroftwo") != "poweroftwo" or params.get("per_channel", False) or \
                    params.get("narrow_range", False) or not params.get("symmetry", True) or \
                    params.get("method", "diffs") not in ("diffs", "maxmin"):
                raise SystemExit(f"quant config of {t} is not DPU-legal")
    return {"include_cle": config.get("include_cle", True), "include_bias_corr": config.get("include_bias_corr", True),
            "target_device": config.get("target_device"), "tensors": tensors}


class _Quantizer:
    def __init__(self, graph: Graph) -> None:
        self.Nndctgraph = graph


class _Processor:
    def __init__(self, graph: Graph) -> None:
        self.quantizer = _Quantizer(graph)


class torch_quantizer:  # noqa: N801 - the API's spelling
    def __init__(self, quant_mode, module, input_args=None, input_kwargs=None, state_dict_file=None,
                 output_dir="quantize_result", bitwidth=None, mix_bit=False, device=CUDA,
                 lstm=False, app_deploy="CV", qat_proc=False, custom_quant_ops=None, quant_config_file=None,
                 target=None, dynamo=False):
        args = input_args if isinstance(input_args, tuple) else (input_args,)
        self.mode = quant_mode
        self.module = module
        self.output_dir = output_dir
        self.config = _check_config(quant_config_file)
        self.graph = _trace(module, args)
        self.processor = _Processor(self.graph)
        self.outputs = _groups(self.graph)
        self.forwarded = False
        self.codes: dict[str, np.ndarray] = {}
        os.makedirs(output_dir, exist_ok=True)
        self.quant_file = os.path.join(output_dir, "quant_info.json")
        loaded = None
        if quant_mode == "test":
            with open(self.quant_file) as f:
                self.info = json.load(f)
            self._check_names()
            loaded = {"param": {k: v[0][1] for k, v in self.info["param"].items()},
                      "output": {k: v[0][1] for k, v in self.info["output"].items()}}
        _record("torch_quantizer", quant_mode=quant_mode, module=module._get_name(), output_dir=output_dir,
                input_shapes=[list(a.shape) for a in args], device=str(device), quant_config_file=quant_config_file,
                include_cle=self.config["include_cle"], include_bias_corr=self.config["include_bias_corr"],
                loaded=loaded, weights={n.qualname: n.module.weight.detach().double().numpy().ravel()[:4].tolist()
                                        for n in self.graph.nodes if n.op.params})

    # ---- names -------------------------------------------------------------------------------------------------
    def _param_names(self) -> list[str]:
        return [t.name for n in self.graph.nodes for t in n.op.params.values()]

    def _output_names(self) -> list[str]:
        return list(dict.fromkeys(end.normalized_name for end in self.outputs.values()))

    def _check_names(self) -> None:  # quant_config_imp.load_quant_config / illegal_quant_info
        missing = [p for p in self._param_names() if p not in self.info["param"]]
        missing += [o for o in self._output_names() if o not in self.info["output"]]
        if missing or self.info.get("graph_md5", self.graph.md5()) != self.graph.md5():
            raise RuntimeError(f"Node name mismatch is found when loading quantization steps of tensors: {missing}")

    # ---- API ---------------------------------------------------------------------------------------------------
    @property
    def quant_model(self):
        def run(*args):
            _record("quant_model.forward", quant_mode=self.mode, input_shapes=[list(a.shape) for a in args])
            self.forwarded = True
            if self.mode == "calib":
                self.ranges = self._float_ranges(args)
                return self.module(*args)
            return self._quantized_forward(args)

        return run

    def _float_ranges(self, args) -> dict[str, float]:
        ranges = {}
        values = {n.name: a for n, a in zip(self.graph.nodes, args)}
        with torch.no_grad():
            for node in self.graph.nodes[len(args):-1]:
                values[node.name] = node.module(values[node.in_nodes[0]])
                ranges[node.name] = float(values[node.name].abs().max())
        ranges.update({n.name: float(a.abs().max()) for n, a in zip(self.graph.nodes, args)})
        return ranges

    def _quantized_forward(self, args):
        info = self.info
        values: dict[str, torch.Tensor] = {}
        out_fix = {end.normalized_name: info["output"][end.normalized_name][0][1] for end in self.outputs.values()}
        for node, a in zip(self.graph.nodes, args):
            fix = out_fix[node.normalized_name]
            values[node.name] = torch.clamp(_std_round(a.double() * 2.0**fix), -128, 127) * 2.0**-fix
        for node in self.graph.nodes[len(args):-1]:
            x = values[node.in_nodes[0]]
            if node.op.params:
                f_w = info["param"][node.op.params["weights"].name][0][1]
                f_b = info["param"][node.op.params["bias"].name][0][1]
                w = torch.clamp(_std_round(node.module.weight.detach().double() * 2.0**f_w), -128, 127) * 2.0**-f_w
                b = torch.clamp(_std_round(node.module.bias.detach().double() * 2.0**f_b), -128, 127) * 2.0**-f_b
                conv = F.conv_transpose2d if isinstance(node.module, nn.ConvTranspose2d) else F.conv2d
                y = conv(x, w, b, node.module.stride, node.module.padding)
            else:
                y = node.module(x)
            if node.normalized_name in out_fix:  # quantized output: half up (DPU_ROUND), saturate
                fix = out_fix[node.normalized_name]
                y = torch.clamp(torch.floor(y * 2.0**fix + 0.5), -128, 127) * 2.0**-fix
            values[node.name] = y
        for end in self.outputs.values():
            fix = out_fix[end.normalized_name]
            self.codes[end.name] = torch.round(values[end.name] * 2.0**fix).to(torch.int8).numpy()
        outs = tuple(values[n] for n in self.graph.nodes[-1].in_nodes)
        return outs if len(outs) > 1 else outs[0]

    def export_quant_config(self):
        _record("export_quant_config", quant_mode=self.mode, forwarded=self.forwarded)
        if self.mode != "calib" or not self.forwarded:
            raise RuntimeError("Quantization is not performed completely, check if module FORWARD function is called!")
        info = {"param": {}, "output": {}, "input": {}}
        for node in self.graph.nodes:
            for tensor in node.op.params.values():
                data = getattr(node.module, "weight" if tensor.name.endswith(".weight") else "bias")
                info["param"][tensor.name] = [[8, _fix_from_max(float(data.detach().abs().max()))]]
        for end in self.outputs.values():
            info["output"][end.normalized_name] = [[8, _fix_from_max(self.ranges[end.name])]]
        info.update({"fast_finetuned": False, "bias_corrected": bool(self.config["include_bias_corr"]),
                     "version": "stand-in (Vitis AI 3.5 layout)", "graph_md5": self.graph.md5()})
        with open(self.quant_file, "w") as f:
            json.dump(info, f, indent=1)

    def export_xmodel(self, output_dir="quantize_result", deploy_check=False, dynamic_batch=False):
        _record("export_xmodel", quant_mode=self.mode, output_dir=output_dir, deploy_check=deploy_check,
                forwarded=self.forwarded)
        if self.mode != "test" or not self.forwarded:
            raise RuntimeError("torch_quantizer.quant_model FORWARD function must be called before exporting")
        with open(os.path.join(output_dir, f"{self.graph.name}_int.xmodel"), "w") as f:
            f.write("stand-in: not an xmodel\n")
        if not deploy_check:
            return
        folder = os.path.join(output_dir, "deploy_check_data_int", self.graph.name)
        os.makedirs(folder, exist_ok=True)
        shapes = []
        for name, codes in self.codes.items():
            nhwc = np.ascontiguousarray(codes.transpose(0, 2, 3, 1)).astype(np.int8)
            nhwc.tofile(os.path.join(folder, re.sub(r"[^0-9A-Za-z]", "_", name + "_fix") + ".bin"))
            shapes.append(f"{list(nhwc.shape)}: {name}")
        with open(os.path.join(folder, "shape.txt"), "w") as f:
            f.write("\n".join(shapes) + "\n")
