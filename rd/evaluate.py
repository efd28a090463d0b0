"""``fxlic eval``: rate-distortion of the integer codec from real bitstreams.

For each quality of a shipped model (or given model files) and each image: encode to a real ``.fxl``
bitstream, decode it, and measure bpp from the bitstream's length, PSNR and MS-SSIM on 8-bit RGB, and
encode/decode seconds (integer reference, after a warm-up that compiles the Numba kernels). Writes a
per-image CSV per quality and ``<model>.json`` in CompressAI's layout, which mixes with the anchors.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .metrics import ms_ssim, psnr
from .results import RDCurve, save_curve

CSV_FIELDS = ["image", "width", "height", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"]


def evaluate_model_file(model_file: Path, images: list[Path], progress: bool = True,
                        decoder_file: Path | None = None, also_full: bool = False) -> list[dict]:
    """One row per image for one integer model file (decoded with ``decoder_file``'s g_s if given: the same
    streams, so the same bytes, another reconstruction). ``also_full``: each stream is decoded by the model's
    own g_s too, and each row gets that decode's figures under ``full_*`` keys (``full_psnr``, ...): the two
    decoders compared on the very same streams."""
    from fxlic import models
    from fxlic.families import open_codec
    from fxlic.imageio import read_image

    codec = open_codec(models.load(path=model_file, decoder_file=decoder_file))
    full = open_codec(models.load(path=model_file)) if also_full and decoder_file is not None else None
    warm = np.ascontiguousarray(read_image(images[0])[:64, :64])
    for c in (codec, full) if full is not None else (codec,):
        c.decode(c.encode(warm).bitstream)  # JIT warm-up, not timed
    rows = []
    label = model_file.stem if decoder_file is None else f"{model_file.stem}.{codec.model.decoder_name}"
    for path in tqdm(images, desc=f"eval {label}", unit="img", disable=not progress):
        pixels = read_image(path)
        t0 = time.perf_counter()
        bitstream = codec.encode(pixels).bitstream
        t1 = time.perf_counter()
        decoded = codec.decode(bitstream)
        t2 = time.perf_counter()
        height, width = pixels.shape[:2]
        row = {"image": path.name, "width": width, "height": height, "bytes": len(bitstream),
               "bpp": 8 * len(bitstream) / (width * height), "psnr": psnr(pixels, decoded),
               "ms_ssim": ms_ssim(pixels, decoded), "encode_s": t1 - t0, "decode_s": t2 - t1}
        if full is not None:
            t3 = time.perf_counter()
            reference = full.decode(bitstream)
            row.update({"full_psnr": psnr(pixels, reference), "full_ms_ssim": ms_ssim(pixels, reference),
                        "full_decode_s": time.perf_counter() - t3})
        rows.append(row)
    return rows


def summarize(name: str, per_quality: dict[int, list[dict]], description: str, dataset: str | None = None) -> RDCurve:
    qualities = sorted(per_quality)

    def mean(key: str) -> list[float]:
        return [float(np.mean([r[key] for r in per_quality[q]])) for q in qualities]

    return RDCurve(name=name, bpp=mean("bpp"), psnr=mean("psnr"), ms_ssim=mean("ms_ssim"),
                   encoding_time=mean("encode_s"), decoding_time=mean("decode_s"), description=description,
                   extra={"meta": {"qualities": qualities, "images": len(next(iter(per_quality.values()))),
                                   "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                                   "bpp_from": "bitstream file sizes",
                                   **({"dataset": dataset} if dataset else {})}})


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fxlic eval", description=__doc__)
    p.add_argument("--model", help="shipped model name (default: the default model)")
    p.add_argument("--qualities", metavar="Q,Q,…", help="comma-separated qualities (default: all shipped)")
    p.add_argument("--model-files", nargs="+", metavar="FILE.npz",
                   help="evaluate these model files instead of a shipped model")
    dec = p.add_mutually_exclusive_group()
    dec.add_argument("--decoder", metavar="NAME", help="decode with this lite decoder of each quality (default: "
                     "full; the streams, so the rates, are the model's own)")
    dec.add_argument("--decoder-files", nargs="+", metavar="FILE.npz", help="decode with these lite decoder files "
                     "(each names the model and quality whose streams it decodes)")
    p.add_argument("--with-full", action="store_true", help="with a lite decoder: decode every stream with the "
                   "model's own g_s too and write its results beside (<model>.json): both on the same streams")
    p.add_argument("--images", required=True, nargs="+", metavar="PATH",
                   help="test images: files and/or folders in any format `fxlic encode` reads (../shared/data/kodak)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for <model>.json and per-image CSVs (use a scratch folder, e.g. runs/eval: files "
                        "of the same name there are replaced)")
    p.add_argument("--name", help="curve name in the JSON (default: fxlic-<model>-int8)")
    p.add_argument("--dataset", help="data-set name recorded in the JSON and used as the plot title "
                                     "(default: the name of the first image folder)")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    from fxlic import models
    from fxlic.batch import collect_inputs
    from fxlic.errors import UsageError
    from fxlic.imageio import IMAGE_SUFFIXES

    args = eval_parser().parse_args(argv)
    images = collect_inputs(args.images, IMAGE_SUFFIXES)  # everything is checked before the output folder exists
    if args.model_files:
        files = {}
        for f in args.model_files:
            meta = _model_meta(Path(f))
            files[int(meta["quality"])] = Path(f)
        model_name = meta["name"]
    else:
        model_name = args.model or models.default_model()
        files = models.available().get(model_name, {})
        if args.qualities:
            wanted = {int(q) for q in args.qualities.split(",")}
            files = {q: f for q, f in files.items() if q in wanted}
    decoder_files: dict[int, Path] = {}
    decoder = args.decoder if args.decoder not in (None, models.FULL_DECODER) else None
    if args.decoder_files:
        for f in args.decoder_files:
            meta = _model_meta(Path(f))
            if meta.get("format") != "fxlic-decoder":
                raise UsageError(f"fxlic eval: {f} is not a decoder file")
            decoder_files[int(meta["decodes"]["quality"])] = Path(f)
            decoder = meta["name"]
        if not args.model_files:
            files = {q: f for q, f in files.items() if q in decoder_files}
    elif decoder:
        if args.model_files:
            raise UsageError("fxlic eval: --decoder names shipped decoders; with --model-files use --decoder-files")
        having = {q for q in files if decoder in models.decoders(model_name, q)}
        missing = sorted(set(files) - having) if args.qualities else []
        if missing:
            raise UsageError(f"fxlic eval: model {model_name!r} has no decoder {decoder!r} at qualities {missing}")
        files = {q: f for q, f in files.items() if q in having}
        decoder_files = {q: models.resolve_decoder(model_name, q, decoder) for q in files}
    if not files:
        raise UsageError(f"fxlic eval: no model files for {model_name!r}"
                         + (f" with decoder {decoder!r}" if decoder else ""))
    first = Path(args.images[0])
    dataset = args.dataset or (first.name if first.is_dir() else first.parent.name or first.stem)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_quality = {}
    suffix = f".{decoder}" if decoder else ""  # a lite decoder's results sit beside the full decoder's
    also_full = bool(decoder and args.with_full)
    full_per_quality = {}
    for quality, model_file in sorted(files.items()):
        rows = evaluate_model_file(model_file, images, decoder_file=decoder_files.get(quality), also_full=also_full)
        per_quality[quality] = rows
        _write_csv(out / f"{model_name}-q{quality}{suffix}.csv", rows)
        if also_full:  # the full decoder on the same streams: its own CSV, as `fxlic eval` without --decoder writes
            full_per_quality[quality] = [
                {**row, "psnr": row["full_psnr"], "ms_ssim": row["full_ms_ssim"], "decode_s": row["full_decode_s"]}
                for row in rows]
            _write_csv(out / f"{model_name}-q{quality}.csv", full_per_quality[quality])
        avg = {key: float(np.mean([r[key] for r in rows])) for key in CSV_FIELDS[4:]}
        print(f"q{quality}: bpp {avg['bpp']:.4f}  PSNR {avg['psnr']:.3f} dB  MS-SSIM {avg['ms_ssim']:.5f}"
              f"  enc {avg['encode_s']:.2f}s  dec {avg['decode_s']:.2f}s")
    described = f"model {model_name}" + (f", decoder {decoder}" if decoder else "")
    curve = summarize(args.name or f"fxlic-{model_name}{'-' + decoder if decoder else ''}-int8", per_quality,
                      f"fxlic integer reference, {described}, real bitstreams", dataset)
    if decoder:
        curve.extra["meta"]["decoder"] = decoder
    save_curve(curve, out / f"{model_name}{suffix}.json")
    print(f"wrote {out / (model_name + suffix + '.json')}")
    if also_full:
        full = summarize(f"fxlic-{model_name}-int8", full_per_quality,
                         f"fxlic integer reference, model {model_name}, real bitstreams (the streams decoded by "
                         f"{decoder} too)", dataset)
        save_curve(full, out / f"{model_name}.json")
        print(f"wrote {out / (model_name + '.json')} (full decoder, same streams)")
    return 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _model_meta(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(archive["meta"].tobytes().decode())
