"""Synthetic camera-size test images: crops of one training photo, mirrored and tiled to W×H.

Mirroring keeps the content natural at the seams (no hard edges a codec would spend bits on). Kodak is
the test set and is not used; the result is deterministic for a given photo and size.

    python benchmarks/large_image.py ../shared/data/train/001.png 5657x4243 /tmp/24mp.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def mirrored_tiling(photo: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 H×W×3 built by reflecting ``photo`` across its edges as often as needed."""
    reps_h = -(-height // photo.shape[0])
    reps_w = -(-width // photo.shape[1])
    row = np.concatenate([photo if i % 2 == 0 else photo[:, ::-1] for i in range(reps_w)], axis=1)
    full = np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps_h)], axis=0)
    return np.ascontiguousarray(full[:height, :width])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photo", help="source photo (a training image, not Kodak)")
    p.add_argument("size", help="WIDTHxHEIGHT")
    p.add_argument("output", help="output PNG")
    args = p.parse_args()
    from PIL import Image

    width, height = (int(v) for v in args.size.lower().split("x"))
    photo = np.asarray(Image.open(args.photo).convert("RGB"))
    Image.MAX_IMAGE_PIXELS = None
    Image.fromarray(mirrored_tiling(photo, height, width)).save(Path(args.output), compress_level=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
