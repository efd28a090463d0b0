"""``fxlic hw-report``: FPGA suitability of a learned-codec architecture on the Vitis AI DPU (DPUCZDX8G).

For ``meanscale`` (Minnen 2018, DPU-deployable), ``charm`` (Minnen & Singh 2020 on the same transforms),
``wacnn`` (Zou et al. 2022 as published, float graph, ``fxlic.qat.wacnn``) and ``wacnn-dpu`` (the same with
every non-attention op made DPU-legal) the float graph is run once on a 256×256 probe
with a forward hook on every op, in *decode order* (the entropy decoder's CPU steps inserted where they
happen), and each op is classified:

* per op: MACs per image pixel, parameters, activation memory at 1080p (1920×1088 padded, int8), where it
  runs (DPU or CPU, with the reason), encode or decode side;
* totals: MACs per pixel, parameters, the DPU share of the MACs, the CPU op kinds, DPU↔CPU round trips per
  decoded image (DPU calls: maximal runs of DPU ops between CPU steps), and an estimated decode frame rate
  on KV260 (1× B4096 at 300 MHz) and ZCU102 (3× B4096 at 300 MHz) from the assumptions in ``ASSUMPTIONS``.

Needs torch (the graphs are torch modules: ``pip install -e .[qat]``). ``--doc PATH`` writes
docs/fpga-suitability.md.
Sources for the DPU/CPU split: /work/shared/docs/dpu-arithmetic.md ("What does not run on the DPU"),
Vitis AI UG1414 3.0 "Currently Supported Operators", PG338 (DPUCZDX8G) "Features".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from compressai.layers import GDN
from torch import nn

from .charm import CharmConfig, CharmHyperprior
from .layers import QConv
from .models import MeanScaleHyperprior, ModelConfig
from .wacnn import WACNN, MatMul, Op, RelativePositionBias

MODELS = ("meanscale", "charm", "wacnn", "wacnn-dpu")
PROBE = 256  # probe image side: every op's cost is proportional to the pixel count
FRAME = (1088, 1920)  # 1080p padded to a multiple of 64
SCALE_1080P = FRAME[0] * FRAME[1] / PROBE**2

# Where each op kind runs, and why (dpu-arithmetic.md = /work/shared/docs/dpu-arithmetic.md).
PLACEMENT: dict[str, tuple[str, str]] = {
    "conv2d": ("dpu", "conv (PG338: convolution; UG1414 3.0 op table: kernel 1-16, stride 1-8)"),
    "conv_transpose2d": ("dpu", "transposed conv, no output padding (PG338; dpu-arithmetic.md)"),
    "conv_transpose2d_output_padding": ("cpu", "output_padding != 0 is rejected by the DPU op filter "
                                               "(dpu-arithmetic.md)"),
    "linear": ("dpu", "fully connected = 1x1 conv over tokens (PG338: fully connected layer)"),
    "add": ("dpu", "element-wise sum (PG338; FXP-E1)"),
    "mul": ("dpu", "element-wise multiply (PG338)"),
    "gdn": ("cpu", "GDN/IGDN: sqrt and division (dpu-arithmetic.md)"),
    "gelu": ("cpu", "GELU: erf/tanh, not a DPUCZDX8G activation (PG338 lists ReLU, ReLU6, LeakyReLU)"),
    "sigmoid": ("cpu", "sigmoid (dpu-arithmetic.md)"),
    "tanh": ("cpu", "tanh (dpu-arithmetic.md)"),
    "softmax": ("cpu", "softmax inside the graph (dpu-arithmetic.md; PG338's optional softmax core serves the "
                       "network output only)"),
    "matmul_qk": ("cpu", "activation x activation product: no constant weights, not a DPU conv/FC "
                         "(assumption; check with vai_c_xir)"),
    "matmul_av": ("cpu", "activation x activation product (as matmul_qk)"),
    "attention_bias_add": ("cpu", "between two CPU ops (q·kᵀ, softmax): runs with them"),
    "window_partition": ("cpu", "reshape + permute (dpu-arithmetic.md: permute)"),
    "window_reverse": ("cpu", "reshape + permute (dpu-arithmetic.md: permute)"),
    "pixel_shuffle": ("cpu", "depth-to-space = reshape + permute (dpu-arithmetic.md: permute)"),
    "entropy_decode": ("cpu", "rANS decoding with integer tables (entropy/, docs/entropy.md)"),
    "entropy_encode": ("cpu", "rANS encoding with integer tables (entropy/)"),
    "lrp_add": ("cpu", "ỹ = ŷ + r: the exact add FXP-E1 on the CPU (DPU add is the open point FXP-A-ADD)"),
}


@dataclass(frozen=True)
class Assumptions:
    """The stated cost model of the frame-rate estimate (all numbers are assumptions, not measurements)."""

    dpu_clock_hz: float = 300e6
    dpu_macs_per_cycle: int = 2048  # B4096: 4096 ops/cycle = pixel 8 × input ch 16 × output ch 16 MACs (PG338)
    dpu_channel_parallel: int = 16  # input and output channels are processed in groups of 16
    dpu_efficiency: float = 0.5  # sustained / peak on the used lanes (memory stalls, layer switches)
    dpu_eltwise_per_cycle: int = 128  # element-wise engine: 8 pixels × 16 channels per cycle
    dpu_call_overhead_s: float = 0.3e-3  # one VART execute_async + wait, cache maintenance, per DPU call
    cpu_macs_per_s: float = 2.9e9  # 4× Cortex-A53 at 1.2 GHz, NEON fp32: 2 FMA/cycle/core at 30 %
    cpu_nonlinear_per_s: float = 2.4e8  # exp/erf/sqrt/div elements: ~20 cycles each on 4 cores
    cpu_move_bytes_per_s: float = 1.0e9  # permutes / reshapes (DDR bound)
    entropy_symbols_per_s: float = 20e6  # rANS decode on one A53 core (one stream at a time)


ASSUMPTIONS = Assumptions()
PLATFORMS = {"KV260": 1, "ZCU102": 3}  # B4096 cores at 300 MHz


@dataclass
class Layer:
    name: str
    op: str
    device: str
    side: str
    macs_per_pixel: float
    params: int
    in_channels: int
    out_channels: int
    elements_1080p: int  # output elements at 1080p (bytes as int8)
    input_elements_1080p: int
    reason: str


class Tracer:
    """Forward hooks on every op of a model; records ops in execution order, with the current side."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[Layer] = []
        self.side = "encode"
        self.handles = []
        skip: list[str] = []
        for name, module in model.named_modules():
            if any(name.startswith(prefix + ".") for prefix in skip):
                continue
            if isinstance(module, QConv | GDN | Op | MatMul | RelativePositionBias | nn.Conv2d |
                          nn.ConvTranspose2d | nn.Linear):
                if isinstance(module, QConv | GDN | RelativePositionBias):
                    skip.append(name)
                self.handles.append(module.register_forward_hook(self._hook(name)))

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def cpu_step(self, name: str, op: str, elements: int) -> None:
        """A CPU step of the codec that is not a torch op (entropy coding, the LRP add)."""
        self.layers.append(Layer(name, op, "cpu", self.side, 0.0, 0, 0, 0, int(elements * SCALE_1080P),
                                 int(elements * SCALE_1080P), PLACEMENT[op][1]))

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            op, macs, c_in, c_out = _op_of(module, x, output)
            device, reason = PLACEMENT[op]
            params = sum(p.numel() for p in module.parameters())
            # the probe is one image (batch 1): whole-tensor sizes are per image (attention tensors have
            # windows, not images, in their first axis)
            in_elems = sum(int(t.numel()) for t in inputs if isinstance(t, torch.Tensor) and t.is_floating_point())
            self.layers.append(Layer(name, op, device, self.side, macs / PROBE**2, params, c_in, c_out,
                                     int(output.numel() * SCALE_1080P), int(in_elems * SCALE_1080P), reason))
        return hook


