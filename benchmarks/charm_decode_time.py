"""Integer decode (and encode) seconds per image: charm (slice by slice) vs the shipped mean-scale model.

The charm model here is *untrained*: the default architecture (N 96, M 128, 4 slices, context 96/64),
random init, calibrated on training crops and exported (or ``--charm-model`` for a trained file). Its conv
cost does not depend on the weights; the rANS time does a little (an untrained model codes more bits and
more escapes than a trained one), so the charm times here are an upper bound of the entropy part. Both
codecs run in one process with ``--threads`` threads, on the same images. Times are CPU seconds of this
process (``time.process_time``), which a shared, busy machine does not inflate as it does wall time; with
one thread they are the work of one core.

    python benchmarks/charm_decode_time.py --images ../shared/data/kodak --limit 4 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True)
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", default="../shared/data/train", help="crops for calibrating the untrained charm")
    p.add_argument("--charm-model", help="a trained charm model file (default: untrained, calibrated here)")
    p.add_argument("--quality", type=int, default=4, help="shipped mean-scale quality to compare with")
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import torch

    from fxlic import models
    from fxlic.codec import open_codec
    from fxlic.imageio import read_image
    from fxlic.reference.modelfile import load_model_file

    torch.set_num_threads(args.threads)
    if args.charm_model:
        charm = load_model_file(args.charm_model)
    else:
        from fxlic.qat.charm import CharmConfig, CharmHyperprior
        from fxlic.qat.data import CropSampler
        from fxlic.qat.export import export_model
        from fxlic.qat.train import calibrate

        torch.manual_seed(0)
        model = CharmHyperprior(CharmConfig())
        calibrate(model, CropSampler(args.train, 128, seed=0), batches=2, batch_size=4)
        model.entropy_bottleneck.update(force=True)
        path = Path(tempfile.mkdtemp()) / "charm-untrained.npz"
        export_model(model, "charm", 0).save(path)
        charm = load_model_file(path)
    codecs = {"meanscale": open_codec(models.load("meanscale", args.quality)), "charm": open_codec(charm)}
    images = sorted(Path(args.images).glob("*.png"))[: args.limit]
    warm = read_image(images[0])[:64, :64]
    for codec in codecs.values():
        codec.decode(codec.encode(warm).bitstream)  # JIT warm-up, not timed
    totals = {name: [0.0, 0.0, 0] for name in codecs}
    for path in images:
        pixels = read_image(path)
        for name, codec in codecs.items():
            t0 = time.process_time()
            bitstream = codec.encode(pixels).bitstream
            t1 = time.process_time()
            decoded = codec.decode(bitstream)
            t2 = time.process_time()
            assert decoded.shape == pixels.shape
            totals[name][0] += t1 - t0
            totals[name][1] += t2 - t1
            totals[name][2] += len(bitstream)
    n = len(images)
    print(f"{n} images from {args.images}, {args.threads} thread(s)")
    print(f"{'model':10s} {'encode CPU s/img':>17s} {'decode CPU s/img':>17s} {'bytes/img':>10s}")
    for name, (enc, dec, size) in totals.items():
        print(f"{name:10s} {enc / n:17.3f} {dec / n:17.3f} {size / n:10.0f}")
    print(f"decode time charm / meanscale: {totals['charm'][1] / totals['meanscale'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
