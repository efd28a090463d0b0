"""Fixed-shape DPU tiles: run a whole DPU subgraph on windows of one fixed input shape and stitch.

A Vitis AI xmodel is compiled for one input shape, so a board runs every image as windows of that
shape (docs/board.md, "Tiles"; docs/tiling.md). Inside a window the DPU evaluates every layer with its
own zero padding, so values near a window edge that is *not* the tensor's border are wrong (neighbours
are missing), and the error grows inward layer by layer. This module decides, from the layer geometry
alone, which outputs of a window are exact, and places the windows so that exact outputs cover every
tensor of the subgraph:

* windows lie inside the input tensor (clamped at its borders), start on multiples of the subgraph's
  total conv stride, so each window's layer-l tensor starts on a global index and a window edge on the
  tensor border pads exactly as the whole-image layer does;
* an output position is exact iff, at every layer down to the input, every position it depends on
  (``fxlic.reference.tiling.layer_input_span``) is inside that layer's window extent or is genuine zero
  padding outside the tensor across a border the window touches;
* each tensor's positions go to the first window (row-major) that computes them exactly: the *core* of
  that window. Cores partition every tensor, so the stitched tensors equal whole-image evaluation.

Rows and columns are independent (separable geometry), so plans are per axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fxlic.fxp.layer import QuantConv
from fxlic.reference.modelfile import ModelFile
from fxlic.reference.tiling import Span, layer_input_span

from .partition import Partition
from .runner import BoardError, BoardRunner

__all__ = ["AxisPlan", "SubgraphTiles", "TiledRunner", "plan_subgraph", "subgraph_tiles"]


def _chain(partition: Partition, model: ModelFile, subgraph: str, tensor: str) -> list[QuantConv]:
    """The layers from the subgraph's input to ``tensor`` (empty for the input itself)."""
    sg = partition.subgraph(subgraph)
    chain: list[QuantConv] = []
    while tensor not in sg.inputs:
        chain.append(model.layers[tensor])
        tensor = partition.layers[tensor].input
    return chain[::-1]


def _extent(layer: QuantConv, start: int, length: int, axis: int) -> tuple[int, int]:
    """(global start, length) of ``layer``'s output when the DPU evaluates it on input positions
    [start, start + length) with the layer's own padding."""
    k, s, p = layer.kernel_size[axis], layer.stride, layer.padding
    if layer.transposed:
        return start * s, (length - 1) * s - 2 * p + k
    if start % s:
        raise BoardError(f"{layer.name}: window start {start} is not a multiple of the stride {s}")
    return start // s, (length + 2 * p - k) // s + 1


@dataclass
class AxisPlan:
    """Windows along one axis and, per tensor, each window's core span (global, possibly empty)."""

    windows: list[Span]  # in the subgraph input's units
    cores: dict[str, list[Span]]  # tensor -> one span per window

    def window_of(self, tensor: str, index: int) -> int:
        for k, (a, b) in enumerate(self.cores[tensor]):
            if a <= index < b:
                return k
        raise IndexError(f"{tensor}: index {index} in no core")


def _exact_span(chain: list[QuantConv], sizes: list[int], window: Span, axis: int) -> Span:
    """The positions of the chain's output that a window computes exactly (an interval)."""
    extents = [(window[0], window[1] - window[0])]
    for layer in chain:
        extents.append(_extent(layer, *extents[-1], axis))

    def exact(level: int, span: Span) -> bool:
        start, length = extents[level]
        lo, hi = max(span[0], 0), min(span[1], sizes[level])
        if lo < hi and (lo < start or hi > start + length):
            return False  # needs a real value the window does not hold
        if span[0] < 0 and start != 0:
            return False  # needs zero padding the window does not produce there
        if span[1] > sizes[level] and start + length != sizes[level]:
            return False
        if level == 0 or lo >= hi:
            return True
        return exact(level - 1, layer_input_span(chain[level - 1], (lo, hi), axis))

    start, length = extents[-1]
    good = [o for o in range(max(start, 0), min(start + length, sizes[-1])) if exact(len(chain), (o, o + 1))]
    if not good:
        return (0, 0)
    if good[-1] - good[0] + 1 != len(good):
        raise AssertionError("exact outputs of a window are not an interval")
    return good[0], good[-1] + 1


