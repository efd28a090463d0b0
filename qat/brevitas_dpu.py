"""Brevitas, both ways: the mean-scale hyperprior as Brevitas quant layers, imported to and made from fxlic models.

Brevitas (AMD's PyTorch QAT library) describes a quantized layer by its quantizers. This module gives the DPU's
integer semantics (docs/fixed-point.md) as Brevitas quantizers and builds the mean-scale hyperprior
(``fxlic.qat.models.MeanScaleHyperprior``'s architecture) from ``QuantConv2d``, ``QuantConvTranspose2d``,
``QuantReLU`` and ``QuantIdentity``:

* weights and bias: ``DpuWeightQuant`` / ``DpuBiasQuant`` — int8 over the full range [−128, 127] (FXP-N1: no
  narrow range), one power-of-two scale per tensor (the fix position f: scale 2^−f), rounding half away from
  zero (STD_ROUND, FXP-R2), the bias with its own 8-bit position (FXP-N2: not derived from the input scale);
* activations: ``DpuActQuant`` — int8 [−128, 127], one power-of-two scale per tensor, rounding half up
  (DPU_ROUND, FXP-R1: 0.5 → 1, 2.5 → 3, −0.5 → 0), applied once after the fused ReLU (FXP-C7);
* the fixed positions of the codec (input at fix 8, ŷ and ẑ at fix 0, the image at fix 8) as constant scales.

Brevitas's own ``DPURoundSte`` is **not** the DPU's rounding: ``brevitas.function.ops.dpu_round`` rounds positive
ties to even (0.5 → 0, 2.5 → 2; it is ``torch.round`` except for negative ties), where the DPU instruction
simulator and vai_q_pytorch round them up (docs/fixed-point.md FXP-R1, §11). ``check_dpu_legal`` refuses it.

Both ways:

* ``brevitas_to_model_file`` imports a trained ``BrevitasMeanScale`` to an fxlic model file (the int8 codes are
  Brevitas's own ``quant_weight().int()``; the entropy tables come from ``fxlic.qat.export``; the factorized prior
  stays CompressAI's ``EntropyBottleneck``), after ``check_dpu_legal`` found every layer DPU-legal;
  ``brevitas_layer_codes`` + ``verify_brevitas`` check it layer by layer as ``fxlic.qat.verify`` does.
* ``brevitas_from_qat`` / ``brevitas_from_model_file`` make the Brevitas model of an fxlic QAT model or model file
  (identical forward pass, every position a learnable power-of-two scale initialised at the file's), so a Brevitas
  user can go on training; fxlic → Brevitas → fxlic gives the identical model file (content hash).

Not handled (refused with the reason): LeakyReLU layers, the ChARM architecture, lite decoder files.
Command line: ``fxlic brevitas`` (``python -m fxlic.qat.brevitas_dpu``); docs/brevitas.md.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

try:  # the optional extra: pip install -e '.[brevitas]' (also in [dev])
    with warnings.catch_warnings():  # Brevitas 0.13 scripts its ops with the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant.base import IntQuant, PerTensorPoTScaling8bit
    from brevitas.quant.solver.act import ActQuantSolver
    from brevitas.quant.solver.bias import BiasQuantSolver
    from brevitas.quant.solver.weight import WeightQuantSolver
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fxlic's Brevitas route needs Brevitas: pip install -e '.[brevitas]'") from exc

from fxlic.entropy.tables import TableSet
from fxlic.fxp.fixpos import encodable_on_dpuczdx8g, shifts_in_dpu_range
from fxlic.reference.modelfile import ModelFile

from .charm import model_from_config
from .export import export_model, model_from_model_file
from .models import (
    IMAGE_FIX,
    INPUT_FIX,
    LATENT_FIX,
    MeanScaleHyperprior,
    ModelConfig,
    rate_terms,
)

BIT_WIDTH = 8
CHECKPOINT_FORMAT = "fxlic-brevitas"
MODEL_SOURCES = ("Brevitas checkpoint (fxlic brevitas from / save_brevitas_checkpoint); also an fxlic QAT checkpoint "
                 "or model file")
DEFAULT_CONFIG = ModelConfig(hyper_activation="relu", latent_rounding="accumulator")


# ---- rounding (FXP-R1, FXP-R2), as Brevitas float_to_int implementations --------------------------------------
class DpuRoundHalfUp(nn.Module):
    """R(x) = ⌊x + ½⌋ (DPU_ROUND, FXP-R1), exact for every float (⌊x⌋ + [x − ⌊x⌋ ≥ ½]); straight-through gradient."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        floor = torch.floor(x)
        rounded = floor + (x - floor >= 0.5).to(x.dtype)
        return x + (rounded - x).detach()