def _op_of(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> tuple[str, float, int, int]:
    """(op kind, MACs for one image, input channels, output channels)."""
    if isinstance(module, QConv):
        module = module.conv
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        op = "conv_transpose2d_output_padding" if any(module.output_padding) else "conv_transpose2d"
        return op, x.numel() * module.out_channels * kh * kw, module.in_channels, module.out_channels
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return "conv2d", out.numel() * module.in_channels // module.groups * kh * kw, module.in_channels, \
            module.out_channels
    if isinstance(module, nn.Linear):
        return "linear", out.numel() * module.in_features, module.in_features, module.out_features
    if isinstance(module, GDN):
        channels = out.shape[1]
        return "gdn", out.numel() * channels, channels, channels  # the γ matrix: a 1×1 conv of x²
    if isinstance(module, MatMul):
        return module.kind, module.macs, 0, 0
    return module.kind, 0.0, 0, 0


# ---- the decode programs ----------------------------------------------------------------------------
def _probe_input() -> torch.Tensor:
    return torch.rand(1, 3, PROBE, PROBE) - 0.5


@torch.no_grad()
def trace_meanscale(model: MeanScaleHyperprior) -> list[Layer]:
    tracer = Tracer(model)
    try:
        y, z_hat = _encode_and_decode_z(model, tracer)
        model.hyper_synthesis(z_hat)
        tracer.cpu_step("entropy_decode.y", "entropy_decode", y.numel())
        model.g_s(torch.round(y))
    finally:
        tracer.close()
    return tracer.layers


def _encode_and_decode_z(model: torch.nn.Module, tracer: Tracer) -> tuple[torch.Tensor, torch.Tensor]:
    """The part every traced model shares: g_a, h_a and ẑ on the encoder, the entropy coding on the CPU,
    then the decoder's ẑ. Returns (y, ẑ); the tracer is on the decode side afterwards."""
    y = model.g_a(_probe_input())
    if getattr(getattr(model, "config", None), "latent_rounding", "requantize") == "accumulator":
        # the ŷ twin (docs/fixed-point.md FXP-Q6): g_a's last conv once more, output fix 0, same weights
        last = next(layer for layer in reversed(tracer.layers) if layer.name == f"g_a.{len(model.g_a) - 1}")
        tracer.layers.append(replace(last, name="g_a_y_hat", params=0,
                                     reason=last.reason + "; ŷ twin of g_a's last conv (its weights, output fix 0)"))
    z_hat = torch.round(model.h_a(y))
    tracer.cpu_step("entropy_encode", "entropy_encode", y.numel() + z_hat.numel())
    tracer.side = "decode"
    tracer.cpu_step("entropy_decode.z", "entropy_decode", z_hat.numel())
    return y, z_hat


@torch.no_grad()
def trace_charm(model: CharmHyperprior) -> list[Layer]:
    tracer = Tracer(model)
    try:
        y, z_hat = _encode_and_decode_z(model, tracer)
        scale_support, mean_support = model.hyper_synthesis(z_hat)
        slices = list(torch.round(y).chunk(model.config.slices, dim=1))
        residuals = []
        for i in range(model.config.slices):
            model.slice_parameters(i, scale_support, mean_support, slices[:i])
            tracer.cpu_step(f"entropy_decode.y{i}", "entropy_decode", slices[i].numel())
            residuals.append(model.residual(i, mean_support, slices[: i + 1]))
        tracer.cpu_step("lrp_add", "lrp_add", y.numel())
        model.g_s(torch.cat(slices, 1) + torch.cat(residuals, 1))
    finally:
        tracer.close()
    return tracer.layers


@torch.no_grad()
def trace_wacnn(model: WACNN) -> list[Layer]:
    tracer = Tracer(model)
    try:
        y, z_hat = _encode_and_decode_z(model, tracer)
        mean_support, scale_support = model.h_mean_s(z_hat), model.h_scale_s(z_hat)
        slices = list(torch.round(y).chunk(model.slices, dim=1))
        y_tilde = []
        for i in range(model.slices):
            context = model.context(slices[:i])
            model.cc_means[i](torch.cat([mean_support, *context], 1))
            model.cc_scales[i](torch.cat([scale_support, *context], 1))
            tracer.cpu_step(f"entropy_decode.y{i}", "entropy_decode", slices[i].numel())
            y_tilde.append(slices[i] + model.lrp[i](torch.cat([mean_support, *context, slices[i]], 1)))
        tracer.cpu_step("lrp_add", "lrp_add", y.numel())
        model.g_s(torch.cat(y_tilde, 1))
    finally:
        tracer.close()
    return tracer.layers


def build(name: str) -> tuple[nn.Module, list[Layer], dict]:
    """The analysed float graph of a model name, its traced ops, and its configuration."""
    torch.manual_seed(0)
    if name == "meanscale":
        config = ModelConfig(N=96, M=128, hyper_activation="relu", latent_rounding="accumulator")
        model = MeanScaleHyperprior(config).eval()
        return model, trace_meanscale(model), asdict(config)
    if name == "charm":
        config = CharmConfig(latent_rounding="accumulator")
        model = CharmHyperprior(config).eval()
        return model, trace_charm(model), asdict(config)
    if name in ("wacnn", "wacnn-dpu"):
        model = WACNN(dpu_legal=name == "wacnn-dpu").eval()
        return model, trace_wacnn(model), {"N": model.N, "M": model.M, "slices": model.slices,
                                           "max_support": model.max_support, "window": 8, "heads": 8,
                                           "dpu_legal": model.dpu_legal}
    raise ValueError(f"unknown model {name!r}; one of {MODELS}")


# ---- totals and the frame-rate model ----------------------------------------------------------------
def dpu_calls(layers: list[Layer]) -> int:
    """DPU calls of one decode: maximal runs of consecutive DPU ops between CPU steps (each a round trip)."""
    calls, previous = 0, "cpu"
    for layer in layers:
        if layer.side == "decode":
            if layer.device == "dpu" and previous == "cpu":
                calls += 1
            previous = layer.device
    return calls


def _lane_use(channels: int, parallel: int) -> float:
    return channels / (math.ceil(channels / parallel) * parallel) if channels else 1.0


def layer_seconds(layer: Layer, a: Assumptions = ASSUMPTIONS) -> float:
    """Estimated time of one op on one 1080p frame (one DPU core, or the CPU)."""
    macs = layer.macs_per_pixel * FRAME[0] * FRAME[1]
    if layer.device == "dpu":
        if macs:
            lanes = _lane_use(layer.in_channels, a.dpu_channel_parallel) * \
                _lane_use(layer.out_channels, a.dpu_channel_parallel)
            return macs / (a.dpu_macs_per_cycle * a.dpu_clock_hz * a.dpu_efficiency * lanes)
        return layer.elements_1080p / (a.dpu_eltwise_per_cycle * a.dpu_clock_hz * a.dpu_efficiency)
    if layer.op in ("entropy_decode", "entropy_encode"):
        return layer.elements_1080p / a.entropy_symbols_per_s
    if macs:
        return macs / a.cpu_macs_per_s + (layer.elements_1080p / a.cpu_nonlinear_per_s if layer.op == "gdn" else 0)
    if layer.op in ("window_partition", "window_reverse", "pixel_shuffle", "lrp_add", "attention_bias_add"):
        return layer.elements_1080p / a.cpu_move_bytes_per_s
    return layer.input_elements_1080p / a.cpu_nonlinear_per_s


def frame_rates(layers: list[Layer], a: Assumptions = ASSUMPTIONS) -> dict[str, dict[str, float]]:
    """Decode frames per second at 1080p: 1 / (DPU time / cores + CPU time + calls × call overhead).

    Serial model (one frame, no DPU/CPU overlap); with several cores each DPU call is split across them
    (tiles or batch), which is optimistic for the small latent-resolution calls.
    """
    decode = [layer for layer in layers if layer.side == "decode"]
    dpu = sum(layer_seconds(layer, a) for layer in decode if layer.device == "dpu")
    cpu = sum(layer_seconds(layer, a) for layer in decode if layer.device == "cpu")
    calls = dpu_calls(layers)
    out = {}
    for platform, cores in PLATFORMS.items():
        seconds = dpu / cores + cpu + calls * a.dpu_call_overhead_s
        out[platform] = {"dpu_cores": cores, "dpu_ms": 1e3 * dpu / cores, "cpu_ms": 1e3 * cpu,
                         "call_overhead_ms": 1e3 * calls * a.dpu_call_overhead_s, "fps": 1.0 / seconds}
    return out


def report(name: str) -> dict:
    """The report of one model: ``layers`` (per op) and ``totals``."""
    model, layers, config = build(name)
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("entropy_bottleneck"))
    macs = sum(layer.macs_per_pixel for layer in layers)
    dpu_macs = sum(layer.macs_per_pixel for layer in layers if layer.device == "dpu")
    decode = [layer for layer in layers if layer.side == "decode"]
    decode_macs = sum(layer.macs_per_pixel for layer in decode)
    decode_dpu_macs = sum(layer.macs_per_pixel for layer in decode if layer.device == "dpu")
    cpu_ops = sorted({layer.op for layer in layers if layer.device == "cpu"})
    totals = {
        "macs_per_pixel": macs,
        "params": params,
        "dpu_mac_fraction": dpu_macs / macs if macs else 1.0,
        "cpu_ops": cpu_ops,
        "round_trips": dpu_calls(layers),
        "decode_macs_per_pixel": decode_macs,
        "decode_dpu_mac_fraction": decode_dpu_macs / decode_macs if decode_macs else 1.0,
        "peak_activation_bytes_1080p": max(layer.elements_1080p + layer.input_elements_1080p for layer in layers),
        "ops": len(layers),
        "cpu_op_count_decode": sum(1 for layer in decode if layer.device == "cpu"),
        "frame_rate_1080p_decode": frame_rates(layers),
    }
    return {"model": name, "config": config, "probe": [PROBE, PROBE], "frame": list(FRAME),
            "assumptions": asdict(ASSUMPTIONS), "layers": [asdict(layer) for layer in layers], "totals": totals}


