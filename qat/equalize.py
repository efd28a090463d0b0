"""Cross-layer equalization of the synthesis transform's last input, before calibration (PTQ / QAT).

The int8 model's largest distortion cost at high rates is the quantization of g_s's last input (the output
of ``g_s[-2]``, N channels at half resolution): its int8 step is set by the largest channel, and ``g_s[-1]``
(N → 3, k4 s2) sums 4N such values into each pixel. Measured with ``python -m fxlic.qat.int8_cost`` on
training photos, q8, calibration only: that one tensor costs −0.43 dB, every other layer at most −0.07 dB.

The layers between are a transposed conv, a ReLU and a transposed conv, and ReLU is positively homogeneous,
ReLU(s·t) = s·ReLU(t) for s > 0, so scaling output channel c of ``g_s[-2]`` (weights and bias) by s_c and
input channel c of ``g_s[-1]`` by 1/s_c leaves the float model unchanged (Nagel et al. 2019, "Data-free
quantization through weight equalization and bias correction"; the Vitis AI quantizer applies the same idea,
CLE, before its calibration). With s_c = max_k r_k / r_c, r_c the largest value of channel c on training
crops (capped at ``max_scale``), every channel fills the int8 range of the tensor. The scales are not
powers of two and live in the weights: the exported int8 model is an ordinary model of the same layers.
Equalizing the activations of the other ReLU pairs of g_a and g_s was measured too and cost more than it
gained (the next layer's per-tensor weight step grows), so only this pair is equalized by default.

``equalize_weight_ranges`` (Nagel's CLE of weight ranges) and ``align_power_of_two_scales`` are options
(``fxlic train --equalize-weights --align-scales``, ``int8_cost --equalize-weights``): at q4 on training
photos they cut the PTQ cost from +7.9 % to +6.7 %, but after 1,500 QAT steps the model was worse than
without them (+4.9 % against +4.1 %; docs/training.md §5), so new QAT runs do not use them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from .data import CropSampler
from .layers import QConv
from .models import MeanScaleHyperprior, pixels_to_input


def _output_axis(layer: QConv) -> int:
    """Axis of the output channels in the layer's weight (PyTorch: conv [O, C, …], transposed [C, O, …])."""
    return 1 if layer.transposed else 0


@torch.no_grad()
def channel_maxima(model: MeanScaleHyperprior, layer: QConv, sampler: CropSampler, batches: int,
                   batch_size: int) -> torch.Tensor:
    """Largest |value| of every output channel of ``layer`` over ``batches`` training batches (float model)."""
    maxima = torch.zeros(layer.conv.out_channels)

    def record(_module, _inputs, output) -> None:
        maxima.copy_(torch.maximum(maxima, output.detach().abs().amax(dim=(0, 2, 3)).float().cpu()))

    handle = layer.register_forward_hook(record)
    try:
        model.eval()
        dtype = layer.conv.weight.dtype
        for _ in range(batches):
            model(pixels_to_input(sampler.batch(batch_size)).to(dtype), noisy_rate=False)
    finally:
        handle.remove()
    return maxima


@torch.no_grad()
def equalize_synthesis_input(model: MeanScaleHyperprior, sampler: CropSampler, batches: int = 16,
                             batch_size: int = 8, max_scale: float = 8.0) -> torch.Tensor:
    """Equalize the channels between ``g_s[-2]`` (ReLU) and ``g_s[-1]`` in place; returns the scales s_c (≥ 1).

    Float model only (before calibration); the model's float output is unchanged up to float rounding."""
    producer, consumer = model.g_s[-2], model.g_s[-1]
    if producer.activation != "relu" or bool(producer.quantized):
        raise ValueError("equalization needs a float model whose g_s[-2] ends in ReLU")
    maxima = channel_maxima(model, producer, sampler, batches, batch_size)
    scales = torch.clamp(maxima.max() / torch.clamp(maxima, min=1e-12), max=max_scale)
    _scale_along(producer.conv.weight, _output_axis(producer), scales)
    producer.conv.bias.mul_(scales.to(producer.conv.bias.dtype))
    _scale_along(consumer.conv.weight, 1 - _output_axis(consumer), scales, divide=True)  # input channels
    return scales


