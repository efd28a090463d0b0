"""A per-layer decode-time model of the Vitis AI DPU (DPUCZDX8G, B4096), fitted to AMD's published throughputs.

Why: ``fxlic hw-report`` used to assume a DPU efficiency of 0.5 that nothing supported; AMD's published
single-thread throughputs put whole networks anywhere between a few per cent and ~90 % of a B4096 core's peak,
depending on layer shapes. This module replaces the assumption by a model whose free constants are fitted to
the vendor's measurements (``results/dpu-calibration/published.csv``; every row cites its source).

The engine (facts, not fitted) is the DPUCZDX8G_ISA1_B4096 target description, Xilinx/Vitis-AI
``src/vai_runtime/target_factory/targets/DPUCZDX8G_ISA1_B4096.prototxt`` (tag v3.5, commit 7a0d5a69):

* conv engine: ``pixel_parallel: 8``, ``input_channel_parallel: 16``, ``output_channel_parallel: 16``
  (2048 MACs per cycle), ``channel_augmentation { channel_num: 32 }``, ``conv_limit { stride_out_h: "1-4" }``;
* eltwise engine (add, multiply) and ALU engine (pooling, depthwise): ``channel_parallel: 16``,
  ``pixel_parallel: 4``.

Per layer, time = max(compute, memory) + a fixed per-layer overhead:

* compute = engine cycles / (clock × compute efficiency). A conv takes ``out_h · ⌈out_w/8⌉ · ⌈C_in/16⌉ ·
  ⌈C_out/16⌉ · kh · kw`` cycles, so thin layers pay for their idle lanes. Channel augmentation (our reading of
  ``channel_num: 32``): a layer with C_in < 16 and C_in·kw ≤ 32 folds the kernel width into the input
  channels (the 3-channel image layer of a k3 conv uses 9 of 16 lanes, not 3). A transposed conv with stride s
  is run as s² stride-1 sub-convolutions of ⌈k/s⌉×⌈k/s⌉ taps whose outputs are interleaved, so it costs
  ⌈k/s⌉² taps per output pixel (a k4 s2 transposed conv: its useful 4·C_in·C_out MACs per output pixel), not
  the k² of a convolution over a zero-inserted input. Our reading of two vendor sources: the target's
  ``stride_out_h`` conv limit, and the quantizer's DPU op filter, which checks a transposed conv's *kernel /
  stride* against the conv engine's kernel range (``check_transposed_kernel`` in
  ``src/vai_quantizer/vai_q_pytorch/pytorch_binding/pytorch_nndct/hardware/dpu_op_filter.py``, tag v3.5).
* memory = (input + output + weight bytes, int8) / effective DDR bandwidth. With n cores busy at once (the
  multi-thread figures; tiles or frames on ZCU102's three cores) each core gets min(one core's bandwidth,
  shared bandwidth / n).

A network run (one DPU call) adds a per-call overhead (CPU side: it also absorbs the vendor's fixed pre- and
post-processing per frame); the vendor's end-to-end figures also include the CPU's post-processing (softmax,
argmax, NMS), modelled as a cost per network output element. Single thread: 1/fps = DPU time + call overhead +
post-processing. Multi-thread (one job per core in flight, CPU work on the 4 Cortex-A53 cores): 1/fps =
max(DPU time with shared bandwidth / cores, (call overhead + post-processing) / 4). The KV260 multi-thread
rows (one DPU core) are thus the DPU's own throughput, the part of the model a codec's estimate uses. (A cost per
input pixel for pre-processing was tried and dropped: with it the per-call overhead went to 0 and the
leave-one-network-out error did not improve.)

The free constants (compute efficiency, the two bandwidths, the per-layer and per-call overheads, the
post-processing cost) are fitted by least squares on log fps over the rows whose networks have public layer
shapes (built below; their MAC counts are checked against the published GOPS). Rows with only published GOPS
and input size are modelled coarsely (one layer with every lane busy) and reported, not fitted: their error
shows how much layer shapes matter.
``python -m fxlic.qat.dpu_timing --fit results/dpu-calibration/published.csv`` refits, prints the calibration
table with leave-one-network-out errors and writes ``results/dpu-calibration/fit.json``; ``FITTED`` below is
that fit's result.

Pure NumPy (no torch): the fit runs anywhere.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

# ---- the engine (DPUCZDX8G_ISA1_B4096.prototxt, Vitis-AI v3.5) ------------------------------------------
PIXEL_PARALLEL = 8
CHANNEL_PARALLEL = 16
MACS_PER_CYCLE = PIXEL_PARALLEL * CHANNEL_PARALLEL * CHANNEL_PARALLEL  # 2048: "B4096" = 4096 ops/cycle
CHANNEL_AUGMENTATION = 32
ALU_PIXEL_PARALLEL = 4  # eltwise and ALU (pool) engines
ARM_CORES = 4  # Cortex-A53 cores of the Zynq UltraScale+ MPSoCs on KV260, ZCU104, ZCU102

REPO = Path(__file__).resolve().parents[1]
CALIBRATION_CSV = REPO / "results" / "dpu-calibration" / "published.csv"
FIT_JSON = REPO / "results" / "dpu-calibration" / "fit.json"


@dataclass(frozen=True)
class Board:
    """A board's DPU: number of B4096 cores and their clock, as in the vendor's measurement tables."""

    cores: int
    clock_hz: float
    config: str


BOARDS = {
    # Xilinx/Vitis-AI model_zoo/README.md (tag v2.5): "3 * B4096 @ 281MHz" (ZCU102 rev 0432055-05),
    # "2 * B4096 @ 300MHz" (ZCU104), "1 * B4096F @ 300MHz" (Kria KV260 SOM)
    "KV260": Board(1, 300e6, "1xB4096F @ 300 MHz"),
    "ZCU104": Board(2, 300e6, "2xB4096 @ 300 MHz"),
    "ZCU102": Board(3, 281e6, "3xB4096 @ 281 MHz"),
}


# ---- layers -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DpuLayer:
    """One DPU instruction group: ``conv``, ``tconv`` (transposed conv), ``fc``, ``add`` (element-wise),
    ``pool`` or ``copy`` (nearest upsample: memory only). ``stride`` of a ``copy`` is its upsampling factor."""

    name: str
    op: str
    c_in: int
    c_out: int
    out_h: int
    out_w: int
    kh: int = 1
    kw: int = 1
    stride: int = 1

    @property
    def in_hw(self) -> tuple[int, int]:
        if self.op == "tconv" or self.op == "copy":
            return math.ceil(self.out_h / self.stride), math.ceil(self.out_w / self.stride)
        if self.op in ("conv", "pool"):
            return self.out_h * self.stride, self.out_w * self.stride
        if self.op == "fc":
            return 1, 1
        return self.out_h, self.out_w

    @property
    def macs(self) -> float:
        if self.op == "conv":
            return float(self.out_h * self.out_w * self.c_in * self.c_out * self.kh * self.kw)
        if self.op == "tconv":
            return self.out_h * self.out_w * self.c_in * self.c_out * self.kh * self.kw / self.stride**2
        if self.op == "fc":
            return float(self.c_in * self.c_out)
        return 0.0

    @property
    def weight_bytes(self) -> int:
        if self.op in ("conv", "tconv", "fc"):
            return self.c_in * self.c_out * self.kh * self.kw + self.c_out  # int8 weights and bias
        return 0

    @property
    def bytes(self) -> float:
        """DDR traffic of the layer (int8): input(s), output, weights."""
        h, w = self.in_hw
        inputs = 2 * self.c_out * self.out_h * self.out_w if self.op == "add" else self.c_in * h * w
        return float(inputs + self.c_out * self.out_h * self.out_w + self.weight_bytes)

    @property
    def cycles(self) -> float:
        """Engine cycles at full efficiency (see the module docstring for the lane rules)."""
        groups = math.ceil(self.out_w / PIXEL_PARALLEL)
        if self.op == "conv":
            c_in, kw = self.c_in, self.kw
            if c_in < CHANNEL_PARALLEL and c_in * kw <= CHANNEL_AUGMENTATION:
                c_in, kw = c_in * kw, 1  # channel augmentation: the kernel width folded into the channels
            return float(self.out_h * groups * _blocks(c_in) * _blocks(self.c_out) * self.kh * kw)
        if self.op == "tconv":  # s² phases of ⌈k/s⌉² taps, each writing 1/s² of the outputs
            taps = math.ceil(self.kh / self.stride) * math.ceil(self.kw / self.stride)
            return self.out_h * groups * _blocks(self.c_in) * _blocks(self.c_out) * taps
        if self.op == "fc":
            return float(_blocks(self.c_in) * _blocks(self.c_out))
        alu_groups = math.ceil(self.out_w / ALU_PIXEL_PARALLEL)
        if self.op == "add":
            return float(self.out_h * alu_groups * _blocks(self.c_out))
        if self.op == "pool":
            return float(self.out_h * alu_groups * _blocks(self.c_out) * self.kh * self.kw)
        return 0.0


def _blocks(channels: int) -> int:
    return max(1, math.ceil(channels / CHANNEL_PARALLEL))


@dataclass(frozen=True)
class Network:
    """A built network: its DPU layers and the number of output elements the CPU post-processes."""

    layers: list[DpuLayer]
    output_elements: int


class _Net:
    """Builds a layer list while tracking the current tensor (channels, height, width)."""

    def __init__(self, c: int, h: int, w: int) -> None:
        self.c, self.h, self.w = c, h, w
        self.layers: list[DpuLayer] = []
        self.output_elements = 0

    def output(self) -> _Net:
        """Mark the current tensor as a network output (read by the CPU's post-processing)."""
        self.output_elements += self.c * self.h * self.w
        return self

    def network(self) -> Network:
        return Network(self.layers, self.output_elements)

    @property
    def state(self) -> tuple[int, int, int]:
        return self.c, self.h, self.w

    def at(self, state: tuple[int, int, int]) -> _Net:
        self.c, self.h, self.w = state
        return self

    def _add(self, op: str, c_out: int, h: int, w: int, kh: int = 1, kw: int = 1, stride: int = 1) -> _Net:
        self.layers.append(DpuLayer(f"{op}{len(self.layers)}", op, self.c, c_out, h, w, kh, kw, stride))
        self.c, self.h, self.w = c_out, h, w
        return self

    def conv(self, c_out: int, k: int | tuple[int, int], stride: int = 1) -> _Net:
        kh, kw = (k, k) if isinstance(k, int) else k
        return self._add("conv", c_out, math.ceil(self.h / stride), math.ceil(self.w / stride), kh, kw, stride)

    def tconv(self, c_out: int, k: int, stride: int) -> _Net:
        return self._add("tconv", c_out, self.h * stride, self.w * stride, k, k, stride)

    def pool(self, k: int, stride: int) -> _Net:
        return self._add("pool", self.c, math.ceil(self.h / stride), math.ceil(self.w / stride), k, k, stride)

    def add(self) -> _Net:
        return self._add("add", self.c, self.h, self.w)

    def upsample(self, factor: int) -> _Net:
        return self._add("copy", self.c, self.h * factor, self.w * factor, 1, 1, factor)

    def fc(self, c_out: int) -> _Net:
        self.c = self.c * self.h * self.w
        return self._add("fc", c_out, 1, 1)

    def concat(self, extra_channels: int) -> _Net:
        self.c += extra_channels  # written in place by the producers: no DPU work
        return self


# ---- public architectures (shapes from the papers / reference code; MACs checked against published GOPS) ----
def vgg(depth: int, size: int = 224) -> Network:
    """VGG-16/19 (Simonyan & Zisserman 2015, configurations D and E), 3×3 convs, 2×2 max pools, 3 FC layers."""
    per_stage = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}[depth]
    net = _Net(3, size, size)
    for width, n in zip((64, 128, 256, 512, 512), per_stage):
        for _ in range(n):
            net.conv(width, 3)
        net.pool(2, 2)
    return net.fc(4096).fc(4096).fc(1000).output().network()


