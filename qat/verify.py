"""Layer-by-layer equality of the integer reference with the QAT checkpoint's fake-quant forward.

For each image, the QAT model runs in float64 (exact: docs/fixed-point.md, FXP "fake-quant exactness")
with a hook on every layer; each output is turned back into its int8 codes, round(v · 2^f_out), and
compared element for element with the integer reference's trace — integer codes, never floats.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fxlic.codec import Codec, pad_image
from fxlic.families import open_codec
from fxlic.imageio import read_image
from fxlic.reference.modelfile import load_decoder_file, load_model_file, with_decoder

from .export import load_checkpoint_model, model_from_model_file
from .fakequant import quantize_activation_codes
from .models import INPUT_FIX, MeanScaleHyperprior


@torch.no_grad()
def traced_forward(model: torch.nn.Module, pixels: np.ndarray,
                   taps: list[tuple[str, torch.nn.Module, Callable[[torch.Tensor], np.ndarray]]]
                   ) -> tuple[dict[str, np.ndarray], dict]:
    """The model's forward pass in float64 on one uint8 H×W×3 image, padded and offset as the codec does
    (q = (p − 128) / 2^INPUT_FIX), with ``codes[name] = to_codes(output)`` recorded for each tap
    ``(name, module, to_codes)`` by a forward hook (removed afterwards). Returns (codes, the model's output)."""
    codes: dict[str, np.ndarray] = {}
    handles = [module.register_forward_hook(
        lambda _module, _inputs, output, name=name, fn=fn: codes.__setitem__(name, fn(output)))
        for name, module, fn in taps]
    try:
        x = torch.from_numpy(pad_image(pixels).astype(np.float64)).permute(2, 0, 1)[None]
        out = model((x - 128.0) / 2.0**INPUT_FIX, noisy_rate=False)
    finally:
        for handle in handles:
            handle.remove()
    return codes, out


def qat_layer_codes(model: MeanScaleHyperprior, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """int codes of every QAT layer output (and ŷ, ẑ) for one uint8 H×W×3 image (padded like the codec)."""
    model = model.double().eval()
    taps = [(name, layer, lambda output, layer=layer: quantize_activation_codes(output[0], layer.fix_out).numpy())
            for name, layer in model.named_qconvs()]
    codes, out = traced_forward(model, pixels, taps)
    # g_a's last conv runs inside encode_latents (with its ŷ twin, FXP-Q6), not through its hook
    last = model.g_a[-1]
    codes.setdefault(f"g_a.{len(model.g_a) - 1}", quantize_activation_codes(out["y"][0], last.fix_out).numpy())
    codes["y_hat"] = out["y_hat"][0].round().long().numpy()
    codes["z_hat"] = out["z_hat"][0].round().long().numpy()
    if "y_tilde" in out:  # ChARM: the synthesis input ŷ + r at its fix position
        codes["y_tilde"] = quantize_activation_codes(out["y_tilde"][0], int(model.fix_y_tilde)).numpy()
    return codes


def compare(model: MeanScaleHyperprior, codec: Codec, images: list[Path]) -> dict[str, dict[str, int]]:
    """Per layer: elements compared and mismatches, over all images; also the encode→decode latents."""
    stats: dict[str, dict[str, int]] = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    for path in tqdm(images, desc="layer equality", unit="img"):
        compare_image(model, codec, read_image(path), stats, path.name)
    return dict(stats)


def compare_image(model: MeanScaleHyperprior, codec: Codec, pixels: np.ndarray,
                  stats: dict[str, dict[str, int]], label: str = "image",
                  layer_codes: Callable[..., dict[str, np.ndarray]] = qat_layer_codes) -> None:
    """Add one image's per-layer element and mismatch counts to ``stats``. ``layer_codes(model, pixels)`` gives the
    model's codes (default: the fxlic QAT model's; ``fxlic.qat.brevitas_dpu.brevitas_layer_codes`` for Brevitas)."""
    expected = layer_codes(model, pixels)
    result = codec.encode(pixels, keep_trace=True)
    decoded_trace: dict[str, np.ndarray] = {}
    codec.decode(result.bitstream, trace=decoded_trace)
    # every layer is checked where it runs: g_a, h_a, h_s on the encoder; h_s, g_s on the decoder
    sides = (("", result.trace), ("decoded ", decoded_trace))
    for name, want in expected.items():
        found = False
        for side, trace in sides:
            if name not in trace:
                continue
            got = trace[name].astype(np.int64)
            if got.shape != want.shape:
                raise AssertionError(f"{label} {side}{name}: shape {got.shape} != {want.shape}")
            row = stats[side + name]
            row["elements"] += want.size
            row["mismatches"] += int(np.count_nonzero(got != want))
            found = True
        if not found:
            raise AssertionError(f"{label}: layer {name} missing from both integer traces")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.verify", description=__doc__)
    p.add_argument("model_file", help="integer model file (.npz)")
    p.add_argument("images", nargs="+", help="images or a folder of PNGs")
    p.add_argument("--checkpoint", help="QAT checkpoint to compare with (default: the QAT model rebuilt from "
                   "the model file's int8 weights and fix positions)")
    p.add_argument("--decoder-file", help="a lite decoder file of the model: its g_s replaces the model's on the "
                   "decoder side (docs/model-file.md, decoder files)")
    p.add_argument("--decoder-checkpoint", help="the lite decoder's QAT checkpoint (fxlic.qat.lite) to compare its "
                   "g_s with (default: rebuilt from the decoder file)")
    p.add_argument("--json", help="write the per-layer table here")
    args = p.parse_args(argv)
    model_file = load_model_file(args.model_file)
    if args.decoder_file:
        model_file = with_decoder(model_file, load_decoder_file(args.decoder_file))
    model = load_checkpoint_model(args.checkpoint)[0] if args.checkpoint else model_from_model_file(model_file)
    if args.decoder_checkpoint:
        if not args.decoder_file:
            raise SystemExit("--decoder-checkpoint needs the --decoder-file it was exported to")
        from .lite import load_student

        model.g_s = load_student(args.decoder_checkpoint)[0].g_s
    codec = open_codec(model_file)
    images = [Path(i) for i in args.images]
    if len(images) == 1 and images[0].is_dir():
        images = sorted(images[0].glob("*.png"))
    stats = compare(model, codec, images)
    total_bad = 0
    print(f"{'layer':24s} {'elements':>12s} {'mismatches':>10s}")
    for name, row in stats.items():
        print(f"{name:24s} {row['elements']:12d} {row['mismatches']:10d}")
        total_bad += row["mismatches"]
    print(f"{len(images)} images, {sum(r['elements'] for r in stats.values())} elements, {total_bad} mismatches")
    if args.json:
        Path(args.json).write_text(json.dumps({"images": len(images), "layers": stats}, indent=1))
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
