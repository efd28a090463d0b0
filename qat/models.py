"""DPU-deployable hyperprior models for training and QAT (torch side of the golden models).

``MeanScaleHyperprior`` is Minnen, Ballé & Toderici 2018 ("Joint autoregressive and hierarchical priors",
the mean-scale hyperprior without the context model); with ``use_means=False`` it is Ballé et al. 2018's
scale hyperprior. Changes for the DPU (docs/architecture.md):

* GDN/IGDN (sqrt, division: CPU-only on the DPU) are replaced by ReLU;
* CompressAI's ``deconv`` (k5 s2 p2 output_padding 1) is replaced by k4 s2 p1 transposed convs, an exact
  2x upsampling without output padding, which the DPU op filter accepts;
* the hyper-synthesis ends in two heads (``scales``: log2 σ, ``means``: μ), each its own int8 tensor
  with its own fix position, rather than one 2M-channel tensor split by slicing (CPU-only);
* network input is (p - 128)/256 (int8 at fix 8, exact), the image output is int8 at fix 8 (pixel = q + 128);
* latents are coded as ŷ = round(y), ẑ = round(z) (DPU_ROUND to fix 0), and the Gaussian is centred at μ
  in the entropy model (as in Minnen 2018), so the synthesis input is an integer int8 tensor.

Tensor shapes for a B×3×H×W input (H, W multiples of 64): y, ŷ: B×M×H/16×W/16; z, ẑ: B×N×H/64×W/64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from fxlic.entropy.conditional import SCALE_MAX, SCALE_MIN  # σ clamp shared with the integer tables

from .fakequant import fake_quant_activation, round_to_integer_ste
from .layers import QConv, qconvs

INPUT_FIX = 8  # int8 input q = p - 128 at fix 8
IMAGE_FIX = 8  # int8 output at fix 8, pixel = q + 128
LATENT_FIX = 0  # ŷ and ẑ are integers
LIKELIHOOD_BOUND = 1e-9


HYPER_ACTIVATIONS = ("relu", "leaky_relu")
LATENT_ROUNDINGS = ("requantize", "accumulator")
"""How the int8 model makes ŷ from g_a's last conv (docs/fixed-point.md FXP-Q6). ``"requantize"``: ŷ is
y (g_a's output at its calibrated position f_y) requantized to fix 0, two roundings, which moves the
rounding threshold of ŷ by 2^-(f_y+1) (a quarter at f_y = 1). ``"accumulator"``: ŷ is a twin of g_a's
last conv with output position 0, one rounding of the exact accumulator: what float training's round(y)
is. h_a reads y at f_y in both. In float mode the two are the same model."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a hyperprior model.

    ``hyper_activation`` is the activation inside h_a and h_s. Its default stays ``"leaky_relu"`` so that
    configs saved before the field existed load as the models they were; new runs choose ``"relu"``
    (``fxlic train``): ReLU's DPU rounding is pinned by the sources, LeakyReLU's is the open point
    FXP-A-LEAKY (``fxp/assumptions.py``), and h_s is on the decode path.
    """

    N: int = 96
    M: int = 128
    use_means: bool = True
    hyper_activation: str = "leaky_relu"
    latent_rounding: str = "requantize"

    def __post_init__(self) -> None:
        if self.hyper_activation not in HYPER_ACTIVATIONS:
            raise ValueError(f"hyper_activation must be one of {HYPER_ACTIVATIONS}, got {self.hyper_activation!r}")
        check_latent_rounding(self.latent_rounding)

    @property
    def architecture(self) -> str:
        return "meanscale" if self.use_means else "scalehyper"


def check_latent_rounding(value: str) -> None:
    if value not in LATENT_ROUNDINGS:
        raise ValueError(f"latent_rounding must be one of {LATENT_ROUNDINGS}, got {value!r}")


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8-valued pixels (any float/int dtype) → network input (p - 128)/256."""
    return (pixels.to(torch.float32) - 128.0) / 256.0


def output_to_pixels(x_hat: torch.Tensor) -> torch.Tensor:
    """Network output → pixel values, clamped to [0, 255] (exact integers once QAT'd)."""
    return torch.clamp(x_hat * 256.0 + 128.0, 0.0, 255.0)


def gaussian_likelihood(values: torch.Tensor, means: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(v) = Φ((v - μ + ½)/σ) - Φ((v - μ - ½)/σ): a Gaussian convolved with U(-½, ½) (Ballé 2018)."""
    centred = torch.abs(values - means)  # symmetric form is numerically better in the tails
    upper = 0.5 * torch.erfc(-(0.5 - centred) / (sigma * math.sqrt(2.0)))
    lower = 0.5 * torch.erfc(-(-0.5 - centred) / (sigma * math.sqrt(2.0)))
    return torch.clamp(upper - lower, min=LIKELIHOOD_BOUND)


Z_RATES = ("noise", "coded")  # how training prices z: z + U(-½, ½), or the coded ẑ (rate_terms)


def rate_terms(z_likelihood: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, z: torch.Tensor,
               y_hat: torch.Tensor, z_hat: torch.Tensor, log2_scales: torch.Tensor, means: torch.Tensor,
               noisy_rate: bool, z_rate: str = "noise") -> dict[str, torch.Tensor]:
    """The likelihoods of y (Gaussian, σ = 2^log2_scales clamped, centred at ``means``) and z (factorized),
    at y + U(-½, ½) while training (``noisy_rate``), at ŷ, ẑ otherwise. Computed in float32 (float64 for a
    float64 model) outside autocast: bf16 tails would distort the rate. Returns y, z, ŷ, ẑ, means in that
    precision and the two likelihoods.

    ``z_rate="coded"`` prices z at the coded ẑ even while training (straight-through to z): what the
    int8 codec spends. The noise proxy z + U(-½, ½) cannot see that an int8 z written at its own fix
    position f_z ≥ 1 and rounded again to ẑ (docs/fixed-point.md FXP-Q6) turns a near-constant channel at
    z ≈ 0.3 … 0.5 into ẑ ∈ {0, 1}: free in the proxy, about a bit per element in the stream."""
    if z_rate not in Z_RATES:
        raise ValueError(f"z_rate must be one of {Z_RATES}, got {z_rate!r}")
    with torch.autocast(device_type=y.device.type, enabled=False):
        work = torch.float64 if y.dtype == torch.float64 else torch.float32
        y, z, means, z_hat, y_hat = (t.to(work) for t in (y, z, means, z_hat, y_hat))
        sigma = torch.clamp(torch.exp2(log2_scales.to(work)), SCALE_MIN, SCALE_MAX)
        if noisy_rate:
            z_priced = z + torch.empty_like(z).uniform_(-0.5, 0.5) if z_rate == "noise" else z_hat
            y_priced = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        else:
            z_priced, y_priced = z_hat, y_hat
        return {"y": y, "y_hat": y_hat, "z_hat": z_hat, "means": means,
                "y_likelihood": gaussian_likelihood(y_priced, means, sigma), "z_likelihood": z_likelihood(z_priced)}


def synthesis_transform(latent_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """g_s (Minnen 2018, IGDN → ReLU, k4 s2 p1 transposed convs): ŷ (``latent_channels``, fix 0) → hidden
    ``widths`` (the full model: N, N, N; a lite decoder narrower, ``fxlic.qat.lite``) → x̂ (3 channels, fix 8)."""
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"g_s takes three positive hidden widths, got {tuple(widths)}")
    channels = [latent_channels, *widths, 3]
    g_s = nn.Sequential(*[QConv(channels[i], channels[i + 1], 4, 2, 1, transposed=True,
                                activation="relu" if i < 3 else "none") for i in range(4)])
    g_s[-1].forced_fix_out = IMAGE_FIX
    return g_s


def synthesis_macs_per_pixel(latent_channels: int, widths: tuple[int, ...]) -> float:
    """MACs per image pixel of ``synthesis_transform``: a k4 s2 transposed conv costs 4·C_in·C_out per output
    pixel, and layer l outputs at 1/2^(3−l) of the image's resolution per side."""
    channels = [latent_channels, *widths, 3]
    return sum(4 * channels[i] * channels[i + 1] / 4 ** (3 - i) for i in range(4))


class MeanScaleHyperprior(nn.Module):
    """g_a → y → ŷ → g_s, with h_a → z → ẑ → h_s → (log2 σ, μ) as the entropy model of ŷ."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        N, M = config.N, config.M
        self.config = config
        # Analysis transform g_a (Fig. 4 of Minnen 2018, GDN → ReLU).
        self.g_a = nn.Sequential(
            QConv(3, N, 5, 2, 2, activation="relu"),
            QConv(N, N, 5, 2, 2, activation="relu"),
            QConv(N, N, 5, 2, 2, activation="relu"),
            QConv(N, M, 5, 2, 2),
        )
        act = config.hyper_activation
        # Hyper-analysis h_a.
        self.h_a = nn.Sequential(
            QConv(M, N, 3, 1, 1, activation=act),
            QConv(N, N, 5, 2, 2, activation=act),
            QConv(N, N, 5, 2, 2),
        )
        # Hyper-synthesis h_s trunk, then the scale and mean heads.
        hidden = M * 3 // 2
        self.h_s = nn.Sequential(
            QConv(N, M, 4, 2, 1, transposed=True, activation=act),
            QConv(M, hidden, 4, 2, 1, transposed=True, activation=act),
        )
        self.h_s_scales = QConv(hidden, M, 3, 1, 1)
        self.h_s_means = QConv(hidden, M, 3, 1, 1) if config.use_means else None
        # Synthesis transform g_s (IGDN → ReLU).
        self.g_s = synthesis_transform(M, (N, N, N))
        # Factorized prior of z (Ballé 2018), used only at export to build integer tables.
        self.entropy_bottleneck = EntropyBottleneck(N)
        # How training prices z (rate_terms): not part of the model or its files, set by fxlic train.
        self.z_rate = "noise"

    # ---- structure -----------------------------------------------------------------------------
    def layer_chains(self) -> list[tuple[int, list[tuple[str, QConv]]]]:
        """(input fix position, ordered layers) of each chain; the order is the dataflow order."""
        heads = [("h_s_scales", self.h_s_scales)]
        if self.h_s_means is not None:
            heads.append(("h_s_means", self.h_s_means))
        return [
            (INPUT_FIX, [(f"g_a.{i}", m) for i, m in enumerate(self.g_a)]),
            (None, [(f"h_a.{i}", m) for i, m in enumerate(self.h_a)]),  # input: g_a output fix
            (LATENT_FIX, [(f"h_s.{i}", m) for i, m in enumerate(self.h_s)]),
            (None, heads),  # both heads take h_s's output
            (LATENT_FIX, [(f"g_s.{i}", m) for i, m in enumerate(self.g_s)]),
        ]

    def named_qconvs(self) -> list[tuple[str, QConv]]:
        return [pair for _, chain in self.layer_chains() for pair in chain]

    def activation_consumers(self) -> dict[str, list[str]]:
        """Each hidden activation, by its producer's name → the layers that read it, in dataflow order: what
        ``fxlic.qat.activation_steps`` may move. Not the image, ẑ (h_a's last output) or the entropy
        parameters; y (g_a's last output, read by h_a) only when ŷ comes from its twin, since otherwise ŷ is
        rounded from y at y's position."""
        consumers: dict[str, list[str]] = {}
        for _, chain in self.layer_chains():
            for (name, _), (next_name, _) in zip(chain, chain[1:]):
                if not name.startswith("h_s_"):  # the two heads are parallel, not a chain
                    consumers[name] = [next_name]
        consumers[f"h_s.{len(self.h_s) - 1}"] = ["h_s_scales"] + (["h_s_means"] if self.h_s_means is not None else [])
        if self.twin_fix_out(self.g_a[-1]) is not None:
            consumers[f"g_a.{len(self.g_a) - 1}"] = ["h_a.0"]
        return {name: consumers[name] for name, _ in self.named_qconvs() if name in consumers}

    def fix_positions(self) -> dict[str, list[int]]:
        """(f_in, f_w, f_b, f_out) of every layer by name, as frozen (what ``fix_positions.json`` records)."""
        return {name: [int(v) for v in layer.fix] for name, layer in self.named_qconvs()}

    @property
    def quantized(self) -> bool:
        flags = {bool(m.quantized) for _, m in qconvs(self)}
        if len(flags) != 1:
            raise RuntimeError("model is partly quantized")
        return flags.pop()

    # ---- calibration ---------------------------------------------------------------------------
    def start_calibration(self) -> None:
        for _, m in qconvs(self):
            m.calibrating = True
            m._samples = []

    def finish_calibration(self) -> dict[str, list[int]]:
        """Freeze fix positions chain by chain (each layer's f_in is its producer's f_out)."""
        fixes: dict[str, list[int]] = {}
        f_y = None
        f_hs = None
        for f_in, chain in self.layer_chains():
            for name, layer in chain:
                if name.startswith("h_a.0"):
                    f_in = f_y
                elif name.startswith("h_s_"):
                    f_in = f_hs
                f_out = layer.finish_calibration(f_in, self.twin_fix_out(layer))
                fixes[name] = [int(v) for v in layer.fix]
                if name == f"g_a.{len(self.g_a) - 1}":
                    f_y = f_out
                if name == f"h_s.{len(self.h_s) - 1}":
                    f_hs = f_out
                if not name.startswith("h_s_"):
                    f_in = f_out
        self.check_latent_twin()
        return fixes

    def twin_fix_out(self, layer: QConv) -> int | None:
        """LATENT_FIX for g_a's last conv when it has the ŷ twin (``latent_rounding="accumulator"``), else None."""
        twin = self.config.latent_rounding == "accumulator" and layer is self.g_a[-1]
        return LATENT_FIX if twin else None

    def round_hyper_latents_once(self) -> None:
        """ẑ from one rounding of h_a's last accumulator: calibration gives that conv output position 0.

        By default h_a's last conv writes z at its own position f_z and ẑ = R(z → 0) rounds it again, which
        moves ẑ's rounding thresholds by 2^-(f_z+1), as ŷ's were before the twin (docs/fixed-point.md
        FXP-Q6): float training's ẑ = round(z) is then not what the int8 model codes. Nothing else reads
        z, so unlike ŷ no twin is needed: z itself is written at fix 0 and the fix op z → ẑ is the identity.
        Measured on training photos at q6 (PTQ, ``python -m fxlic.qat.int8_cost``): the rate of the int8
        model −3.4 %, the RD objective −0.65 %; after 1,364 QAT steps it was worse (+6.3 % against +4.9 % of the
        objective vs the float model), so ``fxlic train`` leaves it off by default. Call before calibration;
        positions of calibrated models are kept in their buffers, so older models are unaffected."""
        self.h_a[-1].forced_fix_out = LATENT_FIX

    def check_latent_twin(self) -> None:
        """With ``latent_rounding="accumulator"``, g_a's last conv also runs with output position 0 (the ŷ
        twin); its shifts must be DPU-legal as they are (FXP-P1), since export cannot move them."""
        if self.config.latent_rounding != "accumulator":
            return
        from fxlic.fxp.fixpos import shifts_in_dpu_range

        last = self.g_a[-1]
        shift_cut, shift_bias = last.fix_w + last.fix_in - LATENT_FIX, last.fix_w + last.fix_in - last.fix_b
        if not shifts_in_dpu_range(shift_cut, shift_bias):
            raise RuntimeError(f"g_a's ŷ twin at fix {LATENT_FIX} has shift_cut {shift_cut}, shift_bias {shift_bias}: "
                               "outside the DPU range (FXP-P1); train with latent_rounding='requantize'")

    # ---- forward -------------------------------------------------------------------------------
    def hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ẑ → (log2 σ, μ); μ = 0 for the scale hyperprior."""
        hidden = self.h_s(z_hat)
        log2_scales = self.h_s_scales(hidden)
        means = self.h_s_means(hidden) if self.h_s_means is not None else torch.zeros_like(log2_scales)
        return log2_scales, means

    def encode_latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """g_a: x → (y, ŷ). y (at f_y once quantized) feeds h_a; ŷ = round(y) is coded and synthesized.
        Quantized with ``latent_rounding="accumulator"``, ŷ is g_a's last conv rounded once to fix 0 (its
        twin, FXP-Q6); otherwise ŷ = R(y) (straight-through)."""
        if self.config.latent_rounding == "accumulator" and bool(self.g_a[-1].quantized):
            return self.g_a[-1].forward_with_twin(self.g_a[:-1](x), LATENT_FIX)
        y = self.g_a(x)
        return y, round_to_integer_ste(y)

    def z_likelihood(self, z_values: torch.Tensor) -> torch.Tensor:
        """Factorized-prior likelihood of z values (B×N×h×w), via CompressAI's EntropyBottleneck density."""
        eb = self.entropy_bottleneck
        values = z_values.permute(1, 0, 2, 3).reshape(z_values.size(1), 1, -1)
        likelihood, _, _ = eb._likelihood(values)
        likelihood = torch.clamp(likelihood, min=LIKELIHOOD_BOUND)
        return likelihood.reshape(z_values.size(1), z_values.size(0), *z_values.shape[2:]).permute(1, 0, 2, 3)

    def forward(self, x: torch.Tensor, noisy_rate: bool | None = None) -> dict[str, torch.Tensor]:
        """x: B×3×H×W network input ((p-128)/256). Returns x_hat and the likelihoods of y and z.

        Rate: additive uniform noise during training (Ballé 2017), rounded values otherwise; the
        synthesis always sees the rounded latents (straight-through), as the integer decoder does.
        """
        if noisy_rate is None:
            noisy_rate = self.training
        if self.quantized:
            x = fake_quant_activation(x, INPUT_FIX)
        y, y_hat = self.encode_latents(x)
        z = self.h_a(y)
        z_hat = round_to_integer_ste(z)
        log2_scales, means = self.hyper_synthesis(z_hat)
        x_hat = self.g_s(y_hat)
        rate = rate_terms(self.z_likelihood, y, z, y_hat, z_hat, log2_scales, means, noisy_rate, self.z_rate)
        return {"x_hat": x_hat.to(rate["y"].dtype), **rate, "log2_scales": log2_scales}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def config_dict(self) -> dict:
        return asdict(self.config)
