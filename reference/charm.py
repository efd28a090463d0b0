"""The integer ChARM model (Minnen & Singh 2020, channel-wise autoregression + LRP), decoded slice by slice.

Same figure as ``fxlic.qat.charm.CharmHyperprior``, on int8 tensors (spec: docs/charm.md):

    x ─g_a─▶ y ─R─▶ ŷ = [ŷ_0 … ŷ_{S−1}] (K = M/S channels each)
             └─h_a─▶ z ─R─▶ ẑ ─h_s─▶ hidden ─┬─h_s_means──▶ m (mean support, fix f_cm)
                                              └─h_s_scales─▶ s (scale support, fix f_cs)
    for i = 0 … S−1:
        μ_i      = cc_means.i (concat(m, ŷ_0 … ŷ_{i−1}))      int8 K×h×w at f_μi
        log2 σ_i = cc_scales.i(concat(s, ŷ_0 … ŷ_{i−1}))      int8 K×h×w at f_σi
        ŷ_i      ← entropy-decoded with tables (scale_lut[i][log2 σ_i], frac μ_i), symbol ŷ_i − μ_r
        r_i      = lrp.i     (concat(m, ŷ_0 … ŷ_i))            int8 K×h×w at fix 8 (|r_i| ≤ 1/2)
    ỹ = concat_i(ŷ_i + r_i) at f_ỹ (exact add FXP-E1, on the CPU) ─g_s─▶ x̂

Every concatenation joins int8 tensors at one fix position (docs/charm.md CH-2): the support's f_c, forced
at calibration; the CPU hands the decoded slices over at f_c (requantize from fix 0: an exact left shift,
saturated), so on the DPU the concatenation is data movement only.
Tensors are CHW int8, one image: x 3×H×W, ŷ and ỹ M×H/16×W/16, ẑ N×H/64×W/64.
"""

from __future__ import annotations

import numpy as np

from fxlic.entropy.conditional import table_indexes
from fxlic.fxp.assumptions import EXACT_ADD
from fxlic.fxp.eltwise import add_int, concat_int
from fxlic.fxp.layer import QuantConv
from fxlic.fxp.quant import requantize

from .hyperprior import IMAGE_FIX, INPUT_FIX, LATENT_FIX, IntegerHyperprior, Trace, _layer_order, _run_chain
from .modelfile import ModelFile

LRP_FIX = 8
SLICE_KINDS = ("cc_means", "cc_scales", "lrp")
SCALE_CONTEXT, MEAN_CONTEXT = "scale_context", "mean_context"
"""Trace names of the concatenated stack inputs (CH-2): ``scale_context.i`` = concat(s, ŷ_0 … ŷ_{i−1}) at f_cs
(input of ``cc_scales.i``), ``mean_context.i`` = concat(m, ŷ_0 … ŷ_{i−1}) at f_cm (input of ``cc_means.i`` and
of ``lrp.{i−1}``), for i ≥ 1; slice 0's stacks read the supports themselves. They are the DPU inputs the CPU
hands over (docs/board.md, charm), recorded in golden sets."""


def context_name(kind: str, index: int) -> str:
    """``scale_context.i`` / ``mean_context.i``: the trace name of a context (``kind`` = SCALE_CONTEXT or
    MEAN_CONTEXT) holding the support and ``index`` ≥ 1 decoded slices."""
    return f"{kind}.{index}"


