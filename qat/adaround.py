"""Adaptive rounding of the int8 weights (AdaRound, Nagel et al. 2020) on the DPU's power-of-two grid.

Calibration fixes each layer's weight step 2^-f_w (one per tensor, docs/fixed-point.md FXP-Q4); export then
rounds every weight to the nearest step (STD_ROUND). Rounding each weight on its own is not what keeps the
layer's *output*: with a typical weight only 5–10 steps wide, the rounding errors of the weights feeding one
output add up. AdaRound chooses, per weight, floor or ceil so that the layer's output on calibration data stays
close to the float model's. It relaxes the choice to a soft one, ``w = s·(⌊w/s⌋ + h(V))`` with
``h = clamp(sigmoid(V)·(ζ − γ) + γ, 0, 1)``, and minimizes

    ‖act(conv(x_q, w)) − act(conv(x_f, w_f))‖² / (the same with nearest rounding)
        + λ · mean(1 − |2h(V) − 1|^β),   β annealed from 20 to 2,

where x_q is the layer's input in the model quantized so far (the layers before it already rounded) and x_f the
float model's: each layer also corrects what the layers before it lost. The reconstruction term is measured in
units of the nearest rounding's error, so one λ serves every layer: λ = 2 (on a toy layer with weights 2–3
steps wide, λ = 0.01, the paper's value for an unnormalized error, left h undecided and fell back to nearest;
0.3–10 kept 0.2–0.7 of nearest's error). The regulariser pushes h to 0 or 1;
at the end each weight becomes ``s·(⌊w/s⌋ + [h ≥ ½])``, an exact multiple of the step, so the export's STD_ROUND
keeps it and the integer reference computes it (layer equality is unchanged). Fix positions, biases and
activations stay as calibrated: only which of its two neighbouring steps each weight takes changes.

What it is for: a better PTQ (calibration alone), and a better start for QAT. It runs on a calibrated model,
after the weight-step search, before any QAT step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .fakequant import INT8_MAX, INT8_MIN, fake_quant_param
from .layers import QConv, apply_activation

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (Louizos et al. 2018, as AdaRound uses it)


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """h(V) ∈ [0, 1]: a sigmoid stretched to (γ, ζ) and clipped, so 0 and 1 are reached with a finite V."""
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def inverse_rectified_sigmoid(h: torch.Tensor) -> torch.Tensor:
    """V with h(V) = h for h ∈ (0, 1): the start, where the soft weight equals the float weight."""
    h = torch.clamp(h, 1e-4, 1 - 1e-4)
    return -torch.log((ZETA - GAMMA) / (h - GAMMA) - 1.0)


@dataclass
class LayerRounding:
    """What AdaRound did to one layer: the output error (mean squared, on the calibration data) with nearest
    rounding and with the chosen rounding, and the share of weights rounded the other way than nearest."""

    name: str
    error_nearest: float
    error_adaround: float
    flipped: float

    def __str__(self) -> str:
        return (f"{self.name}: output error {self.error_nearest:.3e} → {self.error_adaround:.3e} "
                f"({self.error_adaround / max(self.error_nearest, 1e-30):.2f}×), {100 * self.flipped:.1f} % "
                "of weights rounded away from nearest")


def _layer_output(layer: QConv, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return apply_activation(layer._conv(x, weight, bias), layer.activation)


def _mean_error(layer: QConv, weight: torch.Tensor, bias: torch.Tensor, pairs) -> float:
    with torch.no_grad():
        return sum(float(torch.mean((_layer_output(layer, x, weight, bias) - t) ** 2)) for x, t in pairs) / len(pairs)


def round_layer(layer: QConv, pairs: list[tuple[torch.Tensor, torch.Tensor]], name: str = "", iters: int = 500,
                lr: float = 1e-2, reg: float = 2.0, warmup: float = 0.2, crops_per_step: int = 4,
                seed: int = 0) -> LayerRounding:
    """Choose floor or ceil for each weight of a quantized ``layer`` (in place) so that its output on ``pairs``
    (batches of inputs in the quantized model, B×C×H×W, and the float model's outputs) stays close to the
    target; each optimizer step sees ``crops_per_step`` crops of one batch. The weights become exact multiples
    of the layer's step 2^-f_w, within the int8 range (float32 holds them exactly: |q| ≤ 128)."""
    if not bool(layer.quantized):
        raise ValueError("round_layer needs a calibrated (quantized) layer")
    w = layer.conv.weight.detach().float()
    step = 2.0 ** -layer.fix_w
    w_floor = torch.floor(w / step)
    nearest = fake_quant_param(w, layer.fix_w).detach()
    bias = fake_quant_param(layer.conv.bias.detach().float(), layer.fix_b).detach()
    pairs = [(x.float(), t.float()) for x, t in pairs]
    error_nearest = _mean_error(layer, nearest, bias, pairs)
    v = nn.Parameter(inverse_rectified_sigmoid(w / step - w_floor))
    optimizer = torch.optim.Adam([v], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    scale = 1.0 / max(error_nearest, 1e-30)
    for it in range(iters):
        x, target = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
        if x.shape[0] > crops_per_step:
            pick = torch.randperm(x.shape[0], generator=generator)[:crops_per_step]
            x, target = x[pick], target[pick]
        h = rectified_sigmoid(v)
        soft = torch.clamp(w_floor + h, INT8_MIN, INT8_MAX) * step
        loss = torch.mean((_layer_output(layer, x, soft, bias) - target) ** 2) * scale
        progress = it / max(iters - 1, 1)
        if progress >= warmup:  # β from 20 to 2: first only the weights far from ½ are pushed, then all
            beta = 20.0 + (2.0 - 20.0) * (progress - warmup) / (1.0 - warmup)
            loss = loss + reg * torch.mean(1.0 - (2.0 * h - 1.0).abs().pow(beta))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        hard = torch.clamp(w_floor + (rectified_sigmoid(v) >= 0.5).float(), INT8_MIN, INT8_MAX) * step
        error_adaround = _mean_error(layer, hard, bias, pairs)
        if error_adaround > error_nearest:  # never worse than nearest on what it was fitted to
            hard, error_adaround = nearest, error_nearest
        flipped = float((hard != nearest).float().mean())
        layer.conv.weight.copy_(hard.to(layer.conv.weight.dtype))
    return LayerRounding(name, error_nearest, error_adaround, flipped)


def _captured(layer: QConv, quantized: bool, run: Callable[[], None]) -> list[torch.Tensor]:
    """What ``layer`` receives (quantized: its input) or gives (float: its output) while ``run()`` runs."""
    seen: list[torch.Tensor] = []
    if quantized:  # every quantized path (forward, and g_a's ŷ twin) goes through _quantized_activation
        original = layer._quantized_activation

        def recording(x: torch.Tensor) -> torch.Tensor:
            seen.append(x.detach())
            return original(x)

        layer._quantized_activation = recording  # type: ignore[method-assign]
        try:
            run()
        finally:
            del layer._quantized_activation
    else:
        handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        try:
            run()
        finally:
            handle.remove()
    return seen


def adaround_model(quantized: nn.Module, float_model: nn.Module, batches: Iterable,
                   forward: Callable[[nn.Module, object], object], iters: int = 500, lr: float = 1e-2,
                   reg: float = 2.0, report: Callable[[str], None] | None = None) -> list[LayerRounding]:
    """AdaRound every layer of a calibrated ``quantized`` model in dataflow order (``named_qconvs``), against
    ``float_model`` (the same model before calibration, weights unchanged). ``forward(model, batch)`` runs a
    model on one calibration batch. Each layer is fitted on its input in the quantized model as rounded so far."""
    batches = list(batches)
    float_layers = dict(float_model.named_qconvs())
    results = []
    quantized.eval()
    float_model.eval()
    for name, layer in quantized.named_qconvs():
        with torch.no_grad():
            inputs = _captured(layer, True, lambda: [forward(quantized, b) for b in batches])
            targets = _captured(float_layers[name], False, lambda: [forward(float_model, b) for b in batches])
        if len(inputs) != len(targets):
            raise RuntimeError(f"{name}: {len(inputs)} inputs against {len(targets)} targets")
        result = round_layer(layer, list(zip(inputs, targets, strict=True)), name, iters, lr, reg)
        results.append(result)
        if report is not None:
            report(str(result))
    return results
