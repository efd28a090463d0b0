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
* ẑ (and ŷ of a model file without the ŷ twin) is a DPU fix op in spirit (requantize to fix position 0,
  ``DPU_ROUND``, saturate), but the latents cross the DPU/CPU boundary anyway (the entropy coder needs
  them on the ARM), so the board runs the rounding on the CPU with the same integer rule
  (``fxlic.fxp.requantize``) and the decoder subgraphs take the integer latents as their inputs. ``h_a``
  reads y, not ŷ, so g_a and h_a share one subgraph and y leaves it as an output.
* A model file with the ŷ twin ``g_a_y_hat`` (format version 3, docs/fixed-point.md FXP-Q6) makes ŷ on
  the DPU: one more conv in the encoder subgraph, g_a's last weights on g_a's last input with output fix 0,
  an output of the subgraph (one rounding of the accumulator, where R(y → 0) would round twice).
* CPU-only by nature: padding/cropping, the rounding of latents, entropy coding, table selection
  (μ/σ → table) — integer code in ``fxlic.codec`` / ``fxlic.entropy`` / ``fxlic.reference``.

A ``charm`` model (docs/charm.md) keeps the encoder and decoder subgraphs and splits its decoder-side
entropy model by what the autoregression needs (docs/board.md, "charm"): DPU call j = 0 … S runs every
slice stack whose context holds j decoded slices —

    ┌ DPU "hyper_decoder" (j = 0) ─────────────────────────────────────────────────────────┐
    ẑ ─h_s.0─h_s.1─┬─h_s_scales (s) ─cc_scales.0.0─.1─.2 (log2 σ_0) ─────────────────────┼─▶ CPU: tables, ŷ_0
                   └─h_s_means  (m) ─cc_means.0.0─.1─.2  (μ_0) ───────────────────────────┘
    ┌ DPU "slice_j" (j = 1 … S−1) ─────────────────────────────────────────────────────────┐
    scale_context.j ─cc_scales.j.0─.1─.2 (log2 σ_j) ────────────────────────────────────┼─▶ CPU: tables, ŷ_j
    mean_context.j ─┬─cc_means.j.0─.1─.2 (μ_j) ─────────────────────────────────────────┤
                    └─lrp.{j−1}.0─.1─.2 (r_{j−1}) ──────────────────────────────────────┘
    ┌ DPU "slice_S" ────────────────────────────────┐
    mean_context.S ─lrp.{S−1}.0─.1─.2 (r_{S−1}) ────┼─▶ CPU: ỹ = ŷ + r (CH-8)
    ┌ DPU "decoder" ─────────────────┐
    ỹ ─g_s.0─g_s.1─g_s.2─g_s.3 ─────┼─▶ CPU: pixel = q + 128, crop

The contexts ``scale_context.j`` = concat(s, ŷ_0 … ŷ_{j−1}) and ``mean_context.j`` = concat(m, ŷ_0 … ŷ_{j−1})
are built on the CPU (CH-2: ŷ handed over at the support's fix position, an exact shift; the
concatenation a copy), so each DPU input is one tensor and the DPU is never asked to concatenate.

Tensor shapes here are NHWC with a batch axis of 1, ``(1, H, W, C)`` — what VART's tensors and Vitis
dumps use. Values are int8 codes; value = q · 2^-fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from fxlic.reference.charm import LRP_FIX, MEAN_CONTEXT, SCALE_CONTEXT, context_name
from fxlic.reference.hyperprior import INPUT_FIX, LATENT_FIX, padded_size
from fxlic.reference.modelfile import Y_HAT_TWIN, ModelFile

__all__ = ["CpuOp", "LayerSpec", "Partition", "Subgraph", "TensorSpec", "partition_from_model", "padded_size",
           "slice_subgraph"]

ENCODER, HYPER_DECODER, DECODER = "encoder", "hyper_decoder", "decoder"
CHARM = "charm"


