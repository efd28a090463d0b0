"""Stream and pixel hashes of one platform, and the comparison of two platforms (tools/cross_arch_check.sh).

Runs on the golden path only (numpy, pillow; numba optional), so the same file runs on the host and in an
emulated root of another architecture.

    # on each platform: encode every image (stream + own decode), and decode the other platform's streams
    python tools/cross_arch_hashes.py run --images IMG[@TOP,LEFT,HEIGHT,WIDTH] ... --out DIR [--decode OTHER_DIR]
    # on the host: decode the target's streams too, then compare the two folders (JSON + Markdown table)
    python tools/cross_arch_hashes.py decode TARGET_DIR --into HOST_DIR
    python tools/cross_arch_hashes.py compare HOST_DIR TARGET_DIR --report results/cross-arch/aarch64

``run`` writes ``DIR/<name>.fxl`` and ``DIR/hashes.json``: platform, versions, and per image the SHA-256 of
the stream, of the decoded ŷ and of the decoded pixels; with ``--decode`` also, per stream of the other
platform, the SHA-256 of its decoded ŷ and pixels. A foreign stream byte-identical to this platform's own
is still decoded (the point is to decode what the other machine wrote), while this platform's own stream
is decoded only when it differs from the foreign one, to halve the work under emulation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_images(specs: list[str]) -> dict:
    import numpy as np

    from fxlic.imageio import read_image

    images = {}
    for spec in specs:
        path, _, crop = spec.partition("@")
        pixels = read_image(path)
        name = Path(path).stem
        if crop:
            top, left, height, width = (int(v) for v in crop.split(","))
            pixels = np.ascontiguousarray(pixels[top : top + height, left : left + width])
            name = f"{name}_{top}_{left}_{height}x{width}"
        images[name] = pixels
    return images


def _platform() -> dict:
    import numpy as np

    from fxlic.entropy.rans import default_impl

    info = {"machine": platform.machine(), "byteorder": sys.byteorder, "python": platform.python_version(),
            "numpy": np.__version__, "entropy_impl": default_impl(), "conv_impl": "blas"}
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    return info


def run(args: argparse.Namespace) -> int:
    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model_file(args.model_file or models.resolve())
    codec = Codec(model)
    result = {"platform": _platform(), "model": {"name": model.name, "quality": model.quality,
              "hash": codec.model_hash.hex()}, "images": {}, "decoded_foreign": {}}
    foreign_dir = Path(args.decode) if args.decode else None
    for name, pixels in _load_images(args.images).items():
        start = time.process_time()
        stream = codec.encode(pixels).bitstream
        encode_s = time.process_time() - start
        (out / f"{name}.fxl").write_bytes(stream)
        entry = {"width": int(pixels.shape[1]), "height": int(pixels.shape[0]), "stream_bytes": len(stream),
                 "stream_sha256": _sha(stream), "encode_cpu_s": round(encode_s, 2)}
        foreign = foreign_dir / f"{name}.fxl" if foreign_dir else None
        if foreign is None or not foreign.is_file() or foreign.read_bytes() != stream:
            trace: dict = {}
            start = time.process_time()
            decoded = codec.decode(stream, trace=trace)
            entry.update(decode_cpu_s=round(time.process_time() - start, 2),
                         y_hat_sha256=_sha(trace["y_hat"].tobytes()), pixels_sha256=_sha(decoded.tobytes()))
        result["images"][name] = entry
        print(f"{name}: stream {len(stream)} B {entry['stream_sha256'][:16]} ({encode_s:.1f} s CPU)", flush=True)
    if foreign_dir:
        result["decoded_foreign"] = _decode_foreign(codec, foreign_dir)
    (out / "hashes.json").write_text(json.dumps(result, indent=1))
    return 0


def _decode_foreign(codec, folder: Path) -> dict:
    """Decode every .fxl stream in ``folder``: its ŷ and pixel hashes, or the decoder's error."""
    decoded_foreign = {}
    for path in sorted(folder.glob("*.fxl")):
        trace: dict = {}
        start = time.process_time()
        try:
            decoded = codec.decode(path.read_bytes(), trace=trace)
        except ValueError as exc:  # DecodeError / BitstreamError: recorded, not raised
            decoded_foreign[path.stem] = {"error": str(exc)}
            continue
        seconds = time.process_time() - start
        decoded_foreign[path.stem] = {
            "stream_sha256": _sha(path.read_bytes()), "y_hat_sha256": _sha(trace["y_hat"].tobytes()),
            "pixels_sha256": _sha(decoded.tobytes()), "decode_cpu_s": round(seconds, 2)}
        print(f"decoded {path}: pixels {decoded_foreign[path.stem]['pixels_sha256'][:16]} ({seconds:.1f} s CPU)",
              flush=True)
    return decoded_foreign


