"""``fxlic hw-report``: FPGA suitability of a learned-codec architecture on the Vitis AI DPU (DPUCZDX8G).

For ``meanscale`` (Minnen 2018, DPU-deployable), ``charm`` (Minnen & Singh 2020 on the same transforms),
``wacnn`` (Zou et al. 2022 as published, float graph, ``fxlic.qat.wacnn``) and ``wacnn-dpu`` (the same with
every non-attention op made DPU-legal) the float graph is run once on a 256×256 probe
with a forward hook on every op, in *decode order* (the entropy decoder's CPU steps inserted where they
happen), and each op is classified:

* per op: MACs per image pixel, parameters, activation memory at 1080p (1920×1088 padded, int8), where it
  runs (DPU or CPU, with the reason), encode or decode side, its kernel, stride and output shape at the probe;
* totals: MACs per pixel, parameters, the DPU share of the MACs, the CPU op kinds, DPU↔CPU round trips per
  decoded image (DPU calls: maximal runs of DPU ops between CPU steps), and estimated decode frame rates at
  1080p (1920×1088) and 720p (1280×768) on KV260 (1× B4096) and ZCU102 (3× B4096), one frame at a time
  (``fps``) and pipelined (``fps_pipelined``: the CPU's entropy decoding of one frame overlaps the DPU work of
  another).

Timing: ``--timing fitted`` (default) times each DPU layer with ``fxlic.qat.dpu_timing``, a per-layer model
(lane use, DDR bandwidth, per-call overhead) whose constants are fitted to AMD's published Vitis AI Model Zoo
throughputs (results/dpu-calibration/); ``--timing optimistic`` keeps the former stated assumptions
(``ASSUMPTIONS``: every DPU layer at 50 % of peak on its used lanes, no memory time, 300 MHz everywhere) for
comparison; the fit shows they are not a bound either way (slower than the fit for wide compute-bound layers,
faster for thin or DDR-bound ones). The CPU side (entropy decoding at ``entropy_symbols_per_s`` per A53 core
on ``--entropy-cores`` cores, CPU ops) is the same in both.

``--widths C1 C2 C3`` (or ``--decoder NAME``, a shipped lite decoder) analyses meanscale with another
synthesis transform g_s (its three hidden widths; the encoder side unchanged).

Needs torch (the graphs are torch modules: ``pip install -e .[qat]``). ``--doc PATH`` writes
docs/fpga-suitability.md, with the timing model's calibration table and a g_s width frontier.
Sources for the DPU/CPU split: /work/shared/docs/dpu-arithmetic.md ("What does not run on the DPU"),
Vitis AI UG1414 3.0 "Currently Supported Operators", PG338 (DPUCZDX8G) "Features".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from compressai.layers import GDN
from torch import nn

from fxlic.errors import UsageError
from fxlic.families import family
from fxlic.models import FULL_DECODER

from . import dpu_timing
from .charm import CharmConfig, CharmHyperprior
from .dpu_timing import BOARDS, FITTED, DpuLayer
from .layers import QConv
from .models import MeanScaleHyperprior, ModelConfig, synthesis_transform
from .wacnn import WACNN, MatMul, Op, RelativePositionBias

MODELS = ("meanscale", "charm", "wacnn", "wacnn-dpu")
PROBE = 256  # probe image side: every op's cost is proportional to the pixel count
FRAMES = {"1080p": (1088, 1920), "720p": (768, 1280)}  # (H, W) padded to multiples of 64
FRAME = FRAMES["1080p"]
SCALE_1080P = FRAME[0] * FRAME[1] / PROBE**2
TIMINGS = ("fitted", "optimistic")
FRONTIER_WIDTHS = (96, 64, 48, 32, 24, 16)  # uniform g_s widths of the doc's frontier table
GOALS = {"KV260": ("720p", 30.0), "ZCU102": ("1080p", 30.0)}  # real-time goals of the frontier table: fps at a size

# Where each op kind runs, and why (dpu-arithmetic.md = /work/shared/docs/dpu-arithmetic.md).
PLACEMENT: dict[str, tuple[str, str]] = {
    "conv2d": ("dpu", "conv (PG338: convolution; UG1414 3.0 op table: kernel 1-16, stride 1-8)"),
    "conv_transpose2d": ("dpu", "transposed conv, no output padding (PG338; dpu-arithmetic.md)"),
    "conv_transpose2d_output_padding": ("cpu", "output_padding != 0 is rejected by the DPU op filter "
                                               "(dpu-arithmetic.md)"),
    "linear": ("dpu", "fully connected = 1x1 conv over tokens (PG338: fully connected layer)"),
    "add": ("dpu", "element-wise sum (PG338; FXP-E3)"),
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
    "lrp_add": ("cpu", "ỹ = ŷ + r: the exact add FXP-E1 on the CPU (the DPU add, FXP-E3, would drop bits of r)"),
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
    # rANS decode on one A53 core, estimated: fxlic's x86 rate (benchmarks/rans_speed.py, one thread) × the
    # A53/x86 ratio of 7-Zip's LZMA decompression (a range decoder), RPi 3 B at 1.2 GHz (sbc-bench
    # results/4hOp.txt) vs the same host; the lowest of five runs, 19.6 M/s (benchmarks/arm_entropy_estimate.py,
    # docs/entropy.md §2.5)
    entropy_symbols_per_s: float = 19.5e6
    entropy_cores: int = 1  # A53 cores decoding ŷ's substreams at once (1: one stream; up to 4 on KV260, ZCU102)


ASSUMPTIONS = Assumptions()
PLATFORMS = {"KV260": 1, "ZCU102": 3}  # B4096 cores (optimistic timing: all at 300 MHz; fitted: dpu_timing.BOARDS)
MAX_ENTROPY_CORES = dpu_timing.ARM_CORES  # KV260 and ZCU102 have 4 Cortex-A53 cores


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
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    out_shape_probe: tuple[int, ...] = ()  # the output tensor's shape at the probe (first axis: batch or windows)


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
            kernel, stride = _geometry(module)
            self.layers.append(Layer(name, op, device, self.side, macs / PROBE**2, params, c_in, c_out,
                                     int(output.numel() * SCALE_1080P), int(in_elems * SCALE_1080P), reason,
                                     kernel, stride, tuple(int(v) for v in output.shape)))
        return hook


def _geometry(module: nn.Module) -> tuple[tuple[int, int], int]:
    """(kernel (kh, kw), stride) of a conv or transposed conv; (1, 1), 1 for anything else."""
    if isinstance(module, QConv):
        module = module.conv
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return (int(module.kernel_size[0]), int(module.kernel_size[1])), int(module.stride[0])
    return (1, 1), 1


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


def check_widths(widths: Sequence[int]) -> tuple[int, int, int]:
    """Three positive hidden widths, or UsageError."""
    if len(widths) != 3 or any(int(w) != w or w < 1 for w in widths):
        raise UsageError(f"--widths takes three positive integers (g_s's hidden widths), got {list(widths)}")
    return int(widths[0]), int(widths[1]), int(widths[2])


def decoder_widths(model: str, decoder: str) -> tuple[int, int, int] | None:
    """g_s widths of a shipped decoder by name (``fxlic.models.decoder_widths``): None for ``full``."""
    from fxlic.models import UnknownModelError
    from fxlic.models import decoder_widths as shipped_widths

    try:
        widths = shipped_widths(model, decoder)
    except UnknownModelError as exc:
        raise UsageError(str(exc)) from exc
    return None if widths is None else check_widths(tuple(widths))


def build(name: str, widths: Sequence[int] | None = None) -> tuple[nn.Module, list[Layer], dict]:
    """The analysed float graph of a model name, its traced ops, and its configuration. ``widths``: meanscale's
    g_s hidden widths (None: the default, N everywhere); the encoder side is unchanged."""
    torch.manual_seed(0)
    if widths is not None and name != "meanscale":
        raise UsageError(f"--widths/--decoder apply to meanscale only, not {name}")
    if name == "meanscale":
        config = ModelConfig(N=96, M=128, hyper_activation="relu", latent_rounding="accumulator")
        model = MeanScaleHyperprior(config).eval()
        gs_widths = (config.N,) * 3 if widths is None else check_widths(widths)
        if widths is not None:
            model.g_s = synthesis_transform(config.M, gs_widths).eval()
        return model, family(name).resolve("hw_graph")(model), {**asdict(config), "g_s_widths": list(gs_widths)}
    if name == "charm":
        config = CharmConfig(latent_rounding="accumulator")
        model = CharmHyperprior(config).eval()
        return model, family(name).resolve("hw_graph")(model), asdict(config)
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
    """Time of one op on one 1080p frame under the stated assumptions (the optimistic timing: one DPU core at
    ``dpu_efficiency`` on its used lanes; CPU steps as ``cpu_seconds``)."""
    macs = layer.macs_per_pixel * FRAME[0] * FRAME[1]
    if layer.device == "dpu":
        if macs:
            lanes = _lane_use(layer.in_channels, a.dpu_channel_parallel) * \
                _lane_use(layer.out_channels, a.dpu_channel_parallel)
            return macs / (a.dpu_macs_per_cycle * a.dpu_clock_hz * a.dpu_efficiency * lanes)
        return layer.elements_1080p / (a.dpu_eltwise_per_cycle * a.dpu_clock_hz * a.dpu_efficiency)
    return cpu_seconds(layer, a)


def cpu_seconds(layer: Layer, a: Assumptions = ASSUMPTIONS) -> float:
    """Time of one CPU step on one 1080p frame: entropy decoding at ``entropy_symbols_per_s`` per core on
    ``entropy_cores`` cores, CPU MACs, non-linear element-wise ops and data movement at the stated rates."""
    macs = layer.macs_per_pixel * FRAME[0] * FRAME[1]
    if layer.op in ("entropy_decode", "entropy_encode"):
        cores = 1 if layer.name == "entropy_decode.z" else a.entropy_cores  # ẑ is one stream (docs/entropy.md §4)
        return layer.elements_1080p / (a.entropy_symbols_per_s * cores)
    if macs:
        return macs / a.cpu_macs_per_s + (layer.elements_1080p / a.cpu_nonlinear_per_s if layer.op == "gdn" else 0)
    if layer.op in ("window_partition", "window_reverse", "pixel_shuffle", "lrp_add", "attention_bias_add"):
        return layer.elements_1080p / a.cpu_move_bytes_per_s
    return layer.input_elements_1080p / a.cpu_nonlinear_per_s


_DPU_OPS = {"conv2d": "conv", "conv_transpose2d": "tconv", "linear": "conv"}


def dpu_layer(layer: Layer, frame: tuple[int, int] = FRAME) -> DpuLayer:
    """A traced DPU op as a ``dpu_timing.DpuLayer`` at a frame size: its output shape at the probe scaled by
    frame / probe (every op here is resolution-proportional); linear layers are 1×1 convs over their tokens,
    element-wise ops run on the eltwise engine."""
    shape = layer.out_shape_probe
    if len(shape) == 4:
        n, channels, h, w = shape
        out_h, out_w = round(n * h * frame[0] / PROBE), round(w * frame[1] / PROBE)
    else:
        channels = shape[-1] if shape else max(layer.out_channels, 1)
        positions = math.prod(shape) / channels if shape else 1
        out_h, out_w = 1, max(1, round(positions * frame[0] * frame[1] / PROBE**2))
    op = _DPU_OPS.get(layer.op, "add")
    c_in = layer.in_channels or channels
    c_out = layer.out_channels or channels
    return DpuLayer(layer.name, op, c_in, c_out, out_h, out_w, layer.kernel[0], layer.kernel[1], layer.stride)


def zero_inserted(layer: DpuLayer) -> DpuLayer:
    """Sensitivity case: a transposed conv run as a stride-1 conv over its zero-inserted input (k² taps per output
    pixel, the input read at output size) instead of as s² sub-convolutions of ⌈k/s⌉² taps."""
    return replace(layer, op="conv", stride=1) if layer.op == "tconv" else layer


def frame_rates(layers: list[Layer], frame: tuple[int, int] = FRAME, timing: str = "fitted",
                a: Assumptions = ASSUMPTIONS, zero_insert: bool = False) -> dict[str, dict[str, float]]:
    """Decode frames per second at ``frame`` (H, W) on each platform, one frame at a time and pipelined.

    * ``dpu_ms``: the decode's DPU ops. ``fitted``: Σ ``dpu_timing.layer_seconds`` with ``FITTED`` at the
      board's clock; on ZCU102 each call's frame is split across the 3 cores (tiles), which then share the DDR
      bandwidth. ``optimistic``: the stated assumptions (``layer_seconds``) / cores.
    * ``cpu_ms``: the decode's CPU steps (``cpu_seconds``: entropy decoding on ``entropy_cores`` cores, CPU ops).
    * ``call_overhead_ms``: DPU calls × per-call overhead (``FITTED.call_overhead_s`` or
      ``dpu_call_overhead_s``), CPU work (runner submission and completion, cache maintenance).
    * ``fps`` = 1 / (DPU + CPU + calls): no overlap. ``fps_pipelined`` = 1 / max(DPU, CPU + calls): the CPU
      work of one frame (entropy decoding, call handling) overlaps the DPU work of another, with DPU jobs queued
      so that the DPU never waits for a call's hand-over (as in the vendor's multi-thread figures).

    ``zero_insert`` (fitted timing): the sensitivity case ``zero_inserted`` for every transposed conv.
    """
    decode = [layer for layer in layers if layer.side == "decode"]
    scale = frame[0] * frame[1] / (FRAME[0] * FRAME[1])
    cpu = scale * sum(cpu_seconds(layer, a) for layer in decode if layer.device == "cpu")
    calls = dpu_calls(layers)
    out = {}
    for platform, optimistic_cores in PLATFORMS.items():
        if timing == "optimistic":
            cores, clock, call = optimistic_cores, a.dpu_clock_hz, a.dpu_call_overhead_s
            dpu = scale * sum(layer_seconds(layer, a) for layer in decode if layer.device == "dpu") / cores
        elif timing == "fitted":
            board = BOARDS[platform]
            cores, clock, call = board.cores, board.clock_hz, FITTED.call_overhead_s
            convert = zero_inserted if zero_insert else (lambda layer: layer)
            dpu = sum(dpu_timing.layer_seconds(convert(dpu_layer(layer, frame)), FITTED, clock, cores)
                      for layer in decode if layer.device == "dpu") / cores
        else:
            raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
        overhead = calls * call
        out[platform] = {"dpu_cores": cores, "clock_mhz": clock / 1e6, "dpu_ms": 1e3 * dpu, "cpu_ms": 1e3 * cpu,
                         "call_overhead_ms": 1e3 * overhead, "fps": 1.0 / (dpu + cpu + overhead),
                         "fps_pipelined": 1.0 / max(dpu, cpu + overhead)}
    return out


def timing_config(timing: str, a: Assumptions = ASSUMPTIONS) -> dict:
    """What a report's frame rates assume: the timing mode, its constants, boards and entropy cores."""
    if timing == "fitted":
        return {"mode": timing, "params": asdict(FITTED), "boards": {p: asdict(BOARDS[p]) for p in PLATFORMS},
                "source": "fxlic.qat.dpu_timing.FITTED, fitted to results/dpu-calibration/published.csv "
                          "(Vitis AI 2.5 Model Zoo throughputs)", "entropy_cores": a.entropy_cores}
    return {"mode": timing, "dpu_efficiency": a.dpu_efficiency, "dpu_clock_hz": a.dpu_clock_hz,
            "dpu_cores": dict(PLATFORMS), "dpu_call_overhead_s": a.dpu_call_overhead_s,
            "source": "stated assumptions (ASSUMPTIONS), not measurements", "entropy_cores": a.entropy_cores}


