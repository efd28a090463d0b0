"""Which parts of the codec run on the DPU and which on the ARM CPU, as the board sees them.

The mean-scale hyperprior (``docs/architecture.md``) deploys as three DPU subgraphs joined by CPU work:

    ┌ DPU "encoder" ──────────────────────────────┐   CPU                      CPU
    input ─g_a.0─g_a.1─g_a.2─g_a.3 (= y) ─────────┼─▶ ŷ = R(y → fix 0) ──────▶ y stream
                                  └─h_a.0─h_a.1─h_a.2 (= z) ─▶ ẑ = R(z → 0) ─▶ z stream
    ┌ DPU "hyper_decoder" ──────────────────────────┐
    ẑ ─h_s.0─h_s.1─┬─h_s_scales (log2 σ codes) ──┼─▶ CPU: table index, μ_r (docs/entropy.md ENT-M3)
                   └─h_s_means  (μ codes) ───────┘
    ┌ DPU "decoder" ─────────────────┐
    ŷ ─g_s.0─g_s.1─g_s.2─g_s.3 ─────┼─▶ CPU: pixel = q + 128, crop the padding
    └────────────────────────────────┘

* The DPU subgraphs are the conv / transposed-conv chains. Every layer is one ``QuantConv`` with fused
  activation; its output tensor carries the layer's name (the key of golden traces, ``docs/golden.md``).
* ŷ and ẑ are DPU fix ops in spirit (requantize to fix position 0, ``DPU_ROUND``, saturate), but the
  latents cross the DPU/CPU boundary anyway (the entropy coder needs them on the ARM), so the board runs
  the rounding on the CPU with the same integer rule (``fxlic.fxp.requantize``) and the decoder
  subgraphs take the integer latents as their inputs. ``h_a`` reads y, not ŷ, so g_a and h_a share one
  subgraph and y leaves it as an output.
* CPU-only by nature: padding/cropping, the rounding of latents, entropy coding, table selection
  (μ/σ → table) — integer code in ``fxlic.codec`` / ``fxlic.entropy`` / ``fxlic.reference``.

Tensor shapes here are NHWC with a batch axis of 1, ``(1, H, W, C)`` — what VART's tensors and Vitis
dumps use. Values are int8 codes; value = q · 2^-fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fxlic.reference.hyperprior import INPUT_FIX, LATENT_FIX, padded_size
from fxlic.reference.modelfile import ModelFile

__all__ = ["CpuOp", "LayerSpec", "Partition", "Subgraph", "TensorSpec", "partition_from_model", "padded_size"]

ENCODER, HYPER_DECODER, DECODER = "encoder", "hyper_decoder", "decoder"


@dataclass(frozen=True)
class TensorSpec:
    """One int8 tensor at a layer boundary.

    Attributes:
        name: our name, the golden-trace key: ``input``, a layer name (its output), ``y_hat``, ``z_hat``.
        channels: C.
        fix_pos: fix position (value = q · 2^-fix_pos), from the model file.
        producer: the layer that writes it, or the CPU op (``cpu:<name>``), or ``None`` for the image input.
    """

    name: str
    channels: int
    fix_pos: int
    producer: str | None


@dataclass(frozen=True)
class LayerSpec:
    """One DPU layer (conv or transposed conv + fused activation), as the model file describes it."""

    name: str
    input: str  # tensor name
    transposed: bool
    kernel: tuple[int, int]
    stride: int
    padding: int
    in_channels: int
    out_channels: int
    activation: str
    fix_in: int
    fix_w: int
    fix_b: int
    fix_out: int

    @property
    def output(self) -> str:
        """A layer's output tensor carries the layer's name."""
        return self.name


@dataclass(frozen=True)
class Subgraph:
    """A DPU subgraph: the layers it runs (dataflow order) and the tensors that cross its boundary.

    ``internal`` tensors are every layer output that is not an output of the subgraph: VART dumps them
    under ``internal/`` (``XLNX_ENABLE_DUMP=1``).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layers: tuple[str, ...]
    device: str = "DPU"

    @property
    def internal(self) -> tuple[str, ...]:
        return tuple(name for name in self.layers if name not in self.outputs)