# ---- rendering --------------------------------------------------------------------------------------
def _summary_row(r: dict) -> str:
    t = r["totals"]
    fps = t["frame_rate_1080p_decode"]
    return (f"| {r['model']} | {t['params'] / 1e6:.2f} M | {t['macs_per_pixel'] / 1e3:.1f} k | "
            f"{t['decode_macs_per_pixel'] / 1e3:.1f} k | {100 * t['dpu_mac_fraction']:.1f} % | "
            f"{t['round_trips']} | {t['cpu_op_count_decode']} | {t['peak_activation_bytes_1080p'] / 2**20:.0f} MiB | "
            f"{', '.join(t['cpu_ops'])} | {fps['KV260']['fps']:.2f} | {fps['ZCU102']['fps']:.2f} |")


SUMMARY_HEAD = ("| model | params | MACs/pixel | decode MACs/pixel | DPU MAC share | DPU calls per decode (round "
                "trips) | CPU steps per decode | peak activation 1080p (int8) | CPU ops | KV260 fps | ZCU102 fps |\n"
                "|---|---|---|---|---|---|---|---|---|---|---|")


def layer_table(r: dict) -> str:
    lines = ["| # | op | name | side | runs on | MACs/pixel | params | output at 1080p (int8) |",
             "|---|---|---|---|---|---|---|---|"]
    for i, layer in enumerate(r["layers"]):
        lines.append(f"| {i} | {layer['op']} | `{layer['name']}` | {layer['side']} | {layer['device']} | "
                     f"{layer['macs_per_pixel']:.1f} | {layer['params']} | "
                     f"{layer['elements_1080p'] / 2**20:.2f} MiB |")
    return "\n".join(lines)