def assumptions(entropy_cores: int = 1) -> Assumptions:
    """``ASSUMPTIONS`` with ``entropy_cores`` A53 cores decoding entropy (1 to MAX_ENTROPY_CORES)."""
    if not 1 <= entropy_cores <= MAX_ENTROPY_CORES:
        raise UsageError(f"--entropy-cores must be 1 to {MAX_ENTROPY_CORES} (the boards' Cortex-A53 cores), "
                         f"got {entropy_cores}")
    return replace(ASSUMPTIONS, entropy_cores=entropy_cores)


def report(name: str, widths: Sequence[int] | None = None, decoder: str | None = None, timing: str = "fitted",
           entropy_cores: int = 1) -> dict:
    """The report of one model: ``layers`` (per op) and ``totals``. ``widths`` or ``decoder`` (a shipped
    decoder's name, resolved by ``fxlic.models.decoder_widths``): meanscale with another g_s."""
    a = assumptions(entropy_cores)
    if timing not in TIMINGS:
        raise UsageError(f"--timing must be one of {TIMINGS}, got {timing!r}")
    if decoder is not None:
        if widths is not None:
            raise UsageError("give --widths or --decoder, not both")
        if name != "meanscale":
            raise UsageError(f"--widths/--decoder apply to meanscale only, not {name}")
        widths = decoder_widths(name, decoder)
    model, layers, config = build(name, widths)
    if name == "meanscale":
        config["decoder"] = decoder or (FULL_DECODER if widths is None else None)  # None: widths given
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
        "frame_rate_1080p_decode": frame_rates(layers, FRAMES["1080p"], timing, a),
        "frame_rate_720p_decode": frame_rates(layers, FRAMES["720p"], timing, a),
    }
    return {"model": name, "config": config, "probe": [PROBE, PROBE], "frame": list(FRAME),
            "frames": {k: list(v) for k, v in FRAMES.items()}, "timing": timing_config(timing, a),
            "assumptions": asdict(a), "layers": [asdict(layer) for layer in layers], "totals": totals}