def slice_subgraph(decoded: int) -> str:
    """Name of a charm DPU call made once ``decoded`` ≥ 1 slices are decoded: ``slice_<decoded>``."""
    return f"slice_{decoded}"


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
    derived: dict[str, str] = field(default_factory=dict)
    """CPU-made tensor (ŷ, ẑ, a charm context, ỹ) → a DPU tensor of the same height and width."""
    architecture: str = "meanscale"
    stacks: dict[str, str] = field(default_factory=dict)
    """charm: layer → its slice stack (``cc_means.1.0`` → ``cc_means.1``), named in reports."""

    def stack_of(self, tensor: str) -> str | None:
        """The slice stack (charm) that writes ``tensor``, or None."""
        return self.stacks.get(tensor)

    @property
    def decode_calls(self) -> int:
        """DPU calls (= DPU → CPU round trips) to decode one image (one window per subgraph): every subgraph
        but the encoder — 2 for the mean-scale hyperprior, S + 2 for charm."""
        return len(self.subgraphs) - 1

    @property
    def encode_calls(self) -> int:
        """DPU calls to encode one image with these subgraphs: the encoder, the hyper decoder and, for charm,
        slice_1 … slice_{S−1} (the encoder needs every slice's tables, not the last LRP or g_s)."""
        return len(self.subgraphs) - (2 if self.architecture == CHARM else 1)

    def macs_per_pixel(self) -> dict[str, float]:
        """Multiply-accumulates per image pixel of every DPU subgraph (exact ratios: every layer scales
        with the image area; counted on a 1024 × 1024 image). conv: out_h·out_w·C_out·C_in·k²;
        transposed conv: in_h·in_w·C_in·C_out·k²."""
        size = 1024
        shapes = self.shapes(size, size)
        macs: dict[str, float] = {}
        for sg in self.subgraphs:
            total = 0
            for name in sg.layers:
                spec = self.layers[name]
                _, h, w, _ = shapes[spec.input if spec.transposed else name]
                total += h * w * spec.in_channels * spec.out_channels * spec.kernel[0] * spec.kernel[1]
            macs[sg.name] = total / (size * size)
        return macs

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
        (H − 1)s − 2p + k), and a CPU-made tensor has the size of its ``derived`` source, so they are right
        for any model with these layer names.
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
            elif name in self.derived:
                hw[name] = hw[self.derived[name]]
        return {name: (1, h, w, self.tensors[name].channels) for name, (h, w) in hw.items()}

    def dataflow_order(self) -> list[str]:
        """All tensors in an order where every tensor follows what it is computed from (its layer's input,
        or a CPU-made tensor's ``derived`` source): the input, then each subgraph's inputs and layers."""
        def source(t: str) -> str | None:
            return self.layers[t].input if t in self.layers else self.derived.get(t)

        candidates = ["input", *(t for sg in self.subgraphs for t in (*sg.inputs, *sg.layers))]
        order: list[str] = []
        placed: set[str] = set()
        pending = list(dict.fromkeys(candidates))
        while pending:
            ready = [t for t in pending if source(t) is None or source(t) in placed]
            if not ready:
                raise ValueError(f"partition tensors without a source: {', '.join(pending)}")
            for t in ready:
                order.append(t)
                placed.add(t)
            pending = [t for t in pending if t not in placed]
        return order

    # ---- description -----------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "model": {"name": self.model_name, "quality": self.model_quality, "hash": self.model_hash,
                      "architecture": self.architecture},
            "tensors": {k: asdict(v) for k, v in self.tensors.items()},
            "layers": {k: asdict(v) for k, v in self.layers.items()},
            "subgraphs": [asdict(s) | {"internal": list(s.internal)} for s in self.subgraphs],
            "cpu_ops": [asdict(c) for c in self.cpu_ops],
            "dpu_calls": {"decode": self.decode_calls, "encode": self.encode_calls},
            "macs_per_pixel": self.macs_per_pixel(),
        }

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        """A human-readable table of the partition (and NHWC shapes when a size is given)."""
        shapes = self.shapes(height, width) if height and width else {}
        lines = [f"partition of model {self.model_name} q{self.model_quality} ({self.model_hash[:12]}, "
                 f"{self.architecture})"]
        if shapes:
            ph, pw = padded_size(height, width)
            lines[0] += f", image {height}x{width} (padded {ph}x{pw})"
        macs = self.macs_per_pixel()
        decode_macs = sum(v for k, v in macs.items() if k != self.subgraphs[0].name)
        lines.append(f"  DPU calls per image: decode {self.decode_calls}, encode {self.encode_calls}; decoder-side "
                     f"MACs per pixel {decode_macs:,.0f}")
        for sg in self.subgraphs:
            lines.append(f"  DPU subgraph {sg.name}: inputs {', '.join(sg.inputs)} -> outputs {', '.join(sg.outputs)}"
                         f" ({macs[sg.name]:,.0f} MACs per pixel)")
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
                lines.append(f"    {kind:8s} {t:15s} fix {spec.fix_pos:3d}  {shape:16s} {geo}")
        for op in self.cpu_ops:
            lines.append(f"  CPU {op.name}: {', '.join(op.inputs)} -> {', '.join(op.outputs)}: {op.what}")
        return "\n".join(lines)


