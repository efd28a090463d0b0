"""How the substream decoder scales with threads, against what the machine itself scales to.

A parallel decoder can be no faster than the cores let it be: on a VM two vCPUs may share a physical core,
a cache or memory bandwidth with each other and with neighbours. So this measures two things side by side,
on the same symbols as ``benchmarks/rans_speed.py`` (y-like data, one substream per 16 × 16 latents):

* ``decoder_speedup``: one ``decode_substreams`` call on 1 thread, and on N threads (wall clock, best of
  ``--repeat``); the ratio of the two times;
* ``machine_speedup``: the same single-thread decode run in N processes at once, each pinned to its own CPU,
  against one such process alone: N × (time alone) / (median time of the N concurrent processes). It is
  the throughput the cores give to N independent copies of the same work (no shared state, no threads), the
  ceiling for the decoder's own scaling on this machine.

``efficiency`` = decoder_speedup / machine_speedup: 1.0 means the decoder loses nothing to threading.

    python benchmarks/substream_scaling.py [--n 2000000] [--threads 2] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rans_speed  # noqa: E402  (the same symbols and tile)

from fxlic.entropy.substreams import decode_substreams, encode_substreams  # noqa: E402


def _data(n: int):  # noqa: ANN202
    vals, ti, tables, _ = rans_speed.make_data(n)
    shape = (rans_speed.CHANNELS, -1, int(np.sqrt(vals.size // rans_speed.CHANNELS)))
    values, index = vals.reshape(shape), ti.reshape(shape)
    return values, index, tables, encode_substreams(values, index, tables, rans_speed.LATENT_TILE)


def _times(substreams, index, tables, workers: int, repeat: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        decode_substreams(substreams, index, tables, rans_speed.LATENT_TILE, workers=workers)
        out.append(time.perf_counter() - t0)
    return out


def _pinned_worker(cpu: int, n: int, repeat: int, start, queue) -> None:  # noqa: ANN001
    os.sched_setaffinity(0, {cpu})
    _, index, tables, substreams = _data(n)
    _times(substreams, index, tables, 1, 2)  # warm: Numba cache, pages
    start.wait()  # every process starts timing together
    queue.put(statistics.median(_times(substreams, index, tables, 1, repeat)))


def concurrent_medians(cpus: list[int], n: int, repeat: int) -> list[float]:
    """Median single-thread decode seconds of one process per CPU in ``cpus``, all running at once."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(len(cpus)), ctx.Queue()
    procs = [ctx.Process(target=_pinned_worker, args=(cpu, n, repeat, start, queue)) for cpu in cpus]
    for p in procs:
        p.start()
    medians = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return medians


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2_000_000, help="symbols")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    if len(cpus) < 2:
        p.error("needs at least 2 CPUs")
    values, index, tables, substreams = _data(args.n)
    assert np.array_equal(decode_substreams(substreams, index, tables, rans_speed.LATENT_TILE, workers=len(cpus)),
                          values)
    one = min(_times(substreams, index, tables, 1, args.repeat))
    many = min(_times(substreams, index, tables, len(cpus), args.repeat))
    alone = concurrent_medians(cpus[:1], args.n, args.repeat)[0]
    together = statistics.median(concurrent_medians(cpus, args.n, args.repeat))
    decoder, machine = one / many, len(cpus) * alone / together
    out = {"symbols": int(values.size), "substreams": len(substreams), "threads": len(cpus),
           "decode_ms_1_thread": round(one * 1e3, 2), "decode_ms_all_threads": round(many * 1e3, 2),
           "decoder_speedup": round(decoder, 3), "process_alone_ms": round(alone * 1e3, 2),
           "processes_together_ms": round(together * 1e3, 2), "machine_speedup": round(machine, 3),
           "efficiency": round(decoder / machine, 3), "cpu": rans_speed.cpu_name(),
           "load_average": [round(v, 2) for v in os.getloadavg()]}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{out['symbols']:,} symbols in {out['substreams']} substreams: {one * 1e3:.1f} ms on 1 thread, "
              f"{many * 1e3:.1f} ms on {len(cpus)} → ×{decoder:.2f}; the machine gives {len(cpus)} independent "
              f"single-thread decodes ×{machine:.2f}; efficiency {decoder / machine:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
