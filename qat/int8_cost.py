"""Where int8 costs rate and distortion: a float mean-scale model calibrated (PTQ), with fake quantization
switched on for one group of layers at a time.

For each latent rounding (docs/fixed-point.md FXP-Q6: ``requantize``, ŷ = R(y → 0) from y at f_y, two
roundings; ``accumulator``, ŷ from the twin of g_a's last conv, one rounding) the float checkpoint is
calibrated on training crops exactly as ``fxlic train --phase qat`` does, then evaluated on ``--images``
with the fake quantization of only the listed groups on: ``none`` (the float model), ``all`` (the PTQ int8
model), a chain prefix (``g_a``, ``h_a``, ``h_s``, ``g_s``), a layer (``g_a.3``, ``h_s_means``) or ``input``;
with ``:w`` only the group's weights and biases are quantized, with ``:a`` only its outputs (``g_s:w``).
A QAT checkpoint is measured as trained (its own fix positions; ``none`` is then its weights in float
arithmetic). Each row: mean bpp at the ideal rate (−log2 of the likelihoods), mean PSNR of the decoded image, and the RD
objective λ·255²·MSE + bpp of the quality's λ, with its change against ``none``; ``z bpp`` is z's share of
the bpp (what ``fxlic train --z-rate`` is about). Measure on training photos
(the test set, Kodak, is never used to choose anything):

    python -m fxlic.qat.int8_cost runs/meanscale-q6-float/checkpoint.pt --quality 6 \\
        --images ../shared/data/train-half --every 5
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from fxlic.codec import pad_image
from fxlic.imageio import read_image
from fxlic.rd.metrics import psnr

from .charm import CharmHyperprior, model_from_config
from .data import CropSampler, list_images
from .equalize import equalize_synthesis_input, equalize_weight_ranges
from .export import load_checkpoint_model
from .fakequant import fake_quant_activation
from .models import INPUT_FIX, LATENT_ROUNDINGS, MeanScaleHyperprior, output_to_pixels, pixels_to_input, rate_terms
from .train import LAMBDAS, calibrate, quantized_objective
from .weight_steps import choose_weight_fix_positions

DEFAULT_GROUPS = ("none", "all", "input", "g_a", "g_a.3", "h_a", "h_s", "h_s_scales", "h_s_means", "g_s")


def calibrated(state: dict, latent_rounding: str, train: Path, batches: int, batch: int,
               seed: int = 0, equalize: bool = False, equalize_weights: bool = False,
               search_weight_steps: bool = False, lmbda: float | None = None,
               hyper_latent_rounding: str = "requantize") -> MeanScaleHyperprior:
    """A PTQ model from a float checkpoint's state with the given latent rounding (calibration as
    ``fxlic train --phase qat`` does it: same seed, 128² crops; with ``equalize``, g_s's last input is
    equalized first on crops of their own, as ``fxlic train --equalize`` does; with ``search_weight_steps``,
    the weight fix positions are then chosen by the RD objective of ``lmbda`` on training crops, as
    ``fxlic train --search-weight-steps`` does; ``hyper_latent_rounding`` as ``fxlic train
    --hyper-latent-rounding``)."""
    torch.manual_seed(seed)
    config = replace(model_from_config(state["config"]).config, latent_rounding=latent_rounding)
    ptq = model_from_config(asdict(config))
    ptq.load_state_dict(state["model"])
    if hyper_latent_rounding == "accumulator":
        ptq.round_hyper_latents_once()
    if equalize_weights:
        equalize_weight_ranges(ptq)
    if equalize:
        equalize_synthesis_input(ptq, CropSampler(train, 128, seed=seed + 1), batches, batch)
    calibrate(ptq, CropSampler(train, 128, seed=seed), batches, batch)
    if search_weight_steps:
        if lmbda is None:
            raise ValueError("the weight-step search needs the quality's λ")
        choose_weight_fix_positions(ptq, quantized_objective(train, 128, seed, batch, lmbda))
    ptq.entropy_bottleneck.update(force=True)
    return ptq.eval()


def select(model: MeanScaleHyperprior, group: str) -> bool:
    """Fake quantization on for the layers of ``group`` only; returns whether the input is quantized too.

    A suffix ``:w`` quantizes only the weights and biases of the group's layers (their outputs stay
    float), ``:a`` only their outputs (activations), e.g. ``g_s.2:w``, ``all:a``."""
    group, _, parts = group.partition(":")
    if parts not in ("", "w", "a"):
        raise ValueError(f"group suffix must be :w or :a, got {parts!r}")
    for name, layer in model.named_qconvs():
        on = group == "all" or name == group or name.startswith(group + ".")
        layer.quantized.fill_(on)
        layer.quantized_parts = {"": "all", "w": "weights", "a": "output"}[parts]
    return group in ("all", "input") and parts != "w"


@torch.no_grad()
def measure(model: MeanScaleHyperprior, quantize_input: bool, images: list[np.ndarray], lmbda: float) -> dict:
    """Mean ideal bpp (and z's share of it), PSNR and RD objective over ``images`` (uint8 H×W×3), with the
    layer switches as set."""
    bpps, z_bpps, psnrs, objectives = [], [], [], []
    for pixels in images:
        height, width = pixels.shape[:2]
        x = pixels_to_input(torch.from_numpy(pad_image(pixels)).permute(2, 0, 1)[None])
        if quantize_input:
            x = fake_quant_activation(x, INPUT_FIX)
        y, y_hat = model.encode_latents(x)
        z = model.h_a(y)
        z_hat = torch.floor(z + 0.5).clamp(-128, 127)
        log2_scales, means = model.hyper_synthesis(z_hat)
        rate = rate_terms(model.z_likelihood, y, z, y_hat, z_hat, log2_scales, means, noisy_rate=False)
        z_bits = -torch.log2(rate["z_likelihood"]).sum()
        bits = -torch.log2(rate["y_likelihood"]).sum() + z_bits
        decoded = output_to_pixels(model.g_s(y_hat))[0, :, :height, :width].round().byte().permute(1, 2, 0).numpy()
        bpp = float(bits) / (height * width)
        mse = float(np.mean((pixels.astype(np.float64) - decoded) ** 2))
        bpps.append(bpp)
        z_bpps.append(float(z_bits) / (height * width))
        psnrs.append(psnr(pixels, decoded))
        objectives.append(lmbda * mse + bpp)
    return {"bpp": float(np.mean(bpps)), "z_bpp": float(np.mean(z_bpps)), "psnr": float(np.mean(psnrs)),
            "objective": float(np.mean(objectives))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.int8_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="mean-scale checkpoint.pt: float (calibrated here, PTQ) or QAT (as trained)")
    p.add_argument("--quality", type=int, required=True, choices=sorted(LAMBDAS), help="λ of the objective")
    p.add_argument("--images", required=True, help="folder of PNGs to measure on (training photos, not Kodak)")
    p.add_argument("--every", type=int, default=1, help="use every n-th image of the folder")
    p.add_argument("--train", default="../shared/data/train", help="calibration crops come from here")
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--groups", default=",".join(DEFAULT_GROUPS))
    p.add_argument("--latent-rounding", choices=[*LATENT_ROUNDINGS, "both"], default="both")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=True,
                   help="equalize g_s's last input before calibration, as new QAT runs do (default on)")
    p.add_argument("--equalize-weights", action=argparse.BooleanOptionalAction, default=False,
                   help="equalize the weight ranges of g_a's and g_s's ReLU pairs first (fxlic.qat.equalize)")
    p.add_argument("--search-weight-steps", action=argparse.BooleanOptionalAction, default=False,
                   help="after calibration, choose the weight fix positions by the RD objective on training "
                        "crops (fxlic.qat.weight_steps), as fxlic train --search-weight-steps does")
    p.add_argument("--hyper-latent-rounding", choices=LATENT_ROUNDINGS, default="requantize",
                   help="ẑ as fxlic train --hyper-latent-rounding makes it (accumulator: z at fix 0, one rounding)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, state = load_checkpoint_model(args.checkpoint)
    if isinstance(model, CharmHyperprior):
        p.error("needs a mean-scale checkpoint (charm checkpoints are not supported)")
    images = [read_image(path) for path in list_images(args.images)[:: args.every]]
    roundings = LATENT_ROUNDINGS if args.latent_rounding == "both" else (args.latent_rounding,)
    print(f"{len(images)} images from {args.images}, λ = {LAMBDAS[args.quality]}; objective λ·255²·MSE + bpp")
    print(f"{'latent rounding':16s} {'group':12s} {'bpp':>8s} {'z bpp':>7s} {'PSNR dB':>8s} {'objective':>10s} "
          f"{'vs none':>8s}")
    if model.quantized:  # a QAT checkpoint: its own weights and frozen fix positions, no calibration
        roundings = (model.config.latent_rounding,)
        print("QAT checkpoint: fix positions as trained; 'none' is its weights in float arithmetic")
    for rounding in roundings:
        ptq = model if model.quantized else calibrated(
            state, rounding, Path(args.train), args.calib_batches, args.batch,
            equalize=args.equalize, equalize_weights=args.equalize_weights,
            search_weight_steps=args.search_weight_steps, lmbda=LAMBDAS[args.quality],
            hyper_latent_rounding=args.hyper_latent_rounding)
        reference = None
        for group in args.groups.split(","):
            row = measure(ptq, select(ptq, group), images, LAMBDAS[args.quality])
            reference = row["objective"] if group == "none" else reference
            change = f"{100 * (row['objective'] / reference - 1):+7.2f}%" if reference else ""
            print(f"{rounding:16s} {group:12s} {row['bpp']:8.4f} {row['z_bpp']:7.4f} {row['psnr']:8.3f} "
                  f"{row['objective']:10.4f} "
                  f"{change:>8s}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
