"""fxlic.fxp: the DPU fixed-point integer arithmetic (spec: ``docs/fixed-point.md``).

Imports numpy only (numba is imported lazily by the ``impl="numba"`` conv path).
"""

from .assumptions import DEFAULT, DpuAssumptions
from .conv import (
    ACTIVATIONS,
    IMPLS,
    LEAKY_RELU_NUMERATOR,
    LEAKY_RELU_SHIFT,
    conv2d_acc,
    conv2d_output_size,
    conv_transpose2d_acc,
    conv_transpose2d_output_size,
    requantize_accumulator,
)
from .eltwise import add_int, concat_int
from .fixpos import adjust_conv_fix_positions, encodable_on_dpuczdx8g, shift_bias_min, shifts_in_dpu_range
from .layer import QuantConv
from .quant import dequantize, fix_pos_from_max_abs, quantize_activation, quantize_param, requantize
from .rounding import round_half_away, round_half_up, saturate, shift_round_half_up

__all__ = [
    "ACTIVATIONS",
    "DEFAULT",
    "IMPLS",
    "LEAKY_RELU_NUMERATOR",
    "LEAKY_RELU_SHIFT",
    "DpuAssumptions",
    "QuantConv",
    "add_int",
    "adjust_conv_fix_positions",
    "concat_int",
    "conv2d_acc",
    "conv2d_output_size",
    "conv_transpose2d_acc",
    "conv_transpose2d_output_size",
    "dequantize",
    "encodable_on_dpuczdx8g",
    "fix_pos_from_max_abs",
    "quantize_activation",
    "quantize_param",
    "requantize",
    "requantize_accumulator",
    "round_half_away",
    "round_half_up",
    "saturate",
    "shift_bias_min",
    "shift_round_half_up",
    "shifts_in_dpu_range",
]