def render_text(r: dict) -> str:
    t = r["totals"]
    lines = [f"{r['model']} {r['config']}", layer_table(r), "", SUMMARY_HEAD, _summary_row(r), ""]
    for platform, v in t["frame_rate_1080p_decode"].items():
        lines.append(f"{platform}: DPU {v['dpu_ms']:.1f} ms + CPU {v['cpu_ms']:.1f} ms + calls "
                     f"{v['call_overhead_ms']:.1f} ms -> {v['fps']:.2f} fps (1080p decode, estimate)")
    return "\n".join(lines)


def render_doc(reports: list[dict]) -> str:
    a = ASSUMPTIONS
    parts = [DOC_HEAD, "## Summary (generated)", "", SUMMARY_HEAD, *(_summary_row(r) for r in reports), "",
             READING, "",
             "Decode time split at 1080p (estimate, ms):", "",
             "| model | KV260 DPU | KV260 CPU | KV260 calls | ZCU102 DPU | ZCU102 CPU | ZCU102 calls |",
             "|---|---|---|---|---|---|---|"]
    for r in reports:
        f = r["totals"]["frame_rate_1080p_decode"]
        parts.append(f"| {r['model']} | {f['KV260']['dpu_ms']:.1f} | {f['KV260']['cpu_ms']:.1f} | "
                     f"{f['KV260']['call_overhead_ms']:.1f} | {f['ZCU102']['dpu_ms']:.1f} | "
                     f"{f['ZCU102']['cpu_ms']:.1f} | {f['ZCU102']['call_overhead_ms']:.1f} |")
    parts += ["", "## Frame-rate assumptions", "",
              "Every number below is an assumption of the estimate, not a measurement (no board was used):", ""]
    parts += [f"- `{k}` = {v}" for k, v in asdict(a).items()]
    parts += ["", FPS_TEXT, "", "## Where each op kind runs", "", "| op | runs on | why |", "|---|---|---|"]
    parts += [f"| {op} | {device} | {reason} |" for op, (device, reason) in PLACEMENT.items()]
    for r in reports:
        parts += ["", f"## {r['model']}: every op in decode order", "", f"Configuration: `{json.dumps(r['config'])}`",
                  "", layer_table(r)]
    return "\n".join(parts) + "\n"