def _layers_of(r: dict) -> list[Layer]:
    return [Layer(**{**d, "kernel": tuple(d["kernel"]), "out_shape_probe": tuple(d["out_shape_probe"])})
            for d in r["layers"]]


def frontier(widths: Sequence[int] = FRONTIER_WIDTHS, timing: str = "fitted") -> list[dict]:
    """meanscale with uniform g_s widths: decode MACs/pixel and frame rates, per frame and pipelined, with one
    and with four entropy cores."""
    rows = []
    for w in widths:
        _, layers, _ = build("meanscale", None if w == 96 else (w, w, w))
        rates = {cores: {size: frame_rates(layers, FRAMES[size], timing, assumptions(cores)) for size in FRAMES}
                 for cores in (1, MAX_ENTROPY_CORES)}
        zero = {size: frame_rates(layers, FRAMES[size], timing, assumptions(1), zero_insert=True) for size in FRAMES}
        rows.append({"widths": [w, w, w],
                     "decode_macs_per_pixel": sum(layer.macs_per_pixel for layer in layers if layer.side == "decode"),
                     "rates": rates, "rates_zero_insert": zero})
    return rows


# ---- rendering --------------------------------------------------------------------------------------
def _summary_row(r: dict) -> str:
    t = r["totals"]
    fps = t["frame_rate_1080p_decode"]
    return (f"| {r['model']} | {t['params'] / 1e6:.2f} M | {t['macs_per_pixel'] / 1e3:.1f} k | "
            f"{t['decode_macs_per_pixel'] / 1e3:.1f} k | {100 * t['dpu_mac_fraction']:.1f} % | "
            f"{t['round_trips']} | {t['cpu_op_count_decode']} | {t['peak_activation_bytes_1080p'] / 2**20:.0f} MiB | "
            f"{', '.join(t['cpu_ops'])} | {fps['KV260']['fps']:.2f} | {fps['ZCU102']['fps']:.2f} |")


