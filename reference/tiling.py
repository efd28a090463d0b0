"""Tile-exact evaluation of a chain of integer conv / transposed-conv layers (docs/tiling.md).

A chain's output is computed tile by tile; each tile reads a window of the input (the tile's footprint
plus a halo) that is derived from the kernel, stride and padding of every layer, so that every output
element sees exactly the integer inputs whole-image evaluation gives it:

* every layer runs with padding 0 on a window of its input, and the window is zero exactly where the
  whole-image layer reads its zero padding (outside the true extent of its input tensor);
* an intermediate window is computed only over the part inside its tensor's true extent; outside it is
  set to zero (the next layer's padding), never to a value computed from zeros and a bias;
* all arithmetic is integer (int8 activations, int64 accumulators, DPU rounding) and elementwise after
  the accumulation, so summation order and tile shape cannot change a value.

Hence the tiled output equals the whole-image output bit for bit, for any tile size (tests:
tests/test_tiling.py). Spans are half-open ``(start, stop)`` index ranges in a tensor's *global*
coordinates; a span may reach outside the tensor (the zero padding).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from fxlic.entropy.rans import available_cpus
from fxlic.fxp.layer import QuantConv

__all__ = [
    "Span",
    "WindowSource",
    "array_source",
    "chain_input_span",
    "chain_output_shapes",
    "chain_window",
    "layer_input_span",
    "run_chain_tiled",
    "tile_spans",
]

Span = tuple[int, int]
WindowSource = Callable[[Span, Span], np.ndarray]
"""``source(rows, cols)`` → int8 C×len(rows)×len(cols): the chain's input over a window in global
coordinates, zero outside the input tensor's true extent."""


def _floor_div(a: int, b: int) -> int:
    return a // b


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def layer_input_span(layer: QuantConv, out: Span, axis: int) -> Span:
    """The input span (axis 0: rows, 1: columns) that evaluating ``layer`` with padding 0 needs to
    produce the output span ``out`` exactly as the whole-image layer (padding p) does.

    Conv (stride s, kernel k, padding p): output o reads padded inputs o·s + j, j ∈ [0, k), i.e. input
    indices o·s − p + j, so ``[o0·s − p, (o1 − 1)·s − p + k)``.

    Transposed conv: input i adds w[j] to output i·s − p + j. Output o receives input i iff
    0 ≤ o + p − i·s < k. The padding-0 evaluation of inputs [i0, i1) yields outputs [i0·s − p,
    (i1 − 1)·s − p + k), so the window must also cover ``out``: i0 ≤ ⌊(o0 + p)/s⌋ and
    (i1 − 1)·s + k − p ≥ o1. Inputs in the window that reach no output of ``out`` add nothing to it.
    """
    o0, o1 = out
    k = layer.kernel_size[axis]
    s, p = layer.stride, layer.padding
    if o1 <= o0:
        raise ValueError(f"empty output span {out}")
    if not layer.transposed:
        return o0 * s - p, (o1 - 1) * s - p + k
    first = min(_ceil_div(o0 + p - k + 1, s), _floor_div(o0 + p, s))
    last = max(_floor_div(o1 - 1 + p, s), _ceil_div(o1 - k + p, s))
    return first, last + 1


def chain_input_span(layers: Sequence[QuantConv], out: Span, axis: int) -> Span:
    """The input span of a whole chain for an output span (layers composed back to front, unclipped:
    an upper bound; ``chain_window`` clips each intermediate span to its tensor)."""
    for layer in reversed(layers):
        out = layer_input_span(layer, out, axis)
    return out