def _chain(model: ModelFile, prefix: str) -> list[str]:
    names = [n for n in model.layers if n.startswith(prefix + ".") and n[len(prefix) + 1 :].isdigit()]
    return sorted(names, key=lambda n: int(n.rsplit(".", 1)[1]))


def _specs(model: ModelFile, wiring: dict[str, str]) -> tuple[dict[str, LayerSpec], dict[str, TensorSpec]]:
    """LayerSpec and output TensorSpec of every wired layer (layer → its input tensor), from the model file."""
    layers: dict[str, LayerSpec] = {}
    tensors: dict[str, TensorSpec] = {}
    for name, source in wiring.items():
        q = model.layers[name]
        layers[name] = LayerSpec(name=name, input=source, transposed=q.transposed, kernel=q.kernel_size,
                                 stride=q.stride, padding=q.padding, in_channels=q.in_channels,
                                 out_channels=q.out_channels, activation=q.activation, fix_in=q.fix_in,
                                 fix_w=q.fix_w, fix_b=q.fix_b, fix_out=q.fix_out)
        tensors[name] = TensorSpec(name, q.out_channels, q.fix_out, name)
    return layers, tensors


def _wire(chain: list[str], first_input: str, wiring: dict[str, str]) -> None:
    prev = first_input
    for name in chain:
        wiring[name] = prev
        prev = name


def partition_from_model(model: ModelFile) -> Partition:
    """The partition of a model file (fix positions from the file): the mean-scale (or scale-only)
    hyperprior, or ``charm`` (``meta["architecture"]``, docs/charm.md) with its per-slice DPU calls.

    Raises:
        ValueError: the model lacks a chain the partition needs (g_a, h_a, h_s, h_s_scales, g_s; for charm
            h_s_means and every slice stack).
    """
    from fxlic.families import family_of

    g_a, h_a, h_s, g_s = (_chain(model, p) for p in ("g_a", "h_a", "h_s", "g_s"))
    if not (g_a and h_a and h_s and g_s) or "h_s_scales" not in model.layers:
        raise ValueError("model file lacks one of the layer chains g_a.*, h_a.*, h_s.*, h_s_scales, g_s.*")
    return family_of(model).resolve("partition")(model, g_a, h_a, h_s, g_s)


def hyperprior_partition(model: ModelFile, g_a: list[str], h_a: list[str], h_s: list[str],
                         g_s: list[str]) -> Partition:
    """The mean-scale (or scale-only) hyperprior's partition: encoder, hyper-decoder and decoder subgraphs."""
    heads = ["h_s_scales"] + (["h_s_means"] if "h_s_means" in model.layers else [])
    wiring: dict[str, str] = {}
    for chain, first_input in ((g_a, "input"), (h_a, g_a[-1]), (h_s, "z_hat"), (g_s, "y_hat")):
        _wire(chain, first_input, wiring)
    for head in heads:
        wiring[head] = h_s[-1]
    twin = _wire_y_hat_twin(model, g_a, wiring)

    layers, tensors = _specs(model, wiring)
    tensors["input"] = TensorSpec("input", model.layers[g_a[0]].in_channels, INPUT_FIX, None)
    tensors["y_hat"] = TensorSpec("y_hat", layers[g_a[-1]].out_channels, LATENT_FIX, _y_hat_producer(twin))
    tensors["z_hat"] = TensorSpec("z_hat", layers[h_a[-1]].out_channels, LATENT_FIX, "cpu:round_latents")

    subgraphs = (
        _encoder_subgraph(g_a, twin, h_a),
        Subgraph(HYPER_DECODER, inputs=("z_hat",), outputs=tuple(heads), layers=tuple(h_s + heads)),
        Subgraph(DECODER, inputs=("y_hat",), outputs=(g_s[-1],), layers=tuple(g_s)),
    )
    cpu_ops = (
        _PAD,
        _round_latents(g_a, h_a, twin),
        _Z_ENTROPY,
        CpuOp("table_selection", tuple(heads), ("y_table", "y_mean"),
              "scale_lut[q_s + 128], mu to 1/2^b units, mu_r, frac (ENT-M3)"),
        CpuOp("y_entropy", ("y_hat", "y_table", "y_mean"), ("y stream",), "rANS of y_hat - mu_r (ENT-M3)"),
        CpuOp("to_pixels", (g_s[-1],), ("pixels",), "p = q + 128, crop the padding"),
    )
    return Partition(model_name=model.name, model_quality=model.quality, model_hash=model.content_hash().hex(),
                     tensors=tensors, layers=layers, subgraphs=subgraphs, cpu_ops=cpu_ops,
                     derived={"y_hat": g_a[-1], "z_hat": h_a[-1]},
                     architecture=str(model.meta.get("architecture", "meanscale")))