@dataclass(frozen=True)
class CpuOp:
    """Work on the ARM CPU between the DPU subgraphs (integer code, no float)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    what: str


@dataclass(frozen=True)
class Partition:
    """The partition of one model: DPU subgraphs, CPU ops, every boundary tensor with its fix position."""

    model_name: str
    model_quality: int
    model_hash: str
    tensors: dict[str, TensorSpec]
    layers: dict[str, LayerSpec]
    subgraphs: tuple[Subgraph, ...]
    cpu_ops: tuple[CpuOp, ...] = field(default=())

    # ---- lookup ----------------------------------------------------------------------------------
    def subgraph(self, name: str) -> Subgraph:
        for sg in self.subgraphs:
            if sg.name == name:
                return sg
        raise KeyError(f"no subgraph {name!r}; the partition has {', '.join(s.name for s in self.subgraphs)}")

    def subgraph_of(self, tensor: str) -> Subgraph:
        """The DPU subgraph that writes ``tensor``, or (for a subgraph input) reads it first."""
        for sg in self.subgraphs:
            if tensor in sg.layers:
                return sg
        for sg in self.subgraphs:
            if tensor in sg.inputs:
                return sg
        raise KeyError(f"tensor {tensor!r} is not in a DPU subgraph")

    def dpu_tensors(self, subgraph: str | None = None) -> list[str]:
        """Every tensor a DPU subgraph touches, in dataflow order: its inputs, then each layer's output."""
        out: list[str] = []
        for sg in self.subgraphs:
            if subgraph is None or sg.name == subgraph:
                out.extend(t for t in sg.inputs if t not in out)
                out.extend(t for t in sg.layers if t not in out)
        return out

    def layer_input(self, layer: str) -> str:
        return self.layers[layer].input

    # ---- shapes ----------------------------------------------------------------------------------
    def shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int, int]]:
        """NHWC shape ``(1, H, W, C)`` of every boundary tensor for an image of ``height × width`` pixels.

        The image is padded to multiples of 64 (``PAD_MULTIPLE``) first, as the codec does; shapes then
        follow from each layer's geometry (conv: (H + 2p − k) // s + 1; transposed conv:
        (H − 1)s − 2p + k), so they are right for any model with these layer names.
        """
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        ph, pw = padded_size(height, width)
        hw: dict[str, tuple[int, int]] = {"input": (ph, pw)}
        for name in self.dataflow_order():
            if name in self.layers:
                spec = self.layers[name]
                h, w = hw[spec.input]
                kh, kw = spec.kernel
                if spec.transposed:
                    hw[name] = ((h - 1) * spec.stride - 2 * spec.padding + kh,
                                (w - 1) * spec.stride - 2 * spec.padding + kw)
                else:
                    hw[name] = ((h + 2 * spec.padding - kh) // spec.stride + 1,
                                (w + 2 * spec.padding - kw) // spec.stride + 1)
            elif name in ("y_hat", "z_hat"):
                hw[name] = hw[_LATENT_SOURCE[name]]
        return {name: (1, h, w, self.tensors[name].channels) for name, (h, w) in hw.items()}

    def dataflow_order(self) -> list[str]:
        """All tensors in an order where every tensor follows its producer's input."""
        order = ["input"]
        for name in ("g_a", "h_a"):
            order.extend(t for t in self.subgraph(ENCODER).layers if t.startswith(name))
        order.extend(["y_hat", "z_hat"])
        order.extend(self.subgraph(HYPER_DECODER).layers)
        order.extend(self.subgraph(DECODER).layers)
        return order

    # ---- description -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "model": {"name": self.model_name, "quality": self.model_quality, "hash": self.model_hash},
            "tensors": {k: asdict(v) for k, v in self.tensors.items()},
            "layers": {k: asdict(v) for k, v in self.layers.items()},
            "subgraphs": [asdict(s) | {"internal": list(s.internal)} for s in self.subgraphs],
            "cpu_ops": [asdict(c) for c in self.cpu_ops],
        }

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        """A human-readable table of the partition (and NHWC shapes when a size is given)."""
        shapes = self.shapes(height, width) if height and width else {}
        lines = [f"partition of model {self.model_name} q{self.model_quality} ({self.model_hash[:12]})"]
        if shapes:
            ph, pw = padded_size(height, width)
            lines[0] += f", image {height}x{width} (padded {ph}x{pw})"
        for sg in self.subgraphs:
            lines.append(f"  DPU subgraph {sg.name}: inputs {', '.join(sg.inputs)} -> outputs {', '.join(sg.outputs)}")
            for t in list(sg.inputs) + list(sg.layers):
                spec = self.tensors[t]
                kind = "input" if t in sg.inputs else ("output" if t in sg.outputs else "internal")
                shape = "x".join(map(str, shapes[t])) if shapes else ""
                layer = self.layers.get(t)
                geo = ""
                if layer is not None:
                    op = "tconv" if layer.transposed else "conv"
                    geo = (f"{op} k{layer.kernel[0]} s{layer.stride} p{layer.padding} {layer.activation:10s} "
                           f"fix in/w/b/out {layer.fix_in}/{layer.fix_w}/{layer.fix_b}/{layer.fix_out}")
                lines.append(f"    {kind:8s} {t:12s} fix {spec.fix_pos:3d}  {shape:16s} {geo}")
        for op in self.cpu_ops:
            lines.append(f"  CPU {op.name}: {', '.join(op.inputs)} -> {', '.join(op.outputs)}: {op.what}")
        return "\n".join(lines)