SUMMARY_HEAD = ("| model | params | MACs/pixel | decode MACs/pixel | DPU MAC share | DPU calls per decode (round "
                "trips) | CPU steps per decode | peak activation 1080p (int8) | CPU ops | KV260 fps 1080p | "
                "ZCU102 fps 1080p |\n|---|---|---|---|---|---|---|---|---|---|---|")


def _fps(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _rates_row(label: str, rates: dict[str, dict]) -> str:
    """One row of frame rates: per size and platform, per frame / pipelined."""
    cells = [f"{_fps(rates[size][p]['fps'])} / {_fps(rates[size][p]['fps_pipelined'])}"
             for p in PLATFORMS for size in FRAMES]
    return f"| {label} | " + " | ".join(cells) + " |"


RATES_HEAD = ("| | " + " | ".join(f"{p} {size}" for p in PLATFORMS for size in FRAMES) + " |\n|---|"
              + "---|" * (len(PLATFORMS) * len(FRAMES)))


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
    lines = [f"{r['model']} {r['config']}", layer_table(r), "", SUMMARY_HEAD, _summary_row(r), "",
             f"timing: {r['timing']['mode']}, entropy cores: {r['timing']['entropy_cores']}"]
    for size in FRAMES:
        for platform, v in t[f"frame_rate_{size}_decode"].items():
            lines.append(f"{platform} {size}: DPU {v['dpu_ms']:.1f} ms + CPU {v['cpu_ms']:.1f} ms + calls "
                         f"{v['call_overhead_ms']:.1f} ms -> {v['fps']:.2f} fps per frame, "
                         f"{v['fps_pipelined']:.2f} fps pipelined (decode, estimate)")
    return "\n".join(lines)


def _calibration_section(fit: dict) -> list[str]:
    """The timing model's calibration: constants, error summary, the per-row table, the shape check."""
    p = fit["params"]
    s = fit["summary"]
    loo = {(t["zoo_name"], t["board"], t["threads"]): t for t in fit["leave_one_network_out"]}
    parts = ["## The DPU timing model and its calibration", "", TIMING_MODEL_TEXT, "",
             "Fitted constants (`fxlic.qat.dpu_timing.FITTED`; reproduce with `python -m fxlic.qat.dpu_timing "
             "--fit results/dpu-calibration/published.csv`, which prints this table and writes "
             "`results/dpu-calibration/fit.json`):", "",
             f"- compute efficiency (sustained / peak on the lanes a layer uses): {p['compute_efficiency']:.3f}",
             f"- DDR bandwidth, one core alone: {p['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s; shared by all cores "
             f"running at once: {p['shared_bandwidth_bytes_per_s'] / 1e9:.2f} GB/s",
             f"- per-layer overhead: {1e6 * p['layer_overhead_s']:.2f} µs (the fit drives it to its bound, 0: the "
             "lane and bandwidth terms explain the layer count)",
             f"- per-call overhead: {1e3 * p['call_overhead_s']:.3f} ms (CPU side, per DPU call)",
             f"- vendor post-processing per output element (used only to model the published end-to-end rows): "
             f"{1e9 * p['host_s_per_output_element']:.2f} ns", "",
             "Errors (modelled / published − 1) over the rows with built shapes:", "",
             "| set | rows | RMS log error | median abs error | max abs error |", "|---|---|---|---|---|"]
    labels = {"fitted_in_sample": "all fitted rows, in sample",
              "fitted_leave_one_network_out": "all fitted rows, leave one network out",
              "dpu_bound_in_sample": "DPU-bound rows (KV260 multi-thread), in sample",
              "dpu_bound_leave_one_network_out": "DPU-bound rows (KV260 multi-thread), leave one network out",
              "coarse_not_fitted": "GOPS-only rows (coarse: one layer, all lanes busy; not fitted)"}
    for key, label in labels.items():
        v = s[key]
        parts.append(f"| {label} | {v['rows']} | {v['rms_log_error']:.3f} | {100 * v['median_abs_error']:.1f} % | "
                     f"{100 * v['max_abs_error']:.1f} % |")
    parts += ["", "Every calibration row (published: Vitis AI 2.5 Model Zoo, `model_zoo/README.md`, E2E throughput; "
              "sources per row in `results/dpu-calibration/published.csv`; LOO = predicted by the fit without "
              "that network's rows):", "",
              "| network | board | threads | GOPS | published fps | modelled fps | error | LOO error | shapes |",
              "|---|---|---|---|---|---|---|---|---|"]
    gops = {row.zoo_name: row.gops for row in dpu_timing.read_rows()} if dpu_timing.CALIBRATION_CSV.exists() else {}
    for t in fit["in_sample"]:
        cv = loo.get((t["zoo_name"], t["board"], t["threads"]))
        g = gops.get(t["zoo_name"])
        g_text = "" if g is None else f"{g:g}"
        cv_text = "—" if cv is None else f"{100 * cv['error']:+.1f} %"
        parts.append(f"| {t['network']} | {t['board']} | {t['threads']} | {g_text} | "
                     f"{t['fps_published']:.2f} | {t['fps_modelled']:.2f} | {100 * t['error']:+.1f} % | "
                     f"{cv_text} | {'built' if t['shapes'] else 'GOPS only'} |")
    peak = dpu_timing.MACS_PER_CYCLE * BOARDS["KV260"].clock_hz
    parts += ["", "Whole-network efficiency on the DPU-bound rows (KV260 multi-thread: one B4096 core at 300 MHz, "
              "the CPU work on four cores): published fps × MACs (half the published GOPS) / the core's peak of "
              f"{peak / 1e9:.0f} GMAC/s, against the model (fitted per layer where shapes are built, coarse "
              "otherwise):",
              "", "| network | GOPS | published fps | whole-network efficiency | modelled fps | error | shapes |",
              "|---|---|---|---|---|---|---|"]
    for t in fit["in_sample"]:
        if t["board"] == "KV260" and t["threads"] == "multi" and t["zoo_name"] in gops:
            eff = t["fps_published"] * gops[t["zoo_name"]] * 1e9 / 2 / peak
            parts.append(f"| {t['network']} | {gops[t['zoo_name']]:g} | {t['fps_published']:.2f} | "
                         f"{100 * eff:.1f} % | {t['fps_modelled']:.2f} | {100 * t['error']:+.1f} % | "
                         f"{'built' if t['shapes'] else 'GOPS only'} |")
    parts += ["", "Built shapes against the published operation counts (ops = 2 × MACs in the Model Zoo):", "",
              "| Model Zoo name | DPU layers | GMAC built | 2·MAC / published GOPS |", "|---|---|---|---|"]
    parts += [f"| `{c['zoo_name']}` | {c['layers']} | {c['gmacs_built']:.2f} | {c['ratio']:.3f} |"
              for c in fit["shape_check"]]
    return parts


def _frontier_section(rows: list[dict]) -> list[str]:
    cpu = {size: rows[0]["rates"][1][size]["KV260"]["cpu_ms"] for size in FRAMES}
    cpu_all = {size: rows[0]["rates"][MAX_ENTROPY_CORES][size]["KV260"]["cpu_ms"] for size in FRAMES}
    bound = ", ".join(f"{size}: {cpu[size]:.1f} ms per frame on one A53 core, {1e3 / cpu[size]:.0f} fps at most "
                      f"({cpu_all[size]:.1f} ms, {1e3 / cpu_all[size]:.0f} fps on {MAX_ENTROPY_CORES} cores)"
                      for size in FRAMES)
    parts = ["## g_s width frontier (meanscale, fitted timing)", "", FRONTIER_TEXT, f"{bound} (entropy decoding "
             f"of ẑ and ŷ at `entropy_symbols_per_s` = {ASSUMPTIONS.entropy_symbols_per_s / 1e6:g} M symbols/s per "
             "core, an estimate; ẑ on one core).", "",
             "| g_s widths | decode MACs/pixel | KV260 720p per frame | KV260 720p pipelined | KV260 720p pipelined, "
             "4 entropy cores | ZCU102 1080p per frame | ZCU102 1080p per frame, 4 entropy cores | ZCU102 1080p "
             "pipelined | ZCU102 1080p pipelined, 4 entropy cores |", "|---|---|---|---|---|---|---|---|---|"]

    def goal(v: float, platform: str) -> str:
        return f"**{_fps(v)}**" if v >= GOALS[platform][1] else _fps(v)

    for row in rows:
        one, four = row["rates"][1], row["rates"][MAX_ENTROPY_CORES]
        kv, kv4 = one["720p"]["KV260"], four["720p"]["KV260"]
        zc, zc4 = one["1080p"]["ZCU102"], four["1080p"]["ZCU102"]
        parts.append(f"| {'-'.join(str(w) for w in row['widths'])} | {row['decode_macs_per_pixel'] / 1e3:.1f} k | "
                     f"{_fps(kv['fps'])} | {goal(kv['fps_pipelined'], 'KV260')} | "
                     f"{goal(kv4['fps_pipelined'], 'KV260')} | {goal(zc['fps'], 'ZCU102')} | "
                     f"{goal(zc4['fps'], 'ZCU102')} | {goal(zc['fps_pipelined'], 'ZCU102')} | "
                     f"{goal(zc4['fps_pipelined'], 'ZCU102')} |")
    parts += ["", ZERO_INSERT_TEXT, "",
              "| g_s widths | KV260 720p DPU ms: phases / zero-inserted | KV260 720p pipelined fps: phases / "
              "zero-inserted | ZCU102 1080p DPU ms: phases / zero-inserted | ZCU102 1080p pipelined fps: phases / "
              "zero-inserted |", "|---|---|---|---|---|"]
    for row in rows:
        kv, zc = row["rates"][1]["720p"]["KV260"], row["rates"][1]["1080p"]["ZCU102"]
        kvz, zcz = row["rates_zero_insert"]["720p"]["KV260"], row["rates_zero_insert"]["1080p"]["ZCU102"]
        parts.append(f"| {'-'.join(str(w) for w in row['widths'])} | {kv['dpu_ms']:.1f} / {kvz['dpu_ms']:.1f} | "
                     f"{_fps(kv['fps_pipelined'])} / {_fps(kvz['fps_pipelined'])} | {zc['dpu_ms']:.1f} / "
                     f"{zcz['dpu_ms']:.1f} | {_fps(zc['fps_pipelined'])} / {_fps(zcz['fps_pipelined'])} |")
    return parts


def render_doc(reports: list[dict], fit: dict | None = None, frontier_rows: list[dict] | None = None) -> str:
    a = ASSUMPTIONS
    parts = [DOC_HEAD, "## Summary (generated)", "", SUMMARY_HEAD, *(_summary_row(r) for r in reports), "",
             READING, "",
             "Decode frame rates, per frame / pipelined (fps), one entropy core; the next section says what each "
             "figure assumes:", "", RATES_HEAD]
    for r in reports:
        label = f"{r['model']} ({r['timing']['mode']})"
        parts.append(_rates_row(label, {size: r["totals"][f"frame_rate_{size}_decode"] for size in FRAMES}))
        if r["timing"]["mode"] != "optimistic":
            layers = _layers_of(r)
            parts.append(_rates_row(f"{r['model']} (former assumptions, `--timing optimistic`)",
                                    {size: frame_rates(layers, FRAMES[size], "optimistic") for size in FRAMES}))
    parts += ["", "Decode time split at 1080p (ms; timing of the first row of each model above):", "",
              "| model | KV260 DPU | KV260 CPU | KV260 calls | ZCU102 DPU | ZCU102 CPU | ZCU102 calls |",
              "|---|---|---|---|---|---|---|"]
    for r in reports:
        f = r["totals"]["frame_rate_1080p_decode"]
        parts.append(f"| {r['model']} | {f['KV260']['dpu_ms']:.1f} | {f['KV260']['cpu_ms']:.1f} | "
                     f"{f['KV260']['call_overhead_ms']:.1f} | {f['ZCU102']['dpu_ms']:.1f} | "
                     f"{f['ZCU102']['cpu_ms']:.1f} | {f['ZCU102']['call_overhead_ms']:.1f} |")
    parts += ["", "## What the frame rates assume", "", PIPELINE_TEXT]
    if frontier_rows:
        parts += ["", *_frontier_section(frontier_rows)]
    if fit:
        parts += ["", *_calibration_section(fit)]
    parts += ["", "## The former assumptions (`--timing optimistic`)", "", OPTIMISTIC_TEXT, "",
              "Every number below is an assumption, not a measurement, except `entropy_symbols_per_s`, an estimate "
              "from measured ratios (docs/entropy.md §2.5) (the CPU rates, `entropy_symbols_per_s` and "
              "`entropy_cores` are used by both timings):", ""]
    parts += [f"- `{k}` = {v}" for k, v in asdict(a).items()]
    parts += ["", FPS_TEXT, "", "## Where each op kind runs", "", "| op | runs on | why |", "|---|---|---|"]
    parts += [f"| {op} | {device} | {reason} |" for op, (device, reason) in PLACEMENT.items()]
    for r in reports:
        parts += ["", f"## {r['model']}: every op in decode order", "", f"Configuration: `{json.dumps(r['config'])}`",
                  "", layer_table(r)]
    return "\n".join(parts) + "\n"


DOC_HEAD = """# FPGA suitability: mean-scale, ChARM and window attention on the Vitis AI DPU

Generated by `fxlic hw-report --doc docs/fpga-suitability.md` (needs torch: the graphs are torch modules;
`fxlic hw-report --model NAME [--json]` prints one model; `--timing optimistic` the former bound,
`--entropy-cores N` parallel entropy substreams, `--model meanscale --widths C1 C2 C3` or `--decoder NAME`
another synthesis transform). Do not edit by hand.

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
convs) on the ARM cores, which then dominate the decode time. The frame rates are estimates: the DPU side
from a timing model fitted to AMD's published throughputs of other networks (section "The DPU timing model"),
the CPU side from stated rates; no board run of these models was used."""

PIPELINE_TEXT = """Both figures decode whole frames padded to a multiple of 64 (1080p: 1920×1088; 720p: 1280×720 →
1280×768), each DPU call compiled for the whole frame (meanscale: 2 calls, h_s then g_s), int8 tensors in DDR.

- **DPU time** (timing `fitted`): every DPU op of the decode, timed by `fxlic.qat.dpu_timing` at the board's
  published clock (KV260: 1× B4096 at 300 MHz; ZCU102: 3× B4096 at 281 MHz, board rev. 0432055-05). On
  ZCU102 each call's frame is split into three tiles run on the three cores at once (halos ignored), which share
  the DDR bandwidth; the DPU time is one core's time for its tile.
- **CPU time**: the decode's CPU steps; for meanscale, entropy decoding of ẑ and ŷ at
  `entropy_symbols_per_s` = 19.5 M symbols/s per Cortex-A53 core (an estimate: fxlic's x86 rate scaled by the
  A53/x86 ratio of 7-Zip's LZMA decompression, docs/entropy.md §2.5), ŷ on `entropy_cores` cores (default 1;
  `--entropy-cores N`, up to 4: format version 4 splits ŷ into one substream per 256-pixel tile, 40 at 1080p),
  ẑ (one stream) on one. The conversion of the decoded image to pixels and any display are not counted.
- **Call overhead**: DPU calls × the fitted per-call overhead, counted as CPU work.
- **Per frame** (`fps`): 1 / (DPU + CPU + call overhead): one frame at a time, nothing overlaps (the latency of
  one decode).
- **Pipelined** (`fps_pipelined`): 1 / max(DPU, CPU + call overhead). Assumes a stream of frames (video or a
  batch of images) decoded by at least two threads: while the DPU runs h_s and g_s of frame n, the CPU
  entropy-decodes frame n+1; DPU jobs are queued (`execute_async`) so that the DPU never waits for a call's
  hand-over, and the CPU pays every call's overhead on its own timeline. Within one frame nothing overlaps
  (g_s needs all of ŷ; ŷ's entropy decoding needs h_s's output), so the pipeline holds two frames in flight and
  the latency stays that of the per-frame figure. Not modelled: contention between the CPU's and the DPU's DDR
  traffic, and the CPU time to fill the DPU's input buffers (ŷ, int8, a few hundred KB per frame)."""

TIMING_MODEL_TEXT = """`fxlic.qat.dpu_timing` times one DPU layer as max(compute, memory) + a fixed per-layer overhead,
on the B4096 engine as the target description `DPUCZDX8G_ISA1_B4096.prototxt` (Xilinx/Vitis-AI, tag v3.5)
states it: the conv engine does 8 pixels × 16 input channels × 16 output channels per cycle, the element-wise and
pooling engines 4 pixels × 16 channels.

- compute = engine cycles / (clock × compute efficiency); a conv takes out_h · ⌈out_w/8⌉ · ⌈C_in/16⌉ ·
  ⌈C_out/16⌉ · k_h · k_w cycles, so thin layers pay for their idle lanes (g_s's last layer, 96 → 3 channels,
  uses 3 of 16 output lanes). Channel augmentation (`channel_augmentation { channel_num: 32 }`, our reading):
  a layer with C_in < 16 and C_in·k_w ≤ 32 folds the kernel width into the input channels. A transposed conv of
  stride s runs as s² stride-1 sub-convolutions of ⌈k/s⌉² taps whose outputs are interleaved (our reading of the
  engine's `stride_out` limit and of the quantizer's DPU op filter, which checks *kernel / stride* against the
  kernel range: `check_transposed_kernel` in `src/vai_quantizer/vai_q_pytorch/pytorch_binding/pytorch_nndct/
  hardware/dpu_op_filter.py`, tag v3.5), so a k4 s2 transposed conv costs its useful 4·C_in·C_out MACs per
  output pixel, not the 16·C_in·C_out of a zero-inserted input (see the sensitivity table above).
- memory = (input + output + weight bytes, int8) / effective DDR bandwidth; with n cores busy each gets
  min(one core's bandwidth, shared bandwidth / n). No tensor is assumed to stay on chip between layers.
- a DPU call adds a per-call overhead (CPU side).

The constants are fitted by least squares on log fps to AMD's published end-to-end throughputs (Vitis AI 2.5
Model Zoo, `model_zoo/README.md`, tag v2.5: ZCU102 3× B4096 @ 281 MHz, ZCU104 2× B4096 @ 300 MHz, KV260 1×
B4096F @ 300 MHz; single and multi thread) of the 10 networks whose layer shapes are public and rebuilt in
`dpu_timing` (VGG-16/19, ResNet-18/50/101/152 in Keras and TF-slim variants, YOLOv3, ERFNet, SuperPoint: their
MAC counts match the published operation counts within 1.5 %). Single thread is modelled as 1/fps = DPU +
call overhead + the vendor's post-processing (a fitted cost per network output element); multi-thread as one job
per DPU core in flight, 1/fps = max(DPU with shared bandwidth / cores, CPU work / 4 A53 cores). The
post-processing term exists only to read the vendor's end-to-end figures (argmax, NMS, softmax) and is not
used for the codec. The KV260 multi-thread rows (one DPU core, CPU work spread over four cores) are the ones
whose published fps is the DPU's own throughput: they test the part of the model the codec uses. Networks
published with their GOPS and input size only (denoising, super-resolution, segmentation, crowd counting) are
listed with a coarse estimate (one layer with every lane busy, image-sized input and output) and not fitted;
their errors show what layer shapes are worth (table "Whole-network efficiency" below)."""

FRONTIER_TEXT = """meanscale with a narrower synthesis transform g_s (4 transposed convs k4 s2 p1: 128 → c₁ → c₂ →
c₃ → 3, uniform widths c here; h_s and the encoder unchanged), timing `fitted` (fps per frame and pipelined,
as defined above), one entropy core unless stated. Goals: KV260 720p ≥ 30 fps pipelined, ZCU102 1080p ≥ 30 fps
(per frame or pipelined); figures in bold meet them. `fxlic hw-report --model meanscale --widths C1 C2 C3`
analyses any other widths, `--decoder NAME` a shipped lite decoder. Widths are best multiples of 16 (the
engine's channel parallelism): 24 costs what 32 costs. The entropy decoder bounds the pipelined rate on its own,
whatever g_s's width:"""

OPTIMISTIC_TEXT = """`--timing optimistic` keeps the estimate this report made before the fit: every DPU op at 50 % of
the B4096's peak on the channel lanes it uses, no memory time, 300 MHz on both boards. It is not a bound in either
direction. The fit finds a higher sustained efficiency on well-shaped layers (about 0.9 on the used lanes: the
vendor's low whole-network figures come from idle lanes, DDR-bound thin layers and the CPU's pre- and
post-processing, which the fitted model charges separately), so for meanscale's wide g_s (96 channels, a
multiple of 16) the fitted DPU time is *shorter* than the former assumption's, while thin or memory-bound
layers come out slower. The CPU side is the same in both."""

ZERO_INSERT_TEXT = """The largest uncertainty of these figures is how the DPU runs a transposed convolution, which is
all of g_s. The fitted timing assumes s² sub-convolutions of ⌈k/s⌉² taps (4 per output pixel for k4 s2), read
from the vendor's op filter (it checks *kernel / stride* against the conv engine's kernel range) and the
engine's `stride_out` limit; the calibration set cannot confirm it (ERFNet's transposed convs are 4 % of its
MACs, and its fit is the same either way). If the DPU instead convolved a zero-inserted input (16 taps per
output pixel for k4 s2), g_s would cost about four times the cycles:"""

FPS_TEXT = """Optimistic model: decode time = (Σ DPU op time) / cores + Σ CPU step time + DPU calls × call overhead
(per frame; pipelined: 1 / max(DPU / cores, CPU + calls × overhead)). A DPU conv takes MACs / (2048 × 300 MHz ×
efficiency × lane use), where lane use = (C_in / ⌈C_in⌉₁₆) · (C_out / ⌈C_out⌉₁₆) charges the idle channel lanes
of thin layers (the 3-channel image layer uses 3/16 of them); no memory time, ZCU102 at 300 MHz. On ZCU102
each DPU call is split across the 3 cores. CPU steps (both timings): entropy decoding at
`entropy_symbols_per_s` per core on `entropy_cores` cores (slice streams in order), CPU MACs (attention
products, GDN's γ) at `cpu_macs_per_s`, non-linear element-wise ops (GELU, softmax, sigmoid, tanh, GDN's sqrt
and division) at `cpu_nonlinear_per_s` per input element, permutes and the LRP add at `cpu_move_bytes_per_s`."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fxlic hw-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=MODELS, action="append",
                   help="model to analyse (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print JSON: one object (layers, totals) per model; "
                                                      "one model: the object itself")
    p.add_argument("--doc", metavar="PATH", help="write the markdown report (docs/fpga-suitability.md) for the "
                                                 "chosen models, with the timing calibration and the g_s frontier")
    p.add_argument("--timing", choices=TIMINGS, default="fitted",
                   help="DPU timing: 'fitted' (default: fxlic.qat.dpu_timing, fitted to AMD's published "
                        "throughputs) or 'optimistic' (the former assumptions, 50 %% of peak)")
    p.add_argument("--entropy-cores", type=int, default=1, metavar="N",
                   help=f"Cortex-A53 cores decoding entropy substreams at once (1 to {MAX_ENTROPY_CORES}; default 1)")
    gs = p.add_mutually_exclusive_group()
    gs.add_argument("--widths", type=int, nargs=3, metavar=("C1", "C2", "C3"),
                    help="meanscale with these g_s hidden widths (default: 96 96 96); the encoder is unchanged")
    gs.add_argument("--decoder", metavar="NAME",
                    help="meanscale with a shipped decoder's g_s: 'full' (the default) or a lite decoder's name")
    args = p.parse_args(argv)
    names = args.model or list(MODELS)
    if (args.widths or args.decoder) and names != ["meanscale"]:
        raise UsageError("--widths/--decoder apply to meanscale only: add --model meanscale")
    reports = [report(name, args.widths, args.decoder, args.timing, args.entropy_cores) for name in names]
    if args.doc:
        fit = dpu_timing.run_fit() if dpu_timing.CALIBRATION_CSV.exists() else None
        Path(args.doc).write_text(render_doc(reports, fit, frontier(timing=args.timing)))
        print(f"wrote {args.doc}")
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"models": reports}, indent=1))
    elif not args.doc:
        print("\n\n".join(render_text(r) for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