class StdRoundHalfAway(nn.Module):
    """S(x) = sign(x)·⌊|x| + ½⌋ (STD_ROUND, FXP-R2), exact for every float; straight-through gradient."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        magnitude = x.abs()
        floor = torch.floor(magnitude)
        rounded = torch.sign(x) * (floor + (magnitude - floor >= 0.5).to(x.dtype))
        return x + (rounded - x).detach()


# ---- quantizers ----------------------------------------------------------------------------------------------
class DpuWeightQuant(IntQuant, PerTensorPoTScaling8bit, WeightQuantSolver):
    """DPU weights: int8 [−128, 127], one learned power-of-two scale per tensor, STD_ROUND (FXP-Q2).

    ``scaling_init`` is the threshold 2^(7 − f_w): Brevitas divides it by 2^(bit width − 1) for the scale 2^−f_w."""

    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_init = 1.0
    float_to_int_impl = StdRoundHalfAway


class DpuBiasQuant(IntQuant, PerTensorPoTScaling8bit, BiasQuantSolver):
    """DPU bias: int8 at its own learned power-of-two position (FXP-N2), STD_ROUND."""

    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_init = 1.0
    float_to_int_impl = StdRoundHalfAway
    requires_input_scale = False


class DpuActQuant(IntQuant, PerTensorPoTScaling8bit, ActQuantSolver):
    """DPU activations: int8 [−128, 127], one learned power-of-two scale per tensor, DPU_ROUND (FXP-Q1)."""

    scaling_impl_type = ScalingImplType.PARAMETER
    scaling_init = 1.0
    float_to_int_impl = DpuRoundHalfUp


class DpuFixedActQuant(DpuActQuant):
    """An activation at a position the codec fixes (input 8, ŷ and ẑ 0, image 8): a constant scale."""

    scaling_impl_type = ScalingImplType.CONST


def threshold(fix: int) -> float:
    """Brevitas's threshold for fix position f at 8 bits: 2^(7 − f) (scale = threshold / 2^7 = 2^−f)."""
    return float(2.0 ** (BIT_WIDTH - 1 - int(fix)))


def weight_quant(fix: int):
    return DpuWeightQuant.let(scaling_init=threshold(fix))


def bias_quant(fix: int):
    return DpuBiasQuant.let(scaling_init=threshold(fix))


def act_quant(fix: int):
    return DpuActQuant.let(scaling_init=threshold(fix))


def fixed_act_quant(fix: int):
    return DpuFixedActQuant.let(scaling_init=threshold(fix))


