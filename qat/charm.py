"""Channel-wise autoregressive entropy model (ChARM, Minnen & Singh 2020) on the DPU-legal transforms.

The transforms g_a, h_a, h_s and g_s are those of ``fxlic.qat.models.MeanScaleHyperprior`` (ReLU, k4 s2 p1
transposed convs, no GDN). What changes is the entropy model of ŷ (Fig. 2 of Minnen & Singh 2020):

* ŷ (B×M×h×w, integers at fix 0) is split into S slices of K = M/S channels, coded in order 0 … S−1;
* h_s ends in two *support* heads, ``h_s_means`` and ``h_s_scales`` (B×M×h×w each);
* slice i's mean μ_i and log2 σ_i (B×K×h×w) come from small conv stacks ``cc_means.i`` / ``cc_scales.i``
  on concat(support, ŷ_0 … ŷ_{i−1}) (B×(M + i·K)×h×w): the already decoded slices are the context;
* latent residual prediction (LRP): ``lrp.i`` on concat(mean support, ŷ_0 … ŷ_i) predicts r_i, bounded to
  [−1/2, 127/256], and the synthesis sees ỹ_i = ŷ_i + r_i.

Changes for the DPU (docs/charm.md):

* every concatenation joins tensors at one fix position, forced at calibration (FXP-E2 is then pure data
  movement; the DPU's handling of unequal positions, FXP-A-CONCAT, is not pinned): each support head's
  output position is forced to f_c = min(its own max-abs position, ŷ's max-abs position), and the CPU,
  which produces ŷ (entropy decoder), hands the slices to the DPU at f_c (an exact left shift, saturated);
* the paper's 0.5·tanh on the LRP is replaced by the int8 saturation of the LRP's last conv at a forced
  output fix position 8: its range is exactly [−128/256, 127/256] (FXP-C saturation, pinned), so the
  bounded activation costs no op at all; in float training it is the clamp to the same interval;
* ỹ = ŷ + r runs on the CPU (the entropy decoder's slice loop is there anyway) with the exact add FXP-E1,
  to one int8 tensor at a calibrated fix position f_ỹ (the DPU's eltwise add, FXP-E3, would drop bits of
  r); g_s takes ỹ at f_ỹ;
* σ is clamped to [SCALE_MIN, SCALE_MAX] as in the mean-scale model, and every slice's log2 σ head has its
  own fix position, so the integer model holds one scale look-up table per slice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from .fakequant import fake_quant_activation, mse_optimal_fix_pos, round_to_integer_ste
from .layers import QConv
from .models import (
    HYPER_ACTIVATIONS,
    IMAGE_FIX,
    INPUT_FIX,
    LATENT_FIX,
    MeanScaleHyperprior,
    check_latent_rounding,
    rate_terms,
)

LRP_FIX = 8
"""Output fix position of every LRP stack's last conv: int8 saturation bounds r to [−1/2, 127/256]."""
LRP_MIN, LRP_MAX = -128 / 2**LRP_FIX, 127 / 2**LRP_FIX


@dataclass(frozen=True)
class CharmConfig:
    """Architecture of a ChARM model: transforms (N, M), S slices, widths of the per-slice conv stacks."""

    N: int = 96
    M: int = 128
    slices: int = 4
    context_hidden: tuple[int, int] = (96, 64)
    hyper_activation: str = "relu"
    architecture: str = "charm"
    latent_rounding: str = "requantize"  # as ModelConfig.latent_rounding (FXP-Q6)

    def __post_init__(self) -> None:
        if self.M % self.slices:
            raise ValueError(f"M = {self.M} is not divisible into {self.slices} slices")
        if self.hyper_activation not in HYPER_ACTIVATIONS:
            raise ValueError(f"hyper_activation must be one of {HYPER_ACTIVATIONS}, got {self.hyper_activation!r}")
        if self.architecture != "charm":
            raise ValueError(f"CharmConfig describes the charm architecture, not {self.architecture!r}")
        check_latent_rounding(self.latent_rounding)
        object.__setattr__(self, "context_hidden", tuple(int(c) for c in self.context_hidden))

    @property
    def slice_channels(self) -> int:
        return self.M // self.slices

    @property
    def use_means(self) -> bool:
        return True