_LATENT_SOURCE = {"y_hat": "g_a.3", "z_hat": "h_a.2"}



def _chain(model: ModelFile, prefix: str) -> list[str]:
    names = [n for n in model.layers if n.startswith(prefix + ".") and n[len(prefix) + 1 :].isdigit()]
    return sorted(names, key=lambda n: int(n.rsplit(".", 1)[1]))


def partition_from_model(model: ModelFile) -> Partition:
    """The partition of a mean-scale (or scale-only) hyperprior model file; fix positions from the file.

    Raises:
        ValueError: the model lacks a chain the partition needs (g_a, h_a, h_s, h_s_scales, g_s).
    """
    g_a, h_a, h_s, g_s = (_chain(model, p) for p in ("g_a", "h_a", "h_s", "g_s"))
    if not (g_a and h_a and h_s and g_s) or "h_s_scales" not in model.layers:
        raise ValueError("model file lacks one of the layer chains g_a.*, h_a.*, h_s.*, h_s_scales, g_s.*")
    heads = ["h_s_scales"] + (["h_s_means"] if "h_s_means" in model.layers else [])
    wiring: dict[str, str] = {}
    for chain, first_input in ((g_a, "input"), (h_a, g_a[-1]), (h_s, "z_hat"), (g_s, "y_hat")):
        prev = first_input
        for name in chain:
            wiring[name] = prev
            prev = name
    for head in heads:
        wiring[head] = h_s[-1]

    layers: dict[str, LayerSpec] = {}
    tensors: dict[str, TensorSpec] = {"input": TensorSpec("input", model.layers[g_a[0]].in_channels, INPUT_FIX, None)}
    for name, source in wiring.items():
        q = model.layers[name]
        layers[name] = LayerSpec(name=name, input=source, transposed=q.transposed, kernel=q.kernel_size,
                                 stride=q.stride, padding=q.padding, in_channels=q.in_channels,
                                 out_channels=q.out_channels, activation=q.activation, fix_in=q.fix_in,
                                 fix_w=q.fix_w, fix_b=q.fix_b, fix_out=q.fix_out)
        tensors[name] = TensorSpec(name, q.out_channels, q.fix_out, name)
    tensors["y_hat"] = TensorSpec("y_hat", layers[g_a[-1]].out_channels, LATENT_FIX, "cpu:round_latents")
    tensors["z_hat"] = TensorSpec("z_hat", layers[h_a[-1]].out_channels, LATENT_FIX, "cpu:round_latents")

    subgraphs = (
        Subgraph(ENCODER, inputs=("input",), outputs=(g_a[-1], h_a[-1]), layers=tuple(g_a + h_a)),
        Subgraph(HYPER_DECODER, inputs=("z_hat",), outputs=tuple(heads), layers=tuple(h_s + heads)),
        Subgraph(DECODER, inputs=("y_hat",), outputs=(g_s[-1],), layers=tuple(g_s)),
    )
    cpu_ops = (
        CpuOp("pad_and_offset", ("pixels",), ("input",),
              "edge-replicate right/bottom to multiples of 64, q = p - 128 (fix 8)"),
        CpuOp("round_latents", (g_a[-1], h_a[-1]), ("y_hat", "z_hat"),
              "requantize to fix 0 (DPU_ROUND, saturate): a DPU fix op, run on the ARM because the "
              "latents leave the DPU for entropy coding"),
        CpuOp("z_entropy", ("z_hat",), ("z stream",), "rANS, one factorized table per channel (ENT-M2)"),
        CpuOp("table_selection", tuple(heads), ("y_table", "y_mean"),
              "scale_lut[q_s + 128], mu to 1/2^b units, mu_r, frac (ENT-M3)"),
        CpuOp("y_entropy", ("y_hat", "y_table", "y_mean"), ("y stream",), "rANS of y_hat - mu_r (ENT-M3)"),
        CpuOp("to_pixels", (g_s[-1],), ("pixels",), "p = q + 128, crop the padding"),
    )
    return Partition(model_name=model.name, model_quality=model.quality, model_hash=model.content_hash().hex(),
                     tensors=tensors, layers=layers, subgraphs=subgraphs, cpu_ops=cpu_ops)
