"""A DPU conv layer for training: float, calibration and quantization-aware modes.

``QConv`` is one DPU convolution or transposed convolution with its fused activation — exactly the unit
that ``fxlic.fxp.layer.QuantConv`` executes on integers. Its three modes:

* ``float``: an ordinary conv + activation (pre-training, and the float twin of a shipped model);
* ``calibrate``: float forward that also records output samples to choose the fix positions;
* ``qat``: weights and bias fake-quantized (STD_ROUND), output fake-quantized (DPU_ROUND) at frozen,
  export-adjusted fix positions, so the exported integer layer computes what this forward computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fakequant import fake_quant_activation, fake_quant_param, mse_optimal_fix_pos

LEAKY_SLOPE = 26 / 256  # the only LeakyReLU slope the DPU accepts (docs/fixed-point.md)
ACTIVATIONS = ("none", "relu", "leaky_relu")
_CALIB_SAMPLES_PER_BATCH = 65536


def apply_activation(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return F.relu(x)
    if activation == "leaky_relu":
        return F.leaky_relu(x, LEAKY_SLOPE)
    return x


class QConv(nn.Module):
    """Conv2d (k, s, p) or ConvTranspose2d (k, s, p, no output padding) + fused activation.

    Buffers ``fix`` = (f_in, f_w, f_b, f_out) hold the power-of-two fix positions once calibrated.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        *,
        transposed: bool = False,
        activation: str = "none",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride, padding)
        self.transposed = transposed
        self.activation = activation
        self.stride = stride
        self.padding = padding
        self.register_buffer("fix", torch.zeros(4, dtype=torch.int64))
        self.register_buffer("quantized", torch.zeros((), dtype=torch.bool))
        self.calibrating = False
        self._samples: list[torch.Tensor] = []
        # Set by the model: a fix position this layer's output must have (e.g. 8 for the image).
        self.forced_fix_out: int | None = None
        # Diagnostics only (``fxlic.qat.int8_cost``): which parts a quantized layer fake-quantizes,
        # "all" (what the DPU computes), "weights" (weights and bias; output left in float) or "output".
        self.quantized_parts = "all"

    # ---- fix positions -------------------------------------------------------------------------
    @property
    def fix_in(self) -> int:
        return int(self.fix[0])

    @property
    def fix_w(self) -> int:
        return int(self.fix[1])

    @property
    def fix_b(self) -> int:
        return int(self.fix[2])

    @property
    def fix_out(self) -> int:
        return int(self.fix[3])

    def finish_calibration(self, fix_in: int, twin_fix_out: int | None = None) -> int:
        """Choose (f_w, f_b, f_out) from the recorded samples, apply the export adjustment, freeze.

        ``twin_fix_out``: the layer also runs as a twin with this output position (``forward_with_twin``);
        both share weights and bias, so the export adjustment is applied for the twin first, then for the
        layer itself, and (f_w, f_b) satisfy both (FXP-P1).

        Returns the output fix position (the next layer's f_in).
        """
        from fxlic.fxp.fixpos import adjust_conv_fix_positions
        from fxlic.fxp.quant import fix_pos_from_max_abs

        w = self.conv.weight.detach()
        b = self.conv.bias.detach()
        f_w0 = fix_pos_from_max_abs(float(w.abs().max()))
        f_w = mse_optimal_fix_pos(w, [f_w0, f_w0 + 1], param=True)
        f_b = fix_pos_from_max_abs(float(b.abs().max()))
        if self.forced_fix_out is not None:
            f_out = self.forced_fix_out
        else:
            if not self._samples:
                raise RuntimeError("finish_calibration() called before any calibration batch")
            samples = torch.cat(self._samples)
            f_o0 = fix_pos_from_max_abs(float(samples.abs().max()))
            f_out = mse_optimal_fix_pos(samples, [f_o0, f_o0 + 1, f_o0 + 2], param=False)
        if twin_fix_out is not None:
            f_w, f_b, _ = adjust_conv_fix_positions(fix_in, f_w, f_b, int(twin_fix_out))
        f_w, f_b, f_out_adj = adjust_conv_fix_positions(fix_in, f_w, f_b, f_out)
        if self.forced_fix_out is not None and f_out_adj != self.forced_fix_out:
            raise RuntimeError(f"export adjustment moved a forced output fix position ({f_out} -> {f_out_adj})")
        self.fix.copy_(torch.tensor([fix_in, f_w, f_b, f_out_adj]))
        self.quantized.fill_(True)
        self.calibrating = False
        self._samples = []
        return f_out_adj

    # ---- forward -------------------------------------------------------------------------------
    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, weight, bias, self.stride, self.padding)
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def forward_with_twin(self, x: torch.Tensor, twin_fix_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(this layer's output, the same pre-activation rounded once to ``twin_fix_out``), quantized only.

        The twin is a second DPU conv with this layer's int8 weights, bias and input but its own output
        fix position: its output is one DPU_ROUND of the exact accumulator. Rounding this layer's output
        again (fix f_out → twin_fix_out) would round twice, which moves every rounding threshold by
        2^-(f_out+1) (docs/fixed-point.md FXP-Q6). Used for ŷ, the latents rounded to fix 0.
        """
        if not bool(self.quantized):
            raise RuntimeError("forward_with_twin needs a quantized (calibrated) layer")
        out = self._quantized_activation(x)
        return self._round_output(out), fake_quant_activation(out, int(twin_fix_out))

    def _quantized_activation(self, x: torch.Tensor) -> torch.Tensor:
        """conv + activation with fake-quantized weights and bias, before the output's rounding."""
        weight, bias = self.conv.weight, self.conv.bias
        if self.quantized_parts != "output":
            weight = fake_quant_param(weight, self.fix_w)
            bias = fake_quant_param(bias, self.fix_b)
        return apply_activation(self._conv(x, weight.to(x.dtype), bias.to(x.dtype)), self.activation)

    def _round_output(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.quantized_parts == "weights" else fake_quant_activation(out, self.fix_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(self.quantized):
            return self._round_output(self._quantized_activation(x))
        out = apply_activation(self._conv(x, self.conv.weight.to(x.dtype), self.conv.bias.to(x.dtype)),
                                self.activation)
        if self.calibrating:
            flat = out.detach().flatten()
            if flat.numel() > _CALIB_SAMPLES_PER_BATCH:
                idx = torch.randint(0, flat.numel(), (_CALIB_SAMPLES_PER_BATCH,), device=flat.device)
                # keep the extremes too: they decide the range
                flat = torch.cat([flat[idx], flat.max().reshape(1), flat.min().reshape(1)])
            self._samples.append(flat.float().cpu())
        return out


def qconvs(module: nn.Module) -> list[tuple[str, QConv]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, QConv)]