def slice_stack(in_channels: int, hidden: tuple[int, int], out_channels: int) -> nn.Sequential:
    """conv k3 → ReLU → conv k3 → ReLU → conv k3 (stride 1, 'same'): one slice transform (Minnen & Singh 2020)."""
    return nn.Sequential(
        QConv(in_channels, hidden[0], 3, 1, 1, activation="relu"),
        QConv(hidden[0], hidden[1], 3, 1, 1, activation="relu"),
        QConv(hidden[1], out_channels, 3, 1, 1),
    )


class CharmHyperprior(MeanScaleHyperprior):
    """g_a → ŷ (S slices) → g_s(ŷ + LRP), with h_a/h_s supports and per-slice mean/scale/LRP stacks."""

    def __init__(self, config: CharmConfig = CharmConfig()) -> None:
        nn.Module.__init__(self)
        N, M, S, K = config.N, config.M, config.slices, config.slice_channels
        self.config = config
        act = config.hyper_activation
        self.g_a = nn.Sequential(
            QConv(3, N, 5, 2, 2, activation="relu"),
            QConv(N, N, 5, 2, 2, activation="relu"),
            QConv(N, N, 5, 2, 2, activation="relu"),
            QConv(N, M, 5, 2, 2),
        )
        self.h_a = nn.Sequential(
            QConv(M, N, 3, 1, 1, activation=act),
            QConv(N, N, 5, 2, 2, activation=act),
            QConv(N, N, 5, 2, 2),
        )
        hidden = M * 3 // 2
        self.h_s = nn.Sequential(
            QConv(N, M, 4, 2, 1, transposed=True, activation=act),
            QConv(M, hidden, 4, 2, 1, transposed=True, activation=act),
        )
        self.h_s_means = QConv(hidden, M, 3, 1, 1)  # mean support
        self.h_s_scales = QConv(hidden, M, 3, 1, 1)  # scale support
        self.cc_means = nn.ModuleList(slice_stack(M + i * K, config.context_hidden, K) for i in range(S))
        self.cc_scales = nn.ModuleList(slice_stack(M + i * K, config.context_hidden, K) for i in range(S))
        self.lrp = nn.ModuleList(slice_stack(M + (i + 1) * K, config.context_hidden, K) for i in range(S))
        for stack in self.lrp:
            stack[-1].forced_fix_out = LRP_FIX
        self.g_s = nn.Sequential(
            QConv(M, N, 4, 2, 1, transposed=True, activation="relu"),
            QConv(N, N, 4, 2, 1, transposed=True, activation="relu"),
            QConv(N, N, 4, 2, 1, transposed=True, activation="relu"),
            QConv(N, 3, 4, 2, 1, transposed=True),
        )
        self.g_s[-1].forced_fix_out = IMAGE_FIX
        self.entropy_bottleneck = EntropyBottleneck(N)
        # f_ỹ: fix position of the synthesis input ỹ = ŷ + r (calibrated; -1 = not yet)
        self.register_buffer("fix_y_tilde", torch.tensor(-1, dtype=torch.int64))
        self._y_tilde_samples: list[torch.Tensor] = []
        self._y_hat_max = 0.0
        self._calibrating = False

    # ---- structure -----------------------------------------------------------------------------
    def layer_chains(self) -> list[tuple[int | None, list[tuple[str, QConv]]]]:
        """(input fix position, ordered layers) of each chain, in decode dataflow order (slice by slice)."""
        chains: list[tuple[int | None, list[tuple[str, QConv]]]] = [
            (INPUT_FIX, [(f"g_a.{i}", m) for i, m in enumerate(self.g_a)]),
            (None, [(f"h_a.{i}", m) for i, m in enumerate(self.h_a)]),
            (LATENT_FIX, [(f"h_s.{i}", m) for i, m in enumerate(self.h_s)]),
            (None, [("h_s_means", self.h_s_means), ("h_s_scales", self.h_s_scales)]),
        ]
        for i in range(self.config.slices):
            for kind in ("cc_means", "cc_scales", "lrp"):
                stack = getattr(self, kind)[i]
                chains.append((None, [(f"{kind}.{i}.{j}", m) for j, m in enumerate(stack)]))  # f_c of its support
        chains.append((None, [(f"g_s.{i}", m) for i, m in enumerate(self.g_s)]))
        return chains

    # ---- calibration ---------------------------------------------------------------------------
    def start_calibration(self) -> None:
        super().start_calibration()
        self._calibrating = True
        self._y_tilde_samples = []
        self._y_hat_max = 0.0

    def finish_calibration(self) -> dict[str, list[int]]:
        """Freeze fix positions chain by chain: each support head at its context position f_c (docs/charm.md
        CH-2), each slice stack reading its support's f_c, f_ỹ from ỹ's samples (CH-8)."""
        from fxlic.fxp.quant import fix_pos_from_max_abs

        fix_y_hat = fix_pos_from_max_abs(self._y_hat_max)  # the finest position holding every ŷ seen
        for head in (self.h_s_means, self.h_s_scales):
            natural = fix_pos_from_max_abs(float(torch.cat(head._samples).abs().max()))
            head.forced_fix_out = min(natural, fix_y_hat)
        fixes: dict[str, list[int]] = {}
        f_y = f_hs = None
        for f_in, chain in self.layer_chains():
            for name, layer in chain:
                if name == "h_a.0":
                    f_in = f_y
                elif name.startswith("h_s_"):
                    f_in = f_hs
                elif name.endswith(".0") and name.startswith(("cc_means.", "lrp.")):
                    f_in = self.h_s_means.fix_out
                elif name.endswith(".0") and name.startswith("cc_scales."):
                    f_in = self.h_s_scales.fix_out
                elif name == "g_s.0":
                    samples = torch.cat(self._y_tilde_samples).double()
                    f0 = min(fix_pos_from_max_abs(float(samples.abs().max())), LRP_FIX)
                    f_in = mse_optimal_fix_pos(samples, [f for f in (f0, f0 + 1) if f <= LRP_FIX], param=False)
                    self.fix_y_tilde.fill_(f_in)
                f_out = layer.finish_calibration(f_in, self.twin_fix_out(layer))
                fixes[name] = [int(v) for v in layer.fix]
                if name == f"g_a.{len(self.g_a) - 1}":
                    f_y = f_out
                if name == f"h_s.{len(self.h_s) - 1}":
                    f_hs = f_out
                if not name.startswith("h_s_"):
                    f_in = f_out
        fixes["y_tilde"] = [int(self.fix_y_tilde)]
        self.check_latent_twin()
        self._calibrating = False
        self._y_tilde_samples = []
        return fixes

    # ---- forward -------------------------------------------------------------------------------
    def hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ẑ → (scale support, mean support), each B×M×h×w at its context position f_c once quantized."""
        hidden = self.h_s(z_hat)
        return self.h_s_scales(hidden), self.h_s_means(hidden)

    def context(self, support: QConv, tensor: torch.Tensor, decoded: list[torch.Tensor]) -> torch.Tensor:
        """concat(support, ŷ_0, …): once quantized, the slices at the support's position f_c (CH-2)."""
        if self.quantized:
            decoded = [fake_quant_activation(d, support.fix_out) for d in decoded]  # exact: ŷ is an integer
        return torch.cat([tensor, *decoded], dim=1)

    def slice_parameters(self, index: int, scale_support: torch.Tensor, mean_support: torch.Tensor,
                         decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(log2 σ_i, μ_i), B×K×h×w, from the supports and the slices ŷ_0 … ŷ_{i−1} already decoded."""
        log2_scales = self.cc_scales[index](self.context(self.h_s_scales, scale_support, decoded))
        means = self.cc_means[index](self.context(self.h_s_means, mean_support, decoded))
        return log2_scales, means

    def residual(self, index: int, mean_support: torch.Tensor, decoded: list[torch.Tensor]) -> torch.Tensor:
        """LRP r_i ∈ [−1/2, 127/256] from the mean support and ŷ_0 … ŷ_i (``decoded`` includes slice i)."""
        r = self.lrp[index](self.context(self.h_s_means, mean_support, decoded))
        return torch.clamp(r, LRP_MIN, LRP_MAX)  # the DPU's int8 saturation at fix 8; a no-op once quantized

    def synthesis_input(self, y_hat: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """ỹ = ŷ + r, at fix f_ỹ once quantized (the exact add FXP-E1, on the CPU)."""
        y_tilde = y_hat + residual
        if self._calibrating:
            flat = y_tilde.detach().flatten().float().cpu()
            self._y_tilde_samples.append(torch.cat([flat[:: max(1, flat.numel() // 65536)],
                                                    flat.max().reshape(1), flat.min().reshape(1)]))
        if int(self.fix_y_tilde) >= 0:
            y_tilde = fake_quant_activation(y_tilde, int(self.fix_y_tilde))
        return y_tilde

    def forward(self, x: torch.Tensor, noisy_rate: bool | None = None) -> dict[str, torch.Tensor]:
        """x: B×3×H×W network input. Returns x_hat, likelihoods of y and z, and the per-slice outputs."""
        if noisy_rate is None:
            noisy_rate = self.training
        if self.quantized:
            x = fake_quant_activation(x, INPUT_FIX)
        y, y_hat = self.encode_latents(x)
        z = self.h_a(y)
        z_hat = round_to_integer_ste(z)
        if self._calibrating:
            self._y_hat_max = max(self._y_hat_max, float(y_hat.detach().abs().max()))
        scale_support, mean_support = self.hyper_synthesis(z_hat)
        y_hat_slices = y_hat.chunk(self.config.slices, dim=1)
        scales, means, residuals = [], [], []
        for i in range(self.config.slices):
            log2_scales, mu = self.slice_parameters(i, scale_support, mean_support, list(y_hat_slices[:i]))
            scales.append(log2_scales)
            means.append(mu)
            residuals.append(self.residual(i, mean_support, list(y_hat_slices[: i + 1])))
        log2_scales, means_all = torch.cat(scales, dim=1), torch.cat(means, dim=1)
        y_tilde = self.synthesis_input(y_hat, torch.cat(residuals, dim=1))
        x_hat = self.g_s(y_tilde)
        rate = rate_terms(self.z_likelihood, y, z, y_hat, z_hat, log2_scales, means_all, noisy_rate)
        return {"x_hat": x_hat.to(rate["y"].dtype), **rate, "y_tilde": y_tilde, "log2_scales": log2_scales}

    def config_dict(self) -> dict:
        return asdict(self.config)


@torch.no_grad()
def warm_start_from_meanscale(model: CharmHyperprior, meanscale_state: dict[str, torch.Tensor],
                              noise: float = 0.05) -> list[str]:
    """Start a ChARM model as the mean-scale model it is built on (same N, M, hyper activation).

    The transforms g_a, g_s, h_a, h_s, both support heads and the factorized prior load as they are: in
    the mean-scale model (Minnen 2018) the support heads already predict every channel's log2 σ and μ.
    Each slice stack then starts as the identity on its own slice's support channels — conv 1 carries
    (+x, −x) through its ReLU, conv 2 the same, conv 3 adds them back (x = relu(x) − relu(−x)), all on the
    centre tap — and every LRP stack's last conv starts at zero (r = 0). So at step 0 the ChARM model
    computes exactly the mean-scale model's σ, μ and x̂; what training adds from there is the channel
    conditioning. ``noise`` × PyTorch's default initialization is added to every other weight of the stacks
    so their unused units get gradients (all-zero units would stay dead). Returns the keys loaded.
    """
    own = model.state_dict()
    loaded = [k for k, v in meanscale_state.items() if k in own and own[k].shape == v.shape]
    model.load_state_dict({k: meanscale_state[k] for k in loaded}, strict=False)
    K = model.config.slice_channels
    for kind in ("cc_means", "cc_scales", "lrp"):
        for i, stack in enumerate(getattr(model, kind)):
            convs = [layer.conv for layer in stack]
            for conv in convs:
                conv.weight.mul_(noise)
                conv.bias.zero_()
            if kind == "lrp":
                convs[-1].weight.zero_()
                continue
            first, middle, last = convs
            if first.out_channels < 2 * K or middle.out_channels < 2 * K:
                raise ValueError(f"context_hidden {model.config.context_hidden} is narrower than 2K = {2 * K}")
            for c in range(K):  # support channel i·K + c of the context → ±x in hidden units 2c, 2c+1
                first.weight[2 * c, i * K + c, 1, 1] += 1.0
                first.weight[2 * c + 1, i * K + c, 1, 1] -= 1.0
                middle.weight[2 * c, 2 * c, 1, 1] += 1.0
                middle.weight[2 * c + 1, 2 * c + 1, 1, 1] += 1.0
                last.weight[c, 2 * c, 1, 1] += 1.0
                last.weight[c, 2 * c + 1, 1, 1] -= 1.0
    return loaded


def model_from_config(config: dict) -> MeanScaleHyperprior:
    """The torch model of a saved config (checkpoint or model file), of the family its ``architecture`` names
    (``fxlic.families``; none: the mean-scale model)."""
    from fxlic.families import family_of

    fam = family_of(config)
    settings = config if fam.name == "charm" else {k: v for k, v in config.items() if k != "architecture"}
    return fam.resolve("qat_model")(fam.resolve("qat_config")(**settings))