def _bottleneck(net: _Net, mid: int, out: int, stride: int, style: str) -> None:
    start = net.state
    if style == "keras":  # stride in the first 1×1 (Keras ResNet50, as the original Caffe model)
        net.conv(mid, 1, stride).conv(mid, 3).conv(out, 1)
    else:  # "slim": stride in the 3×3 (TF-slim resnet_v1 bottleneck)
        net.conv(mid, 1).conv(mid, 3, stride).conv(out, 1)
    main = net.state
    net.at(start)
    if start[0] != out:
        net.conv(out, 1, stride)  # projection shortcut
    elif stride > 1:
        net.pool(1, stride)  # slim's subsample: 1×1 max pool with stride
    net.at(main).add()


def resnet(depth: int, style: str, size: int = 224, classes: int = 1000) -> Network:
    """ResNet v1 (He et al. 2016). ``style="keras"``: stride in the first unit of stages 3-5, on its first 1×1
    conv (tf.keras.applications.ResNet50). ``style="slim"``: TF-slim ``resnet_v1_{50,101,152}``, stride in the
    *last* unit of blocks 1-3 on its 3×3 conv, block 4 at stride 1. ``depth=18``: torchvision's basic blocks."""
    net = _Net(3, size, size).conv(64, 7, 2).pool(3, 2)
    if depth == 18:
        for i, width in enumerate((64, 128, 256, 512)):
            for unit in range(2):
                stride = 2 if i and not unit else 1
                start = net.state
                net.conv(width, 3, stride).conv(width, 3)
                main = net.state
                if stride > 1:
                    net.at(start).conv(width, 1, stride)
                net.at(main).add()
    else:
        units = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), units)):
            for unit in range(n):
                if style == "keras":
                    stride = 2 if i and not unit else 1
                else:
                    stride = 2 if i < 3 and unit == n - 1 else 1
                _bottleneck(net, width, 4 * width, stride, style)
    net.pool(net.h, net.h)  # global average pool
    return net.fc(classes).output().network()