def decode(args: argparse.Namespace) -> int:
    """Add this platform's decodes of another platform's streams to an existing ``run`` folder."""
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    hashes = Path(args.into) / "hashes.json"
    result = json.loads(hashes.read_text())
    from fxlic import models

    codec = Codec(load_model_file(args.model_file or models.resolve()))
    result["decoded_foreign"] = _decode_foreign(codec, Path(args.foreign))
    hashes.write_text(json.dumps(result, indent=1))
    return 0


def compare(args: argparse.Namespace) -> int:
    """Host vs target: streams equal, and each side's decode of the other's stream equals its own decode."""
    host = json.loads((Path(args.host) / "hashes.json").read_text())
    target = json.loads((Path(args.target) / "hashes.json").read_text())
    rows, ok = [], True

    def pixels(side: dict, other: dict, name: str) -> str | None:
        """Decoded pixel hash of the stream this side made (own decode, or the other side decoding it)."""
        return side["images"][name].get("pixels_sha256") or other["decoded_foreign"].get(name, {}).get("pixels_sha256")

    for name, h in host["images"].items():
        t = target["images"].get(name)
        if t is None:
            rows.append({"image": name, "missing_on_target": True})
            ok = False
            continue
        host_pixels = pixels(host, target, name)
        target_decodes_host = target["decoded_foreign"].get(name, {})
        host_decodes_target = host["decoded_foreign"].get(name, {})
        row = {"image": name, "size": f"{h['width']}x{h['height']}", "stream_bytes": h["stream_bytes"],
               "host_stream_sha256": h["stream_sha256"], "target_stream_sha256": t["stream_sha256"],
               "streams_identical": h["stream_sha256"] == t["stream_sha256"],
               "host_pixels_sha256": host_pixels,
               "target_decode_of_host_stream_pixels_sha256": target_decodes_host.get("pixels_sha256"),
               "target_decode_error": target_decodes_host.get("error"),
               "host_decode_of_target_stream_pixels_sha256": host_decodes_target.get("pixels_sha256"),
               "target_encode_cpu_s": t.get("encode_cpu_s"), "target_decode_cpu_s":
               target_decodes_host.get("decode_cpu_s"), "host_encode_cpu_s": h.get("encode_cpu_s"),
               "host_decode_cpu_s": h.get("decode_cpu_s")}
        row["pixels_identical"] = (host_pixels is not None
                                   and row["target_decode_of_host_stream_pixels_sha256"] == host_pixels
                                   and row["host_decode_of_target_stream_pixels_sha256"] == host_pixels)
        ok &= row["streams_identical"] and row["pixels_identical"]
        rows.append(row)
    report = {"host": host["platform"], "target": target["platform"], "model": host["model"],
              "target_model_hash_equal": host["model"]["hash"] == target["model"]["hash"], "images": rows,
              "all_identical": bool(ok and rows)}
    prefix = Path(args.report)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| image | size | stream bytes | stream SHA-256 (host) | streams equal | pixels SHA-256 (host decode) "
             "| target decodes host stream | host decodes target stream | target CPU s (enc / dec) |",
             "|---|---|---:|---|:---:|---|:---:|:---:|---:|"]
    for row in rows:
        if row.get("missing_on_target"):
            lines.append(f"| {row['image']} | missing on target | | | | | | | |")
            continue
        lines.append(
            f"| {row['image']} | {row['size']} | {row['stream_bytes']} | `{row['host_stream_sha256'][:16]}…` "
            f"| {'yes' if row['streams_identical'] else '**NO**'} | `{(row['host_pixels_sha256'] or '?')[:16]}…` "
            f"| {_same(row['target_decode_of_host_stream_pixels_sha256'], row['host_pixels_sha256'])} "
            f"| {_same(row['host_decode_of_target_stream_pixels_sha256'], row['host_pixels_sha256'])} "
            f"| {row['target_encode_cpu_s']} / {row['target_decode_cpu_s']} |")
    (prefix.parent / (prefix.name + ".table.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("ALL IDENTICAL" if report["all_identical"] else "DIFFERENCES FOUND")
    return 0 if report["all_identical"] else 1


def _same(got: str | None, expected: str | None) -> str:
    if got is None:
        return "not run"
    return "identical" if got == expected else "**DIFFERENT**"


def main() -> int:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--images", nargs="+", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--decode", help="folder of another platform's `run` (its .fxl streams are decoded here)")
    r.add_argument("--model-file")
    d = sub.add_parser("decode")
    d.add_argument("foreign", help="folder of another platform's `run`")
    d.add_argument("--into", required=True, help="this platform's `run` folder (hashes.json is updated)")
    d.add_argument("--model-file")
    c = sub.add_parser("compare")
    c.add_argument("host")
    c.add_argument("target")
    c.add_argument("--report", required=True, help="output prefix: PREFIX.json and PREFIX.table.md")
    args = p.parse_args()
    return {"run": run, "decode": decode, "compare": compare}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