def _channel_ranges(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Largest |w| of every slice of ``weight`` along ``axis`` (one value per channel on that axis)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    return weight.detach().abs().amax(dim=dims)  # in the weight's dtype: exact inverses in float64


def _scale_along(tensor: torch.Tensor, axis: int, factors: torch.Tensor, divide: bool = False) -> None:
    """Multiply (or divide) ``tensor`` in place by one factor per channel along ``axis``."""
    shape = [1] * tensor.dim()
    shape[axis] = -1
    factors = factors.view(shape).to(tensor.dtype)
    tensor.div_(factors) if divide else tensor.mul_(factors)


@torch.no_grad()
def equalize_weight_ranges(model: MeanScaleHyperprior, iterations: int = 8, max_scale: float = 16.0,
                           producers: tuple[str, ...] = ("g_a.0", "g_a.1", "g_a.2", "g_s.0", "g_s.1"),
                           ) -> dict[str, torch.Tensor]:
    """Cross-layer equalization of weight ranges through the ReLU pairs that start at ``producers`` (in place).

    Nagel et al. 2019, §4.1: for a producer conv (output channel c, weight range r1_c = max |W1[c]|) followed
    by ReLU and a consumer conv (input channel c, range r2_c = max |W2[:, c]|), scaling channel c of the
    producer (weights and bias) by 1/s_c and of the consumer's input by s_c leaves the float model unchanged
    (ReLU(t/s) = ReLU(t)/s for s > 0); s_c = sqrt(r1_c / r2_c) gives both the range sqrt(r1_c · r2_c), so no
    channel sets a per-tensor power-of-two weight step (docs/fixed-point.md FXP-Q4) far above what the others
    need. A layer in the middle of a chain is consumer of one pair and producer of the next, so the pairs
    are swept ``iterations`` times. Scales are clamped to [1/max_scale, max_scale] in total per channel.
    Returns the accumulated s_c of each producer layer, by name. Float models only (before calibration).
    """
    pairs = {name: _layer(model, name) for name in producers}  # refuses a layer that starts no ReLU pair
    if any(bool(layer.quantized) for pair in pairs.values() for layer in pair):
        raise ValueError("weight equalization needs a float (not yet calibrated) model")
    totals: dict[str, torch.Tensor] = {}
    for _ in range(iterations):
        for name, (producer, consumer) in pairs.items():  # in the order given: dataflow order by default
            out_axis = _output_axis(producer)
            in_axis = 1 - _output_axis(consumer)
            r1 = _channel_ranges(producer.conv.weight, out_axis)
            r2 = _channel_ranges(consumer.conv.weight, in_axis)
            step = torch.sqrt(torch.clamp(r1, min=1e-12) / torch.clamp(r2, min=1e-12))
            total = totals.get(name, torch.ones_like(step))
            bounded = torch.clamp(total * step, 1.0 / max_scale, max_scale)
            step = bounded / total
            totals[name] = bounded
            _scale_along(producer.conv.weight, out_axis, 1.0 / step)
            producer.conv.bias.div_(step.to(producer.conv.bias.dtype))
            _scale_along(consumer.conv.weight, in_axis, step)
    return totals


def _layer(model: MeanScaleHyperprior, name: str) -> tuple[QConv, QConv]:
    """(producer, consumer) of the ReLU pair that starts at layer ``name`` (``g_a.1``: g_a[1], g_a[2])."""
    chain_name, index = name.split(".")
    chain = getattr(model, chain_name)
    if not 0 <= int(index) < len(chain) - 1:
        raise ValueError(f"{name} is not followed by another layer of {chain_name}: no ReLU pair starts there")
    producer, consumer = chain[int(index)], chain[int(index) + 1]
    if producer.activation != "relu":
        raise ValueError(f"{name} does not end in ReLU: its outputs cannot be rescaled")
    return producer, consumer


@torch.no_grad()
def scale_pair(model: MeanScaleHyperprior, name: str, factor: float) -> None:
    """Multiply the output of layer ``name`` (weights, bias) by ``factor`` > 0 and divide the next layer's
    input weights by it: the float model is unchanged (ReLU is positively homogeneous)."""
    producer, consumer = _layer(model, name)
    producer.conv.weight.mul_(factor)
    producer.conv.bias.mul_(factor)
    in_axis = 1 - _output_axis(consumer)
    _scale_along(consumer.conv.weight, in_axis, torch.full((consumer.conv.weight.shape[in_axis],), 1.0 / factor))


def align_power_of_two_scales(model: MeanScaleHyperprior, objective: Callable[[MeanScaleHyperprior], float],
                              producers: tuple[str, ...] = ("g_a.0", "g_a.1", "g_a.2", "g_s.0", "g_s.1", "g_s.2"),
                              grid: int = 8, report: Callable[[str], None] | None = None) -> dict[str, float]:
    """Choose one factor α ∈ [1, 2) per ReLU pair so that the power-of-two steps fit the tensors (in place).

    The DPU's steps are powers of two per tensor (docs/fixed-point.md FXP-Q4): a weight tensor whose largest
    value is 1.3 gets the step of one whose largest is 1.98 (range 127·2^-6), and so do activations. Scaling
    a pair by α (``scale_pair``) moves the producer's weights, bias and output against the grid and the
    consumer's weights the other way; α = 2 is the same grid shifted, so [1, 2) is every choice. Coordinate
    search, one pass in dataflow order, α = 2^(k/grid), k = 0 … grid−1, keeping the α of least
    ``objective(candidate)`` (e.g. the RD objective of the calibrated candidate on training crops).
    Returns the chosen α by pair. Float models only (each candidate is a calibrated copy)."""
    chosen: dict[str, float] = {}
    for name in producers:
        scores = []
        for k in range(grid):
            factor = 2.0 ** (k / grid)
            candidate = copy.deepcopy(model)
            scale_pair(candidate, name, factor)
            scores.append((objective(candidate), factor))
        best_score, best_factor = min(scores)
        scale_pair(model, name, best_factor)
        chosen[name] = best_factor
        if report is not None:
            spread = ", ".join(f"{s:.4f}" for s, _ in scores)
            report(f"{name}: α = {best_factor:.3f} (objective {best_score:.4f}; grid {spread})")
    return chosen