def yolov3(size: int = 416, classes: int = 20) -> Network:
    """YOLOv3 (Redmon & Farhadi 2018): Darknet-53 and the three-scale head, 3·(5 + classes) outputs per scale."""
    net = _Net(3, size, size).conv(32, 3)
    routes = []
    for width, n in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        net.conv(width, 3, 2)
        for _ in range(n):
            net.conv(width // 2, 1).conv(width, 3).add()
        routes.append(net.state)
    outputs = 3 * (5 + classes)
    for i, width in enumerate((512, 256, 128)):
        if i:
            net.conv(width, 1).upsample(2).concat(routes[-1 - i][0])
        for _ in range(2):
            net.conv(width, 1).conv(2 * width, 3)
        net.conv(width, 1)
        branch = net.state
        net.conv(2 * width, 3).conv(outputs, 1).output()
        net.at(branch)
    return net.network()


def erfnet(height: int = 512, width: int = 1024, classes: int = 20) -> Network:
    """ERFNet (Romera et al. 2018): downsampler blocks (3×3 s2 conv ‖ 2×2 max pool), non-bottleneck-1D blocks
    (3×1, 1×3, dilated 3×1, 1×3, residual add), transposed-conv upsampler (3×3 s2) and output (2×2 s2)."""
    net = _Net(3, height, width)

    def down(c_out: int) -> None:
        start = net.state
        net.conv(c_out - start[0], 3, 2)
        conv = net.state
        net.at(start).pool(2, 2).at(conv).concat(start[0])

    def non_bt_1d(repeat: int = 1) -> None:
        for _ in range(repeat):
            net.conv(net.c, (3, 1)).conv(net.c, (1, 3)).conv(net.c, (3, 1)).conv(net.c, (1, 3)).add()

    down(16)
    down(64)
    non_bt_1d(5)
    down(128)
    non_bt_1d(8)
    net.tconv(64, 3, 2)
    non_bt_1d(2)
    net.tconv(16, 3, 2)
    non_bt_1d(2)
    return net.tconv(classes, 2, 2).output().network()


def superpoint(height: int = 480, width: int = 640) -> Network:
    """SuperPoint (DeTone et al. 2018): VGG-style encoder 64-64-64-64-128-128-128-128 with three 2×2 pools on a
    gray image, interest-point head (3×3 128→256, 1×1 256→65) and descriptor head (3×3 128→256, 1×1 256→256)."""
    net = _Net(1, height, width)
    for i, c in enumerate((64, 64, 128, 128)):
        net.conv(c, 3).conv(c, 3)
        if i < 3:
            net.pool(2, 2)
    trunk = net.state
    net.conv(256, 3).conv(65, 1).output()
    return net.at(trunk).conv(256, 3).conv(256, 1).output().network()


NETWORKS: dict[str, Callable[[], Network]] = {
    "tf_vgg16_imagenet_224_224_30.96G": lambda: vgg(16),
    "tf_vgg19_imagenet_224_224_39.28G": lambda: vgg(19),
    "tf2_resnet50_imagenet_224_224_7.76G": lambda: resnet(50, "keras"),
    "tf_resnetv1_50_imagenet_224_224_6.97G": lambda: resnet(50, "slim"),
    "tf_resnetv1_101_imagenet_224_224_14.4G": lambda: resnet(101, "slim"),
    "tf_resnetv1_152_imagenet_224_224_21.83G": lambda: resnet(152, "slim"),
    # vehicle_type_resnet18_pt: a ResNet-18 classifier (its class count is not published; the FC is negligible)
    "pt_vehicle-type-classification_CompCars_224_224_3.63G": lambda: resnet(18, "torchvision"),
    "tf_yolov3_voc_416_416_65.63G": lambda: yolov3(416, 20),
    "tf2_erfnet_cityscapes_512_1024_54G": lambda: erfnet(512, 1024, 20),
    "tf_superpoint_mixed_480_640_52.4G": lambda: superpoint(480, 640),
}
"""Networks of the calibration set whose layer shapes are built here, by the Model Zoo name."""


# ---- the timing model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimingParams:
    """The free constants of the DPU timing model (fitted: ``FITTED``)."""

    compute_efficiency: float  # sustained / peak engine throughput on the lanes a layer uses
    bandwidth_bytes_per_s: float  # effective DDR bandwidth of one core running alone
    shared_bandwidth_bytes_per_s: float  # effective DDR bandwidth shared by all cores running at once
    layer_overhead_s: float  # fixed cost per DPU layer (instruction fetch, pipeline fill, layer switch)
    call_overhead_s: float  # fixed CPU cost per DPU call and frame (runner submit/wait, cache maintenance, the
    # vendor's fixed pre/post-processing)
    host_s_per_output_element: float  # vendor's post-processing (softmax, argmax, NMS…) per output element

    def bandwidth(self, concurrent: int) -> float:
        """Effective bandwidth of one core while ``concurrent`` cores stream at once."""
        return min(self.bandwidth_bytes_per_s, self.shared_bandwidth_bytes_per_s / max(1, concurrent))


FITTED = TimingParams(
    compute_efficiency=0.9074599113495607,
    bandwidth_bytes_per_s=7970752252.610094,
    shared_bandwidth_bytes_per_s=11882582693.777468,
    layer_overhead_s=0.0,
    call_overhead_s=0.0002632663433186669,
    host_s_per_output_element=7.04538831392163e-09,
)
"""The fit of ``python -m fxlic.qat.dpu_timing --fit results/dpu-calibration/published.csv`` (60 rows with built
shapes: 10 networks × KV260, ZCU104, ZCU102 × single and multi thread, Vitis AI 2.5 Model Zoo; RMS log error
0.096 in sample, 0.213 leave-one-network-out; on the DPU-bound KV260 multi-thread rows
0.056 and 0.071; results/dpu-calibration/fit.json). The per-layer overhead ends at its bound, 0:
the data need none on top of the lane and bandwidth terms."""


@dataclass(frozen=True)
class _Arrays:
    cycles: np.ndarray
    bytes: np.ndarray
    output_elements: float

    @classmethod
    def of(cls, layers: Sequence[DpuLayer], output_elements: float = 0.0) -> _Arrays:
        return cls(np.array([layer.cycles for layer in layers]), np.array([layer.bytes for layer in layers]),
                   output_elements)


def layer_seconds(layer: DpuLayer, params: TimingParams, clock_hz: float, concurrent: int = 1) -> float:
    """Time of one DPU layer on one core: max(compute, memory) + the per-layer overhead."""
    compute = layer.cycles / (clock_hz * params.compute_efficiency)
    return max(compute, layer.bytes / params.bandwidth(concurrent)) + params.layer_overhead_s


def dpu_seconds(layers: Sequence[DpuLayer] | _Arrays, params: TimingParams, clock_hz: float,
                concurrent: int = 1) -> float:
    """Σ layer times of one run of ``layers`` on one core (no call overhead)."""
    a = layers if isinstance(layers, _Arrays) else _Arrays.of(layers)
    compute = a.cycles / (clock_hz * params.compute_efficiency)
    memory = a.bytes / params.bandwidth(concurrent)
    return float(np.maximum(compute, memory).sum() + len(a.cycles) * params.layer_overhead_s)


# ---- calibration rows -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One published measurement (a row of ``published.csv``)."""

    network: str
    zoo_name: str
    board: str
    clock_mhz: float
    input_h: int
    input_w: int
    gops: float
    fps: float
    threads: str  # "1" or "multi"
    source: str

    @property
    def shaped(self) -> bool:
        return self.zoo_name in NETWORKS

    @property
    def pixels(self) -> int:
        return self.input_h * self.input_w


def read_rows(path: str | Path = CALIBRATION_CSV) -> list[Row]:
    """The calibration rows of a ``published.csv``."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            h, w = (int(v) for v in r["input_size"].split("x"))
            match = re.fullmatch(r"([\d.]+)([GM])", r["gops_published"])
            gops = float(match[1]) / (1000.0 if match[2] == "M" else 1.0)
            rows.append(Row(r["network"], r["zoo_name"], r["board"], float(r["clock_mhz"]), h, w, gops,
                            float(r["fps_published"]), r["threads"], r["source"]))
    return rows


_SHAPES: dict[str, _Arrays] = {}


def _arrays(row: Row) -> _Arrays:
    """The row's network as arrays: built layers, or (no public shapes) one layer at full lane use whose
    memory traffic is the input image and whose output is taken as image-sized (3 elements per input pixel)."""
    if row.zoo_name not in _SHAPES:
        if row.shaped:
            net = NETWORKS[row.zoo_name]()
            _SHAPES[row.zoo_name] = _Arrays.of(net.layers, net.output_elements)
        else:
            _SHAPES[row.zoo_name] = _Arrays(np.array([row.gops * 1e9 / 2 / MACS_PER_CYCLE]),
                                            np.array([3.0 * row.pixels]), 3.0 * row.pixels)
    return _SHAPES[row.zoo_name]


def host_seconds(params: TimingParams, output_elements: float) -> float:
    """CPU time per frame of the vendor's end-to-end figures: call overhead and post-processing."""
    return params.call_overhead_s + params.host_s_per_output_element * output_elements


def modelled_fps(row: Row, params: TimingParams) -> float:
    """The model's fps for a published row (single thread: serial; multi-thread: one job per core in flight,
    the CPU work spread over the four A53 cores)."""
    board = BOARDS[row.board]
    clock = row.clock_mhz * 1e6
    a = _arrays(row)
    host = host_seconds(params, a.output_elements)
    if row.threads == "1":
        return 1.0 / (dpu_seconds(a, params, clock, 1) + host)
    dpu = dpu_seconds(a, params, clock, board.cores) / board.cores
    return 1.0 / max(dpu, host / ARM_CORES)


# ---- the fit ----------------------------------------------------------------------------------------------
_NAMES = [f.name for f in fields(TimingParams)]


def _to_params(theta: np.ndarray) -> TimingParams:
    values = np.exp(np.clip(theta, -60.0, 60.0))
    values[0] = 1.0 / (1.0 + math.exp(-min(max(theta[0], -60.0), 60.0)))  # compute efficiency in (0, 1)
    return TimingParams(*(float(v) for v in values))


def _to_theta(params: TimingParams) -> np.ndarray:
    theta = np.log([getattr(params, name) for name in _NAMES])
    e = params.compute_efficiency
    theta[0] = math.log(e / (1.0 - e))
    return theta


def _residuals(theta: np.ndarray, rows: Sequence[Row]) -> np.ndarray:
    params = _to_params(theta)
    return np.array([math.log(modelled_fps(row, params) / row.fps) for row in rows])


START = TimingParams(0.7, 6e9, 12e9, 20e-6, 1e-3, 5e-9)
"""The fit's first starting point (order-of-magnitude guesses; the fit also starts from scaled copies)."""


def fit(rows: Sequence[Row], start: TimingParams = START, iterations: int = 200) -> TimingParams:
    """Least squares on log fps (Levenberg-Marquardt, forward-difference Jacobian) from several starting
    points; the best end point. Deterministic."""
    best, best_cost = None, math.inf
    for scale in (1.0, 0.3, 3.0):
        theta = _to_theta(start)
        theta[1:] += math.log(scale)
        theta, cost = _levenberg_marquardt(theta, rows, iterations)
        if cost < best_cost:
            best, best_cost = theta, cost
    params = _to_params(best)
    # a cost the data drives to zero ends at the bound: write it as 0 rather than e^-60
    return replace(params, **{name: 0.0 for name, t in zip(_NAMES, best) if name != "compute_efficiency"
                              and t < ZERO_BOUND})


ZERO_BOUND = -30.0
"""log-parameter below which a fitted cost is reported as 0 (e^-30 s ≈ 1e-13 s: nothing at these scales)."""


def _levenberg_marquardt(theta: np.ndarray, rows: Sequence[Row], iterations: int) -> tuple[np.ndarray, float]:
    r = _residuals(theta, rows)
    cost, damping = float(r @ r), 1e-2
    for _ in range(iterations):
        jac = np.empty((len(r), len(theta)))
        for j in range(len(theta)):
            step = np.zeros_like(theta)
            step[j] = 1e-6
            jac[:, j] = (_residuals(theta + step, rows) - r) / 1e-6
        g, h = jac.T @ r, jac.T @ jac
        improved = False
        while damping < 1e8:
            delta = np.linalg.solve(h + damping * np.diag(np.diag(h) + 1e-12), -g)
            trial = theta + delta
            r_trial = _residuals(trial, rows)
            cost_trial = float(r_trial @ r_trial)
            if cost_trial < cost:
                improved = cost - cost_trial > 1e-12 * max(cost, 1e-300)
                theta, r, cost, damping = trial, r_trial, cost_trial, max(damping / 3, 1e-9)
                break
            damping *= 4
        if not improved:
            break
    return theta, cost


def error_table(rows: Sequence[Row], params: TimingParams) -> list[dict]:
    """Per row: published and modelled fps, error (modelled / published − 1) and whether shapes were built."""
    return [{"network": row.network, "zoo_name": row.zoo_name, "board": row.board, "threads": row.threads,
             "shapes": row.shaped, "fps_published": row.fps, "fps_modelled": modelled_fps(row, params),
             "error": modelled_fps(row, params) / row.fps - 1.0} for row in rows]


def leave_one_network_out(rows: Sequence[Row]) -> list[dict]:
    """Cross-validation: for each network with shapes, fit on the other networks' rows and predict its rows."""
    shaped = [row for row in rows if row.shaped]
    out = []
    for network in sorted({row.zoo_name for row in shaped}):
        params = fit([row for row in shaped if row.zoo_name != network])
        out += error_table([row for row in shaped if row.zoo_name == network], params)
    return out


def _dpu_bound(t: dict) -> bool:
    """KV260 multi-thread rows: one DPU core, the CPU work spread over four A53 cores, so the published fps is
    (close to) the DPU's own throughput: the rows that test the DPU side of the model alone."""
    return t["board"] == "KV260" and t["threads"] == "multi"


def summary(table: Sequence[dict]) -> dict[str, float]:
    """RMS of the log error, median and max |error| of a table."""
    if not table:
        return {"rows": 0}
    log_err = np.array([math.log1p(t["error"]) for t in table])
    abs_err = np.abs([t["error"] for t in table])
    return {"rows": len(table), "rms_log_error": float(np.sqrt(np.mean(log_err**2))),
            "median_abs_error": float(np.median(abs_err)), "max_abs_error": float(np.max(abs_err))}


def shape_check() -> list[dict]:
    """Each built network's MACs against the published GOPS (ops = 2 MACs in the Model Zoo's counting)."""
    out = []
    for name, build in NETWORKS.items():
        layers = build().layers
        gops = float(re.search(r"_([\d.]+)G$", name)[1])
        macs = sum(layer.macs for layer in layers)
        out.append({"zoo_name": name, "layers": len(layers), "gmacs_built": macs / 1e9,
                    "gops_published": gops, "ratio": 2 * macs / 1e9 / gops})
    return out


def run_fit(csv_path: str | Path = CALIBRATION_CSV) -> dict:
    """The whole calibration: fit on the rows with shapes, in-sample and leave-one-network-out errors, the
    coarse rows' errors, the shape check. What ``--fit`` writes to fit.json."""
    rows = read_rows(csv_path)
    shaped = [row for row in rows if row.shaped]
    params = fit(shaped)
    table = error_table(rows, params)
    loo = leave_one_network_out(rows)
    data = Path(csv_path).read_bytes()
    shown = Path(csv_path).resolve()
    shown = shown.relative_to(REPO) if shown.is_relative_to(REPO) else shown
    return {
        "command": f"python -m fxlic.qat.dpu_timing --fit {shown}",
        "csv_sha256": hashlib.sha256(data).hexdigest(),
        "params": asdict(params),
        "in_sample": table,
        "leave_one_network_out": loo,
        "summary": {"fitted_in_sample": summary([t for t in table if t["shapes"]]),
                    "fitted_leave_one_network_out": summary(loo),
                    "dpu_bound_in_sample": summary([t for t in table if t["shapes"] and _dpu_bound(t)]),
                    "dpu_bound_leave_one_network_out": summary([t for t in loo if _dpu_bound(t)]),
                    "coarse_not_fitted": summary([t for t in table if not t["shapes"]])},
        "shape_check": shape_check(),
    }


def format_fit(result: dict) -> str:
    """The calibration table of a ``run_fit`` result as text."""
    loo = {(t["zoo_name"], t["board"], t["threads"]): t for t in result["leave_one_network_out"]}
    lines = ["network               board   thr    published  modelled   error  LOO error  shapes"]
    for t in result["in_sample"]:
        cv = loo.get((t["zoo_name"], t["board"], t["threads"]))
        cv_text = f"{100 * cv['error']:+8.1f} %" if cv else "        —"
        lines.append(f"{t['network'][:21]:21s} {t['board']:7s} {t['threads']:5s} {t['fps_published']:9.2f} "
                     f"{t['fps_modelled']:9.2f} {100 * t['error']:+7.1f} % {cv_text}  "
                     f"{'built' if t['shapes'] else 'GOPS only'}")
    lines.append("")
    for key, s in result["summary"].items():
        lines.append(f"{key}: {s}")
    lines.append("")
    lines += [f"{name} = {value!r}" for name, value in result["params"].items()]
    lines.append("")
    lines += [f"{c['zoo_name']}: {c['layers']} layers, {c['gmacs_built']:.2f} GMAC built, 2·MACs / published GOPS "
              f"= {c['ratio']:.3f}" for c in result["shape_check"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.dpu_timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fit", metavar="CSV", required=True, help="calibration rows (results/dpu-calibration/"
                                                               "published.csv)")
    p.add_argument("--out", metavar="JSON", help="where to write the fit (default: fit.json beside the CSV)")
    args = p.parse_args(argv)
    result = run_fit(args.fit)
    print(format_fit(result))
    out = Path(args.out) if args.out else Path(args.fit).with_name("fit.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    fitted = TimingParams(**result["params"])
    if not all(math.isclose(getattr(fitted, n), getattr(FITTED, n), rel_tol=1e-3) for n in _NAMES):
        print("note: the constants in fxlic.qat.dpu_timing.FITTED differ from this fit; paste the ones above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
