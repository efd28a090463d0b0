"""Regenerate the test suite's bundled data, ``tests/fixtures/`` (tests/fixtures/README.md says what each
file is and where it comes from), from the full data sets.

    python tools/make_test_fixtures.py                        # data beside the repository: ../shared
    python tools/make_test_fixtures.py --data D --anchors A   # or elsewhere (D/kodak, D/train-half, A/kodak)

Writes lossless PNG crops and verbatim copies of a few RD curves; nothing else. Running it again on the
same data rewrites identical pixels (the PNG bytes may differ between Pillow versions: the tests compare
pixels, never PNG bytes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures"

# Kodak regions (image index, top, left, height, width): each covers the crops the tests take of that image
# (a test asks for (index, crop) in the original image's coordinates; tests/conftest.py finds the region).
KODAK_REGIONS = [
    (1, 0, 0, 508, 705),   # board tiles: 505×700 at (3, 5), two 512-pixel encoder windows; codec and tiling crops
    (2, 0, 0, 176, 176),
    (3, 0, 0, 190, 260),
    (4, 0, 0, 129, 65),    # portrait image
    (5, 0, 0, 176, 200),
    (5, 200, 300, 64, 64),
    (7, 0, 0, 96, 130),
    (7, 200, 300, 64, 70),
    (8, 500, 700, 12, 68),  # the bottom-right corner: 12 rows
    (9, 0, 0, 128, 192),
    (13, 200, 400, 64, 64),
    (15, 37, 201, 64, 64),
    (19, 100, 100, 96, 190),
    (20, 0, 0, 64, 64),
    (21, 40, 56, 64, 88),
    (23, 0, 0, 100, 150),
    (23, 100, 200, 120, 176),
]

# Training photographs in the public domain (tests/fixtures/README.md has the sources): file in
# train-half/ → fixture name. Each is cropped to TRAIN_CROP (height, width) around its centre.
TRAIN_PHOTOS = {
    "008.png": "chapel.png",
    "015.png": "hurricane.png",
    "021.png": "shuttle.png",
    "031.png": "mural.png",
    "035.png": "factory.png",
}
TRAIN_CROP = (256, 384)

# RD curves copied verbatim: the BD-rate, loading and plotting tests use these.
ANCHORS = {
    "kodak": ["vtm.json", "bpg_444_x265_ycbcr.json", "webp.json", "jpeg.json", "paper-elic2022_mse.json",
              "paper-elic2022_ms-ssim.json", "paper-bmshj2018-hyperprior.json"],
    "kodak-measured": ["webp.json", "compressai_speed.json"],
}


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def write_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("FXLIC_DATA", REPO.parent / "shared" / "data"))
    default_anchors = Path(os.environ.get("FXLIC_ANCHORS", REPO.parent / "shared" / "anchors"))
    parser.add_argument("--data", type=Path, default=default_data, help="folder with kodak/ and train-half/")
    parser.add_argument("--anchors", type=Path, default=default_anchors, help="folder with kodak/ and kodak-measured/")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    kodak_out = args.out / "kodak"
    if kodak_out.is_dir():
        for old in kodak_out.glob("kodim*.png"):
            old.unlink()
    for index, top, left, height, width in KODAK_REGIONS:
        image = read_rgb(args.data / "kodak" / f"kodim{index:02d}.png")
        region = image[top : top + height, left : left + width]
        if region.shape[:2] != (height, width):
            sys.exit(f"kodim{index:02d}: region {top, left, height, width} leaves the image {image.shape[:2]}")
        write_png(region, kodak_out / f"kodim{index:02d}_{top}_{left}.png")

    for source, name in TRAIN_PHOTOS.items():
        image = read_rgb(args.data / "train-half" / source)
        height, width = TRAIN_CROP
        top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
        write_png(image[top : top + height, left : left + width], args.out / "train" / name)

    for folder, names in ANCHORS.items():
        (args.out / "anchors" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(args.anchors / folder / name, args.out / "anchors" / folder / name)

    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
