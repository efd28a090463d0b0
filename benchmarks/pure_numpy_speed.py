"""Decode (and encode) CPU seconds of the pure-NumPy path against the Numba path, same streams, same pixels.

Paths (``Codec(model, impl=conv, entropy_impl=rans)``):

* ``numba``       conv "numba" (int32/int64 loops), rANS "numba": the all-Numba path;
* ``default``     conv "blas" (exact float32/float64 GEMM, NumPy), rANS "numba": what ``Codec(model)`` runs;
* ``pure-numpy``  conv "blas", rANS "reference" (plain Python ints): what runs with ``FXLIC_PURE_NUMPY=1`` or
  without Numba installed — no Numba import at all;
* ``integer-only`` conv "reference" (int64 tensordot), rANS "reference": no float anywhere (slowest).

Every path must give the default path's stream bytes and decoded pixels (the script exits 1 otherwise).
Times are process CPU seconds (all threads), best of ``--repeat``; run single-threaded for a fair
comparison, e.g.

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/pure_numpy_speed.py ../shared/data/kodak/kodim23.png ../shared/data/kodak/kodim05.png
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

PATHS = {"numba": ("numba", "numba"), "default": ("blas", "numba"), "pure-numpy": ("blas", "reference"),
         "integer-only": ("reference", "reference")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    args = p.parse_args()

    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.imageio import read_image
    from fxlic.reference.modelfile import load_model_file

    model = load_model_file(models.resolve())
    reference = Codec(model)
    ok = True
    print("| image | path | encode CPU s | decode CPU s | stream = default | pixels = default |")
    print("|---|---|---:|---:|:---:|:---:|")
    for image in args.images:
        pixels = read_image(image)
        stream = reference.encode(pixels).bitstream
        expected = hashlib.sha256(reference.decode(stream).tobytes()).hexdigest()
        for name in args.paths:
            conv, rans = PATHS[name]
            codec = Codec(model, impl=conv, entropy_impl=rans)
            codec.decode(codec.encode(pixels[:64, :64].copy()).bitstream)  # warm-up: JIT compile, caches
            encode_s, decode_s = [], []
            for _ in range(args.repeat):
                start = time.process_time()
                own = codec.encode(pixels).bitstream
                encode_s.append(time.process_time() - start)
                start = time.process_time()
                decoded = codec.decode(stream)
                decode_s.append(time.process_time() - start)
            same_stream = own == stream
            same_pixels = hashlib.sha256(decoded.tobytes()).hexdigest() == expected
            ok &= same_stream and same_pixels
            print(f"| {image.rsplit('/', 1)[-1]} | {name} | {min(encode_s):.2f} | {min(decode_s):.2f} "
                  f"| {'yes' if same_stream else 'NO'} | {'yes' if same_pixels else 'NO'} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