# ---- the model -------------------------------------------------------------------------------------------------
class DpuLayer(nn.Module):
    """One DPU layer: a Brevitas conv / transposed conv (weights and bias quantized) and the quantizer of its output
    after the fused activation (``QuantReLU`` for ReLU, ``QuantIdentity`` for none). ``fix`` = (f_in, f_w, f_b,
    f_out) initialises the learnable positions; f_in is the producer's and is not stored here."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, *,
                 transposed: bool = False, activation: str = "none", fix: tuple[int, int, int, int] = (0, 0, 0, 0),
                 fixed_output: bool = False) -> None:
        super().__init__()
        if activation not in ("none", "relu"):
            raise DpuLegalityError("(new layer)", f"activation {activation!r}: fxlic's Brevitas form has ReLU and "
                                   "none (LeakyReLU(26/256) layers are not expressed in Brevitas here)")
        conv_cls = qnn.QuantConvTranspose2d if transposed else qnn.QuantConv2d
        _, f_w, f_b, f_out = (int(v) for v in fix)
        self.conv = conv_cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True,
                             weight_quant=weight_quant(f_w), bias_quant=bias_quant(f_b), return_quant_tensor=False)
        out_quant = fixed_act_quant(f_out) if fixed_output else act_quant(f_out)
        act_cls = qnn.QuantReLU if activation == "relu" else qnn.QuantIdentity
        self.act = act_cls(act_quant=out_quant, return_quant_tensor=False)
        self.activation = activation
        self.transposed = transposed
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def _chain(specs: list[tuple], fixes: dict[str, tuple], prefix: str, forced_last: int | None = None) -> nn.ModuleList:
    layers = []
    for i, (cin, cout, k, s, p, transposed, activation) in enumerate(specs):
        name = f"{prefix}.{i}"
        fixed = forced_last is not None and i == len(specs) - 1
        layers.append(DpuLayer(cin, cout, k, s, p, transposed=transposed, activation=activation,
                               fix=fixes.get(name, (0, 0, 0, forced_last if fixed else 0)), fixed_output=fixed))
    return nn.ModuleList(layers)


class BrevitasMeanScale(nn.Module):
    """The mean-scale hyperprior (or the scale hyperprior, ``use_means=False``) in Brevitas quant layers.

    Same layers, names, wiring and forward dictionary as ``MeanScaleHyperprior`` (so ``fxlic.qat.train.rd_loss``
    trains it): g_a → y (at f_y) and ŷ (fix 0), h_a → z → ẑ (fix 0), h_s → (log2 σ, μ), g_s → x̂ (fix 8).
    With ``latent_rounding="accumulator"`` ŷ is g_a's last pre-activation rounded once to fix 0 (the ŷ twin,
    FXP-Q6); with ``"requantize"`` ŷ = R(y → 0). ``fixes`` (layer → (f_in, f_w, f_b, f_out)) initialises the
    positions; the layer chains are the ``MeanScaleHyperprior``'s."""

    def __init__(self, config: ModelConfig | None = None,
                 fixes: dict[str, tuple[int, int, int, int]] | None = None) -> None:
        super().__init__()
        config = config or DEFAULT_CONFIG
        fixes = fixes or {}
        N, M = config.N, config.M
        act = config.hyper_activation
        self.config = config
        self.input_quant = qnn.QuantIdentity(act_quant=fixed_act_quant(INPUT_FIX), return_quant_tensor=False)
        self.g_a = _chain([(3, N, 5, 2, 2, False, "relu"), (N, N, 5, 2, 2, False, "relu"),
                           (N, N, 5, 2, 2, False, "relu"), (N, M, 5, 2, 2, False, "none")], fixes, "g_a")
        self.y_hat_quant = qnn.QuantIdentity(act_quant=fixed_act_quant(LATENT_FIX), return_quant_tensor=False)
        self.h_a = _chain([(M, N, 3, 1, 1, False, act), (N, N, 5, 2, 2, False, act), (N, N, 5, 2, 2, False, "none")],
                          fixes, "h_a")
        self.z_hat_quant = qnn.QuantIdentity(act_quant=fixed_act_quant(LATENT_FIX), return_quant_tensor=False)
        hidden = M * 3 // 2
        self.h_s = _chain([(N, M, 4, 2, 1, True, act), (M, hidden, 4, 2, 1, True, act)], fixes, "h_s")
        self.h_s_scales = DpuLayer(hidden, M, 3, 1, 1, fix=fixes.get("h_s_scales", (0, 0, 0, 0)))
        self.h_s_means = DpuLayer(hidden, M, 3, 1, 1, fix=fixes.get("h_s_means", (0, 0, 0, 0))) \
            if config.use_means else None
        self.g_s = _chain([(M, N, 4, 2, 1, True, "relu"), (N, N, 4, 2, 1, True, "relu"), (N, N, 4, 2, 1, True, "relu"),
                           (N, 3, 4, 2, 1, True, "none")], fixes, "g_s", forced_last=IMAGE_FIX)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.z_rate = "noise"
        # Set by brevitas_from_model_file: the model file's z tables, its name/quality/training record, and the
        # factorized prior's parameters they go with (the file holds only integer tables, not the density).
        self.stored_z_tables: TableSet | None = None
        self.stored_z_signature: torch.Tensor | None = None
        self.origin: dict = {}

    # ---- structure (the MeanScaleHyperprior's names and wiring) -----------------------------------------------
    def named_layers(self) -> list[tuple[str, DpuLayer]]:
        """Every DPU layer by its model-file name, in dataflow order (``MeanScaleHyperprior.named_qconvs``)."""
        pairs = [(f"g_a.{i}", m) for i, m in enumerate(self.g_a)]
        pairs += [(f"h_a.{i}", m) for i, m in enumerate(self.h_a)]
        pairs += [(f"h_s.{i}", m) for i, m in enumerate(self.h_s)]
        pairs.append(("h_s_scales", self.h_s_scales))
        if self.h_s_means is not None:
            pairs.append(("h_s_means", self.h_s_means))
        pairs += [(f"g_s.{i}", m) for i, m in enumerate(self.g_s)]
        return pairs

    def input_of(self, name: str) -> tuple[str, nn.Module]:
        """(name, module) of the quantizer whose output layer ``name`` reads: its f_in is that quantizer's position."""
        prefix, _, index = name.rpartition(".")
        if name.startswith("h_s_"):
            return f"h_s.{len(self.h_s) - 1}", self.h_s[-1].act
        if index.isdigit() and int(index) > 0:
            producer = f"{prefix}.{int(index) - 1}"
            return producer, dict(self.named_layers())[producer].act
        return {"g_a": ("input", self.input_quant), "h_a": (f"g_a.{len(self.g_a) - 1}", self.g_a[-1].act),
                "h_s": ("z_hat", self.z_hat_quant), "g_s": ("y_hat", self.y_hat_quant)}[prefix]

    # ---- forward ----------------------------------------------------------------------------------------------
    def encode_latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        for layer in self.g_a[:-1]:
            h = layer(h)
        last = self.g_a[-1]
        pre = last.conv(h)
        y = last.act(pre)
        twin = self.config.latent_rounding == "accumulator"
        return y, self.y_hat_quant(pre if twin else y)  # g_a's last has no activation: the twin rounds pre

    def hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = z_hat
        for layer in self.h_s:
            hidden = layer(hidden)
        log2_scales = self.h_s_scales(hidden)
        means = self.h_s_means(hidden) if self.h_s_means is not None else torch.zeros_like(log2_scales)
        return log2_scales, means

    def z_likelihood(self, z_values: torch.Tensor) -> torch.Tensor:
        return MeanScaleHyperprior.z_likelihood(self, z_values)

    def forward(self, x: torch.Tensor, noisy_rate: bool | None = None) -> dict[str, torch.Tensor]:
        """x: B×3×H×W network input ((p − 128)/256); the dictionary of ``MeanScaleHyperprior.forward``."""
        if noisy_rate is None:
            noisy_rate = self.training
        x = self.input_quant(x)
        y, y_hat = self.encode_latents(x)
        z = y
        for layer in self.h_a:
            z = layer(z)
        z_hat = self.z_hat_quant(z)
        log2_scales, means = self.hyper_synthesis(z_hat)
        x_hat = y_hat
        for layer in self.g_s:
            x_hat = layer(x_hat)
        rate = rate_terms(self.z_likelihood, y, z, y_hat, z_hat, log2_scales, means, noisy_rate, self.z_rate)
        return {"x_hat": x_hat.to(rate["y"].dtype), **rate, "log2_scales": log2_scales}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def fix_positions(self) -> dict[str, list[int]]:
        """(f_in, f_w, f_b, f_out) of every layer, read from the Brevitas quantizers (``check_dpu_legal`` first)."""
        return {name: list(layer_fixes(self, name)) for name, _ in self.named_layers()}


# ---- DPU legality ----------------------------------------------------------------------------------------------
class DpuLegalityError(ValueError):
    """A Brevitas configuration the DPU cannot run, or fxlic's integer model does not describe: layer and reason."""

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"{layer}: {reason}")
        self.layer = layer
        self.reason = reason


@dataclass(frozen=True)
class Finding:
    layer: str
    reason: str

    def __str__(self) -> str:
        return f"{self.layer}: {self.reason}"


_TIES = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], dtype=torch.float64)
_HALF_UP = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
_HALF_AWAY = [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0]


