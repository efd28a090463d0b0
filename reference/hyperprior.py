"""The integer mean-scale hyperprior (Minnen et al. 2018; Ballé et al. 2018 without the mean head).

Same figure as ``fxlic.qat.models.MeanScaleHyperprior``, executed on int8 tensors with
``fxlic.fxp.layer.QuantConv`` layers loaded from a model file:

    x ─g_a─▶ y ─R─▶ ŷ ─────────────────────────────────────────────▶ g_s ─▶ x̂
             │                                  ▲ (entropy model of ŷ)
             └─h_a─▶ z ─R─▶ ẑ ─h_s─▶ (log2 σ, μ) ┘

R is the DPU fix op to fix position 0 (round half up, saturate). All tensors are CHW int8, one image:
x: 3×H×W at fix 8 (q = p − 128), y/ŷ: M×H/16×W/16, z/ẑ: N×H/64×W/64, log2 σ and μ: M×H/16×W/16.
Every function can record each layer's output in ``trace`` (layer name → int8 array), the boundaries a
DPU partition exposes, for golden vectors and layer-by-layer checks.
"""

from __future__ import annotations

import numpy as np

from fxlic.entropy.conditional import table_indexes
from fxlic.fxp.layer import QuantConv
from fxlic.fxp.quant import requantize

from .modelfile import ModelFile

INPUT_FIX = 8
LATENT_FIX = 0
IMAGE_FIX = 8
PAD_MULTIPLE = 64
"""g_a and h_a downsample by 2^6 in all; images are padded to a multiple of it (checked against the
layers' strides when a model is loaded)."""