_PAD = CpuOp("pad_and_offset", ("pixels",), ("input",),
             "edge-replicate right/bottom to multiples of 64, q = p - 128 (fix 8)")
_Z_ENTROPY = CpuOp("z_entropy", ("z_hat",), ("z stream",), "rANS, one factorized table per channel (ENT-M2)")


def _round_latents(g_a: list[str], h_a: list[str], twin: list[str]) -> CpuOp:
    what = ("requantize to fix 0 (DPU_ROUND, saturate): a DPU fix op, run on the ARM because the "
            "latents leave the DPU for entropy coding")
    if twin:  # ŷ is the twin's DPU output (FXP-Q6); only ẑ is rounded here
        return CpuOp("round_latents", (h_a[-1],), ("z_hat",), what + f"; y_hat is the DPU output {twin[0]}")
    return CpuOp("round_latents", (g_a[-1], h_a[-1]), ("y_hat", "z_hat"), what)


def _wire_y_hat_twin(model: ModelFile, g_a: list[str], wiring: dict[str, str]) -> list[str]:
    """Wire the ŷ twin (format version 3) to g_a's last input; [its name], or [] for a file without it."""
    if model.y_hat_twin is None:
        return []
    wiring[Y_HAT_TWIN] = g_a[-2]
    return [Y_HAT_TWIN]


def _y_hat_producer(twin: list[str]) -> str:
    return twin[0] if twin else "cpu:round_latents"


def _encoder_subgraph(g_a: list[str], twin: list[str], h_a: list[str]) -> Subgraph:
    """g_a, the ŷ twin if any, and h_a: one DPU call; y (for h_a's sake), ŷ (twin) and z leave it."""
    return Subgraph(ENCODER, inputs=("input",), outputs=(g_a[-1], *twin, h_a[-1]), layers=tuple(g_a + twin + h_a))


