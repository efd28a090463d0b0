"""Throughput of the rANS coder (fxlic.entropy) on y-like data, beside CompressAI's and constriction's coders.

Tables: 64 log-spaced scales in [0.11, 64] x 4 mean fractions (256 discretized Gaussians, ENT-G1).
Symbols: each picks a table at random (scale log-uniform over [0.11, 30]) and draws a value from it; they are
laid out as a C × H × W latent (128 channels) and coded as fxlic codes ŷ: one rANS substream per 16 × 16
latents (the default 256-pixel substream tile, docs/entropy.md ENT-S1), and as one stream.

The same symbols (values and table of every symbol) go through
* fxlic: ``entropy.substreams`` on one thread and on every core, and ``entropy.rans`` as one stream;
* CompressAI's C++ coder (``compressai.ans.RansEncoder/RansDecoder.*_with_indexes``, the calls its
  GaussianConditional makes), with the same integer CDF rows (its layout is ours: n_t + 1 entries, the last
  symbol the escape); the time includes the Python-list conversion its pybind API requires;
* constriction's ``stream.stack.AnsCoder`` and ``stream.queue`` range coder with ``Categorical`` models of the
  same frequencies (re-quantized to its 24-bit precision), one call per table on that table's symbols
  (symbols grouped by table: constriction's fast path for fixed models; per-symbol models through its
  ``Categorical`` family would need an n × 513 float array), and with its ``QuantizedGaussian`` family on the
  same values with per-symbol (mean, σ), as a mean-scale model would use it.

Single-thread rates use the thread's CPU time (``time.thread_time``), best of ``--repeat``, so that a shared,
loaded machine (other processes preempting this one) does not change them much; ``*_wall`` keys give
wall-clock rates beside them. The all-threads rate is wall clock (CPU time cannot show parallelism).

    python benchmarks/rans_speed.py [--n 2000000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np

from fxlic.entropy import decode_symbols, encode_symbols, gaussian_pmf, table_set_from_pmfs
from fxlic.entropy.substreams import decode_substreams, encode_substreams

SIGMAS = np.geomspace(0.11, 64.0, 64)
FRACS = (0.0, 0.25, -0.5, -0.25)
CHANNELS = 128
LATENT_TILE = 16  # 256-pixel substream tiles


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, object, float]:
    """(values, table index, tables, mean n_t): n symbols, each from a random table of the 256."""
    pmfs, offs = [], []
    for s in SIGMAS:
        for m in FRACS:
            p, o = gaussian_pmf(float(s), m)
            pmfs.append(p)
            offs.append(o)
    ts = table_set_from_pmfs(pmfs, offs)
    rng = np.random.default_rng(seed)
    sig = np.exp(rng.uniform(np.log(0.11), np.log(30.0), n))
    si = np.clip(np.searchsorted(SIGMAS, sig), 0, 63)
    fi = rng.integers(0, 4, n)
    ti = (si * 4 + fi).astype(np.int32)
    mean = np.asarray(FRACS)[fi]
    vals = np.round(rng.normal(mean, SIGMAS[si])).astype(np.int32)
    return vals, ti, ts, float(np.mean(ts.num_symbols))


def best(fn, repeat: int, clock=time.thread_time) -> float:  # noqa: ANN001
    """Shortest of ``repeat`` runs of ``fn`` on ``clock``."""
    shortest = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        shortest = min(shortest, clock() - t0)
    return shortest


def rate(n: int, seconds: float) -> float:
    return round(n / seconds / 1e6, 2)


def fxlic_rates(vals: np.ndarray, ti: np.ndarray, ts, repeat: int, threads: int) -> dict:
    shape = (CHANNELS, -1, int(np.sqrt(vals.size // CHANNELS)))
    v, t = vals.reshape(shape), ti.reshape(shape)
    n = v.size
    subs = encode_substreams(v, t, ts, LATENT_TILE)  # also loads the Numba cache
    one = encode_symbols(v, t, ts)
    assert np.array_equal(decode_substreams(subs, t, ts, LATENT_TILE, workers=threads), v)
    assert np.array_equal(decode_symbols(one, t, ts), v)
    out = {"shape": list(v.shape), "substreams": len(subs), "bits_per_symbol": round(8 * sum(map(len, subs)) / n, 4),
           "bits_per_symbol_one_stream": round(8 * len(one) / n, 4)}
    dec1 = lambda: decode_substreams(subs, t, ts, LATENT_TILE, workers=1)  # noqa: E731
    decn = lambda: decode_substreams(subs, t, ts, LATENT_TILE, workers=threads)  # noqa: E731
    out["decode_msym_s"] = rate(n, best(dec1, repeat))
    out["decode_msym_s_wall"] = rate(n, best(dec1, repeat, time.perf_counter))
    out["decode_msym_s_all_threads"] = rate(n, best(decn, repeat, time.perf_counter))
    out["decode_msym_s_all_threads_cpu"] = rate(n, best(decn, repeat, time.process_time))  # per CPU-second
    out["decode_msym_s_one_stream"] = rate(n, best(lambda: decode_symbols(one, t, ts), repeat))
    out["encode_msym_s"] = rate(n, best(lambda: encode_substreams(v, t, ts, LATENT_TILE, workers=1), repeat))
    out["encode_msym_s_all_threads"] = rate(n, best(lambda: encode_substreams(v, t, ts, LATENT_TILE, workers=threads),
                                                    repeat, time.perf_counter))
    return out


def compressai_rates(vals: np.ndarray, ti: np.ndarray, ts, repeat: int) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from compressai.ans import RansDecoder, RansEncoder
    except ImportError:
        return {"compressai": "not installed (pip install -e '.[dev]')"}
    n_t = ts.num_symbols.astype(np.int64)
    cdfs = [ts.cdf[t, : n_t[t] + 1].astype(np.int64).tolist() for t in range(ts.num_tables)]
    lengths = (n_t + 1).tolist()
    offsets = ts.offset.astype(np.int64).tolist()
    symbols, indexes = vals.tolist(), ti.tolist()
    data = RansEncoder().encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
    assert RansDecoder().decode_with_indexes(data, indexes, cdfs, lengths, offsets) == symbols
    n = vals.size
    return {"compressai_decode_msym_s": rate(n, best(
                lambda: RansDecoder().decode_with_indexes(data, indexes, cdfs, lengths, offsets), repeat)),
            "compressai_decode_msym_s_wall": rate(n, best(
                lambda: RansDecoder().decode_with_indexes(data, indexes, cdfs, lengths, offsets), repeat,
                time.perf_counter)),
            "compressai_encode_msym_s": rate(n, best(
                lambda: RansEncoder().encode_with_indexes(symbols, indexes, cdfs, lengths, offsets), repeat)),
            "compressai_bits_per_symbol": round(8 * len(data) / n, 4)}


def constriction_rates(vals: np.ndarray, ti: np.ndarray, ts, repeat: int, n_gaussian: int) -> dict:
    try:
        import constriction
    except ImportError:
        return {"constriction": "not installed (pip install -e '.[dev]')"}
    stream, model = constriction.stream, constriction.stream.model
    off = ts.offset.astype(np.int64)
    index = vals.astype(np.int64) - off[ti]
    assert np.all((index >= 0) & (index < ts.num_symbols[ti] - 1)), "escapes: constriction's grouped run has none"
    order = np.argsort(ti, kind="stable")  # grouped by table
    groups = np.split(index[order].astype(np.int32), np.cumsum(np.bincount(ti, minlength=ts.num_tables))[:-1])
    models = [model.Categorical(ts.freqs(t).astype(np.float64) / 65536, perfect=False) for t in range(ts.num_tables)]
    n = vals.size
    out = {}

    ans = stream.stack.AnsCoder()
    for t in range(ts.num_tables - 1, -1, -1):
        ans.encode_reverse(groups[t], models[t])
    packed = ans.get_compressed()

    def stack_decode() -> list:
        coder = stream.stack.AnsCoder(packed)
        return [coder.decode(models[t], len(groups[t])) for t in range(ts.num_tables)]

    assert all(np.array_equal(a, b) for a, b in zip(stack_decode(), groups))
    out["constriction_decode_msym_s"] = rate(n, best(stack_decode, repeat))
    out["constriction_bits_per_symbol"] = round(32 * packed.size / n, 4)

    def queue_encode():
        coder = stream.queue.RangeEncoder()
        for t in range(ts.num_tables):
            coder.encode(groups[t], models[t])
        return coder.get_compressed()

    queued = queue_encode()

    def queue_decode() -> list:
        coder = stream.queue.RangeDecoder(queued)
        return [coder.decode(models[t], len(groups[t])) for t in range(ts.num_tables)]

    assert all(np.array_equal(a, b) for a, b in zip(queue_decode(), groups))
    out["constriction_queue_decode_msym_s"] = rate(n, best(queue_decode, repeat))
    out["constriction_encode_msym_s"] = rate(n, best(lambda: _stack_encode(stream, groups, models), repeat))

    # the QuantizedGaussian family, per-symbol (mean, σ) as a mean-scale model would use it; fewer symbols
    g = slice(0, n_gaussian)
    means = np.asarray(FRACS, dtype=np.float64)[ti[g] % 4]
    stds = SIGMAS[ti[g] // 4]
    family = model.QuantizedGaussian(-300, 300)
    coder = stream.stack.AnsCoder()
    coder.encode_reverse(vals[g], family, means, stds)
    gauss = coder.get_compressed()
    decode_gauss = lambda: stream.stack.AnsCoder(gauss).decode(family, means, stds)  # noqa: E731
    assert np.array_equal(decode_gauss(), vals[g])
    out["constriction_gaussian_decode_msym_s"] = rate(n_gaussian, best(decode_gauss, repeat))
    return out


def _stack_encode(stream, groups: list, models: list) -> np.ndarray:  # noqa: ANN001
    ans = stream.stack.AnsCoder()
    for t in range(len(groups) - 1, -1, -1):
        ans.encode_reverse(groups[t], models[t])
    return ans.get_compressed()


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2_000_000, help="symbols (rounded to a square 128-channel latent)")
    ap.add_argument("--n-ref", type=int, default=50_000, help="symbols for the plain-Python reference coder")
    ap.add_argument("--n-gaussian", type=int, default=500_000, help="symbols for constriction's Gaussian family")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the all-threads rate")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    side = max(LATENT_TILE, int(round(np.sqrt(args.n / CHANNELS))))
    n = CHANNELS * side * side
    vals, ti, ts, mean_n = make_data(n)
    load_before = os.getloadavg()
    result = {"symbols": n, "tables": ts.num_tables, "mean_table_symbols": round(mean_n, 1),
              "threads": args.threads, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
              "timer": "single-thread keys: thread CPU time, best of repeat; *_wall and all_threads: wall clock",
              "repeat": args.repeat}
    result.update(fxlic_rates(vals, ti, ts, args.repeat, args.threads))
    result.update(compressai_rates(vals, ti, ts, args.repeat))
    result.update(constriction_rates(vals, ti, ts, args.repeat, min(args.n_gaussian, n)))
    r_vals, r_ti = vals[: args.n_ref], ti[: args.n_ref]
    r_data = encode_symbols(r_vals, r_ti, ts, impl="reference")
    assert r_data == encode_symbols(r_vals, r_ti, ts)
    result["reference_encode_msym_s"] = rate(args.n_ref, best(
        lambda: encode_symbols(r_vals, r_ti, ts, impl="reference"), 1))
    result["reference_decode_msym_s"] = rate(args.n_ref, best(
        lambda: decode_symbols(r_data, r_ti, ts, impl="reference"), 1))
    result["load_average"] = [round(x, 2) for x in load_before + os.getloadavg()[:1]]
    result["load_average_is"] = "the 1-, 5- and 15-minute load averages before the run, then the 1-minute one after"
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:40s} {value}")


if __name__ == "__main__":
    main()
