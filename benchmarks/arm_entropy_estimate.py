"""Estimate the rANS decode rate of one Cortex-A53 core (ZCU102 / KV260) from this host's, through a ratio of a
comparable published integer workload: 7-Zip's LZMA decompression benchmark (a range decoder: integer
multiplies, shifts, table look-ups and data-dependent branches, the profile of rANS decoding).

* A53 figure (published): Raspberry Pi 3 Model B (BCM2837, 4 × Cortex-A53 at 1200 MHz, the ZCU102's A53 clock),
  sbc-bench v0.9.9, ``7z b -mmt1`` (p7zip 16.02), decompression at dictionary 2^22: 14770 KiB/s at 100 % usage,
  R/U 1262 MIPS. Source: github.com/ThomasKaiser/sbc-bench, file results/4hOp.txt (listed in Results.md as
  "Raspberry Pi 3 B (BCM2837) | 1200 MHz | 5.15 | Raspbian Sid").
* Host figure (measured here): ``7zz b -mmt1 -md22``, the same dictionary; R/U (rating per 100 % CPU usage, so a
  loaded machine's preemption does not lower it).
* fxlic's decode rate on this host: ``benchmarks/rans_speed.py``'s symbols and timer (thread CPU time), one
  thread, 256-pixel substreams decoded two at a time in lockstep, as the decoder does on every core.

estimate = host rate × A53 R/U / host R/U. Caveats: the host's 7-Zip (Debian 26.02, C code, no assembly) is newer
than the Pi's (16.02, 32-bit userland); newer LZMA decoders are faster, which lowers the ratio's A53 side and
the estimate (conservative). The benchmark symbols (3.2 bits, 118-entry tables on average) cost more per symbol
than real ŷ (mostly narrow tables, ~0.3–1 bit): real frames decode faster than this rate.

    python benchmarks/arm_entropy_estimate.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rans_speed import CHANNELS, LATENT_TILE, best, make_data  # noqa: E402

from fxlic.entropy.substreams import decode_substreams, encode_substreams  # noqa: E402

A53_REFERENCE = {"board": "Raspberry Pi 3 Model B (BCM2837, Cortex-A53)", "clock_mhz": 1200,
                 "tool": "p7zip 16.02 (32-bit), 7z b -mmt1", "dictionary": 22,
                 "decompress_kib_s": 14770, "usage_percent": 100, "decompress_ru_mips": 1262,
                 "source": "github.com/ThomasKaiser/sbc-bench results/4hOp.txt (sbc-bench v0.9.9, 2022-12-05)"}
FRAME_1080P = (1088, 1920)  # padded to 64
Y_CHANNELS, Z_CHANNELS = 128, 96


def seven_zip() -> dict:
    """This host's 7-Zip LZMA single-thread decompression figures at dictionary 2^22."""
    exe = next((shutil.which(name) for name in ("7zz", "7z", "7za") if shutil.which(name)), None)
    if exe is None:
        raise SystemExit("7-Zip (7zz, 7z or 7za) not found: install it to measure the host's rating")
    text = subprocess.run([exe, "b", "-mmt1", "-md22"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^22:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\|\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", text, re.M)
    if match is None:
        raise SystemExit(f"cannot parse the 7-Zip benchmark output:\n{text}")
    version = re.search(r"7-Zip[^\n]*", text)
    values = [int(v) for v in match.groups()]
    return {"tool": f"{Path(exe).name} b -mmt1 -md22 ({version.group(0).strip() if version else '?'})",
            "decompress_kib_s": values[4], "usage_percent": values[5], "decompress_ru_mips": values[6]}


def fxlic_rate(repeat: int) -> float:
    side = 128
    vals, ti, ts, _ = make_data(CHANNELS * side * side)
    v, t = vals.reshape(CHANNELS, side, side), ti.reshape(CHANNELS, side, side)
    subs = encode_substreams(v, t, ts, LATENT_TILE)
    assert np.array_equal(decode_substreams(subs, t, ts, LATENT_TILE, workers=1), v)
    return v.size / best(lambda: decode_substreams(subs, t, ts, LATENT_TILE, workers=1), repeat) / 1e6


def frame_ms(rate: float, cores: int) -> dict:
    """1080p entropy decode at ``rate`` symbols/s per core: ẑ, one stream, on one core, then ŷ's substreams
    (256-pixel tiles, 40 of them, more than the cores: dynamic scheduling keeps every core busy) on ``cores``."""
    h, w = FRAME_1080P
    z = Z_CHANNELS * (h // 64) * (w // 64)
    y = Y_CHANNELS * (h // 16) * (w // 16)
    substreams = -(-h // 256) * -(-w // 256)
    return {"z_symbols": z, "y_symbols": y, "y_substreams": substreams, "cores": cores,
            "ms": round(1e3 * (z / rate + y / (rate * min(cores, substreams))), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    host = seven_zip()
    rate = fxlic_rate(args.repeat)
    ratio = host["decompress_ru_mips"] / A53_REFERENCE["decompress_ru_mips"]
    estimate = rate / ratio
    result = {"date": started, "host_7zip": host, "a53_7zip": A53_REFERENCE,
              "host_over_a53": round(ratio, 3), "host_decode_msym_s": round(rate, 2),
              "a53_decode_msym_s_estimate": round(estimate, 2),
              "frame_1080p_one_core": frame_ms(estimate * 1e6, 1),
              "frame_1080p_four_cores": frame_ms(estimate * 1e6, 4)}
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