def _rounding_name(values: list[float]) -> str:
    known = {tuple(_HALF_UP): "half up (DPU_ROUND)", tuple(_HALF_AWAY): "half away from zero (STD_ROUND)",
             (-2.0, -2.0, -0.0, 0.0, 2.0, 2.0): "half to even", (-2.0, -1.0, -0.0, 0.0, 2.0, 2.0):
             "like Brevitas's DPURoundSte (negative ties up, positive ties to even: 0.5 → 0, 2.5 → 2)",
             (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0): "half down (or floor)"}
    return known.get(tuple(float(v) + 0.0 for v in values), f"an unknown rule (ties {_TIES.tolist()} → {values})")


def _tensor_quant(proxy):
    """The RescalingIntQuant behind a Brevitas quant proxy (weight / bias / act), or None when it has none."""
    inner = getattr(proxy, "fused_activation_quant_proxy", None)
    tensor_quant = getattr(inner if inner is not None else proxy, "tensor_quant", None)
    return tensor_quant if tensor_quant is not None and hasattr(tensor_quant, "int_quant") else None


def _quantizer_findings(layer: str, what: str, proxy, rounding: list[float], rule: str) -> list[Finding]:
    """Narrow range, unsigned, bit width, rounding and zero point of one quantizer."""
    if proxy is None or not getattr(proxy, "is_quant_enabled", False):
        return [Finding(layer, f"{what} is not quantized: every DPU tensor is int8")]
    tensor_quant = _tensor_quant(proxy)
    if tensor_quant is None:
        return [Finding(layer, f"{what}: not an integer quantizer ({type(proxy).__name__}); the DPU takes int8")]
    found = []
    int_quant = tensor_quant.int_quant
    if bool(getattr(int_quant, "narrow_range", False)):
        found.append(Finding(layer, f"{what} uses a narrow range [−127, 127]: the DPU uses the full int8 range "
                                    "[−128, 127] (FXP-N1; set narrow_range=False)"))
    if not bool(getattr(int_quant, "signed", True)):
        found.append(Finding(layer, f"{what} is unsigned (uint8 [0, 255]): DPU tensors are signed int8 [−128, 127] "
                                    "(FXP-N1; set signed=True)"))
    with torch.no_grad():
        got = [float(v) for v in int_quant.float_to_int_impl(_TIES.clone())]
    if got != rounding:
        found.append(Finding(layer, f"{what} rounds {_rounding_name(got)}; the DPU needs {rule} here "
                                    "(docs/fixed-point.md FXP-R1 activations, FXP-R2 weights and bias)"))
    return found


def _bit_width(layer: str, what: str, value) -> list[Finding]:
    bits = float(value)
    if bits != BIT_WIDTH:
        return [Finding(layer, f"{what} has bit width {bits:g}: the DPU (DPUCZDX8G) computes int8 only")]
    return []


def _zero_point(layer: str, what: str, value) -> list[Finding]:
    if value is not None and torch.count_nonzero(torch.as_tensor(value)) > 0:
        return [Finding(layer, f"{what} has a non-zero zero point: the DPU is symmetric (no zero point, FXP-N1)")]
    return []


def fix_of_scale(layer: str, what: str, scale) -> int:
    """The fix position f of a Brevitas scale 2^−f; refuses per-channel scales and scales that are not powers of two."""
    value = torch.as_tensor(scale).detach().double()
    if value.numel() != 1:
        raise DpuLegalityError(layer, f"{what} has {value.numel()} scales (per-channel): the DPU has one fix position "
                                      "per tensor (FXP-N1)")
    v = float(value.reshape(()))
    mantissa, exponent = math.frexp(v) if v > 0 and math.isfinite(v) else (0.0, 0)
    if mantissa != 0.5:
        raise DpuLegalityError(layer, f"{what} has scale {v!r}, not a power of two: the DPU scales by 2^−f "
                                      "(restrict the scale to powers of two)")
    return 1 - exponent


def _act_scale(module) -> torch.Tensor:
    return module.act_quant.scale()


def quantizer_fix(name: str, module) -> int:
    """Fix position of a QuantIdentity / QuantReLU output quantizer."""
    return fix_of_scale(name, "output quantizer", _act_scale(module))


def layer_fixes(model: BrevitasMeanScale, name: str) -> tuple[int, int, int, int]:
    """(f_in, f_w, f_b, f_out) of one layer from its Brevitas quantizers."""
    layer = dict(model.named_layers())[name]
    producer, source = model.input_of(name)
    f_in = fix_of_scale(name, f"its input ({producer}'s output quantizer)", _act_scale(source))
    f_w = fix_of_scale(name, "weight quantizer", layer.conv.quant_weight().scale)
    f_b = fix_of_scale(name, "bias quantizer", layer.conv.bias_quant(layer.conv.bias).scale)
    f_out = fix_of_scale(name, "output quantizer", _act_scale(layer.act))
    return f_in, f_w, f_b, f_out


