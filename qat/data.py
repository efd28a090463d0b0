"""Training crops: random crops with flips from a folder of photographs (never the Kodak test set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    if "kodak" in str(folder.resolve()).lower():
        raise ValueError(f"refusing to train on {folder}: Kodak is the test set")
    return files


class CropSampler:
    """Holds the training images in memory (uint8 H×W×3) and draws batches of random crops.

    Each crop: uniform position, horizontal flip with p=1/2, vertical flip with p=1/2. Deterministic
    given the seed and the number of batches drawn (the state is saved with checkpoints).
    """

    def __init__(self, folder: str | Path, crop: int, seed: int = 0) -> None:
        self.images = []
        for path in list_images(folder):
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if min(array.shape[:2]) < crop:
                raise ValueError(f"{path} is smaller than the {crop}px crop")
            self.images.append(array)
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, batch_size: int) -> torch.Tensor:
        """B×3×crop×crop float32 pixel values in [0, 255]."""
        out = np.empty((batch_size, self.crop, self.crop, 3), dtype=np.uint8)
        for b in range(batch_size):
            image = self.images[self.rng.integers(len(self.images))]
            top = self.rng.integers(image.shape[0] - self.crop + 1)
            left = self.rng.integers(image.shape[1] - self.crop + 1)
            patch = image[top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[b] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float()

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