def _plan_axis(chains: Mapping[str, list[QuantConv]], sizes: Mapping[str, list[int]], input_size: int,
               window: int, align: int, axis: int) -> AxisPlan:
    window = min(window, input_size)
    if window % align and window != input_size:
        raise BoardError(f"tile size {window} is not a multiple of the subgraph's stride {align}")

    def spans(w0: int) -> dict[str, Span]:
        return {t: _exact_span(chains[t], sizes[t], (w0, w0 + window), axis) for t in chains}

    windows: list[Span] = []
    exact: list[dict[str, Span]] = []
    covered = {t: 0 for t in chains}
    w0 = 0
    while True:
        windows.append((w0, w0 + window))
        exact.append(spans(w0))
        for t, (a, b) in exact[-1].items():
            if a > covered[t]:
                raise BoardError(f"tile size {window} is too small for the halo of {t}: positions "
                                 f"{covered[t]}..{a - 1} are exact in no window")
            covered[t] = max(covered[t], b)
        if all(covered[t] >= sizes[t][-1] for t in chains) or w0 + window >= input_size:
            break
        # the furthest aligned next start that leaves no gap in any tensor
        candidate = min(input_size - window, w0 + window) // align * align
        while candidate > w0:
            nxt = spans(candidate)
            if all(nxt[t][0] <= covered[t] or covered[t] >= sizes[t][-1] for t in chains):
                break
            candidate -= align
        if candidate <= w0:
            raise BoardError(f"tile size {window} is too small for the subgraph's halo")
        w0 = candidate
    missing = [t for t in chains if covered[t] < sizes[t][-1]]
    if missing:
        raise BoardError(f"tile size {window} leaves {', '.join(missing)} uncovered")
    cores: dict[str, list[Span]] = {t: [] for t in chains}
    for t in chains:
        done = 0
        for spans_k in exact:
            a, b = spans_k[t]
            cores[t].append((done, b) if b > done else (done, done))
            done = max(done, b)
    return AxisPlan(windows, cores)


@dataclass
class SubgraphTiles:
    """The tile plan of one subgraph for one input size: row and column plans."""

    subgraph: str
    tile: tuple[int, int]  # the fixed input window (H, W) in the input's units (clamped to the input)
    rows: AxisPlan
    cols: AxisPlan

    @property
    def count(self) -> int:
        return len(self.rows.windows) * len(self.cols.windows)

    def tile_of(self, tensor: str, row: int, col: int) -> tuple[int, int]:
        """(tile row, tile column) whose core holds position (row, col) of ``tensor``."""
        return self.rows.window_of(tensor, row), self.cols.window_of(tensor, col)


def plan_subgraph(partition: Partition, model: ModelFile, subgraph: str, input_hw: tuple[int, int],
                  tile_hw: tuple[int, int]) -> SubgraphTiles:
    """Windows of ``tile_hw`` (input units) over a subgraph input of ``input_hw``, and every tensor's cores."""
    sg = partition.subgraph(subgraph)
    if len(sg.inputs) != 1:
        raise BoardError(f"subgraph {subgraph}: tiling needs one input, it has {len(sg.inputs)}")
    tensors = list(sg.inputs) + list(sg.layers)
    chains = {t: _chain(partition, model, subgraph, t) for t in tensors}
    align = 1
    for chain in chains.values():
        align = int(np.lcm(align, int(np.prod([lay.stride for lay in chain if not lay.transposed] or [1]))))
    plans = []
    for axis in (0, 1):
        sizes = {}
        for t, chain in chains.items():
            size = [input_hw[axis]]
            for layer in chain:
                size.append(_extent(layer, 0, size[-1], axis)[1])
            sizes[t] = size
        plans.append(_plan_axis(chains, sizes, input_hw[axis], tile_hw[axis], align, axis))
    tile = (min(tile_hw[0], input_hw[0]), min(tile_hw[1], input_hw[1]))
    return SubgraphTiles(subgraph, tile, plans[0], plans[1])