def _conv_findings(name: str, layer: nn.Module, activation: str) -> list[Finding]:
    conv = getattr(layer, "conv", None)
    act = getattr(layer, "act", None)
    found = []
    if not isinstance(conv, (qnn.QuantConv2d, qnn.QuantConvTranspose2d)):
        return [Finding(name, f"{type(conv).__name__} is not a QuantConv2d / QuantConvTranspose2d: an op the DPU "
                              "path of this codec lacks")]
    if conv.groups != 1:
        found.append(Finding(name, f"grouped convolution (groups={conv.groups}): fxlic's integer conv is dense"))
    if tuple(conv.dilation) != (1, 1):
        found.append(Finding(name, f"dilation {tuple(conv.dilation)}: fxlic's integer conv has none"))
    if conv.padding_mode != "zeros":
        found.append(Finding(name, f"padding mode {conv.padding_mode!r}: the DPU pads with zeros"))
    if isinstance(conv, qnn.QuantConvTranspose2d) and tuple(conv.output_padding) != (0, 0):
        found.append(Finding(name, f"output_padding {tuple(conv.output_padding)}: the DPU op filter rejects "
                                   "output padding (FXP-C2)"))
    if conv.bias is None:
        found.append(Finding(name, "no bias: a DPU conv has an int8 bias (use bias=True)"))
    if getattr(conv, "input_quant", None) is not None and conv.input_quant.is_quant_enabled:
        found.append(Finding(name, "the conv quantizes its own input: the DPU reads the producer's int8 tensor "
                                   "(quantize outputs only)"))
    if getattr(conv, "output_quant", None) is not None and conv.output_quant.is_quant_enabled:
        found.append(Finding(name, "the conv output is quantized before the activation: the DPU rounds once, after "
                                   "the fused activation (FXP-C7)"))
    expected_act = qnn.QuantReLU if activation == "relu" else qnn.QuantIdentity
    if type(act) is not expected_act:
        what = type(act).__name__
        found.append(Finding(name, f"{what} after the conv: the DPU fuses only ReLU (or LeakyReLU(26/256)) into a "
                                   f"conv, and this layer is '{activation}' in the architecture (an op the DPU lacks "
                                   "or another activation)"))
        return found
    found += _quantizer_findings(name, "weight quantizer", conv.weight_quant, _HALF_AWAY, "half away from zero")
    if conv.bias is not None:
        if getattr(conv.bias_quant, "requires_input_scale", False):
            found.append(Finding(name, "the bias quantizer takes its scale from the input and weight scales: the DPU "
                                       "bias is int8 at its own fix position (FXP-N2; requires_input_scale=False)"))
        else:
            found += _quantizer_findings(name, "bias quantizer", conv.bias_quant, _HALF_AWAY, "half away from zero")
    found += _quantizer_findings(name, "activation quantizer", act.act_quant, _HALF_UP, "half up")
    if found:
        return found
    weight = conv.quant_weight()
    bias = conv.bias_quant(conv.bias)
    found += _bit_width(name, "the weight quantizer", weight.bit_width)
    found += _bit_width(name, "the bias quantizer", bias.bit_width)
    found += _bit_width(name, "the activation quantizer", act.act_quant.bit_width())
    found += _zero_point(name, "the weight quantizer", weight.zero_point)
    found += _zero_point(name, "the bias quantizer", bias.zero_point)
    found += _zero_point(name, "the activation quantizer", act.act_quant.zero_point())
    return found


def _fixed_quantizer_findings(model: BrevitasMeanScale) -> list[Finding]:
    found = []
    for what, module, fix in (("input", model.input_quant, INPUT_FIX), ("y_hat", model.y_hat_quant, LATENT_FIX),
                              ("z_hat", model.z_hat_quant, LATENT_FIX), (f"g_s.{len(model.g_s) - 1}", model.g_s[-1].act,
                                                                         IMAGE_FIX)):
        findings = _quantizer_findings(what, "activation quantizer", module.act_quant, _HALF_UP, "half up")
        if findings:
            found += findings
            continue
        try:
            got = quantizer_fix(what, module)
        except DpuLegalityError as exc:
            found.append(Finding(exc.layer, exc.reason))
            continue
        if got != fix:
            found.append(Finding(what, f"fix position {got}, but the codec fixes it at {fix} (docs/architecture.md: "
                                       "input and image at fix 8, ŷ and ẑ at fix 0)"))
    return found


def _shift_findings(name: str, fixes: tuple[int, int, int, int], twin: bool = False) -> list[Finding]:
    f_in, f_w, f_b, f_out = fixes
    shift_cut, shift_bias = f_w + f_in - f_out, f_w + f_in - f_b
    label = f"{name} (its ŷ twin at fix 0)" if twin else name
    shifts = (f"fix in/w/b/out {f_in}/{f_w}/{f_b}/{f_out}: shift_cut = f_w + f_in − f_out = {shift_cut}, "
              f"shift_bias = f_w + f_in − f_b = {shift_bias}")
    if not shifts_in_dpu_range(shift_cut, shift_bias):
        return [Finding(label, f"{shifts}; the DPU needs shift_cut ∈ [0, 16] and shift_bias ∈ "
                               f"[min(0, shift_cut − 16), 16] (FXP-P1): move the positions, or freeze them at "
                               "DPU-legal values while training")]
    if not encodable_on_dpuczdx8g(shift_cut, shift_bias):
        return [Finding(label, f"{shifts}; a DPUCZDX8G instruction holds shift_bias ∈ [−1, 19] only (FXP-P5): "
                               "give the bias a position at most one finer than f_w + f_in")]
    return []


