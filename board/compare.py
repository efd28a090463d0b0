"""Compare a board (or simulator) dump with a golden set, layer by layer, and say where it went wrong.

For every DPU-boundary tensor, in dataflow order: mismatch count, first mismatch (NHWC and CHW index,
expected and got values), max |diff|. Then attribution, because one wrong layer makes every layer
after it differ too:

* ``ok``: equal to the golden tensor.
* ``DIVERGES``: this layer is (also) wrong by itself — its input equals the golden input (or the input
  is not in the dump), or the reference layer applied to the *dumped* input does not reproduce the
  dumped output. The first ``DIVERGES`` in dataflow order is "the first diverging layer".
* ``follows from X``: differs only because its input differed — the reference layer applied to the
  dumped input reproduces the dumped output exactly (or, without a model file to recompute with,
  simply because an upstream layer diverged: "dataflow attribution").
* ``missing`` / ``bad size``: the dump lacks the tensor / holds a different number of bytes.

A diverging layer gets a guess at the kind of fault from the diff pattern (``diff_pattern``): ±1
rounding (and whether only negative values are hit: LeakyReLU rounding), a power-of-two scale (wrong
fix position), permuted channels, a few isolated values, or a general mismatch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fxlic.fxp.layer import QuantConv
from fxlic.fxp.rounding import round_half_up
from fxlic.golden.goldenset import GoldenSet
from fxlic.reference.modelfile import ModelFile

from .dumps import DumpStore, NameMap, chw_to_nhwc, nhwc_to_chw
from .partition import LayerSpec, Partition

__all__ = ["ImageComparison", "LayerReport", "compare_image", "compare_tensors", "diff_pattern", "format_report"]

OK, DIVERGES, FOLLOWS, MISSING, BAD_SIZE, NO_GOLDEN = "ok", "DIVERGES", "follows", "missing", "bad size", "no golden"
_ISOLATED = 16  # at most this many differing values: "isolated"


@dataclass
class LayerReport:
    """One tensor's comparison. Indices are into the NHWC tensor (n, h, w, c) and the CHW one (c, h, w)."""

    tensor: str
    subgraph: str
    role: str  # input | internal | output
    shape: tuple[int, ...]
    fix_pos: int
    status: str = OK
    origin: str | None = None  # FOLLOWS: the diverging layer it follows from
    mismatches: int = 0
    total: int = 0
    first_nhwc: tuple[int, ...] | None = None
    first_chw: tuple[int, ...] | None = None
    expected: int | None = None
    got: int | None = None
    max_abs_diff: int = 0
    pattern: str | None = None
    note: str | None = None
    scale_shift: int | None = field(default=None, repr=False)  # k when got ≈ expected · 2^k
    tile: str | None = None  # tiled runs: the DPU window whose core holds the first mismatch
    stack: str | None = None  # charm: the slice stack that writes the tensor (``cc_means.1``), else None

    @property
    def equal(self) -> bool:
        return self.status == OK

    @property
    def status_text(self) -> str:
        return f"follows from {self.origin}" if self.status == FOLLOWS else self.status

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("scale_shift")
        data["status_text"] = self.status_text
        return data


@dataclass
class ImageComparison:
    """All tensors of one image."""

    image: str
    height: int
    width: int
    layers: list[LayerReport]
    allow_missing: bool = False

    @property
    def first_divergence(self) -> LayerReport | None:
        for report in self.layers:
            if report.status in (DIVERGES, BAD_SIZE):
                return report
        return None

    @property
    def ok(self) -> bool:
        bad = {DIVERGES, FOLLOWS, BAD_SIZE} | (set() if self.allow_missing else {MISSING, NO_GOLDEN})
        return not any(report.status in bad for report in self.layers)

    def to_json(self) -> dict:
        first = self.first_divergence
        return {"image": self.image, "height": self.height, "width": self.width, "ok": self.ok,
                "first_divergence": None if first is None else first.tensor,
                "layers": [r.to_json() for r in self.layers]}