class TiledRunner(BoardRunner):
    """A runner that feeds another runner fixed-shape windows of each subgraph input and stitches the
    exact part of every tensor it hands back (inputs, internal layers, outputs).

    Args:
        base: the runner that executes one window (``VartRunner`` for an xmodel compiled for the tile
            shape, or ``SimulatedDpuRunner``).
        model: the integer model (its geometry decides the halos).
        tiles: subgraph name → fixed input window (H, W) in the subgraph input's units.
    """

    def __init__(self, base: BoardRunner, model: ModelFile, tiles: Mapping[str, tuple[int, int]]) -> None:
        self.base = base
        self.model = model
        self.partition = base.partition
        self.kind = f"{base.kind}, tiled"
        self.tiles = dict(tiles)
        self.plans: dict[str, SubgraphTiles] = {}
        self._last: dict[str, np.ndarray] = {}
        self.window_index = -1  # the window being run (row-major), for fault injection and logs

    @property
    def subgraph_names(self) -> list[str]:
        return self.base.subgraph_names

    def run_subgraph(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_inputs(name, inputs)
        sg = self.partition.subgraph(name)
        (source,) = sg.inputs
        x = inputs[source]
        plan = plan_subgraph(self.partition, self.model, name, (x.shape[1], x.shape[2]), self.tiles[name])
        self.plans[name] = plan
        stitched: dict[str, np.ndarray] = {}
        index = 0
        for r, rows in enumerate(plan.rows.windows):
            for c, cols in enumerate(plan.cols.windows):
                self.window_index = index
                window = np.ascontiguousarray(x[:, rows[0] : rows[1], cols[0] : cols[1], :])
                self.base.run_subgraph(name, {source: window})
                for t, values in self.base.layer_outputs().items():
                    (r0, r1), (c0, c1) = plan.rows.cores[t][r], plan.cols.cores[t][c]
                    if t not in stitched:
                        height = plan.rows.cores[t][-1][1]
                        width = plan.cols.cores[t][-1][1]
                        stitched[t] = np.zeros((1, height, width, values.shape[3]), dtype=np.int8)
                    if r1 > r0 and c1 > c0:
                        # the window's tensor t starts at global (rows[0], cols[0]) scaled to t's units
                        off_r = _window_offset(self.partition, self.model, name, t, rows[0], 0)
                        off_c = _window_offset(self.partition, self.model, name, t, cols[0], 1)
                        stitched[t][:, r0:r1, c0:c1] = values[:, r0 - off_r : r1 - off_r, c0 - off_c : c1 - off_c]
                index += 1
        self._last = stitched
        return {t: stitched[t] for t in sg.outputs}

    def layer_outputs(self) -> dict[str, np.ndarray]:
        return dict(self._last)


def _window_offset(partition: Partition, model: ModelFile, subgraph: str, tensor: str, start: int, axis: int) -> int:
    offset = start
    for layer in _chain(partition, model, subgraph, tensor):
        offset = _extent(layer, offset, 10**6, axis)[0]
    return offset


def subgraph_tiles(model: ModelFile, tile: int) -> dict[str, tuple[int, int]]:
    """The fixed input shape (H, W) of each DPU subgraph for a tile of ``tile`` pixels — the shapes the
    xmodels are compiled for (docs/board.md, "Tiles"): encoder T × T pixels, hyper_decoder T/64 × T/64 ẑ,
    decoder T/16 × T/16 ŷ (strides from the model's layers)."""
    from fxlic.reference.hyperprior import IntegerHyperprior

    net = IntegerHyperprior(model)
    unit = net.latent_stride * net.hyper_stride
    if tile <= 0 or tile % unit:
        raise BoardError(f"tile must be a positive multiple of {unit} pixels, got {tile}")
    latent, hyper = tile // net.latent_stride, tile // unit
    return {"encoder": (tile, tile), "hyper_decoder": (hyper, hyper), "decoder": (latent, latent)}
