"""More latent channels for a trained mean-scale model: M → M' without starting over.

The ladder is flattest at the top (issue 11): at 1.2–1.5 bpp on Kodak the int8 model gains little PSNR
per bit, where CompressAI's mean-scale model (Minnen et al. 2018) uses M = 320 latent channels for its
high qualities against our 128. Training a wider model from scratch on this CPU costs what the trunk
cost (about 1,000 CPU-minutes), so ``widen_latents`` grows a trained float model's latent instead, in the
spirit of Net2Net (Chen et al. 2016): the M' − M new channels start so that the old model's
reconstruction and its old channels' rate are unchanged.

* g_a's last conv: new output channels with random weights, scaled so the new y has standard deviation
  ``new_std`` on training crops — small, but not so small that ŷ = round(y) is always 0 (then g_s could
  never learn to read them: its gradient on a weight is the output gradient times ŷ).
* g_s's first conv, h_a's first conv: the new input channels get zero weights (x̂ and z are unchanged).
* h_s (hidden width 3M'/2): new output channels random, new input channels zero, so the old heads see
  what they saw; the scale and mean heads' new channels start as constants, μ = 0 and σ = ``new_std``,
  so the new channels are priced as what they are at the start.

Only the rate of the new channels changes at the start (about the entropy of round(N(0, new_std²)) per
new latent). Fine-tune afterwards (``fxlic train --init WIDE``): the optimizer is fresh either way.

    python -m fxlic.qat.widen runs/meanscale-q8-float/checkpoint.pt --M 192 -o runs/wide/q8-M192.pt
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .charm import model_from_config
from .data import CropSampler
from .models import MeanScaleHyperprior, pixels_to_input
from .train import is_quantized_state


def _grow(tensor: torch.Tensor, dim: int, size: int, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``tensor`` with dimension ``dim`` grown to ``size``: the new slice is ``fill`` or zeros."""
    extra = list(tensor.shape)
    extra[dim] = size - tensor.shape[dim]
    new = torch.zeros(extra, dtype=tensor.dtype) if fill is None else fill.to(tensor.dtype).reshape(extra)
    return torch.cat([tensor, new], dim=dim)


def widen_latents(state: dict, M: int, data: str | Path, new_std: float = 0.6, seed: int = 0,
                  batches: int = 4, batch: int = 8) -> dict:
    """A float mean-scale checkpoint state (``model``, ``config``) with M latent channels instead of its own.

    Returns a weights-only state (``model``, ``config``, ``weights_only``) whose float forward gives the
    same x̂ and z as ``state`` on any input; ``data``: training photos for the new channels' y statistics.
    """
    parent = model_from_config(state["config"])
    if not isinstance(parent, MeanScaleHyperprior):
        raise ValueError("widen_latents needs a mean-scale model")
    if is_quantized_state(state["model"]):
        raise ValueError("widen a float model (before QAT): fix positions do not carry over")
    config = parent.config
    old_M, N = config.M, config.N
    if M <= old_M:
        raise ValueError(f"M must grow: the model has M = {old_M}, asked for {M}")
    if M % 2:
        raise ValueError("M must be even (h_s's hidden width is 3M/2)")
    old = {k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()}
    generator = torch.Generator().manual_seed(seed)
    hidden_old, hidden = old_M * 3 // 2, M * 3 // 2
    added = M - old_M

    def random_like(weight: torch.Tensor, shape: list[int]) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * float(weight.std())

    new = dict(old)
    # g_a's last conv: Conv2d weight (M, N, k, k); the new rows' scale is set from y's statistics below.
    w = old["g_a.3.conv.weight"]
    new["g_a.3.conv.weight"] = _grow(w, 0, M, random_like(w, [added, *w.shape[1:]]))
    new["g_a.3.conv.bias"] = _grow(old["g_a.3.conv.bias"], 0, M)
    # readers of y / ŷ: zero weights on the new inputs
    new["h_a.0.conv.weight"] = _grow(old["h_a.0.conv.weight"], 1, M)  # Conv2d (N, M, 3, 3)
    new["g_s.0.conv.weight"] = _grow(old["g_s.0.conv.weight"], 0, M)  # ConvTranspose2d (M, N, 4, 4)
    # h_s: ConvTranspose2d weights are (in, out, k, k)
    w = old["h_s.0.conv.weight"]
    new["h_s.0.conv.weight"] = _grow(w, 1, M, random_like(w, [N, added, *w.shape[2:]]))
    new["h_s.0.conv.bias"] = _grow(old["h_s.0.conv.bias"], 0, M)
    w = _grow(old["h_s.1.conv.weight"], 0, M)  # new inputs: zero
    new["h_s.1.conv.weight"] = _grow(w, 1, hidden, random_like(w[:old_M], [M, hidden - hidden_old, *w.shape[2:]]))
    new["h_s.1.conv.bias"] = _grow(old["h_s.1.conv.bias"], 0, hidden)
    for head, bias in (("h_s_scales", math.log2(new_std)), ("h_s_means", 0.0)):
        key = f"{head}.conv.weight"
        if key not in old:
            continue
        w = _grow(old[key], 1, hidden)  # Conv2d (M, hidden, 3, 3): new inputs zero
        new[key] = _grow(w, 0, M)  # new outputs: constant (weights zero, the bias below)
        new[f"{head}.conv.bias"] = _grow(old[f"{head}.conv.bias"], 0, M, torch.full([added], bias))

    wide_config = replace(config, M=M)
    model = model_from_config(asdict(wide_config))
    model.load_state_dict(new)
    # Scale the new rows of g_a's last conv so the new y has standard deviation new_std on training crops.
    sampler = CropSampler(data, 128, seed=seed)
    model.eval()
    with torch.no_grad():
        ys = [model.g_a(pixels_to_input(sampler.batch(batch)))[:, old_M:] for _ in range(batches)]
        std = float(torch.cat([y.flatten() for y in ys]).std())
        model.g_a[-1].conv.weight[old_M:] *= new_std / max(std, 1e-12)
    return {"model": model.state_dict(), "config": model.config_dict(), "weights_only": True,
            "widened_from": {"M": old_M, "step": state.get("step"), "new_std": new_std, "seed": seed}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.widen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="float mean-scale checkpoint.pt (a fine-tune or the trunk)")
    p.add_argument("--M", type=int, required=True, help="latent channels of the widened model")
    p.add_argument("--data", default="../shared/data/train", help="training photos (never Kodak)")
    p.add_argument("--new-std", type=float, default=0.6, help="standard deviation of the new channels' y")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", required=True, help="the widened weights-only checkpoint")
    args = p.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    wide = widen_latents(state, args.M, args.data, args.new_std, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wide, out)
    print(f"{args.checkpoint}: M {state['config']['M']} → {args.M}, written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