# --------------------------------------------------------------------------------------------------
# diff patterns
# --------------------------------------------------------------------------------------------------
def _channel_permutation(e: np.ndarray, g: np.ndarray) -> dict[int, int] | None:
    """{got channel: expected channel} when every got channel equals some expected channel and at least
    one sits elsewhere; None otherwise. Arrays are NHWC."""
    channels = e.shape[-1]
    if channels < 2:
        return None
    where: dict[bytes, list[int]] = {}
    for c in range(channels):
        where.setdefault(np.ascontiguousarray(e[..., c]).tobytes(), []).append(c)
    mapping: dict[int, int] = {}
    for c in range(channels):
        candidates = where.get(np.ascontiguousarray(g[..., c]).tobytes())
        if not candidates:
            return None
        mapping[c] = c if c in candidates else candidates[0]
    moved = {c: s for c, s in mapping.items() if c != s}
    return moved or None


def _scale_shift(e: np.ndarray, g: np.ndarray) -> int | None:
    """k ≠ 0 when got ≈ saturate(expected · 2^k) within rounding (what a fix position off by k gives)."""
    e64, g64 = e.astype(np.int64), g.astype(np.int64)
    if np.count_nonzero(np.abs(e64) >= 4) < max(1, e64.size // 100):
        return None  # too little signal to tell a scale from rounding noise
    for k in (1, -1, 2, -2, 3, -3, 4, -4):
        pred = np.clip(round_half_up(np.ldexp(e64.astype(np.float64), k)), -128, 127)
        tolerance = max(1, 1 << (k - 1)) if k > 0 else 1
        if np.mean(np.abs(g64 - pred) <= tolerance) >= 0.995:
            return k
    return None


def diff_pattern(expected: np.ndarray, got: np.ndarray, layer: LayerSpec | None = None) -> tuple[str, int | None]:
    """A guess at the fault behind a mismatch, from the diff pattern.

    Args:
        expected, got: int8 NHWC arrays of the same shape, not equal.
        layer: the layer that produced the tensor (for activation- and shift-specific hints).

    Returns:
        (description with a hint, scale shift k if the pattern is got ≈ expected · 2^k, else None).
    """
    e, g = expected.astype(np.int64), got.astype(np.int64)
    d = g - e
    nz = d != 0
    n = int(np.count_nonzero(nz))
    perm = _channel_permutation(expected, got)
    if perm is not None:
        sample = ", ".join(f"got[c={c}] = expected[c={s}]" for c, s in list(perm.items())[:3])
        return (f"channel order: {len(perm)} channel(s) hold another channel's values ({sample}) — a layout / "
                "weight-order problem (OHWI reading, transposed-conv flip), not arithmetic"), None
    k = _scale_shift(expected, got)
    if k is not None:
        return (f"scale: got ≈ expected · 2^{k} — a fix position off by {k:+d} for this tensor (check the xmodel's "
                "fix_point; fxlic board run checks it on the board)"), k
    if int(np.abs(d).max()) == 1:
        up, down = int(np.count_nonzero(d == 1)), int(np.count_nonzero(d == -1))
        negative_only = bool(np.all(e[nz] < 0) or np.all(g[nz] < 0))
        text = f"off by ±1 ({up}× +1, {down}× −1): rounding"
        if layer is not None and layer.activation == "leaky_relu" and negative_only:
            text += (" only where the value is negative: the LeakyReLU rounding (FXP-A-LEAKY; try "
                     "--assume leaky=double)")
        elif layer is not None and layer.fix_w + layer.fix_in - layer.fix_b < -1:
            text += " with a negative bias shift (FXP-A-NSB; try --assume nsb=floor_bias)"
        elif down and not up:
            text += " always down: truncation (floor) instead of round-half-up"
        elif up and not down:
            text += " always up"
        return text, None
    if n <= _ISOLATED:
        return (f"{n} isolated value(s) differ: a memory / transfer fault rather than an arithmetic rule"), None
    return ("general mismatch: wrong weights or bias, wrong geometry (padding, stride), or accumulator overflow "
            "(try --assume acc=32: the simulator then raises where a 32-bit accumulator would overflow)"), None


# --------------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------------
def _reproduce(layer: QuantConv, source: np.ndarray, got: np.ndarray,
               shift: int | None) -> tuple[str | None, np.ndarray | None]:
    """Apply the reference layer to the dumped input (NHWC).

    Returns:
        (verdict, reference output NHWC): verdict 'exact' when that gives the dumped output, 'fix N' when
        it does so with the input read at fix position N (the producer's position off by ``shift``),
        else None.
    """
    x = nhwc_to_chw(source)
    if x.shape[0] != layer.in_channels:
        return None, None
    reference = chw_to_nhwc(layer(x))
    if np.array_equal(reference, got):
        return "exact", reference
    if shift:
        moved = dataclasses.replace(layer, fix_in=layer.fix_in + shift)
        if np.array_equal(chw_to_nhwc(moved(x)), got):
            return f"fix {moved.fix_in}", reference
    return None, reference


def compare_tensors(partition: Partition, expected: Mapping[str, np.ndarray | None],
                    got: Mapping[str, np.ndarray | None], shapes: Mapping[str, tuple[int, ...]],
                    model: ModelFile | None = None, tensors: Sequence[str] | None = None) -> list[LayerReport]:
    """Compare tensors in dataflow order and attribute every difference.

    Args:
        partition: names, roles, producers, fix positions.
        expected: our tensor name → golden int8 NHWC (or None when the golden set lacks it).
        got: our tensor name → the dump's int8 data (NHWC, or flat raw bytes), None when missing.
        shapes: NHWC shape of every tensor (``partition.shapes``).
        model: when given, a differing layer whose input also differs is recomputed from the dumped
            input to decide between "follows" and "DIVERGES"; otherwise dataflow attribution.
        tensors: the tensors to compare (default: every DPU tensor, ``partition.dpu_tensors()``).

    Returns:
        One ``LayerReport`` per tensor, in dataflow order.
    """
    order = list(tensors) if tensors is not None else partition.dpu_tensors()
    reports: dict[str, LayerReport] = {}
    arrays: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for t in order:
        sg = partition.subgraph_of(t)
        role = "input" if t in sg.inputs else ("output" if t in sg.outputs else "internal")
        report = LayerReport(t, sg.name, role, tuple(shapes[t]), partition.tensors[t].fix_pos,
                             stack=partition.stack_of(t))
        reports[t] = report
        exp, raw = expected.get(t), got.get(t)
        if exp is None:
            report.status = NO_GOLDEN
            continue
        report.total = int(exp.size)
        if raw is None:
            report.status = MISSING
            continue
        if raw.size != exp.size:
            report.status, origin[t] = BAD_SIZE, t
            report.note = f"{raw.size} values in the dump, {exp.size} expected"
            continue
        g = np.ascontiguousarray(raw, dtype=np.int8).reshape(exp.shape)
        arrays[t] = g
        diff = g.astype(np.int16) - exp.astype(np.int16)
        bad = np.flatnonzero(diff)
        if bad.size == 0:
            continue
        first = tuple(int(i) for i in np.unravel_index(bad[0], exp.shape))
        report.mismatches, report.max_abs_diff = int(bad.size), int(np.abs(diff).max())
        report.first_nhwc, report.first_chw = first, (first[3], first[1], first[2])
        report.expected, report.got = int(exp[first]), int(g[first])

        spec = partition.layers.get(t)
        report.status = DIVERGES
        if spec is None:
            report.note = "subgraph input differs from the golden value: the DPU was not fed the golden input"
        else:
            src = reports.get(spec.input)
            if src is None or src.status in (MISSING, NO_GOLDEN):
                report.note = (f"its input {spec.input} is not in the dump: the first divergence is at or "
                               "before this layer")
            elif src.status != OK:
                upstream = origin.get(spec.input, spec.input)
                if model is not None and spec.input in arrays:
                    verdict, own = _reproduce(model.layers[t], arrays[spec.input], g, src.scale_shift)
                    if verdict == "exact":
                        report.status, report.origin = FOLLOWS, upstream
                    elif verdict is not None:
                        report.status, report.origin = FOLLOWS, upstream
                        report.note = (f"reproduced with its input read at {verdict}: consistent with tensor "
                                       f"{spec.input} carrying that fix position in the xmodel")
                    else:
                        report.note = (f"its input also differs (from {upstream}), and the reference layer on the "
                                       "dumped input does not reproduce the dumped output")
                        if own is not None:  # diagnose its own error, not the inherited one
                            text, _ = diff_pattern(own, g, spec)
                            report.pattern = f"(vs the reference on the dumped input) {text}"
                else:
                    report.status, report.origin = FOLLOWS, upstream
                    report.note = "dataflow attribution (no model file to recompute with)"
        if report.status == DIVERGES:
            origin[t] = t
            if report.pattern is None:
                report.pattern, report.scale_shift = diff_pattern(exp, g, spec)
        else:
            origin[t] = report.origin or t
    return [reports[t] for t in order]


def golden_expected(golden: GoldenSet, image: str, partition: Partition,
                    tensors: Sequence[str]) -> dict[str, np.ndarray | None]:
    """Golden NHWC arrays of ``tensors`` for one image."""
    out: dict[str, np.ndarray | None] = {}
    for t in tensors:
        value = golden.dpu_tensor(image, t, partition)
        out[t] = None if value is None else chw_to_nhwc(value)
    return out


def compare_image(golden: GoldenSet, image: str, store: DumpStore, names: NameMap, partition: Partition,
                  model: ModelFile | None = None, subgraphs: Sequence[str] | None = None,
                  allow_missing: bool = False,
                  reference: tuple[DumpStore, NameMap] | None = None,
                  tiles: Mapping[str, tuple[int, int]] | None = None,
                  geometry: ModelFile | None = None) -> ImageComparison:
    """Compare one image of a golden set with a dump (any layout ``open_dump`` reads).

    ``reference``: take the expected values from another dump instead of the golden set — e.g. the
    simulator under an alternative ``--assume``, to confirm that the board computes exactly that.
    ``tiles`` (subgraph → fixed input window, ``board.tiles.subgraph_tiles``) with ``geometry`` (the
    model whose layers decide the halos): name the DPU window of each layer's first mismatch.
    """
    entry = golden.image(image)
    height, width = int(entry["height"]), int(entry["width"])
    shapes = partition.shapes(height, width)
    tensors = [t for sg in (subgraphs or [s.name for s in partition.subgraphs]) for t in partition.dpu_tensors(sg)]
    if reference is None:
        expected = golden_expected(golden, image, partition, tensors)
    else:
        ref_store, ref_names = reference
        expected = {}
        for t in tensors:
            raw = ref_store.get(ref_names, t)
            expected[t] = raw.reshape(shapes[t]) if raw is not None and raw.size == np.prod(shapes[t]) else None
    got = {t: store.get(names, t) for t in tensors}
    layers = compare_tensors(partition, expected, got, shapes, model, tensors)
    if tiles and geometry is not None:
        _locate_tiles(layers, partition, geometry, shapes, tiles)
    return ImageComparison(image, height, width, layers, allow_missing)


def _locate_tiles(layers: Sequence[LayerReport], partition: Partition, geometry: ModelFile,
                  shapes: Mapping[str, tuple[int, ...]], tiles: Mapping[str, tuple[int, int]]) -> None:
    """Set ``report.tile`` for every mismatching tensor: the window (row-major index, grid position)
    whose core holds its first mismatch, as the tiled runner (``board/tiles.py``) cut the subgraph."""
    from .tiles import plan_subgraph

    plans = {}
    for report in layers:
        if report.first_nhwc is None or report.subgraph not in tiles:
            continue
        sg = partition.subgraph(report.subgraph)
        if report.tensor in sg.inputs:
            continue
        if report.subgraph not in plans:
            _, h, w, _ = shapes[sg.inputs[0]]
            plans[report.subgraph] = plan_subgraph(partition, geometry, report.subgraph, (h, w), tiles[report.subgraph])
        plan = plans[report.subgraph]
        _, row, col, _ = report.first_nhwc
        r, c = plan.tile_of(report.tensor, row, col)
        (r0, r1), (c0, c1) = plan.rows.windows[r], plan.cols.windows[c]
        report.tile = (f"tile {r * len(plan.cols.windows) + c} of {plan.count} (grid row {r}, col {c}; "
                       f"{sg.inputs[0]} rows {r0}..{r1 - 1}, cols {c0}..{c1 - 1})")


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def _first_text(r: LayerReport) -> str:
    if r.first_nhwc is None:
        return ""
    nhwc = ",".join(map(str, r.first_nhwc))
    chw = ",".join(map(str, r.first_chw))
    return f"({nhwc}) chw ({chw}): {r.expected} -> {r.got}"


def format_report(comparisons: Sequence[ImageComparison], header: str = "") -> str:
    """The summary table: one row per tensor, details under each diverging layer, a verdict per image."""
    lines = [header] if header else []
    for comp in comparisons:
        lines.append(f"image {comp.image} ({comp.height}x{comp.width} HxW)")
        lines.append(f"  {'subgraph':14s} {'tensor':15s} {'role':8s} {'shape NHWC':15s} {'fix':>3s} "
                     f"{'mismatches':>18s} {'max|d|':>6s}  {'first mismatch (n,h,w,c) chw (c,h,w): exp -> got':46s} "
                     "status")
        for r in comp.layers:
            shape = "x".join(map(str, r.shape))
            count = f"{r.mismatches}/{r.total}" if r.status not in (MISSING, NO_GOLDEN) else "-"
            maxd = str(r.max_abs_diff) if r.status not in (MISSING, NO_GOLDEN, BAD_SIZE) else "-"
            lines.append(f"  {r.subgraph:14s} {r.tensor:15s} {r.role:8s} {shape:15s} {r.fix_pos:3d} {count:>18s} "
                         f"{maxd:>6s}  {_first_text(r):46s} {r.status_text}")
            if r.status == DIVERGES and r.pattern:
                lines.append(f"      pattern: {r.pattern}")
            if r.note and r.status != OK:
                lines.append(f"      note: {r.note}")
            if r.tile and r.status == DIVERGES:
                lines.append(f"      first mismatch in {r.tile}")
        first = comp.first_divergence
        if comp.ok:
            missing = sum(r.status in (MISSING, NO_GOLDEN) for r in comp.layers)
            extra = f" ({missing} tensor(s) not in the dump, allowed)" if missing else ""
            lines.append(f"  result: BIT-EXACT, {len(comp.layers) - missing} tensors equal{extra}")
        elif first is not None:
            followers = [r.tensor for r in comp.layers if r.status == FOLLOWS and r.origin == first.tensor]
            also = [r.tensor for r in comp.layers if r.status == DIVERGES and r is not first]
            where = first.subgraph if first.stack is None else (
                f"{first.subgraph}; slice stack {first.stack}, slice {first.stack.rsplit('.', 1)[1]}")
            text = f"  result: MISMATCH — first diverging layer: {first.tensor} ({where})"
            if first.tile:
                text += f", {first.tile}"
            if followers:
                text += f"; {len(followers)} follow from it ({', '.join(followers)})"
            if also:
                text += f"; also diverging: {', '.join(also)}"
            lines.append(text)
        else:
            missing = [r.tensor for r in comp.layers if r.status in (MISSING, NO_GOLDEN)]
            lines.append(f"  result: INCOMPLETE — not in the dump: {', '.join(missing)} (dump internal layers with "
                         "XLNX_ENABLE_DEBUG_MODE=1 XLNX_ENABLE_DUMP=1 and name them in --names, "
                         "or pass --allow-missing)")
    return "\n".join(lines)
