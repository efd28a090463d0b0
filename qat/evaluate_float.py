"""Kodak RD and speed of a float (non-QAT) model, or of a QAT checkpoint in float32, with PyTorch.

Two rates per image: the ideal rate (−log2 of the model's likelihoods at ŷ = round(y), ẑ = round(z))
and the size of a real bitstream made with CompressAI's entropy coders (EntropyBottleneck for ẑ,
GaussianConditional with our 64-level scale table for ŷ, centred at round(μ) so that the coded symbols
are exactly round(y) − round(μ)). Timings are the PyTorch pipeline, transforms plus CompressAI coding,
on ``--threads`` threads: the baseline that the integer reference's speed is compared with.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import GaussianConditional
from tqdm import tqdm

from fxlic.codec import pad_image
from fxlic.imageio import read_image
from fxlic.rd.metrics import ms_ssim, psnr
from fxlic.rd.results import RDCurve, save_curve

from .export import load_checkpoint_model, scale_grid
from .layers import qconvs
from .models import SCALE_MAX, SCALE_MIN, MeanScaleHyperprior, output_to_pixels, pixels_to_input


class FloatCodec:
    """The torch model with CompressAI entropy coding (the conventional float pipeline)."""

    def __init__(self, model: MeanScaleHyperprior) -> None:
        self.model = model.float().eval()
        self.model.entropy_bottleneck.update(force=True)
        self.gaussian = GaussianConditional(scale_table=scale_grid().tolist())
        self.gaussian.update()

    @torch.no_grad()
    def _params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log2_scales, means = self.model.hyper_synthesis(z_hat)
        sigma = torch.clamp(torch.exp2(log2_scales), SCALE_MIN, SCALE_MAX)
        return self.gaussian.build_indexes(sigma), torch.floor(means + 0.5)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[list[bytes], tuple[int, int]]:
        y = self.model.g_a(x)
        z = self.model.h_a(y)
        eb = self.model.entropy_bottleneck
        z_strings = eb.compress(z)
        z_hat = eb.decompress(z_strings, z.shape[-2:])
        indexes, mean_r = self._params(z_hat)
        y_strings = self.gaussian.compress(y, indexes, means=mean_r)
        return [z_strings[0], y_strings[0]], tuple(z.shape[-2:])

    @torch.no_grad()
    def decode(self, strings: list[bytes], z_size: tuple[int, int]) -> torch.Tensor:
        z_hat = self.model.entropy_bottleneck.decompress([strings[0]], z_size)
        indexes, mean_r = self._params(z_hat)
        y_hat = self.gaussian.decompress([strings[1]], indexes, means=mean_r)
        return self.model.g_s(y_hat)


@torch.no_grad()
def ideal_bits(model: MeanScaleHyperprior, x: torch.Tensor) -> float:
    out = model(x, noisy_rate=False)
    return float(-(torch.log2(out["y_likelihood"]).sum() + torch.log2(out["z_likelihood"]).sum()))


def evaluate(checkpoint: Path, images: list[Path], threads: int, float_arithmetic: bool = False) -> list[dict]:
    """One row per image. ``float_arithmetic``: run a QAT checkpoint's weights with fake quantization off
    (same weights, float32 arithmetic), which isolates the cost of the int8 formats from QAT's extra steps."""
    torch.set_num_threads(threads)
    model, _ = load_checkpoint_model(checkpoint)
    if float_arithmetic:
        for _, layer in qconvs(model):
            layer.quantized.fill_(False)
    # ChARM has no CompressAI pipeline here (its slices need their own coder: fxlic's integer one). Its
    # float model is measured at the ideal rate only; the forward pass decodes exactly what a decoder would
    # (ŷ = round(y), ỹ = ŷ + r, x̂ = g_s(ỹ)), so its PSNR is the decoded image's.
    model = model.float().eval()
    codec = None if getattr(model.config, "architecture", "meanscale") == "charm" else FloatCodec(model)
    rows = []
    for path in tqdm(images, desc=f"float eval {checkpoint.parent.name}", unit="img"):
        pixels = read_image(path)
        height, width = pixels.shape[:2]
        x = pixels_to_input(torch.from_numpy(pad_image(pixels)).permute(2, 0, 1)[None])
        t0 = time.perf_counter()
        if codec is None:
            with torch.no_grad():
                out = model(x, noisy_rate=False)
            x_hat, coded_bits = out["x_hat"], float("nan")
            t1 = t2 = time.perf_counter()
        else:
            strings, z_size = codec.encode(x)
            t1 = time.perf_counter()
            x_hat = codec.decode(strings, z_size)
            t2 = time.perf_counter()
            coded_bits = 8 * sum(len(s) for s in strings)
        decoded = output_to_pixels(x_hat)[0, :, :height, :width].round().byte().permute(1, 2, 0).numpy()
        rows.append({"image": path.name, "bpp_ideal": ideal_bits(model, x) / (width * height),
                     "bpp": coded_bits / (width * height),
                     "psnr": psnr(pixels, decoded), "ms_ssim": ms_ssim(pixels, decoded),
                     "encode_s": t1 - t0, "decode_s": t2 - t1})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.evaluate_float", description=__doc__)
    p.add_argument("checkpoints", nargs="+", help="checkpoint.pt files (one per quality)")
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True, help="JSON file (CompressAI layout); per-image CSVs beside it")
    p.add_argument("--name", default="fxlic-meanscale-float")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rate", choices=["ideal", "coded"], default="coded", help="bpp reported in the JSON")
    p.add_argument("--ideal-out", help="also write the curve at the ideal rate to this JSON (same pass)")
    p.add_argument("--float-arithmetic", action="store_true",
                   help="QAT checkpoints: fake quantization off (same weights in float32)")
    args = p.parse_args(argv)
    images = sorted(Path(args.images).glob("*.png"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    points = []
    for ckpt in args.checkpoints:
        rows = evaluate(Path(ckpt), images, args.threads, args.float_arithmetic)
        with out.with_name(f"{out.stem}-{Path(ckpt).parent.name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
        if args.rate == "coded" and np.isnan(means["bpp"]):
            p.error(f"{ckpt}: a charm float model has no CompressAI-coded rate; use --rate ideal")
        points.append(means)
        print(f"{ckpt}: " + "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
    points.sort(key=lambda m: m["bpp"] if args.rate == "coded" else m["bpp_ideal"])
    description = f"PyTorch float model + CompressAI entropy coding, {args.threads} threads" + (
        " (QAT weights, fake quantization off)" if args.float_arithmetic else "")
    outputs = [(out, args.rate, args.name)]
    if args.ideal_out:  # the same pass, reported at the ideal rate
        outputs.append((Path(args.ideal_out), "ideal", args.name + "-ideal"))
    for path, rate, name in outputs:
        rate_key = "bpp" if rate == "coded" else "bpp_ideal"
        curve = RDCurve(name=name, bpp=[m[rate_key] for m in points], psnr=[m["psnr"] for m in points],
                        ms_ssim=[m["ms_ssim"] for m in points], encoding_time=[m["encode_s"] for m in points],
                        decoding_time=[m["decode_s"] for m in points], description=description,
                        extra={"meta": {"bpp_ideal": [m["bpp_ideal"] for m in points],
                                        "bpp_coded": [m["bpp"] for m in points], "rate": rate}})
        save_curve(curve, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