def padded_size(height: int, width: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``multiple``: the size the transforms (and DPU subgraphs) see."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


Trace = dict[str, np.ndarray] | None


def _run_chain(layers: list[QuantConv], x: np.ndarray, trace: Trace, impl: str) -> np.ndarray:
    for layer in layers:
        x = layer(x, impl=impl)
        if trace is not None:
            trace[layer.name] = x
    return x


class IntegerHyperprior:
    """Integer g_a, h_a, h_s (two heads), g_s and the table selection of the entropy model."""

    def __init__(self, model: ModelFile, impl: str = "blas") -> None:
        self.model = model
        self.impl = impl
        layers = model.layers

        def chain(prefix: str) -> list[QuantConv]:
            return [layers[name] for name in sorted(layers, key=_layer_order) if name.startswith(prefix + ".")]

        self.g_a = chain("g_a")
        self.h_a = chain("h_a")
        self.h_s = chain("h_s")
        self.h_s_scales = layers["h_s_scales"]
        self.h_s_means = layers.get("h_s_means")
        self.g_s = chain("g_s")
        self.y_hat_twin = model.y_hat_twin  # None: ŷ = requantize(y → fix 0) (FXP-Q6)
        self._check_wiring()

    def _check_wiring(self) -> None:
        """Each layer's input fix position must be its producer's output fix position."""
        expected = [(self.g_a, INPUT_FIX), (self.h_a, self.g_a[-1].fix_out), (self.h_s, LATENT_FIX),
                    (self.g_s, LATENT_FIX)]
        for layers, fix_in in expected:
            for layer in layers:
                if layer.fix_in != fix_in:
                    raise ValueError(f"{layer.name}: fix_in {layer.fix_in} but its input has fix {fix_in}")
                fix_in = layer.fix_out
        if self.y_hat_twin is not None and len(self.g_a) > 1 and self.y_hat_twin.fix_in != self.g_a[-2].fix_out:
            raise ValueError(f"{self.y_hat_twin.name}: fix_in {self.y_hat_twin.fix_in} != "
                             f"{self.g_a[-2].name} output fix {self.g_a[-2].fix_out}")
        for head in (self.h_s_scales, self.h_s_means):
            if head is not None and head.fix_in != self.h_s[-1].fix_out:
                raise ValueError(f"{head.name}: fix_in {head.fix_in} != h_s output fix {self.h_s[-1].fix_out}")
        if self.g_s[-1].fix_out != IMAGE_FIX:
            raise ValueError(f"{self.g_s[-1].name}: image output must have fix {IMAGE_FIX}")
        if self.latent_stride * self.hyper_stride != PAD_MULTIPLE:
            raise ValueError(f"g_a and h_a downsample by {self.latent_stride * self.hyper_stride}, "
                             f"not by the padding multiple {PAD_MULTIPLE}")

    # ---- geometry (owned here: codec, board and golden ask the network, never repeat literals) -------
    @property
    def latent_stride(self) -> int:
        """Downsampling factor of g_a (image → y): the product of its strides (16)."""
        return int(np.prod([layer.stride for layer in self.g_a]))

    @property
    def hyper_stride(self) -> int:
        """Downsampling factor of h_a (y → z): the product of its strides (4)."""
        return int(np.prod([layer.stride for layer in self.h_a]))

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The padded image size the transforms see for an image of ``height × width`` pixels."""
        return padded_size(height, width)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape (M, h, w) of y / ŷ / the table indices for an image of ``height × width`` pixels."""
        ph, pw = self.padded_size(height, width)
        return self.latent_channels, ph // self.latent_stride, pw // self.latent_stride

    def hyper_latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape (N, h, w) of z / ẑ for an image of ``height × width`` pixels."""
        _, h, w = self.latent_shape(height, width)
        return self.hyper_channels, h // self.hyper_stride, w // self.hyper_stride

    def fix_positions(self) -> dict[str, int]:
        """Fix position of every tensor the network produces or consumes (layer outputs, input, ŷ, ẑ)."""
        fixes = {name: layer.fix_out for name, layer in self.model.layers.items()}
        fixes.update({"input": INPUT_FIX, "y_hat": LATENT_FIX, "z_hat": LATENT_FIX})
        return fixes

    # ---- transforms ----------------------------------------------------------------------------
    def analysis(self, x: np.ndarray, trace: Trace = None) -> np.ndarray:
        """g_a: int8 3×H×W (fix 8) → y, int8 M×H/16×W/16 (fix f_y)."""
        return _run_chain(self.g_a, x, trace, self.impl)

    def analysis_latents(self, x: np.ndarray, trace: Trace = None) -> tuple[np.ndarray, np.ndarray]:
        """g_a and the latent rounding: int8 3×H×W (fix 8) → (y at f_y for h_a, ŷ at fix 0 to code)."""
        hidden = _run_chain(self.g_a[:-1], x, trace, self.impl)
        return self.latents_from_hidden(hidden, trace)

    def latents_from_hidden(self, hidden: np.ndarray, trace: Trace = None) -> tuple[np.ndarray, np.ndarray]:
        """(y, ŷ) from g_a's last input (the output of g_a[-2]), FXP-Q6: with the twin layer ŷ is g_a's last
        conv rounded once to fix 0 (one DPU conv more); without it ŷ = R(y → fix 0), two roundings."""
        y = _run_chain(self.g_a[-1:], hidden, trace, self.impl)
        if self.y_hat_twin is None:
            return y, self.quantize_latent(y, self.fix_y)
        return y, _run_chain([self.y_hat_twin], hidden, trace, self.impl)

    def quantize_latent(self, y: np.ndarray, fix_y: int) -> np.ndarray:
        """R: int8 at fix f → int8 integers (fix 0): the DPU fix op, round half up, saturate (ẑ; ŷ of a model
        without the twin layer)."""
        return requantize(y, fix_y, LATENT_FIX)

    def hyper_analysis(self, y: np.ndarray, trace: Trace = None) -> np.ndarray:
        """h_a: y (fix f_y) → z, int8 N×H/64×W/64 (fix f_z)."""
        return _run_chain(self.h_a, y, trace, self.impl)

    def hyper_synthesis(self, z_hat: np.ndarray, trace: Trace = None) -> tuple[np.ndarray, np.ndarray | None]:
        """h_s: ẑ (fix 0) → (log2 σ codes at f_s, μ codes at f_μ or None for the scale hyperprior)."""
        hidden = _run_chain(self.h_s, z_hat, trace, self.impl)
        scales = _run_chain([self.h_s_scales], hidden, trace, self.impl)
        means = _run_chain([self.h_s_means], hidden, trace, self.impl) if self.h_s_means is not None else None
        return scales, means

    def synthesis(self, y_hat: np.ndarray, trace: Trace = None) -> np.ndarray:
        """g_s: ŷ (fix 0) → x̂, int8 3×H×W at fix 8 (pixel = q + 128)."""
        return _run_chain(self.g_s, y_hat, trace, self.impl)

    # ---- entropy-model parameters --------------------------------------------------------------
    def y_coding_params(self, scales: np.ndarray, means: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(table index, integer mean μ_r) per element of ŷ: the conditional entropy model's choice
        (``fxlic.entropy.conditional.table_indexes``, docs/entropy.md) with this model's LUT and fix positions."""
        fix_means = None if self.h_s_means is None else self.h_s_means.fix_out
        return table_indexes(scales, means, self.model.scale_lut, fix_means, self.model.mean_frac_bits)

    @property
    def fix_y(self) -> int:
        return self.g_a[-1].fix_out

    @property
    def fix_z(self) -> int:
        return self.h_a[-1].fix_out

    @property
    def latent_channels(self) -> int:
        return self.g_a[-1].weight.shape[0]

    @property
    def hyper_channels(self) -> int:
        return self.h_a[-1].weight.shape[0]


def _layer_order(name: str) -> tuple[str, int]:
    prefix, _, index = name.rpartition(".")
    return (prefix, int(index)) if index.isdigit() else (name, -1)