def check_dpu_legal(model: nn.Module) -> list[Finding]:
    """Every reason the Brevitas model cannot become an fxlic model file for the DPU, naming the layer (empty: legal).

    Checks, per layer: the op (QuantConv2d / QuantConvTranspose2d, no groups, dilation, output padding; the
    architecture's ReLU or none after it, quantized once after the activation), each quantizer (int8, signed, full
    range, zero point 0, one power-of-two scale per tensor, weights and bias rounding half away from zero,
    activations half up, the bias at its own 8-bit position), the fixed positions of the codec (input 8, ŷ and ẑ 0,
    image 8) and the shifts of every layer and of the ŷ twin (FXP-P1, FXP-P5)."""
    if not isinstance(model, BrevitasMeanScale):
        return [Finding(type(model).__name__, "not a BrevitasMeanScale: fxlic imports the mean-scale hyperprior "
                                              "built by fxlic.qat.brevitas_dpu (ChARM and other graphs are not "
                                              "handled)")]
    found = _fixed_quantizer_findings(model)
    activations = {f"g_a.{i}": "relu" for i in range(3)} | {"g_s.0": "relu", "g_s.1": "relu", "g_s.2": "relu",
                                                             "h_a.0": model.config.hyper_activation,
                                                             "h_a.1": model.config.hyper_activation,
                                                             "h_s.0": model.config.hyper_activation,
                                                             "h_s.1": model.config.hyper_activation}
    legal_ops = set()
    for name, layer in model.named_layers():
        layer_found = _conv_findings(name, layer, activations.get(name, "none"))
        found += layer_found
        if not layer_found:
            legal_ops.add(name)
    for name, _ in model.named_layers():
        producer, _ = model.input_of(name)
        if name not in legal_ops or (producer in dict(model.named_layers()) and producer not in legal_ops):
            continue
        try:
            fixes = layer_fixes(model, name)
        except DpuLegalityError as exc:
            found.append(Finding(exc.layer, exc.reason))
            continue
        found += _shift_findings(name, fixes)
        if name == f"g_a.{len(model.g_a) - 1}" and model.config.latent_rounding == "accumulator":
            found += _shift_findings(name, (*fixes[:3], LATENT_FIX), twin=True)
    return found


def require_dpu_legal(model: nn.Module) -> None:
    """Raise ``DpuLegalityError`` (the first finding's layer; every finding in the message) unless legal."""
    found = check_dpu_legal(model)
    if found:
        first = found[0]
        more = "" if len(found) == 1 else "\n" + "\n".join(f"  {f}" for f in found[1:])
        raise DpuLegalityError(first.layer, f"{first.reason}{more}")


# ---- Brevitas → fxlic -------------------------------------------------------------------------------------------
def _eb_signature(eb: EntropyBottleneck) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten().cpu() for p in eb.parameters()])


@torch.no_grad()
def brevitas_to_qat(model: BrevitasMeanScale) -> MeanScaleHyperprior:
    """The fxlic QAT model with the same forward pass: the Brevitas float weights, its fix positions, the same
    factorized prior. Refuses a model that is not DPU-legal, and one whose int8 codes (``quant_weight().int()``)
    are not what fxlic's STD_ROUND gives at the same positions."""
    from fxlic.fxp.quant import quantize_param

    require_dpu_legal(model)
    qat = MeanScaleHyperprior(model.config)
    targets = dict(qat.named_qconvs())
    for name, layer in model.named_layers():
        fixes = layer_fixes(model, name)
        target = targets[name]
        weight = layer.conv.weight.detach().cpu()
        bias = layer.conv.bias.detach().cpu()
        for what, tensor, codes, fix in (
                ("weight", weight, layer.conv.quant_weight().int(), fixes[1]),
                ("bias", bias, layer.conv.bias_quant(layer.conv.bias).int(), fixes[2])):
            ours = quantize_param(tensor.double().numpy(), fix)
            if not np.array_equal(ours.astype(np.int64), codes.detach().cpu().numpy().astype(np.int64)):
                raise DpuLegalityError(name, f"Brevitas's int8 {what} codes differ from STD_ROUND at fix {fix}")
        target.conv.weight.copy_(weight.to(target.conv.weight.dtype))
        target.conv.bias.copy_(bias.to(target.conv.bias.dtype))
        target.fix.copy_(torch.tensor(fixes))
        target.quantized.fill_(True)
    qat.entropy_bottleneck.load_state_dict(model.entropy_bottleneck.state_dict())
    qat.z_rate = model.z_rate
    return qat.eval()


def brevitas_to_model_file(model: BrevitasMeanScale, name: str | None = None, quality: int | None = None,
                           training: dict | None = None, z_tables: str = "auto") -> ModelFile:
    """The fxlic model file of a DPU-legal Brevitas model (``DpuLegalityError`` otherwise).

    ``z_tables``: ``"bottleneck"`` builds ẑ's tables from the model's ``EntropyBottleneck`` (``fxlic.qat.export``);
    ``"stored"`` keeps the tables of the model file the Brevitas model was made from; ``"auto"`` keeps them while the
    factorized prior is still the one it was made with, else builds. ``name``, ``quality``, ``training`` default to
    the origin's (a model made by ``brevitas_from_model_file``), else meanscale / 0 / {}."""
    if z_tables not in ("auto", "stored", "bottleneck"):
        raise ValueError(f"z_tables must be auto, stored or bottleneck, got {z_tables!r}")
    origin = model.origin or {}
    qat = brevitas_to_qat(model)
    model_file = export_model(qat, name or origin.get("name", "meanscale"),
                              origin.get("quality", 0) if quality is None else quality,
                              origin.get("training", {}) if training is None else training)
    stored = model.stored_z_tables
    unchanged = (model.stored_z_signature is not None
                 and torch.equal(model.stored_z_signature, _eb_signature(model.entropy_bottleneck)))
    if z_tables == "stored" and stored is None:
        raise ValueError("z_tables='stored', but this Brevitas model carries no model file's z tables")
    if stored is not None and (z_tables == "stored" or (z_tables == "auto" and unchanged)):
        model_file = replace(model_file, z_tables=stored)
    return model_file


