"""Claims about the whole Kodak test set (the data lane: ``pytest -m data``, Kodak in $FXLIC_DATA/kodak).

The committed measurements in results/kodak/ (the README's RD table) come from real bitstreams of the
shipped models on the 24 Kodak images; the default model's row is re-measured here image by image.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fxlic import models

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.data


def test_kodak_is_the_24_images(kodak_dir: Path) -> None:
    from PIL import Image

    names = sorted(p.name for p in kodak_dir.glob("kodim*.png"))
    assert names == [f"kodim{i:02d}.png" for i in range(1, 25)], names
    for name in names:
        with Image.open(kodak_dir / name) as im:
            assert im.mode == "RGB" and sorted(im.size) == [512, 768], (name, im.mode, im.size)


@pytest.mark.slow
def test_default_model_reproduces_its_committed_kodak_row(kodak_dir: Path) -> None:
    """The default model, meanscale q4, on all 24 images: every bitstream's size equals the committed
    results/kodak/meanscale-q4.csv, PSNR and MS-SSIM agree to 1e-9 relative."""
    from fxlic.rd.evaluate import evaluate_model_file

    model = models.resolve("meanscale", 4)
    with (REPO / "results" / "kodak" / "meanscale-q4.csv").open() as handle:
        committed = {row["image"]: row for row in csv.DictReader(handle)}
    rows = evaluate_model_file(model, sorted(kodak_dir.glob("kodim*.png")), progress=False)
    assert [row["image"] for row in rows] == sorted(committed)
    for row in rows:
        want = committed[row["image"]]
        assert row["bytes"] == int(want["bytes"]), row["image"]
        assert row["psnr"] == pytest.approx(float(want["psnr"]), rel=1e-9), row["image"]
        assert row["ms_ssim"] == pytest.approx(float(want["ms_ssim"]), rel=1e-9), row["image"]
