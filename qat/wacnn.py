"""Window-attention CNN (WACNN, Zou, Song & Zhang 2022, "The devil is in the details: window-based attention
for image compression") as a *float graph for analysis only* (``fxlic hw-report``): never trained, never
quantized, no integer twin.

Rebuilt from the paper's description (Fig. 2 and Sec. 3 of Zou et al. 2022; the entropy model is Minnen &
Singh 2020's channel-wise autoregression with LRP, 10 slices, up to 5 support slices). N = 192, M = 320:

* g_a: conv5 s2 → GDN → conv5 s2 → GDN → WAM(N) → conv5 s2 → GDN → conv5 s2 → WAM(M)
* g_s: WAM(M) → tconv5 s2 → IGDN → tconv5 s2 → IGDN → WAM(N) → tconv5 s2 → IGDN → tconv5 s2
* h_a: conv3 → GELU → conv3 → GELU → conv3 s2 → GELU → conv3 → GELU → conv3 s2 (320 → 192 channels)
* h_s (twice, for means and scales): conv3 → GELU → subpel ×2 → GELU → conv3 → GELU → subpel ×2 → GELU → conv3
* per slice: mean, scale and LRP stacks of five conv3 (224, 176, 128, 64, K) with GELU between; LRP ends in
  0.5·tanh.
* WAM (window attention module): a = WinAttention(x) → 3 residual units; b = 3 residual units → conv1;
  out = a · sigmoid(b) + x. WinAttention: 8×8 windows, 8 heads, qkv and output projections (Linear),
  softmax(q·kᵀ/√d + relative position bias)·v, residual add. Residual unit: conv1 (C/2) → GELU → conv3 →
  GELU → conv1 (C) → + x → GELU.

Every operation that is not a conv/linear layer is its own small module, so forward hooks see each op
(softmax, GELU, GDN, sigmoid, window partition, activation × activation matmul) with its shape: that is
what the hardware report classifies as DPU or CPU work.

``dpu_legal=True`` builds the same graph with the substitutions fxlic makes for the DPU where they are free
of attention: GDN/IGDN and GELU → ReLU, k5 s2 p2 output-padding transposed convs → k4 s2 p1, sub-pixel
convs → k4 s2 p1 transposed convs, the LRP's 0.5·tanh → the int8 saturation bound of ``fxlic.qat.charm``.
What stays on the CPU is what window attention needs (window partition/reverse, q·kᵀ, softmax, a·v) and
the WAM's sigmoid gate: the cost of attention itself on this DPU.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN
from torch import nn

WINDOW = 8
HEADS = 8


class Op(nn.Module):
    """A named element-wise / data-movement op (hook target); ``kind`` is what the report classifies."""

    def __init__(self, kind: str, fn) -> None:
        super().__init__()
        self.kind = kind
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.kind


class MatMul(nn.Module):
    """Activation × activation product (q·kᵀ or attention·v); records its MACs for the report."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.macs = 0

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.macs = int(a.numel() // a.shape[-1] * a.shape[-1] * b.shape[-1])
        return a @ b


class RelativePositionBias(nn.Module):
    """Adds the learned relative position bias (heads × (2s−1)²) to the attention logits."""

    kind = "attention_bias_add"

    def __init__(self, heads: int, window: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))

    def forward(self, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        heads, tokens = self.table.shape[0], index.shape[0]
        return logits + self.table[:, index.reshape(-1)].view(heads, tokens, tokens)


class WindowAttention(nn.Module):
    """Non-shifted window multi-head self-attention with relative position bias (Swin-style), residual."""

    def __init__(self, dim: int, heads: int = HEADS, window: int = WINDOW) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.partition = Op("window_partition", self._partition)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.qk = MatMul("matmul_qk")
        self.bias_add = RelativePositionBias(heads, window)
        self.softmax = Op("softmax", lambda a: a.softmax(-1))
        self.av = MatMul("matmul_av")
        self.proj = nn.Linear(dim, dim)
        self.reverse = Op("window_reverse", self._reverse)
        self.residual = Op("add", lambda a, b: a + b)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("bias_index", rel[..., 0] * (2 * window - 1) + rel[..., 1], persistent=False)

    def _partition(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.window
        x = x.view(b, c, h // s, s, w // s, s).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(-1, s * s, c)

    def _reverse(self, windows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, c, h, w = shape
        s = self.window
        x = windows.view(b, h // s, w // s, s, s, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows = self.partition(x)
        n, t, c = windows.shape
        qkv = self.qkv(windows).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // self.heads) ** -0.5, qkv[1], qkv[2]
        attention = self.softmax(self.bias_add(self.qk(q, k.transpose(-2, -1)), self.bias_index))
        out = self.av(attention, v).transpose(1, 2).reshape(n, t, c)
        return self.residual(x, self.reverse(self.proj(out), x.shape))


class ResidualUnit(nn.Module):
    """conv1 (C/2) → GELU → conv3 → GELU → conv1 (C) → + x → GELU (GELU → ReLU when ``dpu_legal``)."""

    def __init__(self, dim: int, dpu_legal: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 1), _gelu(dpu_legal),
                                  nn.Conv2d(dim // 2, dim // 2, 3, padding=1), _gelu(dpu_legal),
                                  nn.Conv2d(dim // 2, dim, 1))
        self.add = Op("add", lambda a, b: a + b)
        self.act = _gelu(dpu_legal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.add(self.body(x), x))


class WindowAttentionModule(nn.Module):
    """WAM of Zou et al. 2022: attention branch gated by a sigmoid mask branch, plus the identity."""

    def __init__(self, dim: int, dpu_legal: bool = False) -> None:
        super().__init__()
        units = [ResidualUnit(dim, dpu_legal) for _ in range(6)]
        self.trunk = nn.Sequential(WindowAttention(dim), *units[:3])
        self.mask = nn.Sequential(*units[3:], nn.Conv2d(dim, dim, 1), Op("sigmoid", torch.sigmoid))
        self.gate = Op("mul", lambda a, b: a * b)
        self.add = Op("add", lambda a, b: a + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.gate(self.trunk(x), self.mask(x)), x)


def _gelu(dpu_legal: bool = False) -> nn.Module:
    return nn.ReLU() if dpu_legal else Op("gelu", nn.functional.gelu)


def _subpel(c_in: int, c_out: int, dpu_legal: bool = False) -> nn.Module:
    """3×3 conv to c_out·4 channels, then pixel shuffle (depth-to-space) ×2 (DPU-legal: a k4 s2 p1 tconv)."""
    if dpu_legal:
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
    return nn.Sequential(nn.Conv2d(c_in, c_out * 4, 3, padding=1), Op("pixel_shuffle", _shuffle))


def _shuffle(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.pixel_shuffle(x, 2)


def _slice_stack(c_in: int, c_out: int, lrp: bool, dpu_legal: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    widths = [c_in, 224, 176, 128, 64]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Conv2d(a, b, 3, padding=1), _gelu(dpu_legal)]
    layers.append(nn.Conv2d(64, c_out, 3, padding=1))
    if lrp and not dpu_legal:
        layers.append(Op("tanh", lambda t: 0.5 * torch.tanh(t)))
    return nn.Sequential(*layers)


class WACNN(nn.Module):
    """The float graph of WACNN (N = 192, M = 320, 10 slices, 5 support slices); analysis only."""

    def __init__(self, N: int = 192, M: int = 320, slices: int = 10, max_support: int = 5,
                 dpu_legal: bool = False) -> None:
        super().__init__()
        self.N, self.M, self.slices, self.max_support, self.dpu_legal = N, M, slices, max_support, dpu_legal
        K = M // slices
        legal = dpu_legal

        def tconv(a: int, b: int) -> nn.ConvTranspose2d:
            if legal:
                return nn.ConvTranspose2d(a, b, 4, 2, 1)
            return nn.ConvTranspose2d(a, b, 5, 2, 2, output_padding=1)

        def gdn(c: int, inverse: bool = False) -> nn.Module:
            return nn.ReLU() if legal else GDN(c, inverse=inverse)

        def act() -> nn.Module:
            return _gelu(legal)

        self.g_a = nn.Sequential(nn.Conv2d(3, N, 5, 2, 2), gdn(N), nn.Conv2d(N, N, 5, 2, 2), gdn(N),
                                 WindowAttentionModule(N, legal), nn.Conv2d(N, N, 5, 2, 2), gdn(N),
                                 nn.Conv2d(N, M, 5, 2, 2), WindowAttentionModule(M, legal))
        self.g_s = nn.Sequential(WindowAttentionModule(M, legal), tconv(M, N), gdn(N, True), tconv(N, N),
                                 gdn(N, True), WindowAttentionModule(N, legal), tconv(N, N), gdn(N, True),
                                 tconv(N, 3))
        self.h_a = nn.Sequential(nn.Conv2d(M, 320, 3, 1, 1), act(), nn.Conv2d(320, 288, 3, 1, 1), act(),
                                 nn.Conv2d(288, 256, 3, 2, 1), act(), nn.Conv2d(256, 224, 3, 1, 1), act(),
                                 nn.Conv2d(224, N, 3, 2, 1))

        def h_s() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(N, 192, 3, 1, 1), act(), _subpel(192, 224, legal), act(),
                                 nn.Conv2d(224, 256, 3, 1, 1), act(), _subpel(256, 288, legal), act(),
                                 nn.Conv2d(288, M, 3, 1, 1))

        self.h_mean_s, self.h_scale_s = h_s(), h_s()
        support = [M + K * min(i, max_support) for i in range(slices)]
        self.cc_means = nn.ModuleList(_slice_stack(c, K, False, legal) for c in support)
        self.cc_scales = nn.ModuleList(_slice_stack(c, K, False, legal) for c in support)
        self.lrp = nn.ModuleList(_slice_stack(c + K, K, True, legal) for c in support)

    def context(self, decoded: list[torch.Tensor]) -> list[torch.Tensor]:
        """The support slices of the next slice: the first ``max_support`` decoded ones (Minnen & Singh 2020)."""
        return decoded[: self.max_support]