# ---- fxlic → Brevitas -------------------------------------------------------------------------------------------
@torch.no_grad()
def brevitas_from_qat(qat: MeanScaleHyperprior) -> BrevitasMeanScale:
    """The Brevitas model of a calibrated fxlic QAT model: its float weights, every position as the initial value
    of a learnable power-of-two scale, its factorized prior. Forward passes are identical (in float64: exactly)."""
    if type(qat) is not MeanScaleHyperprior:
        raise DpuLegalityError(type(qat).__name__, "fxlic's Brevitas form covers the mean-scale / scale hyperprior "
                                                   "(not ChARM)")
    if not qat.quantized:
        raise ValueError("the fxlic model is not calibrated (no fix positions): calibrate or QAT-train it first")
    if qat.config.hyper_activation != "relu":
        raise DpuLegalityError("h_a.0", "LeakyReLU(26/256) layers are not expressed in Brevitas here; convert a "
                                        "model with hyper_activation='relu'")
    fixes = qat.fix_positions()
    model = BrevitasMeanScale(qat.config, {k: tuple(v) for k, v in fixes.items()})
    targets = dict(model.named_layers())
    for name, qconv in qat.named_qconvs():
        target = targets[name]
        target.conv.weight.copy_(qconv.conv.weight.detach().to(target.conv.weight.dtype))
        target.conv.bias.copy_(qconv.conv.bias.detach().to(target.conv.bias.dtype))
        if qconv.forced_fix_out is not None and qconv.forced_fix_out != fixes[name][3]:
            raise ValueError(f"{name}: output position {fixes[name][3]} is not the forced {qconv.forced_fix_out}")
    model.entropy_bottleneck.load_state_dict(qat.entropy_bottleneck.state_dict())
    model.z_rate = qat.z_rate
    got = model.fix_positions()
    if got != fixes:
        bad = sorted(k for k in fixes if got[k] != fixes[k])
        raise ValueError(f"Brevitas positions differ from the fxlic model's at {', '.join(bad)}")
    return model.eval()


def brevitas_from_model_file(model_file: ModelFile) -> BrevitasMeanScale:
    """The Brevitas model of an fxlic model file (``fxlic.qat.export.model_from_model_file``, then
    ``brevitas_from_qat``). It carries the file's z tables, name, quality and training record, so
    ``brevitas_to_model_file`` of it (unchanged) writes a file with the same content hash."""
    if model_file.decoder is not None:
        raise ValueError("a model file with a lite decoder attached: convert the model file alone")
    architecture = model_file.meta.get("architecture", "meanscale")
    if architecture not in ("meanscale", "scalehyper"):
        raise DpuLegalityError(architecture, "fxlic's Brevitas form covers the mean-scale / scale hyperprior only")
    model = brevitas_from_qat(model_from_model_file(model_file))
    model.stored_z_tables = model_file.z_tables
    model.stored_z_signature = _eb_signature(model.entropy_bottleneck)
    model.origin = {"name": model_file.name, "quality": model_file.quality,
                    "training": dict(model_file.meta.get("training", {})), "hash": model_file.content_hash().hex()}
    return model


# ---- checkpoints -------------------------------------------------------------------------------------------------
def save_brevitas_checkpoint(model: BrevitasMeanScale, path: str | Path, **extra) -> None:
    """{"format": "fxlic-brevitas", "config", "state_dict", "origin", "z_tables"} (+ ``extra``) with torch.save."""
    z = None
    if model.stored_z_tables is not None:
        t = model.stored_z_tables
        z = {"cdf": t.cdf, "num_symbols": t.num_symbols, "offset": t.offset,
             "signature": model.stored_z_signature}
    torch.save({"format": CHECKPOINT_FORMAT, "config": asdict(model.config), "state_dict": model.state_dict(),
                "origin": model.origin, "z_tables": z, "z_rate": model.z_rate, **extra}, path)


