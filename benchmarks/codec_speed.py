"""Encode/decode seconds per image: the integer reference vs the PyTorch float pipeline, side by side.

Both run the same weights (the shipped int8 model; the float pipeline uses its dequantized weights as a
float32 model) on the same images in one process, with ``--threads`` threads for torch, Numba and BLAS.
The float pipeline is the conventional one: PyTorch transforms + CompressAI's C++ rANS coders
(EntropyBottleneck for ẑ, GaussianConditional for ŷ). Ratios, not absolute times, are the result.

    python benchmarks/codec_speed.py --images ../shared/data/kodak [--limit 24] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True)
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model-file", help="default: the shipped default model")
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import torch

    from fxlic import models
    from fxlic.codec import Codec, pad_image
    from fxlic.imageio import read_image
    from fxlic.qat.evaluate_float import FloatCodec
    from fxlic.qat.export import model_from_model_file
    from fxlic.qat.layers import qconvs
    from fxlic.qat.models import pixels_to_input

    torch.set_num_threads(args.threads)
    model_file = models.load(path=args.model_file)
    images = sorted(Path(args.images).glob("*.png"))[: args.limit]
    codecs = {impl: Codec(model_file, impl=impl) for impl in ("blas", "numba")}
    float_model = model_from_model_file(model_file)
    for _, layer in qconvs(float_model):
        layer.quantized.fill_(False)  # same weights, plain float32 convs
    float_codec = FloatCodec(float_model)

    warm = read_image(images[0])[:64, :64].copy()
    for codec in codecs.values():
        codec.decode(codec.encode(warm).bitstream)
    times: dict[str, list[float]] = {k: [] for k in ("blas enc", "blas dec", "numba enc", "numba dec",
                                                     "torch enc", "torch dec")}
    for path in images:
        pixels = read_image(path)
        for impl, codec in codecs.items():
            t0 = time.perf_counter()
            stream = codec.encode(pixels).bitstream
            t1 = time.perf_counter()
            codec.decode(stream)
            t2 = time.perf_counter()
            times[f"{impl} enc"].append(t1 - t0)
            times[f"{impl} dec"].append(t2 - t1)
        x = pixels_to_input(torch.from_numpy(pad_image(pixels)).permute(2, 0, 1)[None])
        t0 = time.perf_counter()
        strings, z_size = float_codec.encode(x)
        t1 = time.perf_counter()
        float_codec.decode(strings, z_size)
        t2 = time.perf_counter()
        times["torch enc"].append(t1 - t0)
        times["torch dec"].append(t2 - t1)
        print(f"{path.name}: " + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    print(f"\n{len(images)} images, {args.threads} threads, {model_file.name} q{model_file.quality}")
    print(f"{'pipeline':28s} {'encode s':>9s} {'decode s':>9s} {'enc ×torch':>10s} {'dec ×torch':>10s}")
    for name, key in (("integer, float64 BLAS GEMM", "blas"), ("integer, Numba int64", "numba"),
                      ("PyTorch float32 + CompressAI", "torch")):
        enc, dec = mean[f"{key} enc"], mean[f"{key} dec"]
        print(f"{name:28s} {enc:9.3f} {dec:9.3f} {enc / mean['torch enc']:10.2f} {dec / mean['torch dec']:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
