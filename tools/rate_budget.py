"""Where the bits of an integer model's y stream go: the entropy coder and its tables against their bounds.

For a model file and a set of images (training photos: the test set is never used to tune), encode each
image with the golden codec and account for the y stream (docs/entropy.md §3):

* ``coded``: the real y stream, bytes × 8 (rANS, ENT-2 … ENT-8).
* ``tables``: Σ −log2(f / 2^16) over the coded symbols with the model's integer tables, plus 16 raw bits per
  escape (ENT-E): what an ideal coder with these tables would spend. ``coded − tables`` is the rANS overhead.
* ``escapes`` / ``freq-1``: the part of ``tables`` spent on escaped values and on symbols of frequency 1.
* ``Gaussian, exact σ``: the discretized Gaussian N(μ, σ) ⊛ U(−½, ½) at the int8 heads' μ and σ before the
  σ grid (64 levels) and the 16-bit quantization: what the grid costs.
* ``Gaussian, μ at 2^−k``: the same with σ on the grid and μ rounded to 2^−k for k = f_μ − 2 … f_μ + 1 and
  the tables' b (finer than the mean head's fix position f_μ changes nothing; each coarser row shows what
  one bit less of μ costs, a rough measure of what one bit more could buy).
* ``empirical tables``: the same table indexes with per-table histograms fitted on the other half of the
  images (2-fold, the Gaussian table as a prior of weight 10): a bound on what re-fitting the table
  *contents* to data could buy without changing the model.

    python tools/rate_budget.py models/meanscale-q4.npz --images ../shared/data/train-half --every 5

Every figure is relative to ``tables`` (1.0000). NumPy and SciPy only (no torch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr
from tqdm import tqdm

from fxlic.entropy.bitstream import unpack
from fxlic.entropy.conditional import SCALE_MAX, SCALE_MIN, scale_grid
from fxlic.entropy.rans import information_bits
from fxlic.entropy.tables import PRECISION
from fxlic.families import open_codec
from fxlic.imageio import read_image
from fxlic.reference.modelfile import load_model_file

SYMBOL_SPAN = 1024  # histogram columns of the empirical tables: values −512 … 511 (ŷ − μ_r of int8 fits)


def gaussian_bits(y_hat: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> float:
    """Σ −log2 P(ŷ) under N(μ, σ) ⊛ U(−½, ½), each probability floored at 2^−16 like the tables."""
    p = ndtr((y_hat + 0.5 - mean) / sigma) - ndtr((y_hat - 0.5 - mean) / sigma)
    return float(-np.log2(np.maximum(p, 2.0**-PRECISION)).sum())


def empirical_bits(tables, folds: list[list[tuple[np.ndarray, np.ndarray]]], prior: float = 10.0) -> float:
    """2-fold: histograms per table index on one fold (Gaussian table as prior), cost on the other."""
    num_tables = len(tables.num_symbols)
    gauss = np.full((num_tables, SYMBOL_SPAN), 2.0**-PRECISION)
    for t in range(num_tables):
        freq = np.diff(tables.cdf[t, : tables.num_symbols[t]].astype(np.int64)) / 2.0**PRECISION
        start = int(tables.offset[t]) + SYMBOL_SPAN // 2
        gauss[t, start : start + freq.size] = np.maximum(freq, 2.0**-PRECISION)
    total = 0.0
    for k in range(2):
        fit, test = folds[1 - k], folds[k]
        hist = np.zeros((num_tables, SYMBOL_SPAN))
        for table, symbol in fit:
            np.add.at(hist, (table, symbol + SYMBOL_SPAN // 2), 1.0)
        prob = (hist + prior * gauss) / (hist.sum(1, keepdims=True) + prior * gauss.sum(1, keepdims=True))
        for table, symbol in test:
            total += float(-np.log2(np.maximum(prob[table, symbol + SYMBOL_SPAN // 2], 2.0**-PRECISION)).sum())
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an integer model file (.npz), e.g. models/meanscale-q4.npz")
    p.add_argument("--images", default="../shared/data/train-half", help="folder of PNG images (not Kodak)")
    p.add_argument("--every", type=int, default=5, help="take every k-th image (sorted by name)")
    args = p.parse_args(argv)
    paths = sorted(Path(args.images).glob("*.png"))[:: args.every]
    if len(paths) < 2:
        p.error(f"{args.images}: need at least 2 PNG images for the 2-fold empirical tables, found {len(paths)}")
    model = load_model_file(args.model)
    codec = open_codec(model)
    if getattr(codec.net, "h_s_means", None) is None:
        p.error(f"{args.model}: not a mean-scale hyperprior (no mean head); this budget covers that model")
    net, tables, grid = codec.net, model.y_tables, scale_grid()
    fix_mean, fix_scale = net.h_s_means.fix_out, net.h_s_scales.fix_out
    sums: dict[str, float] = {}
    folds: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]
    pixels_total = 0

    def add(key: str, value: float) -> None:
        sums[key] = sums.get(key, 0.0) + value

    for i, path in enumerate(tqdm(paths, desc=f"rate budget {Path(args.model).name}", unit="img")):
        pixels = read_image(path)
        pixels_total += pixels.shape[0] * pixels.shape[1]
        result = codec.encode(pixels)
        _, streams = unpack(result.bitstream)
        add("z stream (coded)", 8.0 * len(streams[0]))
        add("coded", 8.0 * len(streams[1]))
        table = result.y_table_index.reshape(-1).astype(np.int64)
        symbol = (result.y_hat.astype(np.int64) - result.y_mean).reshape(-1)
        bits = information_bits(symbol, table, tables)
        escaped = bits > PRECISION  # an escape costs its ESC symbol plus 16 raw bits; nothing else exceeds 16
        add("tables", float(bits.sum()))
        add("  of which escapes", float(bits[escaped].sum()))
        add("  of which freq-1 symbols", float(bits[bits == PRECISION].sum()))
        folds[i % 2].append((table, symbol))
        scales, means = net.hyper_synthesis(result.z_hat)
        y_hat = result.y_hat.astype(np.float64)
        mean = means.astype(np.float64) * 2.0**-fix_mean
        sigma_exact = np.clip(np.exp2(scales.astype(np.float64) * 2.0**-fix_scale), SCALE_MIN, SCALE_MAX)
        sigma_grid = grid[model.scale_lut[scales.astype(np.int64) + 128]]
        add("Gaussian, exact σ, int8 μ", gaussian_bits(y_hat, mean, sigma_exact))
        add("Gaussian, grid σ, int8 μ", gaussian_bits(y_hat, mean, sigma_grid))
        for k in sorted({fix_mean - 2, fix_mean - 1, fix_mean, fix_mean + 1, model.mean_frac_bits}):
            rounded = np.floor(mean * 2.0**k + 0.5) * 2.0**-k
            add(f"Gaussian, grid σ, μ at 2^{-k}", gaussian_bits(y_hat, rounded, sigma_grid))
    sums["empirical tables (2-fold)"] = empirical_bits(tables, folds)
    base = sums["tables"]
    print(f"{args.model}: {len(paths)} images, {pixels_total:,} pixels; mean head fix f_μ = {fix_mean}, "
          f"tables at b = {model.mean_frac_bits}")
    print(f"{'y stream':34s} {'bpp':>8s} {'vs tables':>10s}")
    for key, value in sums.items():
        print(f"{key:34s} {value / pixels_total:8.4f} {value / base:10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