def load_brevitas_checkpoint(path: str | Path) -> tuple[BrevitasMeanScale, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an fxlic Brevitas checkpoint (format {state.get('format')!r})")
    model = BrevitasMeanScale(ModelConfig(**state["config"]))
    model.load_state_dict(state["state_dict"])
    model.origin = dict(state.get("origin") or {})
    model.z_rate = state.get("z_rate", "noise")
    z = state.get("z_tables")
    if z is not None:
        model.stored_z_tables = TableSet(cdf=np.asarray(z["cdf"]), num_symbols=np.asarray(z["num_symbols"]),
                                         offset=np.asarray(z["offset"]))
        model.stored_z_signature = z["signature"]
    return model.eval(), state


# ---- layer-by-layer equality --------------------------------------------------------------------------------------
@torch.no_grad()
def brevitas_layer_codes(model: BrevitasMeanScale, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """int codes of every layer output (and ŷ, ẑ) of the Brevitas forward pass in float64, for one uint8 H×W×3
    image padded as the codec pads it: Brevitas's own quantizers, read back as round(v · 2^f_out)."""
    from .verify import traced_forward

    model = model.double().eval()
    fixes = {name: layer_fixes(model, name)[3] for name, _ in model.named_layers()}
    taps = [(name, layer.act, lambda output, f=fixes[name]: torch.round(output[0].double() * 2.0 ** f).long().numpy())
            for name, layer in model.named_layers()]
    codes, out = traced_forward(model, pixels, taps)
    codes["y_hat"] = out["y_hat"][0].round().long().numpy()
    codes["z_hat"] = out["z_hat"][0].round().long().numpy()
    if model.config.latent_rounding == "accumulator":
        codes["g_a_y_hat"] = codes["y_hat"]
    return codes


def verify_brevitas(model: BrevitasMeanScale, model_file: ModelFile, images: list[Path]) -> dict[str, dict[str, int]]:
    """Per layer: elements compared and mismatches between the integer reference (``model_file``'s codec, encode
    and decode) and the Brevitas forward pass, over ``images`` (``fxlic.qat.verify.compare_image``)."""
    from collections import defaultdict

    from fxlic.families import open_codec
    from fxlic.imageio import read_image

    from .verify import compare_image

    codec = open_codec(model_file)
    model = copy.deepcopy(model).double().eval()  # float64 (exact), without changing the caller's model
    stats: dict[str, dict[str, int]] = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    for path in images:
        compare_image(model, codec, read_image(path), stats, Path(path).name, layer_codes=brevitas_layer_codes)
    return dict(stats)


# ---- calibration from a float model (a starting point for Brevitas QAT) --------------------------------------------
def calibrated_brevitas_model(float_model: MeanScaleHyperprior, batches: list[torch.Tensor]) -> BrevitasMeanScale:
    """A Brevitas model to start QAT from: ``float_model`` (fxlic, float) calibrated on ``batches`` of pixels
    (fxlic's calibration: FXP-Q4 positions, the Vitis export adjustment FXP-P2, the ŷ twin's shifts), converted."""
    from .models import pixels_to_input

    float_model.eval()
    float_model.start_calibration()
    with torch.no_grad():
        for pixels in batches:
            float_model(pixels_to_input(pixels), noisy_rate=False)
    float_model.finish_calibration()
    return brevitas_from_qat(float_model)


# ---- command line ----------------------------------------------------------------------------------------------------
def _load_any(path: str) -> BrevitasMeanScale:
    """A Brevitas model from a Brevitas checkpoint, an fxlic QAT checkpoint (.pt) or a model file (.npz)."""
    if path.endswith(".npz"):
        from fxlic.reference.modelfile import load_model_file

        return brevitas_from_model_file(load_model_file(path))
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") == CHECKPOINT_FORMAT:
        return load_brevitas_checkpoint(path)[0]
    qat = model_from_config(state["config"])
    qat.load_state_dict(state["model"])
    return brevitas_from_qat(qat)


def _print_stats(stats: dict[str, dict[str, int]], images: int) -> int:
    bad = 0
    print(f"{'layer':24s} {'elements':>12s} {'mismatches':>10s}")
    for layer, row in stats.items():
        print(f"{layer:24s} {row['elements']:12d} {row['mismatches']:10d}")
        bad += row["mismatches"]
    print(f"{images} images, {sum(r['elements'] for r in stats.values())} elements, {bad} mismatches")
    return bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fxlic brevitas", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="list every reason a Brevitas checkpoint is not DPU-legal (exit 1 if any)")
    c.add_argument("checkpoint", help=MODEL_SOURCES)
    c = sub.add_parser("import", help="Brevitas checkpoint -> fxlic model file (refused unless DPU-legal)")
    c.add_argument("checkpoint", help=MODEL_SOURCES)
    c.add_argument("-o", "--out", required=True, help="model file to write (.npz)")
    c.add_argument("--name", help="model name (default: the origin's, else meanscale)")
    c.add_argument("--quality", type=int, help="quality index (default: the origin's, else 0)")
    c.add_argument("--z-tables", choices=("auto", "stored", "bottleneck"), default="auto",
                   help="ẑ tables: from the EntropyBottleneck, or those of the model file the Brevitas model was made "
                        "from (auto: those while the prior is unchanged)")
    c.add_argument("--verify", nargs="+", metavar="IMAGE", help="then check layer equality on these images")
    c = sub.add_parser("from", help="fxlic QAT checkpoint (.pt) or model file (.npz) -> Brevitas checkpoint")
    c.add_argument("source", help="fxlic QAT checkpoint (.pt) or model file (.npz)")
    c.add_argument("-o", "--out", required=True, help="Brevitas checkpoint to write (.pt)")
    c = sub.add_parser("verify", help="layer equality: Brevitas forward vs the integer reference of a model file")
    c.add_argument("checkpoint", help=MODEL_SOURCES)
    c.add_argument("model_file", help="the integer model file (.npz)")
    c.add_argument("images", nargs="+", help="images or folders of PNGs")
    args = p.parse_args(argv)
    from fxlic.reference.modelfile import load_model_file

    if args.command == "check":
        found = check_dpu_legal(_load_any(args.checkpoint))
        for finding in found:
            print(finding)
        print("DPU-legal" if not found else f"{len(found)} finding(s): not DPU-legal")
        return 1 if found else 0
    if args.command == "from":
        model = _load_any(args.source)
        save_brevitas_checkpoint(model, args.out)
        print(f"wrote {args.out}: BrevitasMeanScale N={model.config.N} M={model.config.M}")
        return 0
    model = _load_any(args.checkpoint)
    if args.command == "import":
        model_file = brevitas_to_model_file(model, args.name, args.quality, z_tables=args.z_tables)
        model_file.save(args.out)
        print(f"wrote {args.out}: {len(model_file.layers)} layers, hash {model_file.content_hash().hex()[:16]}")
        if not args.verify:
            return 0
        model_file = load_model_file(args.out)
        images = _expand(args.verify)
    else:
        model_file = load_model_file(args.model_file)
        images = _expand(args.images)
    return 1 if _print_stats(verify_brevitas(model, model_file, images), len(images)) else 0


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for item in map(Path, paths):
        out.extend(sorted(item.glob("*.png")) if item.is_dir() else [item])
    return out


__all__ = ["BrevitasMeanScale", "DpuActQuant", "DpuBiasQuant", "DpuFixedActQuant", "DpuLayer", "DpuLegalityError",
           "DpuRoundHalfUp", "DpuWeightQuant", "Finding", "StdRoundHalfAway", "brevitas_from_model_file",
           "brevitas_from_qat", "brevitas_layer_codes", "brevitas_to_model_file", "brevitas_to_qat",
           "calibrated_brevitas_model", "check_dpu_legal", "load_brevitas_checkpoint", "require_dpu_legal",
           "save_brevitas_checkpoint", "verify_brevitas"]

if __name__ == "__main__":
    sys.exit(main())
