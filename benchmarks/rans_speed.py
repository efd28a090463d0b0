"""Throughput of the rANS coder (fxlic.entropy.rans) on y-like data.

Tables: 64 log-spaced scales in [0.11, 64] x 4 mean fractions (256 discretized Gaussians, ENT-G1).
Symbols: each picks a table at random (scale log-uniform over [0.11, 30]) and draws a value from it.

    python benchmarks/rans_speed.py [--n 2000000] [--n-ref 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fxlic.entropy import decode_symbols, encode_symbols, gaussian_pmf, table_set_from_pmfs


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, object, float]:
    sigmas = np.geomspace(0.11, 64.0, 64)
    fracs = (0.0, 0.25, -0.5, -0.25)
    pmfs, offs = [], []
    for s in sigmas:
        for m in fracs:
            p, o = gaussian_pmf(float(s), m)
            pmfs.append(p)
            offs.append(o)
    ts = table_set_from_pmfs(pmfs, offs)
    rng = np.random.default_rng(seed)
    sig = np.exp(rng.uniform(np.log(0.11), np.log(30.0), n))
    si = np.clip(np.searchsorted(sigmas, sig), 0, 63)
    fi = rng.integers(0, 4, n)
    ti = (si * 4 + fi).astype(np.int32)
    mean = np.asarray(fracs)[fi]
    vals = np.round(rng.normal(mean, sigmas[si])).astype(np.int32)
    return vals, ti, ts, float(np.mean(ts.num_symbols))


def bench(fn, repeat: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--n-ref", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    vals, ti, ts, mean_n = make_data(args.n)
    data = encode_symbols(vals, ti, ts)  # also compiles / loads the numba cache
    assert np.array_equal(decode_symbols(data, ti, ts), vals)
    print(f"{args.n} symbols, {ts.num_tables} tables (mean n_t {mean_n:.0f}), {len(data) * 8 / args.n:.3f} bit/sym")
    t_enc = bench(lambda: encode_symbols(vals, ti, ts), args.repeat)
    t_dec = bench(lambda: decode_symbols(data, ti, ts), args.repeat)
    print(f"numba     encode {args.n / t_enc / 1e6:7.2f} M sym/s   decode {args.n / t_dec / 1e6:7.2f} M sym/s")

    r_vals, r_ti = vals[: args.n_ref], ti[: args.n_ref]
    r_data = encode_symbols(r_vals, r_ti, ts, impl="reference")
    assert r_data == encode_symbols(r_vals, r_ti, ts)
    t_enc = bench(lambda: encode_symbols(r_vals, r_ti, ts, impl="reference"), 1)
    t_dec = bench(lambda: decode_symbols(r_data, r_ti, ts, impl="reference"), 1)
    print(f"reference encode {args.n_ref / t_enc / 1e6:7.3f} M sym/s   decode {args.n_ref / t_dec / 1e6:7.3f} M sym/s")


if __name__ == "__main__":
    main()
