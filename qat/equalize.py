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
Equalizing the other ReLU pairs of g_a and g_s was measured too and cost more than it gained (the next
layer's per-tensor weight step grows), so only this pair is equalized.
"""

from __future__ import annotations

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
    shape_out = [1] * producer.conv.weight.dim()
    shape_out[_output_axis(producer)] = -1
    producer.conv.weight.mul_(scales.view(shape_out).to(producer.conv.weight.dtype))
    producer.conv.bias.mul_(scales.to(producer.conv.bias.dtype))
    shape_in = [1] * consumer.conv.weight.dim()
    shape_in[1 - _output_axis(consumer)] = -1  # the input-channel axis
    consumer.conv.weight.div_(scales.view(shape_in).to(consumer.conv.weight.dtype))
    return scales
