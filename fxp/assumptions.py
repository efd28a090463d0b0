"""Named, switchable assumptions for the points of DPU arithmetic that public sources leave open.

Each field is one open point of ``docs/fixed-point.md`` (section "Open points", ids FXP-A-*). Issue 33
executed the DPU instruction simulator of VART (sim-runner, ``dpuv2`` = DPUCZDX8G instruction set) on
thousands of random cases per op (``tools/dpu_oracle``, ``results/dpu-oracle``, section 11 of the spec):
the defaults are now what that simulator computes. They equal the Vitis AI quantizer's fake-quant
everywhere except the element-wise add of inputs whose fix positions differ by 3 or more (into an output
at least 2 positions finer than the coarser input), where the DPU's ELEW instruction drops bits
(``eltwise_add="floor_read_2bit"``). The alternatives stay available
for what-if comparisons with a board (``fxlic board compare --assume ...``). ``DEFAULT`` is what every
function uses unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DpuAssumptions", "DEFAULT", "EXACT_ADD"]

_LEAKY = ("single", "double")
_NSB = ("scale_accumulator", "floor_bias")
_ELTWISE = ("exact", "floor_read_2bit")


@dataclass(frozen=True)
class DpuAssumptions:
    """Switches for the open points of the DPU integer model.

    Attributes:
        leaky_relu_rounding: FXP-A-LEAKY. ``"single"`` (default): a negative pre-activation t is rounded
            once, R(26 t / 2^(s+8)); what the simulator's DPUCZDX8G CONV computes (issue 33: 0 mismatches,
            ``"double"`` differs) and the quantizer's fake-quant. ``"double"``: first o = R(t / 2^s), then
            R(26 o / 2^8) for o < 0 (no saturation in between).
        negative_shift_bias: FXP-A-NSB, how shift_bias < 0 (bias finer than the accumulator) is done.
            ``"scale_accumulator"``: t = acc * 2^-sb + b, shift s = sc - sb (exact; equals fake-quant).
            ``"floor_bias"``: t = 2 acc + floor(b * 2^(sb+1)), shift s = sc + 1 (one extra accumulator
            bit, the bias right-shifted with floor). Identical for shift_bias >= -1, which is all the
            DPUCZDX8G CONVINIT field can hold (issue 33); for shift_bias <= -2 "floor_bias" is what the
            DPU computes if the compiler realizes it as shift_bias = -1 with the bias floored (executed:
            0 mismatches), identical to the default for ``none`` / ``relu``.
        accumulator_bits: FXP-A-ACC. ``None`` (default): exact int64 model, as the simulator (int64
            accumulator, no wrap up to 2^34 and beyond). An int n (e.g. 32): raise ``OverflowError`` when
            the accumulator or the bias-aligned sum leaves the signed n-bit range (a silicon narrower
            than the simulator would be a silent board mismatch; on DPUCZDX8G one CONV instruction sums
            at most 2048 x 16 products, |acc| < 2^29, so int32 cannot overflow there).
        eltwise_add: FXP-A-ADD. ``"floor_read_2bit"`` (default): inputs brought to the smallest input
            position keeping 2 fraction bits, with floor: the DPUCZDX8G ELEW instruction as the simulator
            executes it (issue 33: 0 mismatches). ``"exact"``: inputs brought to the largest input position
            by exact left shifts (quantizer fake-quant, VART CPU ``eltwise-fix``; ops fxlic runs on the
            CPU ask for it explicitly). The two are identical whenever the input positions differ by at
            most 2 or the output position is at most min(f_a, f_b) + 1.
    """

    leaky_relu_rounding: Literal["single", "double"] = "single"
    negative_shift_bias: Literal["scale_accumulator", "floor_bias"] = "scale_accumulator"
    accumulator_bits: int | None = None
    eltwise_add: Literal["exact", "floor_read_2bit"] = "floor_read_2bit"

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

EXACT_ADD = DpuAssumptions(eltwise_add="exact")
"""FXP-E1 "exact" add: for adds that run on the CPU, where fxlic fixes the semantics (ChARM's ỹ, CH-8)."""
