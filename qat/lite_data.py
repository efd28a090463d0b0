"""Training pairs for lite decoders: (ŷ, image, teacher's x̂) from the shipped int8 encoder.

A lite decoder (``fxlic.qat.lite``) learns to decode the *shipped* encoder's streams, so it trains on exactly
the latents those streams carry: ŷ as the golden integer encoder computes it on each whole training photo
(``fxlic.codec.Codec.encode``), not on crops, so the student sees what a decoder sees, neighbours included.
The teacher's decoded image (the int8 g_s on the same ŷ) is kept beside it as the output-distillation
target. Both are computed once per (model, quality) and cached as ``<stem>.npz`` (``y_hat`` int8 M×h×w,
``image`` uint8 16h×16w×3 edge-padded as the encoder pads it, ``teacher`` uint8 the same shape).

Crops are drawn in latents (``crop // 16`` per side) at latent-aligned positions; no flips (the ŷ of a flipped
photo is not the flipped ŷ). Training photos only: ``fxlic.qat.data.list_images`` refuses Kodak.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fxlic.codec import output_to_pixels, pad_image

from .data import list_images

LATENT_STRIDE = 16  # g_s upsamples ŷ by 2^4


def cache_pairs(model_file: Path, data: Path, out: Path, threads: int | None = None) -> list[Path]:
    """Encode every training photo with the int8 model (whole image, golden path) and cache ŷ, the padded
    image and the teacher's reconstruction of the padded image. Existing cache files are kept."""
    from fxlic.families import open_codec
    from fxlic.models import load

    model = load(path=model_file)
    codec = open_codec(model, workers=threads)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(list_images(data), desc=f"ŷ of {model.name} q{model.quality}", unit="img"):
        target = out / f"{path.stem}.npz"
        written.append(target)
        if target.exists():
            continue
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
        y_hat = codec.encode(pixels).y_hat
        teacher = output_to_pixels(codec.net.synthesis(y_hat))  # the whole padded image, as g_s computes it
        partial = target.with_name(target.name + ".partial")  # not *.npz: never read while it is written
        with partial.open("wb") as handle:
            np.savez(handle, y_hat=y_hat, image=pad_image(pixels), teacher=teacher, height=pixels.shape[0],
                     width=pixels.shape[1])
        partial.replace(target)
    return written


def load_pairs(folder: Path) -> list[dict]:
    """The cached pairs of a folder, in name order: ``y_hat``, ``image``, ``teacher`` and the photo's latent
    height and width (``latent_h``, ``latent_w``: whole latents inside the photo, not its padding)."""
    pairs = []
    for path in sorted(p for p in Path(folder).glob("*.npz") if not p.name.endswith(".tmp.npz")):
        with np.load(path) as f:
            pair = {k: f[k] for k in ("y_hat", "image", "teacher")}
            pair["height"], pair["width"] = int(f["height"]), int(f["width"])
        pair["latent_h"], pair["latent_w"] = pair["height"] // LATENT_STRIDE, pair["width"] // LATENT_STRIDE
        pair["name"] = path.stem
        pairs.append(pair)
    if not pairs:
        raise FileNotFoundError(f"no cached pairs in {folder} (python -m fxlic.qat.lite_data)")
    return pairs


class LatentCropSampler:
    """Random aligned crops of cached (ŷ, image, teacher x̂) pairs; deterministic given the seed.

    ``batch(B)`` → (ŷ B×M×(c+2m)×(c+2m) float32 integers, image B×3×16c×16c float32 in [0, 255], teacher the
    same) with c = crop / 16 latents and a ``margin`` of m latents around them: the student sees the latents
    around its crop, as it does inside a whole image, and is scored on the centre only (its output cropped by
    16·m pixels a side), so it does not spend its capacity on the zero padding at crop borders that a decode
    of a whole image never has. Crops (margin included) lie inside the photo, not its padding."""

    def __init__(self, folder: Path, crop: int, seed: int = 0, margin: int = 0) -> None:
        if crop % LATENT_STRIDE:
            raise ValueError(f"crop must be a multiple of {LATENT_STRIDE} pixels, got {crop}")
        self.pairs = load_pairs(folder)
        self.latent_crop = crop // LATENT_STRIDE
        self.margin = margin
        for pair in self.pairs:
            if min(pair["latent_h"], pair["latent_w"]) < self.latent_crop + 2 * margin:
                raise ValueError(f"{pair['name']}: smaller than the {crop}px crop and its margin")
        self.rng = np.random.default_rng(seed)

    @property
    def latent_channels(self) -> int:
        return int(self.pairs[0]["y_hat"].shape[0])

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, m, s = self.latent_crop, self.margin, LATENT_STRIDE
        latents = np.empty((batch_size, self.latent_channels, c + 2 * m, c + 2 * m), dtype=np.int8)
        images = np.empty((batch_size, c * s, c * s, 3), dtype=np.uint8)
        teachers = np.empty_like(images)
        for b in range(batch_size):
            pair = self.pairs[self.rng.integers(len(self.pairs))]
            top = int(self.rng.integers(pair["latent_h"] - c - 2 * m + 1))
            left = int(self.rng.integers(pair["latent_w"] - c - 2 * m + 1))
            latents[b] = pair["y_hat"][:, top : top + c + 2 * m, left : left + c + 2 * m]
            top, left = top + m, left + m
            rows, cols = slice(top * s, (top + c) * s), slice(left * s, (left + c) * s)
            images[b] = pair["image"][rows, cols]
            teachers[b] = pair["teacher"][rows, cols]

        def nchw(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).permute(0, 3, 1, 2).float()

        return torch.from_numpy(latents).float(), nchw(images), nchw(teachers)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fxlic.qat.lite_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-file", type=Path, default=None, help="int8 model file (default: shipped)")
    parser.add_argument("--model", default="meanscale")
    parser.add_argument("--quality", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fxlic.models import resolve

    model_file = args.model_file or resolve(args.model, args.quality)
    files = cache_pairs(model_file, args.data, args.out, args.threads)
    print(f"{len(files)} pairs in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
