"""How often a single-bit flip in a real y stream survives the rANS end-of-stream check (ENT-8).

For each image: encode with the default model; flip one random bit of the y stream at a time (the container
CRC would be recomputed by whoever forges it, so only the rANS checks stand), entropy-decode the y stream
with the tables the (unchanged) z stream selects, and count flips that decode without an error. Also
counts the symbols of frequency 1 in the model's y tables (they carry no redundancy, like escapes).

    python benchmarks/ent8_flips.py --images ../shared/data/kodak --limit 4 --flips 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def frequency_one_symbols(tables) -> tuple[int, int]:
    freq = np.diff(tables.cdf.astype(np.int64), axis=1)
    n = tables.num_symbols.astype(np.int64)
    valid = np.arange(freq.shape[1])[None, :] < n[:, None]
    return int(np.count_nonzero((freq == 1) & valid)), int(valid.sum())


def main() -> int:
    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.entropy.bitstream import unpack
    from fxlic.entropy.rans import EntropyDecodeError, decode_symbols
    from fxlic.imageio import read_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="../shared/data/kodak")
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--flips", type=int, default=2000, help="random single-bit flips per image")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    codec = Codec(models.load())
    ones, total = frequency_one_symbols(codec.model.y_tables)
    print(f"model {codec.model.name} q{codec.model.quality}: {ones} of {total} y-table symbols have frequency 1")
    rng = np.random.default_rng(args.seed)
    passed_all = flips_all = 0
    for path in sorted(Path(args.images).glob("*.png"))[: args.limit]:
        pixels = read_image(path)
        result = codec.encode(pixels, substream_tile=0)  # one y stream: ENT-8 over the whole image, as documented
        _, streams = unpack(result.bitstream)
        y_stream = streams[1]
        table = result.y_table_index.reshape(-1)
        tables = codec.model.y_tables
        index = result.y_hat.reshape(-1).astype(np.int64) - result.y_mean.reshape(-1) - tables.offset[table]
        last = tables.num_symbols[table].astype(np.int64) - 1  # ESC
        escaped = (index < 0) | (index >= last)
        coded = np.where(escaped, last, index)
        freq = tables.cdf[table, coded + 1].astype(np.int64) - tables.cdf[table, coded]
        passed = 0
        for _ in range(args.flips):
            bit = int(rng.integers(0, 8 * len(y_stream)))
            data = bytearray(y_stream)
            data[bit // 8] ^= 1 << (bit % 8)
            try:
                decode_symbols(bytes(data), table, codec.model.y_tables)
                passed += 1
            except EntropyDecodeError:
                pass
        passed_all += passed
        flips_all += args.flips
        print(f"{path.name}: y stream {len(y_stream)} B, {int(escaped.sum())} escapes and "
              f"{int((freq == 1).sum())} frequency-1 symbols in {table.size}; {passed}/{args.flips} single-bit "
              f"flips pass ENT-8 ({1000 * passed / args.flips:.1f} per 1,000)")
    print(f"all: {passed_all}/{flips_all} ({1000 * passed_all / flips_all:.2f} per 1,000) pass the rANS checks; "
          "the container CRC32 rejects every one of them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
