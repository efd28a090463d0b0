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


FLIPS = {"": (False, False, False), "h": (True, False, False), "v": (False, True, False),
         "hv": (True, True, False), "t": (False, False, True), "th": (True, False, True),
         "tv": (False, True, True), "thv": (True, True, True)}
"""Flipped copies of a photo (suffix → (left-right, up-down, transposed)): the eight symmetries of the square,
"t" exchanging rows and columns before any flip. The ŷ of a flipped photo is not the flipped ŷ, so a flip is
a new photo to encode, not an augmentation of cached latents."""


def flipped(pixels: np.ndarray, flip: str) -> np.ndarray:
    """``pixels`` (H×W×3) flipped as ``flip`` names it (``FLIPS``)."""
    left_right, up_down, transposed = FLIPS[flip]
    if transposed:
        pixels = pixels.transpose(1, 0, 2)
    return np.ascontiguousarray(pixels[::-1 if up_down else 1, ::-1 if left_right else 1])


def rescaled(pixels: np.ndarray, scale: float) -> np.ndarray:
    """``pixels`` resized by ``scale`` (Lanczos, as ``train-half`` was made from ``train``); 1: unchanged."""
    if scale == 1.0:
        return pixels
    height, width = pixels.shape[:2]
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def cache_pairs(model_file: Path, data: Path, out: Path, threads: int | None = None,
                flips: tuple[str, ...] = ("",), scale: float = 1.0) -> list[Path]:
    """Encode every training photo (resized by ``scale``, and its ``flips``) with the int8 model (whole image,
    golden path) and cache ŷ, the padded image and the teacher's reconstruction of the padded image as
    ``<stem>[_<flip>].npz``. Existing cache files are kept."""
    from fxlic.families import open_codec
    from fxlic.models import load

    model = load(path=model_file)
    codec = open_codec(model, workers=threads)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    jobs = [(path, flip) for path in list_images(data) for flip in flips]
    for path, flip in tqdm(jobs, desc=f"ŷ of {model.name} q{model.quality}", unit="img"):
        target = out / f"{path.stem}{'_' + flip if flip else ''}.npz"
        written.append(target)
        if target.exists():
            continue
        with Image.open(path) as im:
            pixels = flipped(rescaled(np.asarray(im.convert("RGB"), dtype=np.uint8), scale), flip)
        y_hat = codec.encode(pixels).y_hat
        teacher = output_to_pixels(codec.net.synthesis(y_hat))  # the whole padded image, as g_s computes it
        partial = target.with_name(target.name + ".partial")  # not *.npz: never read while it is written
        with partial.open("wb") as handle:
            np.savez(handle, y_hat=y_hat, image=pad_image(pixels), teacher=teacher, height=pixels.shape[0],
                     width=pixels.shape[1])
        partial.replace(target)
    return written


def photo_index(stem: str) -> int:
    """The photo number of a cache file's stem (``017``, ``017_hv`` → 17): flips of a photo share it."""
    return int(stem.split("_")[0])


def held_out(stem: str, every: int) -> bool:
    """Whether a photo is held out of training for validation: every ``every``-th photo (its number ≡ 0 mod
    ``every``), with all its flips and scales; 0: none."""
    return every > 0 and photo_index(stem) % every == 0


def load_pairs(folder: Path, keep=None) -> list[dict]:
    """The cached pairs of a folder, in name order: ``y_hat``, ``image``, ``teacher`` and the photo's latent
    height and width (``latent_h``, ``latent_w``: whole latents inside the photo, not its padding). ``keep``:
    a predicate on the file's stem."""
    pairs = []
    for path in sorted(p for p in Path(folder).glob("*.npz") if not p.name.endswith(".tmp.npz")):
        if keep is not None and not keep(path.stem):
            continue
        with np.load(path) as f:
            pair = {k: f[k] for k in ("y_hat", "image", "teacher")}
            pair["height"], pair["width"] = int(f["height"]), int(f["width"])
        pair["latent_h"], pair["latent_w"] = pair["height"] // LATENT_STRIDE, pair["width"] // LATENT_STRIDE
        pair["name"] = path.stem
        pairs.append(pair)
    if not pairs:
        raise FileNotFoundError(f"no cached pairs in {folder} (python -m fxlic.qat.lite_data)")
    return pairs


def load_training_pairs(folders: list[Path], holdout_every: int) -> list[dict]:
    """The pairs of every folder, without the held-out photos."""
    return [pair for folder in folders for pair in load_pairs(folder, lambda stem: not held_out(stem, holdout_every))]


class LatentCropSampler:
    """Random aligned crops of cached (ŷ, image, teacher x̂) pairs; deterministic given the seed.

    ``batch(B)`` → (ŷ B×M×(c+2m)×(c+2m) float32 integers, image B×3×16c×16c float32 in [0, 255], teacher the
    same) with c = crop / 16 latents and a ``margin`` of m latents around them: the student sees the latents
    around its crop, as it does inside a whole image, and is scored on the centre only (its output cropped by
    16·m pixels a side), so it does not spend its capacity on the zero padding at crop borders that a decode
    of a whole image never has. Crops (margin included) lie inside the photo, not its padding."""

    def __init__(self, folder: Path | list[Path], crop: int, seed: int = 0, margin: int = 0,
                 holdout_every: int = 0) -> None:
        if crop % LATENT_STRIDE:
            raise ValueError(f"crop must be a multiple of {LATENT_STRIDE} pixels, got {crop}")
        folders = folder if isinstance(folder, list) else [folder]
        self.pairs = load_training_pairs([Path(f) for f in folders], holdout_every)
        self.latent_crop = crop // LATENT_STRIDE
        self.margin = margin
        for pair in self.pairs:
            if min(pair["latent_h"], pair["latent_w"]) < self.latent_crop + 2 * margin:
                raise ValueError(f"{pair['name']}: smaller than the {crop}px crop and its margin")
        self.rng = np.random.default_rng(seed)
        # crops are drawn per latent, not per photo: a photo at half resolution gives a quarter of the crops
        area = np.array([max(p["latent_h"] - self.latent_crop - 2 * margin + 1, 1)
                         * max(p["latent_w"] - self.latent_crop - 2 * margin + 1, 1) for p in self.pairs], float)
        self.weights = area / area.sum()

    @property
    def latent_channels(self) -> int:
        return int(self.pairs[0]["y_hat"].shape[0])

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c, m, s = self.latent_crop, self.margin, LATENT_STRIDE
        latents = np.empty((batch_size, self.latent_channels, c + 2 * m, c + 2 * m), dtype=np.int8)
        images = np.empty((batch_size, c * s, c * s, 3), dtype=np.uint8)
        teachers = np.empty_like(images)
        for b in range(batch_size):
            pair = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
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
    parser.add_argument("--flips", nargs="+", default=[""], choices=sorted(FLIPS), metavar="FLIP",
                        help="also cache flipped photos: h (left-right), v (up-down), t (transposed) and their "
                             "compositions th, tv, hv, thv ('' = as is)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="resize the photos by this factor first (Lanczos), e.g. 0.7 for Kodak-sized photos")
    args = parser.parse_args(argv)
    if not 0.0 < args.scale <= 1.0:
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    if args.threads:
        torch.set_num_threads(args.threads)
    from fxlic.models import resolve

    model_file = args.model_file or resolve(args.model, args.quality)
    files = cache_pairs(model_file, args.data, args.out, args.threads, tuple(args.flips), args.scale)
    print(f"{len(files)} pairs in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