DOC_HEAD = """# FPGA suitability: mean-scale, ChARM and window attention on the Vitis AI DPU

Generated by `fxlic hw-report --doc docs/fpga-suitability.md` (needs torch: the graphs are torch modules;
`fxlic hw-report --model NAME [--json]` prints one model). Do not edit by hand.

Models: `meanscale` = the shipped DPU-deployable mean-scale hyperprior (Minnen et al. 2018; ReLU, k4 s2 p1
transposed convs; h_a/h_s with ReLU as new models are trained); `charm` = Minnen & Singh 2020 channel-wise
autoregression + LRP on the same transforms (docs/charm.md, default config: 4 slices); `wacnn` = Zou et al.
2022 window-attention CNN as published (N = 192, M = 320, GDN, GELU, 8×8 window attention, ChARM with 10
slices), built as a float graph only (`fxlic.qat.wacnn`, rebuilt from the paper's description, never
trained); `wacnn-dpu` = the same graph with the substitutions fxlic makes for the DPU wherever they do not
touch attention (GDN/IGDN and GELU → ReLU, output-padding transposed convs and sub-pixel convs → k4 s2 p1
transposed convs, LRP tanh → int8 saturation), so that what stays on the CPU is the price of window
attention itself (window partition/reverse, q·kᵀ, softmax, a·v) and of the WAM's sigmoid gate. The models
differ in width too (meanscale/charm N = 96, M = 128): compare op placement and round
trips across all three, MACs only between meanscale and charm.

Method: each graph runs once on a 256×256 probe with a forward hook on every op, in decode order, with the
codec's CPU steps (entropy coding, the LRP add) inserted where they happen. MACs per pixel are per input
image pixel (conv: output elements × C_in × k²; transposed conv: input elements × C_out × k²; linear: output
elements × C_in; GDN: C per element, its γ matrix). Activation memory is the op's output at 1920×1088 at one
byte per element (int8), scaled from the probe. "Round trips" are DPU calls per decoded image: maximal runs
of consecutive DPU ops between two CPU steps in decode order (a compiler may merge independent branches, so
for wacnn this is what a straightforward partition gives). Encode-side ops (g_a, h_a) are listed with side
`encode` and count in the MAC and parameter totals, not in the decode rate.

Sources for the DPU/CPU split: `/work/shared/docs/dpu-arithmetic.md` (section "What does not run on the
DPU": subtraction, division, sqrt, exp, sigmoid, tanh, softmax, permute, slicing fall back to the ARM CPU;
`output_padding != 0` is rejected by the op filter), AMD PG338 "DPUCZDX8G for Zynq UltraScale+ MPSoCs",
section Features (convolution and transposed convolution, depthwise, pooling, ReLU/ReLU6/LeakyReLU,
element-wise sum and multiply, fully connected, concat, an optional softmax core), and the Vitis AI User
Guide UG1414 3.0, "Currently Supported Operators" (DPUCZDX8G_ISA1_B4096 column: conv kernel 1-16, stride
1-8, channel_parallel 16, bank_depth 2048).
"""