def charm_partition(model: ModelFile, g_a: list[str], h_a: list[str], h_s: list[str], g_s: list[str]) -> Partition:
    """charm (docs/charm.md, docs/board.md "charm"): encoder, hyper_decoder (h_s, both supports and slice 0's
    stacks), slice_1 … slice_S (DPU call j runs cc_scales.j, cc_means.j and lrp.{j−1} on the contexts with j
    decoded slices), decoder (g_s on ỹ). S + 2 DPU calls per decoded image."""
    if "h_s_means" not in model.layers:
        raise ValueError("charm model file lacks h_s_means (the mean support)")
    slices = int(model.meta["charm"]["slices"])
    stack = {(kind, i): _chain(model, f"{kind}.{i}") for kind in ("cc_scales", "cc_means", "lrp")
             for i in range(slices)}
    if not all(stack.values()):
        missing = [f"{kind}.{i}" for (kind, i), layers in stack.items() if not layers]
        raise ValueError(f"charm model file lacks the slice stack(s) {', '.join(missing)}")
    latent = model.layers[g_a[-1]].out_channels
    per_slice = latent // slices
    f_cs, f_cm = model.layers["h_s_scales"].fix_out, model.layers["h_s_means"].fix_out

    wiring: dict[str, str] = {}
    for chain, first_input in ((g_a, "input"), (h_a, g_a[-1]), (h_s, "z_hat"), (g_s, "y_tilde")):
        _wire(chain, first_input, wiring)
    wiring["h_s_scales"] = wiring["h_s_means"] = h_s[-1]
    twin = _wire_y_hat_twin(model, g_a, wiring)
    for i in range(slices):
        _wire(stack["cc_scales", i], context_name(SCALE_CONTEXT, i) if i else "h_s_scales", wiring)
        _wire(stack["cc_means", i], context_name(MEAN_CONTEXT, i) if i else "h_s_means", wiring)
        _wire(stack["lrp", i], context_name(MEAN_CONTEXT, i + 1), wiring)
    layers, tensors = _specs(model, wiring)
    tensors["input"] = TensorSpec("input", model.layers[g_a[0]].in_channels, INPUT_FIX, None)
    tensors["y_hat"] = TensorSpec("y_hat", latent, LATENT_FIX, _y_hat_producer(twin))
    tensors["z_hat"] = TensorSpec("z_hat", layers[h_a[-1]].out_channels, LATENT_FIX, "cpu:round_latents")
    tensors["y_tilde"] = TensorSpec("y_tilde", latent, int(model.meta["charm"]["fix_y_tilde"]), "cpu:y_tilde")
    derived = {"y_hat": g_a[-1], "z_hat": h_a[-1], "y_tilde": g_a[-1]}
    for j in range(1, slices + 1):
        for kind, fix in ((MEAN_CONTEXT, f_cm), (SCALE_CONTEXT, f_cs)):
            if kind == SCALE_CONTEXT and j == slices:
                continue  # the last context feeds lrp.{S−1} only
            name = context_name(kind, j)
            tensors[name] = TensorSpec(name, latent + j * per_slice, fix, "cpu:hand_over")
            derived[name] = g_a[-1]

    heads = {kind: [stack[kind, i][-1] for i in range(slices)] for kind in ("cc_scales", "cc_means", "lrp")}
    subgraphs = [
        _encoder_subgraph(g_a, twin, h_a),
        Subgraph(HYPER_DECODER, inputs=("z_hat",),
                 outputs=("h_s_scales", "h_s_means", heads["cc_scales"][0], heads["cc_means"][0]),
                 layers=tuple(h_s + ["h_s_scales", "h_s_means"] + stack["cc_scales", 0] + stack["cc_means", 0])),
    ]
    for j in range(1, slices + 1):
        ins, outs, run = [], [], []
        if j < slices:
            ins += [context_name(SCALE_CONTEXT, j), context_name(MEAN_CONTEXT, j)]
            outs += [heads["cc_scales"][j], heads["cc_means"][j]]
            run += stack["cc_scales", j] + stack["cc_means", j]
        else:
            ins.append(context_name(MEAN_CONTEXT, j))
        outs.append(heads["lrp"][j - 1])
        run += stack["lrp", j - 1]
        subgraphs.append(Subgraph(slice_subgraph(j), inputs=tuple(ins), outputs=tuple(outs), layers=tuple(run)))
    subgraphs.append(Subgraph(DECODER, inputs=("y_tilde",), outputs=(g_s[-1],), layers=tuple(g_s)))

    cpu_ops = [_PAD, _round_latents(g_a, h_a, twin), _Z_ENTROPY]
    for i in range(slices):
        cpu_ops.append(CpuOp(f"table_selection.{i}", (heads["cc_scales"][i], heads["cc_means"][i]),
                             (f"y_table slice {i}", f"y_mean slice {i}"),
                             f"scale_lut[{i}][q_s + 128], mu to 1/2^b units, mu_r, frac (CH-4, CH-5)"))
        cpu_ops.append(CpuOp(f"y_entropy.{i}", (f"y_hat slice {i}", f"y_table slice {i}", f"y_mean slice {i}"),
                             (f"y stream {i}",), f"rANS of slice {i}: y_hat - mu_r (stream {1 + i}, CH-6, CH-7)"))
        outputs = [context_name(MEAN_CONTEXT, i + 1)]
        if i + 1 < slices:
            outputs.insert(0, context_name(SCALE_CONTEXT, i + 1))
        cpu_ops.append(CpuOp(f"hand_over.{i}", ("h_s_scales", "h_s_means", f"y_hat slices 0..{i}"), tuple(outputs),
                             f"y_hat_j at fix 0 -> f_c (left shift, saturate: exact), concat after the support "
                             f"(CH-2): the inputs of {slice_subgraph(i + 1)}"))
    cpu_ops.append(CpuOp("y_tilde", ("y_hat", *heads["lrp"]), ("y_tilde",),
                         f"y_tilde_i = sat(shr(y_hat_i * 2^8 + r_i, 8 - f_y~)): r at fix {LRP_FIX}, exact add "
                         "(FXP-E1, CH-8)"))
    cpu_ops.append(CpuOp("to_pixels", (g_s[-1],), ("pixels",), "p = q + 128, crop the padding"))
    stacks = {layer: f"{kind}.{i}" for (kind, i), chain in stack.items() for layer in chain}
    return Partition(model_name=model.name, model_quality=model.quality, model_hash=model.content_hash().hex(),
                     tensors=tensors, layers=layers, subgraphs=tuple(subgraphs), cpu_ops=tuple(cpu_ops),
                     derived=derived, architecture=CHARM, stacks=stacks)