def chain_output_shapes(layers: Sequence[QuantConv], input_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """[input shape, output shape of layer 0, …, output shape of the last layer] (C, H, W)."""
    shapes = [tuple(input_shape)]
    for layer in layers:
        shapes.append(layer.output_shape(shapes[-1]))
    return shapes  # type: ignore[return-value]


def array_source(x: np.ndarray) -> WindowSource:
    """A window source over a whole int8 C×H×W array: crop, zero outside the array."""

    def window(rows: Span, cols: Span) -> np.ndarray:
        return crop_with_zeros(x, rows, cols)

    return window


def crop_with_zeros(x: np.ndarray, rows: Span, cols: Span) -> np.ndarray:
    """x[:, rows, cols] with zeros where the span lies outside x (the conv's zero padding)."""
    _, h, w = x.shape
    (r0, r1), (c0, c1) = rows, cols
    if r0 >= 0 and c0 >= 0 and r1 <= h and c1 <= w:
        return x[:, r0:r1, c0:c1]
    out = np.zeros((x.shape[0], r1 - r0, c1 - c0), dtype=x.dtype)
    vr0, vr1, vc0, vc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if vr0 < vr1 and vc0 < vc1:
        out[:, vr0 - r0 : vr1 - r0, vc0 - c0 : vc1 - c0] = x[:, vr0:vr1, vc0:vc1]
    return out


def _evaluate_on_window(layer: QuantConv, x: np.ndarray, rows_in: Span, cols_in: Span, rows: Span, cols: Span,
                        impl: str) -> np.ndarray:
    """Run ``layer`` with padding 0 on the input window ``x`` (global spans rows_in × cols_in) and
    return its output over rows × cols (global)."""
    y = replace(layer, padding=0)(x, impl=impl)
    if layer.transposed:
        # padding-0 output index t is global index t + i0·s − p
        r_off = rows[0] - (rows_in[0] * layer.stride - layer.padding)
        c_off = cols[0] - (cols_in[0] * layer.stride - layer.padding)
        y = y[:, r_off : r_off + rows[1] - rows[0], c_off : c_off + cols[1] - cols[0]]
    expected = (layer.out_channels, rows[1] - rows[0], cols[1] - cols[0])
    if y.shape != expected:  # the spans of layer_input_span guarantee this; keep the proof honest
        raise AssertionError(f"{layer.name}: window gave {y.shape}, expected {expected}")
    return y


def chain_window(layers: Sequence[QuantConv], source: WindowSource, shapes: Sequence[tuple[int, int, int]],
                 rows: Span, cols: Span, impl: str = "blas") -> np.ndarray:
    """The chain's output over ``rows × cols`` (global), zero outside its true extent, computed from
    only the input window it needs. ``shapes`` is ``chain_output_shapes(layers, input_shape)``."""
    if not layers:
        return source(rows, cols)
    layer = layers[-1]
    channels, height, width = shapes[len(layers)]
    valid_rows = (max(rows[0], 0), min(rows[1], height))
    valid_cols = (max(cols[0], 0), min(cols[1], width))
    if valid_rows[0] >= valid_rows[1] or valid_cols[0] >= valid_cols[1]:
        return np.zeros((channels, rows[1] - rows[0], cols[1] - cols[0]), dtype=np.int8)
    rows_in = layer_input_span(layer, valid_rows, 0)
    cols_in = layer_input_span(layer, valid_cols, 1)
    x = chain_window(layers[:-1], source, shapes, rows_in, cols_in, impl)
    y = _evaluate_on_window(layer, x, rows_in, cols_in, valid_rows, valid_cols, impl)
    if valid_rows == rows and valid_cols == cols:
        return y
    out = np.zeros((channels, rows[1] - rows[0], cols[1] - cols[0]), dtype=np.int8)
    out[:, valid_rows[0] - rows[0] : valid_rows[1] - rows[0], valid_cols[0] - cols[0] : valid_cols[1] - cols[0]] = y
    return out


def tile_spans(size: int, tile: int) -> list[Span]:
    """[0, size) cut into consecutive spans of ``tile`` (the last one shorter); one span if tile <= 0."""
    if tile <= 0 or tile >= size:
        return [(0, size)]
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def default_workers() -> int:
    """Threads for tiles: every core this process may run on (its affinity mask where the platform has one;
    NumPy's GEMMs and Numba kernels release the GIL)."""
    return available_cpus()


@functools.cache
def _blas_controller() -> object | None:
    """threadpoolctl's ThreadpoolController of the loaded BLAS (None without threadpoolctl), made once:
    finding the libraries costs 0.7 ms, a limit through the kept controller 0.02 ms, and a decode runs several
    tiled chains."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: the plain behaviour, only slower on several cores
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """While tiles run on several threads, each GEMM on one BLAS thread (threadpoolctl, when installed).

    Without it every tile thread's GEMM starts the BLAS's own threads as well: on two cores, two tile threads
    ran four BLAS threads, whose spin-waiting cost 0.15 – 0.25 s of system CPU time per Kodak decode
    (results/speed/README.md). Values do not depend on BLAS threads (FXP-A2: the float GEMM path is exact)."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def run_chain_tiled(layers: Sequence[QuantConv], source: WindowSource, input_shape: tuple[int, int, int],
                    tile: int, impl: str = "blas", workers: int | None = None,
                    out: np.ndarray | None = None,
                    store: Callable[[np.ndarray, Span, Span], None] | None = None) -> np.ndarray | None:
    """Evaluate the chain on ``input_shape`` tile by tile (``tile`` output elements per side; 0 = one
    tile). Returns the int8 output, or None when ``store(tile_array, rows, cols)`` consumes each tile
    (e.g. writes pixels into an image), so the whole int8 output is never held."""
    shapes = chain_output_shapes(layers, input_shape)
    channels, height, width = shapes[-1]
    if store is None:
        out = np.empty((channels, height, width), dtype=np.int8) if out is None else out

        def store(values: np.ndarray, rows: Span, cols: Span) -> None:
            out[:, rows[0] : rows[1], cols[0] : cols[1]] = values

    jobs = [(r, c) for r in tile_spans(height, tile) for c in tile_spans(width, tile)]

    def run(job: tuple[Span, Span]) -> None:
        rows, cols = job
        store(chain_window(layers, source, shapes, rows, cols, impl), rows, cols)

    n_workers = min(len(jobs), workers if workers is not None else default_workers())
    if n_workers <= 1:
        for job in jobs:
            run(job)
    else:
        with one_blas_thread(), ThreadPoolExecutor(max_workers=n_workers) as pool:
            for _ in pool.map(run, jobs):
                pass
    return out