class IntegerCharm(IntegerHyperprior):
    """Integer g_a, h_a, h_s (two support heads), the S slice stacks, ỹ and g_s of a ChARM model file."""

    def __init__(self, model: ModelFile, impl: str = "blas") -> None:
        charm = model.meta["charm"]
        self.slices = int(charm["slices"])
        self.fix_y_tilde = int(charm["fix_y_tilde"])
        layers = model.layers
        self.stacks: dict[str, list[list[QuantConv]]] = {
            kind: [[layers[name] for name in sorted(layers, key=_layer_order) if name.startswith(f"{kind}.{i}.")]
                   for i in range(self.slices)]
            for kind in SLICE_KINDS
        }
        super().__init__(model, impl)
        if model.scale_lut.shape != (self.slices, 256):
            raise ValueError(f"charm needs one scale LUT per slice ({self.slices}×256), got {model.scale_lut.shape}")

    def _check_wiring(self) -> None:
        expected = [(self.g_a, INPUT_FIX), (self.h_a, self.g_a[-1].fix_out), (self.h_s, LATENT_FIX),
                    (self.g_s, self.fix_y_tilde)]
        expected += [(stack, self.h_s_scales.fix_out if kind == "cc_scales" else self.h_s_means.fix_out)
                     for kind in SLICE_KINDS for stack in self.stacks[kind]]
        for layers, fix_in in expected:
            if not layers:
                raise ValueError("a layer chain of the charm model is empty")
            for layer in layers:
                if layer.fix_in != fix_in:
                    raise ValueError(f"{layer.name}: fix_in {layer.fix_in} but its input has fix {fix_in}")
                fix_in = layer.fix_out
        for head in (self.h_s_scales, self.h_s_means):
            if head is None or head.fix_in != self.h_s[-1].fix_out or head.fix_out < LATENT_FIX:
                raise ValueError("charm support heads must read h_s's output and write a fix position >= 0")
        for stack in self.stacks["lrp"]:
            if stack[-1].fix_out != LRP_FIX:
                raise ValueError(f"{stack[-1].name}: LRP output must have fix {LRP_FIX}")
        if self.g_s[-1].fix_out != IMAGE_FIX:
            raise ValueError(f"{self.g_s[-1].name}: image output must have fix {IMAGE_FIX}")
        if not 0 <= self.fix_y_tilde <= LRP_FIX:
            raise ValueError(f"fix of ỹ must be in [0, {LRP_FIX}], got {self.fix_y_tilde}")

    @property
    def slice_channels(self) -> int:
        return self.latent_channels // self.slices

    def fix_positions(self) -> dict[str, int]:
        fixes = super().fix_positions()
        fixes["y_tilde"] = self.fix_y_tilde
        for i in range(1, self.slices + 1):
            fixes[context_name(MEAN_CONTEXT, i)] = self.h_s_means.fix_out
            if i < self.slices:
                fixes[context_name(SCALE_CONTEXT, i)] = self.h_s_scales.fix_out
        return fixes

    def scale_context(self, scale_support: np.ndarray, decoded: list[np.ndarray], trace: Trace = None) -> np.ndarray:
        """concat(s, ŷ_0 … ŷ_{j−1}) at f_cs for ``decoded`` = [ŷ_0 … ŷ_{j−1}]: int8 (M + j·K)×h×w, the input of
        ``cc_scales.j`` (CH-2); recorded as ``scale_context.j`` for j ≥ 1."""
        context = _context(scale_support, self.h_s_scales.fix_out, decoded)
        if trace is not None and decoded:
            trace[context_name(SCALE_CONTEXT, len(decoded))] = context
        return context

    def mean_context(self, mean_support: np.ndarray, decoded: list[np.ndarray], trace: Trace = None) -> np.ndarray:
        """concat(m, ŷ_0 … ŷ_{j−1}) at f_cm for ``decoded`` = [ŷ_0 … ŷ_{j−1}]: int8 (M + j·K)×h×w, the input of
        ``cc_means.j`` and ``lrp.{j−1}`` (CH-2); recorded as ``mean_context.j`` for j ≥ 1."""
        context = _context(mean_support, self.h_s_means.fix_out, decoded)
        if trace is not None and decoded:
            trace[context_name(MEAN_CONTEXT, len(decoded))] = context
        return context

    # ---- the slice loop ------------------------------------------------------------------------
    def hyper_synthesis(self, z_hat: np.ndarray, trace: Trace = None) -> tuple[np.ndarray, np.ndarray]:
        """h_s: ẑ (fix 0) → (scale support at f_cs, mean support at f_cm), int8 M×h×w each."""
        hidden = _run_chain(self.h_s, z_hat, trace, self.impl)
        scale_support = _run_chain([self.h_s_scales], hidden, trace, self.impl)
        mean_support = _run_chain([self.h_s_means], hidden, trace, self.impl)
        return scale_support, mean_support

    def slice_coding_params(self, index: int, scale_support: np.ndarray, mean_support: np.ndarray,
                            decoded: list[np.ndarray], trace: Trace = None) -> tuple[np.ndarray, np.ndarray]:
        """(table index, μ_r), int32 K×h×w, of slice ``index`` from the supports and ŷ_0 … ŷ_{index−1}."""
        decoded = decoded[:index]
        log2_scales = _run_chain(self.stacks["cc_scales"][index], self.scale_context(scale_support, decoded, trace),
                                 trace, self.impl)
        means = _run_chain(self.stacks["cc_means"][index], self.mean_context(mean_support, decoded, trace), trace,
                           self.impl)
        return self.slice_tables(index, log2_scales, means)

    def slice_tables(self, index: int, log2_scales: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(table index, μ_r), int32 K×h×w, of slice ``index`` from its heads: log2 σ_i (int8 at f_σi) and μ_i
        (int8 at f_μi), with the slice's own scale LUT row (CH-4, CH-5)."""
        fix_means = self.stacks["cc_means"][index][-1].fix_out
        return table_indexes(log2_scales, means, self.model.scale_lut[index], fix_means, self.model.mean_frac_bits)

    def residual(self, index: int, mean_support: np.ndarray, decoded: list[np.ndarray], trace: Trace = None
                 ) -> np.ndarray:
        """LRP r_i: int8 K×h×w at fix 8 from the mean support and ŷ_0 … ŷ_i (``decoded`` includes slice i)."""
        return _run_chain(self.stacks["lrp"][index], self.mean_context(mean_support, decoded[: index + 1], trace),
                          trace, self.impl)

    def synthesis_input(self, y_hat_slices: list[np.ndarray], residuals: list[np.ndarray]) -> np.ndarray:
        """ỹ = concat_i(ŷ_i + r_i): FXP-E1 (exact) of ŷ (fix 0) and r (fix 8) into int8 at f_ỹ. The add runs
        on the CPU (CH-8), so it asks for the exact add, not the DPU ELEW's default (FXP-A-ADD)."""
        return np.concatenate([add_int(y, LATENT_FIX, r, LRP_FIX, self.fix_y_tilde, EXACT_ADD)
                               for y, r in zip(y_hat_slices, residuals, strict=True)])

    def slice_bounds(self, index: int) -> slice:
        """Channels of ŷ that slice ``index`` holds."""
        return slice(index * self.slice_channels, (index + 1) * self.slice_channels)


def _context(support: np.ndarray, fix_context: int, decoded: list[np.ndarray]) -> np.ndarray:
    """concat(support, ŷ_0, …) at the support's position f_c (CH-2).

    The slices come from the entropy decoder (CPU) at fix 0 and are handed over at f_c: requantize 0 → f_c,
    a left shift with saturation (FXP-Q5), exact. The concatenation itself then joins equal positions
    (FXP-E2: a copy), which is all the DPU is asked to do.
    """
    handed_over = [requantize(d, LATENT_FIX, fix_context) for d in decoded]
    return concat_int([support, *handed_over], [fix_context] * (1 + len(decoded)), fix_context).astype(np.int8)
