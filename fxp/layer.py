"""One DPU conv / transposed-conv layer with fused activation, as the golden model runs it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assumptions import DEFAULT, DpuAssumptions
from .conv import (
    ACTIVATIONS,
    IMPLS,
    Epilogue,
    conv2d_acc,
    conv2d_output_size,
    conv_transpose2d_acc,
    conv_transpose2d_output_size,
    requantize_accumulator,
)
from .fixpos import shifts_in_dpu_range

__all__ = ["QuantConv"]


@dataclass
class QuantConv:
    """A quantized conv (``transposed=False``) or transposed conv layer (FXP-C1..FXP-C8).

    Attributes:
        name: layer name (for messages and golden files).
        transposed: False: conv, weight int8 [O, C, kh, kw]; True: transposed conv, weight int8
            [C, O, kh, kw] (PyTorch layouts).
        weight: int8 weights at fix position ``fix_w``.
        bias: int8 [O] at fix position ``fix_b``.
        stride, padding: geometry (both axes); transposed conv has no output padding.
        fix_in, fix_w, fix_b, fix_out: fix positions (value = q * 2^-f), as deployed (i.e. after
            ``adjust_conv_fix_positions``).
        activation: "none" | "relu" | "leaky_relu" (slope 26/256), fused before rounding.
    """

    name: str
    transposed: bool
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int
    fix_in: int
    fix_w: int
    fix_b: int
    fix_out: int
    activation: str

    def __post_init__(self) -> None:
        w, b = self.weight, self.bias
        if not isinstance(w, np.ndarray) or w.dtype != np.int8 or w.ndim != 4:
            raise ValueError(
                f"{self.name}: weight must be an int8 array with 4 dimensions, got "
                f"{getattr(w, 'dtype', type(w).__name__)} {getattr(w, 'shape', '')}"
            )
        if not isinstance(b, np.ndarray) or b.dtype != np.int8 or b.shape != (self.out_channels,):
            raise ValueError(
                f"{self.name}: bias must be an int8 array of shape ({self.out_channels},), got "
                f"{getattr(b, 'dtype', type(b).__name__)} {getattr(b, 'shape', '')}"
            )
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"{self.name}: stride must be an int >= 1, got {self.stride}")
        if int(self.padding) != self.padding or self.padding < 0:
            raise ValueError(f"{self.name}: padding must be an int >= 0, got {self.padding}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{self.name}: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        self.stride, self.padding = int(self.stride), int(self.padding)
        self.fix_in, self.fix_w = int(self.fix_in), int(self.fix_w)
        self.fix_b, self.fix_out = int(self.fix_b), int(self.fix_out)
        self.transposed = bool(self.transposed)

    # ---- geometry ---------------------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[0] if self.transposed else self.weight.shape[1])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[1] if self.transposed else self.weight.shape[0])

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    def output_shape(self, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """[O, H', W'] for an input [C, H, W]."""
        _, h, w = input_shape
        kh, kw = self.kernel_size
        size = conv_transpose2d_output_size if self.transposed else conv2d_output_size
        ho, wo = size(h, w, kh, kw, self.stride, self.padding)
        return self.out_channels, ho, wo

    # ---- shifts (FXP-C3) --------------------------------------------------------------------------
    @property
    def shift_cut(self) -> int:
        """f_w + f_in - f_out: right shift from accumulator units to output units."""
        return self.fix_w + self.fix_in - self.fix_out

    @property
    def shift_bias(self) -> int:
        """f_w + f_in - f_b: left shift aligning the bias to accumulator units."""
        return self.fix_w + self.fix_in - self.fix_b

    @property
    def shifts_in_dpu_range(self) -> bool:
        """True when the DPU compiler accepts the shifts (FXP-P1)."""
        return shifts_in_dpu_range(self.shift_cut, self.shift_bias)

    # ---- evaluation -------------------------------------------------------------------------------
    def _check_input(self, x: np.ndarray) -> None:
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            raise ValueError(f"{self.name}: input must be an int8 array, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.ndim != 3:
            raise ValueError(f"{self.name}: input must be [C, H, W], got shape {x.shape}")
        if x.shape[0] != self.in_channels:
            raise ValueError(f"{self.name}: input has {x.shape[0]} channels, layer expects {self.in_channels}")

    def accumulate(self, x: np.ndarray, impl: str = "blas", epilogue: Epilogue | None = None) -> np.ndarray:
        """The int64 accumulator [O, H', W'] (no bias) of input int8 [C, H, W] (FXP-C1 / FXP-C2); with an
        elementwise ``epilogue``, epilogue(accumulator) (fxp/conv.py)."""
        self._check_input(x)
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        fn = conv_transpose2d_acc if self.transposed else conv2d_acc
        return fn(x, self.weight, self.stride, self.padding, impl=impl, epilogue=epilogue)

    def __call__(self, x: np.ndarray, impl: str = "blas", assumptions: DpuAssumptions = DEFAULT) -> np.ndarray:
        """Run the layer: int8 [C, H, W] at ``fix_in`` -> int8 [O, H', W'] at ``fix_out``."""

        def requantize(acc: np.ndarray) -> np.ndarray:
            return requantize_accumulator(acc, self.bias, self.shift_bias, self.shift_cut, self.activation,
                                          assumptions)

        # the requantizer is elementwise: the BLAS path applies it block by block (fxp/conv.py, "epilogue")
        return self.accumulate(x, impl, epilogue=requantize)