READING = """How to read it: a DPU call costs a CPU→DPU→CPU round trip (tensor hand-over, cache maintenance, a
runner call), so the DPU suits graphs with few, large calls. meanscale decodes in 2 calls with every MAC on
the DPU; charm keeps every MAC on the DPU but needs one call per slice (the entropy decoder must see slice
i before slice i+1's parameters exist), and its slice stacks add decode MACs at latent resolution; window
attention puts q·kᵀ, softmax and a·v (and, as published, GDN, GELU and the output-padding transposed
convs) on the ARM cores, which then dominate the decode time. The estimates rest on the assumptions below,
not on a board run."""

FPS_TEXT = """Model: decode time = (Σ DPU op time) / cores + Σ CPU step time + DPU calls × call overhead, i.e. one
frame at a time, no DPU/CPU overlap (a pipelined decoder of a video stream would overlap them and reach
up to 1 / max(DPU, CPU)). A DPU conv takes MACs / (2048 × 300 MHz × efficiency × lane use), where lane use =
(C_in / ⌈C_in⌉₁₆) · (C_out / ⌈C_out⌉₁₆) charges the idle channel lanes of thin layers (the 3-channel image
layer uses 3/16 of them). On ZCU102 each DPU call is split across the 3 cores. CPU steps: entropy decoding at
`entropy_symbols_per_s` (one core, slice streams in order), CPU MACs (attention products, GDN's γ) at
`cpu_macs_per_s`, non-linear element-wise ops (GELU, softmax, sigmoid, tanh, GDN's sqrt and division) at
`cpu_nonlinear_per_s` per input element, permutes and the LRP add at `cpu_move_bytes_per_s`."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fxlic hw-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, action="append",
                   help="model to analyse (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print JSON: one object (layers, totals) per model; "
                                                      "one model: the object itself")
    p.add_argument("--doc", metavar="PATH", help="write the markdown report (docs/fpga-suitability.md) for the "
                                                 "chosen models")
    args = p.parse_args(argv)
    names = args.model or list(MODELS)
    reports = [report(name) for name in names]
    if args.doc:
        Path(args.doc).write_text(render_doc(reports))
        print(f"wrote {args.doc}")
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"models": reports}, indent=1))
    elif not args.doc:
        print("\n\n".join(render_text(r) for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
