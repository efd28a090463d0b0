"""Named, switchable assumptions for the points of DPU arithmetic that only a board run can settle.

Each field is one open point of ``docs/fixed-point.md`` (section "Open points", ids FXP-A-*). The
defaults are the semantics the Vitis AI quantizer's fake-quant computes (so QAT, export and golden
model agree); the alternatives are what other public Xilinx sources (the VART DPU instruction
simulator) suggest the hardware may do. ``DEFAULT`` is what every function uses unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DpuAssumptions", "DEFAULT"]

_LEAKY = ("single", "double")
_NSB = ("scale_accumulator", "floor_bias")
_ELTWISE = ("exact", "floor_read_2bit")


@dataclass(frozen=True)
class DpuAssumptions:
    """Switches for the open points of the DPU integer model.

    Attributes:
        leaky_relu_rounding: FXP-A-LEAKY. ``"single"``: a negative pre-activation t is rounded once,
            R(26 t / 2^(s+8)) (quantizer fake-quant and the VART simulator). ``"double"``: first
            o = R(t / 2^s), then R(26 o / 2^8) for o < 0 (no saturation in between).
        negative_shift_bias: FXP-A-NSB, how shift_bias < 0 (bias finer than the accumulator) is done.
            ``"scale_accumulator"``: t = acc * 2^-sb + b, shift s = sc - sb (exact; equals fake-quant).
            ``"floor_bias"``: t = 2 acc + floor(b * 2^(sb+1)), shift s = sc + 1 (the VART simulator's
            generic conv: one extra accumulator bit, the bias right-shifted with floor). Identical to
            the default for sb >= -1.
        accumulator_bits: FXP-A-ACC. ``None``: exact int64 model. An int n (e.g. 32): raise
            ``OverflowError`` when the accumulator or the bias-aligned sum leaves the signed n-bit
            range (the hardware width is undocumented; a wrap would be a silent board mismatch).
        eltwise_add: FXP-A-ADD. ``"exact"``: inputs brought to the largest input position by exact
            left shifts (quantizer fake-quant, VART CPU ``eltwise-fix``). ``"floor_read_2bit"``: inputs
            brought to the smallest input position keeping 2 fraction bits, with floor (VART simulator
            ``Elew``); identical whenever the input positions differ by at most 2.
    """

    leaky_relu_rounding: Literal["single", "double"] = "single"
    negative_shift_bias: Literal["scale_accumulator", "floor_bias"] = "scale_accumulator"
    accumulator_bits: int | None = None
    eltwise_add: Literal["exact", "floor_read_2bit"] = "exact"

    def __post_init__(self) -> None:
        if self.leaky_relu_rounding not in _LEAKY:
            raise ValueError(f"leaky_relu_rounding must be one of {_LEAKY}, got {self.leaky_relu_rounding!r}")
        if self.negative_shift_bias not in _NSB:
            raise ValueError(f"negative_shift_bias must be one of {_NSB}, got {self.negative_shift_bias!r}")
        if self.eltwise_add not in _ELTWISE:
            raise ValueError(f"eltwise_add must be one of {_ELTWISE}, got {self.eltwise_add!r}")
        bits = self.accumulator_bits
        if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or not 16 <= bits <= 63):
            raise ValueError(f"accumulator_bits must be None or an int in [16, 63], got {bits!r}")


DEFAULT = DpuAssumptions()
