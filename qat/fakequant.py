"""Fake quantization that reproduces the DPU integer semantics of `fxlic.fxp` exactly.

Every function here is the float image of an integer rule in ``docs/fixed-point.md``:

* activations and the network input: DPU_ROUND, ``floor(x * 2^f + 1/2)``, saturated to [-128, 127];
* weights and bias: STD_ROUND, ``sign(x) * floor(|x| * 2^f + 1/2)``, saturated likewise.

Gradients use the clipped straight-through estimator (identity inside the representable range, zero
outside), as in TQT-style QAT. Evaluated in float64 the fake-quant forward pass equals the integer
reference element for element: every conv partial sum is an integer multiple of 2^-(f_in + f_w) well
below 2^53 (see ``docs/fixed-point.md``), so the only rounding is the explicit one.
"""

from __future__ import annotations

import torch

INT8_MIN = -128
INT8_MAX = 127


def _ste(x: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """Forward ``quantized``, backward identity (straight-through)."""
    return x + (quantized - x).detach()


def fake_quant_activation(x: torch.Tensor, fix_pos: int) -> torch.Tensor:
    """Quantize-dequantize an activation: ``clamp(floor(x*2^f + 1/2), -128, 127) * 2^-f`` (FXP DPU_ROUND)."""
    scale = 2.0 ** int(fix_pos)
    clipped = torch.clamp(x, INT8_MIN / scale, INT8_MAX / scale)
    q = torch.clamp(torch.floor(x * scale + 0.5), INT8_MIN, INT8_MAX) / scale
    return _ste(clipped, q)


def fake_quant_param(x: torch.Tensor, fix_pos: int) -> torch.Tensor:
    """Quantize-dequantize a weight or bias: half away from zero (STD_ROUND), saturated."""
    scale = 2.0 ** int(fix_pos)
    clipped = torch.clamp(x, INT8_MIN / scale, INT8_MAX / scale)
    scaled = x * scale
    q = torch.clamp(torch.sign(scaled) * torch.floor(scaled.abs() + 0.5), INT8_MIN, INT8_MAX) / scale
    return _ste(clipped, q)


def quantize_activation_codes(x: torch.Tensor, fix_pos: int) -> torch.Tensor:
    """The int8 codes of an (already fake-quantized) activation, as int64: ``round(x * 2^f)``."""
    return torch.round(x.double() * 2.0 ** int(fix_pos)).to(torch.int64)


def round_to_integer_ste(x: torch.Tensor) -> torch.Tensor:
    """Latent quantization ŷ = requantize(y → fix 0): DPU_ROUND to integers, saturated to int8, STE gradient."""
    return _ste(x, torch.clamp(torch.floor(x + 0.5), INT8_MIN, INT8_MAX))


def mse_optimal_fix_pos(values: torch.Tensor, candidates: list[int], param: bool) -> int:
    """Pick the fix position whose fake quantization has the least squared error on ``values``.

    This is the Vitis AI quantizer's "diffs" calibration idea (try neighbouring power-of-two scales,
    keep the one with the smallest quantization error), applied once, before QAT freezes positions.
    """
    quant = fake_quant_param if param else fake_quant_activation
    values = values.detach().double()
    errors = [float(((quant(values, f) - values) ** 2).sum()) for f in candidates]
    best = min(range(len(candidates)), key=lambda i: (errors[i], -candidates[i]))
    return candidates[best]
