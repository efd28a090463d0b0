"""One runner interface for the DPU subgraphs of the partition, with two implementations.

* ``VartRunner``: the real DPU on a ZCU102 / KV260 through the Vitis AI runtime (VART + XIR Python
  bindings, imported lazily so that this module imports anywhere).
* ``SimulatedDpuRunner``: the same subgraphs executed with the integer reference layers
  (``fxlic.fxp.QuantConv``), under a ``DpuAssumptions`` (optionally per layer) so a board engineer can
  simulate alternative hardware semantics, and with optional per-layer replacement functions for fault
  injection.

Both take and return int8 NHWC arrays ``(1, H, W, C)`` keyed by our tensor names (``board/partition.py``),
and both can hand back every layer output of the last run (``layer_outputs``) for dumps.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from fxlic.codec import Codec
from fxlic.fxp.assumptions import DEFAULT, DpuAssumptions
from fxlic.fxp.layer import QuantConv
from fxlic.reference.charm import MEAN_CONTEXT, SCALE_CONTEXT, IntegerCharm, context_name
from fxlic.reference.hyperprior import IntegerHyperprior
from fxlic.reference.modelfile import ModelFile

from .dumps import NameMap, chw_to_nhwc, default_names, nhwc_to_chw, open_dump, vart_stem
from .partition import DECODER, HYPER_DECODER, Partition, partition_from_model, slice_subgraph

__all__ = ["BoardError", "BoardRunner", "LayerFn", "RunnerBackedCharm", "RunnerBackedHyperprior",
           "SimulatedDpuRunner", "VART_MISSING", "VartRunner", "board_codec"]

VART_MISSING = ("VART/XIR not found: VartRunner runs on a ZCU102/KV260 with the Vitis AI runtime; "
                "use --simulate")

LayerFn = Callable[[QuantConv, np.ndarray], np.ndarray]
"""A replacement for one layer: (the layer, its int8 C×H×W input) → int8 C×H'×W' output."""


class BoardError(RuntimeError):
    """A board-side problem with a one-line reason (no runtime, xmodel does not match the model …)."""


class BoardRunner(ABC):
    """Runs the DPU subgraphs of a partition.

    Attributes:
        partition: the partition the subgraph and tensor names refer to.
        kind: ``"vart"`` or ``"simulated"`` (for reports).
    """

    partition: Partition
    kind: str = "abstract"

    @property
    def subgraph_names(self) -> list[str]:
        """The partition subgraphs this runner can run (a VART runner may hold only some of them)."""
        return [sg.name for sg in self.partition.subgraphs]

    @abstractmethod
    def run_subgraph(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run DPU subgraph ``name``.

        Args:
            name: ``encoder`` | ``hyper_decoder`` | ``decoder``.
            inputs: our input tensor name → int8 NHWC ``(1, H, W, C)``, values in [-128, 127] at the
                tensor's fix position (``partition.tensors[t].fix_pos``).

        Returns:
            our output tensor name → int8 NHWC ``(1, H', W', C')`` at the output's fix position.
        """

    @abstractmethod
    def layer_outputs(self) -> dict[str, np.ndarray]:
        """Every tensor of the last ``run_subgraph`` call — its inputs, each internal layer output, its
        outputs — as int8 NHWC keyed by our names. Internal tensors may be missing when the backend
        cannot see them (VART without ``XLNX_ENABLE_DUMP``)."""

    def _check_inputs(self, name: str, inputs: Mapping[str, np.ndarray]) -> None:
        sg = self.partition.subgraph(name)
        for t in sg.inputs:
            if t not in inputs:
                raise ValueError(f"subgraph {name}: input {t!r} missing (got {', '.join(inputs) or 'none'})")
            x = inputs[t]
            channels = self.partition.tensors[t].channels
            if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.ndim != 4 or x.shape[0] != 1 \
                    or x.shape[3] != channels:
                raise ValueError(f"subgraph {name}: input {t!r} must be int8 NHWC (1, H, W, {channels}), got "
                                 f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")


# --------------------------------------------------------------------------------------------------
# simulator
# --------------------------------------------------------------------------------------------------
class SimulatedDpuRunner(BoardRunner):
    """The partition's DPU subgraphs run by the integer reference (bit-exact with the golden model under
    the default assumptions).

    Args:
        model: the integer model file.
        assumptions: DPU semantics for every layer (``fxlic.fxp.DpuAssumptions``; the default is the
            golden model's).
        layer_assumptions: per-layer overrides, e.g. ``{"h_a.0": DpuAssumptions(leaky_relu_rounding="double")}``.
        layer_fns: per-layer replacement functions (``LayerFn``), for fault injection or to try an
            arithmetic the assumptions do not cover; they see the layer and its C×H×W input.
        impl: conv implementation (``"blas"`` | ``"numba"`` | ``"reference"``; identical results).
    """

    kind = "simulated"

    def __init__(self, model: ModelFile, assumptions: DpuAssumptions = DEFAULT,
                 layer_assumptions: Mapping[str, DpuAssumptions] | None = None,
                 layer_fns: Mapping[str, LayerFn] | None = None, impl: str = "blas",
                 partition: Partition | None = None) -> None:
        self.model = model
        self.partition = partition or partition_from_model(model)
        self.assumptions = assumptions
        self.layer_assumptions = dict(layer_assumptions or {})
        self.layer_fns = dict(layer_fns or {})
        self.impl = impl
        unknown = (set(self.layer_assumptions) | set(self.layer_fns)) - set(self.partition.layers)
        if unknown:
            raise ValueError(f"no such layer(s): {', '.join(sorted(unknown))}")
        self._last: dict[str, np.ndarray] = {}

    def run_subgraph(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(name, inputs)
        sg = self.partition.subgraph(name)
        chw = {t: nhwc_to_chw(inputs[t]) for t in sg.inputs}
        for layer_name in sg.layers:
            layer = self.model.layers[layer_name]
            x = chw[self.partition.layers[layer_name].input]
            if layer_name in self.layer_fns:
                out = self.layer_fns[layer_name](layer, x)
                expected = layer.output_shape(x.shape)
                if not isinstance(out, np.ndarray) or out.dtype != np.int8 or out.shape != expected:
                    raise ValueError(f"layer function for {layer_name} must return int8 {expected}, got "
                                     f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
            else:
                out = layer(x, impl=self.impl, assumptions=self.layer_assumptions.get(layer_name, self.assumptions))
            chw[layer_name] = out
        self._last = {t: chw_to_nhwc(v) for t, v in chw.items()}
        return {t: self._last[t] for t in sg.outputs}

    def layer_outputs(self) -> dict[str, np.ndarray]:
        return dict(self._last)


# --------------------------------------------------------------------------------------------------
# VART
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _working_dir(path: Path | None) -> Iterator[None]:
    """VART writes ``dump/`` into the current directory: run inside the requested dump folder."""
    if path is None:
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _tensor_fix(tensor: object) -> int | None:
    has = getattr(tensor, "has_attr", None)
    if has is not None and not has("fix_point"):
        return None
    return int(tensor.get_attr("fix_point"))


def _subgraph_name(sg: object) -> str:
    getter = getattr(sg, "get_name", None)
    return str(getter() if callable(getter) else sg.name)


class VartRunner(BoardRunner):
    """The DPU subgraphs of one or more xmodels, run with VART on the board.

    Pairing xmodel DPU subgraphs with the partition's: by the name map's subgraph names when they match,
    else by their input/output channel signature (encoder: 3 → M, N; hyper decoder: N → heads; decoder:
    M → 3), so an xmodel may hold all three subgraphs or only some (e.g. a decoder-only deployment).
    Pairing tensors: by the name map's xmodel tensor name, else by a unique NHWC shape, else by shape
    and fix position. Every paired tensor's ``fix_point`` — and that of every internal tensor the name
    map names, read from the subgraph's ops — must equal the model file's fix position: an xmodel that
    does not carry fxlic's fix positions cannot be bit-exact (``check_fix=False`` to run anyway).

    The xmodel is compiled for one input size; images of another (padded) size are refused.

    Args:
        xmodels: compiled ``.xmodel`` files (``vai_c_xir`` output).
        partition: the partition of the model file the xmodel was made from.
        names: name map (defaults filled in for anything it does not name).
        dump_dir: when set, each run executes with this as working directory, so that VART's own
            ``XLNX_ENABLE_DUMP=1`` dump lands in ``dump_dir/dump``; ``layer_outputs`` then reads the
            internal tensors from there. ``XLNX_ENABLE_DUMP`` is set to 1 if it is not set at all (VART
            reads it once, so set it before starting Python to be sure).
    """

    kind = "vart"

    def __init__(self, xmodels: Sequence[str | Path], partition: Partition, names: NameMap | None = None,
                 dump_dir: str | Path | None = None, check_fix: bool = True) -> None:
        self.partition = partition
        self.names = (names or default_names(partition)).merged(partition)
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.check_fix = check_fix
        if self.dump_dir is not None:
            os.environ.setdefault("XLNX_ENABLE_DUMP", "1")
        try:  # lazy: these exist only in the Vitis AI runtime image on the board
            import vart
            import xir
        except ImportError:
            raise BoardError(VART_MISSING) from None
        self._vart = vart
        self._graphs = []  # the xir.Graph objects must outlive their subgraphs' runners
        found = []
        for path in xmodels:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: xmodel not found")
            graph = xir.Graph.deserialize(str(path))
            self._graphs.append(graph)
            root = graph.get_root_subgraph()
            if root is None or root.is_leaf:
                continue
            for child in root.toposort_child_subgraph():
                if child.has_attr("device") and str(child.get_attr("device")).upper() == "DPU":
                    found.append(child)
        if not found:
            raise BoardError(f"no DPU subgraph in {', '.join(map(str, xmodels))}")
        self._runners: dict[str, object] = {}
        self.xmodel_subgraphs: dict[str, str] = {}  # our subgraph name -> the xmodel's
        self._bindings: dict[str, tuple[list[tuple[str, object]], list[tuple[str, object]]]] = {}
        self.image_size: tuple[int, int] | None = None
        self._pair_subgraphs(found)
        self._last: dict[str, np.ndarray] = {}
        self._last_subgraph: str | None = None

    # ---- pairing ---------------------------------------------------------------------------------
    def _signature(self, inputs: Sequence[object], outputs: Sequence[object]) -> tuple:
        return (tuple(sorted(int(t.dims[-1]) for t in inputs)), tuple(sorted(int(t.dims[-1]) for t in outputs)))

    def _pair_subgraphs(self, found: list[object]) -> None:
        by_name = {vart_stem(v): k for k, v in self.names.subgraphs.items()}
        wanted = {sg.name: (tuple(sorted(self.partition.tensors[t].channels for t in sg.inputs)),
                            tuple(sorted(self.partition.tensors[t].channels for t in sg.outputs)))
                  for sg in self.partition.subgraphs}
        for child in found:
            runner = self._vart.Runner.create_runner(child, "run")
            ins, outs = list(runner.get_input_tensors()), list(runner.get_output_tensors())
            ours = by_name.get(vart_stem(_subgraph_name(child)))
            if ours is None:
                sig = self._signature(ins, outs)
                matches = [k for k, v in wanted.items() if v == sig and k not in self._runners]
                ours = matches[0] if matches else None
            if ours is None or ours in self._runners:
                described = ", ".join(_subgraph_name(c) for c in found)
                raise BoardError(
                    f"DPU subgraph {_subgraph_name(child)} (inputs {[tuple(t.dims) for t in ins]}, outputs "
                    f"{[tuple(t.dims) for t in outs]}) matches no subgraph of the partition (found: {described}); "
                    "the compiler may have split a chain (an op fell back to the CPU: check `xir subgraph`), "
                    "or name it in --names")
            self._runners[ours] = runner
            self.xmodel_subgraphs[ours] = _subgraph_name(child)
            self._bindings[ours] = (self._bind(ours, ins, "input"), self._bind(ours, outs, "output"))
            self._check_internal_fix(ours, child)

    def _bind(self, subgraph: str, vart_tensors: list[object], role: str) -> list[tuple[str, object]]:
        sg = self.partition.subgraph(subgraph)
        ours = list(sg.inputs if role == "input" else sg.outputs)
        if len(vart_tensors) != len(ours):
            raise BoardError(f"xmodel subgraph for {subgraph} has {len(vart_tensors)} {role}s, the partition "
                             f"expects {len(ours)} ({', '.join(ours)})")
        if self.image_size is None:  # the xmodel's compiled size, from the first tensor we can place
            t0 = vart_tensors[0]
            by_channels = [t for t in ours if self.partition.tensors[t].channels == int(t0.dims[-1])]
            if by_channels:
                self.image_size = self._image_size_from(by_channels[0], int(t0.dims[1]), int(t0.dims[2]))
        shapes = self.partition.shapes(*self.image_size) if self.image_size else {}
        pairs: list[tuple[str, object]] = []
        left = list(vart_tensors)
        for name in ours:
            xir_name = vart_stem(self.names.xir(name))
            hit = [t for t in left if vart_stem(t.name) == xir_name]
            if not hit and shapes:
                hit = [t for t in left if tuple(t.dims[1:]) == shapes[name][1:]]
                if len(hit) > 1:
                    hit = [t for t in hit if _tensor_fix(t) == self.partition.tensors[name].fix_pos]
            if len(hit) != 1:
                raise BoardError(f"cannot tell which xmodel {role} of subgraph {subgraph} is {name!r} "
                                 f"(candidates: {', '.join(t.name for t in (hit or left))}); name it in --names")
            tensor = hit[0]
            left.remove(tensor)
            if shapes and tuple(tensor.dims[1:]) != shapes[name][1:]:
                raise BoardError(f"xmodel tensor {tensor.name} ({name}) has shape {tuple(tensor.dims)}, expected "
                                 f"{shapes[name]} for a {self.image_size[0]}x{self.image_size[1]} (padded) image")
            fix = _tensor_fix(tensor)
            want = self.partition.tensors[name].fix_pos
            if self.check_fix and fix != want:
                raise BoardError(f"xmodel tensor {tensor.name} ({name}) has fix_point {fix}, the model file says "
                                 f"{want}: the deployed xmodel does not carry fxlic's fix positions (docs/board.md)")
            pairs.append((name, tensor))
        # VART takes the buffers positionally, in the order of get_input_tensors() / get_output_tensors()
        position = {id(t): i for i, t in enumerate(vart_tensors)}
        return sorted(pairs, key=lambda pair: position[id(pair[1])])

    def _check_internal_fix(self, subgraph: str, child: object) -> None:
        """Internal tensors are invisible through the runner's I/O, but the xmodel's ops carry their
        fix_point: check the ones the name map names (a wrong one makes that layer diverge first)."""
        get_ops = getattr(child, "get_ops", None)
        if not self.check_fix or get_ops is None:
            return
        fixes = {}
        for op in get_ops():
            tensor = op.get_output_tensor()
            fix = _tensor_fix(tensor)
            if fix is not None:
                fixes[vart_stem(tensor.name)] = (tensor.name, fix)
        for name in self.partition.subgraph(subgraph).internal:
            found = fixes.get(vart_stem(self.names.xir(name)))
            want = self.partition.tensors[name].fix_pos
            if found is not None and found[1] != want:
                raise BoardError(f"xmodel tensor {found[0]} ({name}) has fix_point {found[1]}, the model file says "
                                 f"{want}: the deployed xmodel does not carry fxlic's fix positions (docs/board.md)")

    def _image_size_from(self, tensor: str, h: int, w: int) -> tuple[int, int]:
        ref = self.partition.shapes(64, 64)[tensor]
        return h * 64 // ref[1], w * 64 // ref[2]

    @property
    def subgraph_names(self) -> list[str]:
        return [sg.name for sg in self.partition.subgraphs if sg.name in self._runners]

    # ---- running ---------------------------------------------------------------------------------
    def run_subgraph(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name not in self._runners:
            raise BoardError(f"the xmodel(s) hold no DPU subgraph for {name} (have: {', '.join(self._runners)})")
        self._check_inputs(name, inputs)
        runner = self._runners[name]
        in_pairs, out_pairs = self._bindings[name]
        in_buffers = []
        for our, tensor in in_pairs:
            dims = tuple(int(d) for d in tensor.dims)
            if tuple(inputs[our].shape[1:]) != dims[1:]:
                raise BoardError(f"{our}: input shape {inputs[our].shape[1:]} but the xmodel was compiled for "
                                 f"{dims[1:]} (recompile the xmodel for this image size)")
            buffer = np.zeros(dims, dtype=np.int8, order="C")  # batch > 1 DPUs: image in slot 0
            buffer[0] = inputs[our][0]
            in_buffers.append(buffer)
        out_buffers = [np.zeros(tuple(int(d) for d in t.dims), dtype=np.int8, order="C") for _, t in out_pairs]
        with _working_dir(self.dump_dir):
            job = runner.execute_async(in_buffers, out_buffers)
            runner.wait(job)
        outputs = {our: np.ascontiguousarray(buf[:1]) for (our, _), buf in zip(out_pairs, out_buffers)}
        self._last = {our: np.ascontiguousarray(inputs[our]) for our, _ in in_pairs} | outputs
        self._last_subgraph = name
        return outputs

    def layer_outputs(self) -> dict[str, np.ndarray]:
        """Inputs and outputs of the last run, plus internal layers read back from VART's dump (when
        ``dump_dir`` is set and VART wrote them: debug mode, ``XLNX_ENABLE_DEBUG_MODE=1``)."""
        result = dict(self._last)
        if self.dump_dir is None or self._last_subgraph is None or not (self.dump_dir / "dump").is_dir():
            return result
        store = open_dump(self.dump_dir)
        shapes = self.partition.shapes(*self.image_size)
        for t in self.partition.subgraph(self._last_subgraph).internal:
            raw = store.get(self.names, t)
            if raw is not None and raw.size == int(np.prod(shapes[t])):
                result[t] = raw.reshape(shapes[t])
        return result


# --------------------------------------------------------------------------------------------------
# the codec with its DPU subgraphs on a runner
# --------------------------------------------------------------------------------------------------
def _run_on(runner: BoardRunner, subgraph: str, inputs: dict[str, np.ndarray], trace: dict | None,
            ) -> dict[str, np.ndarray]:
    """Run one DPU subgraph on CHW inputs; CHW outputs. ``trace`` gets every tensor the runner hands back
    (internal layers when it can see them) except the inputs, under the golden-trace names."""
    outputs = runner.run_subgraph(subgraph, {k: chw_to_nhwc(v) for k, v in inputs.items()})
    if trace is not None:
        trace.update({k: nhwc_to_chw(v) for k, v in runner.layer_outputs().items() if k not in inputs})
    return {k: nhwc_to_chw(v) for k, v in outputs.items()}


class RunnerBackedHyperprior(IntegerHyperprior):
    """``IntegerHyperprior`` whose h_s and g_s run on a ``BoardRunner``; everything else (table
    selection, latent rounding) stays the integer reference on the CPU. Plugged into ``fxlic.codec.Codec``
    it gives the board decoder: ARM-side entropy decoding and table selection, DPU synthesis.

    Traces record every tensor the runner hands back (CHW), under the golden-trace names.
    """

    def __init__(self, model: ModelFile, runner: BoardRunner) -> None:
        super().__init__(model)
        self.runner = runner
        self.partition = runner.partition

    def _run(self, subgraph: str, inputs: dict[str, np.ndarray], trace: dict | None) -> dict[str, np.ndarray]:
        return _run_on(self.runner, subgraph, inputs, trace)

    def hyper_synthesis(self, z_hat: np.ndarray, trace: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self._run(HYPER_DECODER, {"z_hat": z_hat}, trace)
        return outputs["h_s_scales"], outputs.get("h_s_means")

    def synthesis(self, y_hat: np.ndarray, trace: dict | None = None) -> np.ndarray:
        sg = self.partition.subgraph(DECODER)
        return self._run(DECODER, {"y_hat": y_hat}, trace)[sg.outputs[0]]


class RunnerBackedCharm(IntegerCharm):
    """``IntegerCharm`` whose DPU work runs on a ``BoardRunner`` in the partition's S + 2 decoder-side calls
    (docs/board.md, "charm"): ``hyper_decoder`` (h_s, both supports, slice 0's stacks), ``slice_j`` once j
    slices are decoded (cc_scales.j, cc_means.j, lrp.{j−1}), ``decoder`` (g_s on ỹ). The CPU side stays the
    integer reference: entropy decoding, table selection, the hand-over of ŷ_j into the contexts (CH-2) and ỹ
    (CH-8). Plugged into ``fxlic.charm_codec.CharmCodec`` it is the board decoder of a charm model.

    A call's outputs are kept until the codec asks for them: ``lrp.{j−1}`` comes back with slice j's heads, so
    ``residual(j − 1)`` reuses it and only the last LRP has its own call.
    """

    def __init__(self, model: ModelFile, runner: BoardRunner) -> None:
        super().__init__(model)
        self.runner = runner
        self.partition = runner.partition
        self._outputs: dict[str, np.ndarray] = {}

    def _call(self, subgraph: str, contexts: dict[str, np.ndarray], trace: dict | None) -> None:
        inputs = {t: contexts[t] for t in self.partition.subgraph(subgraph).inputs}
        self._outputs.update(_run_on(self.runner, subgraph, inputs, trace))

    def hyper_synthesis(self, z_hat: np.ndarray, trace: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._outputs = {}  # a new image
        self._call(HYPER_DECODER, {"z_hat": z_hat}, trace)
        return self._outputs["h_s_scales"], self._outputs["h_s_means"]

    def slice_coding_params(self, index: int, scale_support: np.ndarray, mean_support: np.ndarray,
                            decoded: list[np.ndarray], trace: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        if index:  # slice 0's stacks ran with the hyper decoder
            decoded = decoded[:index]
            contexts = {context_name(SCALE_CONTEXT, index): self.scale_context(scale_support, decoded, trace),
                        context_name(MEAN_CONTEXT, index): self.mean_context(mean_support, decoded, trace)}
            self._call(slice_subgraph(index), contexts, trace)
        heads = [self._outputs[self.stacks[kind][index][-1].name] for kind in ("cc_scales", "cc_means")]
        return self.slice_tables(index, *heads)

    def residual(self, index: int, mean_support: np.ndarray, decoded: list[np.ndarray], trace: dict | None = None
                 ) -> np.ndarray:
        name = self.stacks["lrp"][index][-1].name
        if name not in self._outputs:  # lrp.{S−1}: its own call, once every slice is decoded
            context = self.mean_context(mean_support, decoded[: index + 1], trace)
            self._call(slice_subgraph(index + 1), {context_name(MEAN_CONTEXT, index + 1): context}, trace)
        return self._outputs[name]

    def synthesis(self, y_tilde: np.ndarray, trace: dict | None = None) -> np.ndarray:
        sg = self.partition.subgraph(DECODER)
        return _run_on(self.runner, DECODER, {"y_tilde": y_tilde}, trace)[sg.outputs[0]]


def board_codec(model: ModelFile, runner: BoardRunner) -> Codec:
    """A codec of the model's architecture whose DPU work runs on ``runner`` (``fxlic.codec.Codec`` with
    h_s and g_s on it; for charm ``CharmCodec`` with the partition's S + 2 calls). Entropy coding, table
    selection and every other CPU step stay the integer reference; encode runs g_a/h_a in the reference."""
    from fxlic.families import family_of, open_codec

    codec = open_codec(model, tile=0)  # tile 0: the codec calls the net's synthesis methods, i.e. the runner
    codec.net = family_of(model).resolve("board_net")(model, runner)
    return codec
