"""Decode-time perturbations: CompressAI's float pipeline vs the fxlic integer pipeline (Kodak).

Both pipelines run the same weights (the shipped int8 model; the float pipeline uses them as a plain
float32 PyTorch model, as benchmarks/codec_speed.py does) and encode every image once, unperturbed, in
this process. Only the *decoder* is then perturbed:

(a) 1 ulp on the hyper-decoder output (``torch.nextafter`` of log2 σ and μ towards +inf / −inf, on every
    element or on a random half). No integer analogue exists: h_s is integer arithmetic (no ulp); the
    integer decoder is instead run with the other conv implementation and other thread counts / kernel
    sets, rows (c) and (d), and the table says so.
(b) h_s in float16 / bfloat16. Integer: not applicable, the integer path is unchanged.
(c) 1 thread instead of 2 (a subprocess with ``OMP/MKL/NUMBA/OPENBLAS_NUM_THREADS=1`` and
    ``torch.set_num_threads(1)``), and the other conv implementation in this process (float: ATen's
    native conv with oneDNN disabled; integer: Numba int64 instead of float64 BLAS).
(d) kernel sets, each in a subprocess: ``ATEN_CPU_CAPABILITY=default``, ``ONEDNN_MAX_CPU_ISA=SSE41``,
    ``OPENBLAS_CORETYPE=Prescott`` + ``NUMBA_CPU_NAME=generic``, and all of (c) and (d) together.
    Bitstreams travel to the subprocesses through files; the float decoders there use the encoder's
    CDF tables (as a CompressAI checkpoint ships them), so only the transforms differ.

Per perturbation and pipeline: **failures** (an exception, or decoded ẑ / ŷ ≠ the encoder's) and
**corrupted** images (no image, or decoded pixels ≠ the unperturbed decode with a PSNR drop > 0.1 dB);
also how many pixels-differ and how many CDF-table choices / rounded means moved. Output: a markdown
table (printed and written to ``--out``) and JSON beside it. Exit status 1 if the integer path is
affected anywhere (that would be a bug). GPU decoding is out of scope (CPU-only machine).

    python benchmarks/determinism.py --images ../shared/data/kodak [--limit 24] [--out results/determinism.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")
KERNEL_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "NUMBA_CPU_NAME")
PSNR_DROP_DB = 0.1
FLOAT = "float"
INT_IMPLS = ("blas", "numba")

# In-process float perturbations: name → (h_s dtype, ulp mode, oneDNN enabled).
FLOAT_IN_PROCESS: dict[str, tuple[str, str, bool]] = {
    "none": ("float32", "none", True),
    "ulp_up": ("float32", "up", True),
    "ulp_down": ("float32", "down", True),
    "ulp_random": ("float32", "random", True),
    "fp16": ("float16", "none", True),
    "bf16": ("bfloat16", "none", True),
    "native_conv": ("float32", "none", False),
}
# Subprocess environments: name → (threads, kernel-set variables).
SUBPROCESS_ENVS: dict[str, tuple[int | None, dict[str, str]]] = {  # threads None: --threads
    "threads_1": (1, {}),
    "aten_default": (None, {"ATEN_CPU_CAPABILITY": "default"}),
    "onednn_sse41": (None, {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    "openblas_numba_generic": (None, {"OPENBLAS_CORETYPE": "Prescott", "NUMBA_CPU_NAME": "generic"}),
    "all": (1, {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "OPENBLAS_CORETYPE": "Prescott", "NUMBA_CPU_NAME": "generic"}),
}


@dataclass
class Row:
    """One table row: which float outcome set and which integer outcome set it reports."""

    key: str
    label: str
    float_key: str | None  # None: not applicable
    int_keys: list[str]  # empty: not applicable (then ``int_note`` explains)
    int_note: str = ""


ROWS = [
    Row("none", "none (same process and settings as the encoder)", "none", ["blas"]),
    Row("ulp_up", "(a) h_s output +1 ulp, every element", "ulp_up", [], "n/a†"),
    Row("ulp_down", "(a) h_s output −1 ulp, every element", "ulp_down", [], "n/a†"),
    Row("ulp_random", "(a) h_s output ±1 ulp, random half of the elements", "ulp_random", [], "n/a†"),
    Row("fp16", "(b) h_s in float16", "fp16", [], "n/a‡"),
    Row("bf16", "(b) h_s in bfloat16", "bf16", [], "n/a‡"),
    Row("other_conv", "(c) other conv impl (float: ATen native conv, oneDNN off; integer: Numba int64, not BLAS)",
        "native_conv", ["numba"]),
    Row("threads_1", "(c) 1 thread instead of 2 (subprocess)", "threads_1:float",
        ["threads_1:blas", "threads_1:numba"]),
    Row("aten_default", "(d) ATEN_CPU_CAPABILITY=default (subprocess)", "aten_default:float",
        ["aten_default:blas", "aten_default:numba"]),
    Row("onednn_sse41", "(d) ONEDNN_MAX_CPU_ISA=SSE41 (subprocess)", "onednn_sse41:float",
        ["onednn_sse41:blas", "onednn_sse41:numba"]),
    Row("openblas_numba_generic", "(d) OPENBLAS_CORETYPE=Prescott, NUMBA_CPU_NAME=generic (subprocess)",
        "openblas_numba_generic:float", ["openblas_numba_generic:blas", "openblas_numba_generic:numba"]),
    Row("all", "(c)+(d) all of the above at once, 1 thread (subprocess)", "all:float", ["all:blas", "all:numba"]),
]
FOOTNOTES = [
    "† No integer analogue: the integer h_s has no ulp to perturb (its outputs are exact int8 codes, and the "
    "table index and rounded mean are integer functions of them, docs/entropy.md ENT-M3). The nearest "
    "integer-side perturbations are the other conv implementation, thread counts and kernel sets: rows (c), (d).",
    "‡ Not applicable: the integer h_s has no precision to lower; the integer decoder is unchanged (as 'none').",
]


@dataclass
class Outcome:
    """One decode of one image under one perturbation."""

    failed: bool  # exception, or decoded latents ≠ the encoder's
    reason: str = ""
    index_changes: int = -1  # CDF-table choices (y) that differ from the encoder's; -1: not computed
    mean_changes: int = -1  # rounded means μ_r that differ from the encoder's
    hs_changed: int = -1  # h_s output elements (log2 σ and μ) that differ from the encoder's
    hs_max_abs: float = -1.0  # largest |decoder − encoder| over the h_s outputs (integer: in int8 code units)
    seconds: float = 0.0
    pixels: Any = field(default=None, repr=False)  # uint8 H×W×3, None after an exception


# --------------------------------------------------------------------------------------------------
# the two pipelines
# --------------------------------------------------------------------------------------------------
class FloatPipeline:
    """The shipped weights as a float32 PyTorch model + CompressAI's coders (``fxlic.qat.FloatCodec``)."""

    def __init__(self, model_file: Any) -> None:
        import torch

        from fxlic.qat.evaluate_float import FloatCodec
        from fxlic.qat.export import model_from_model_file
        from fxlic.qat.layers import qconvs

        torch.manual_seed(0)  # EntropyBottleneck's initial biases are random; the z tables derive from them
        model = model_from_model_file(model_file)
        for _, layer in qconvs(model):
            layer.quantized.fill_(False)  # same weights, plain float32 convs
        self.codec = FloatCodec(model)
        self.model = model

    _TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")

    def tables(self) -> dict[str, Any]:
        """CompressAI's CDF tables (the buffers a CompressAI checkpoint stores) and the z medians."""
        eb, gc = self.model.entropy_bottleneck, self.codec.gaussian
        out = {f"eb.{k}": getattr(eb, k).clone() for k in self._TABLE_BUFFERS}
        out.update({f"gc.{k}": getattr(gc, k).clone() for k in self._TABLE_BUFFERS})
        out["eb.quantiles"] = eb.quantiles.detach().clone()
        return out

    def load_tables(self, tables: dict[str, Any]) -> None:
        import torch

        eb, gc = self.model.entropy_bottleneck, self.codec.gaussian
        for key, value in tables.items():
            owner, name = key.split(".", 1)
            module = eb if owner == "eb" else gc
            if name == "quantiles":
                with torch.no_grad():
                    module.quantiles.copy_(value)
            else:
                setattr(module, name, value.clone())

    def encode(self, pixels: Any) -> dict[str, Any]:
        """Unperturbed encode; returns the strings and the encoder's ẑ, ŷ, table indexes and μ_r."""
        import numpy as np
        import torch

        from fxlic.codec import pad_image
        from fxlic.qat.models import pixels_to_input

        x = pixels_to_input(torch.from_numpy(pad_image(pixels)).permute(2, 0, 1)[None])
        eb = self.model.entropy_bottleneck
        with torch.no_grad():
            y = self.model.g_a(x)
            z = self.model.h_a(y)
            z_strings = eb.compress(z)
            z_hat = eb.decompress(z_strings, z.shape[-2:])
            log2_scales, means = self.model.hyper_synthesis(z_hat)
            indexes, mean_r = self.codec._params(z_hat)
            y_strings = self.codec.gaussian.compress(y, indexes, means=mean_r)
            y_hat = torch.round(y - mean_r) + mean_r  # what GaussianConditional codes (quantize "dequantize")
        return {"z_string": np.frombuffer(z_strings[0], np.uint8), "y_string": np.frombuffer(y_strings[0], np.uint8),
                "z_size": np.array(z.shape[-2:]), "z_hat": z_hat.numpy(), "y_hat": y_hat.numpy(),
                "index": indexes.numpy().astype(np.int16), "mean_r": mean_r.numpy(),
                "hs": torch.cat([log2_scales, means], 1).numpy()}

    def decode(self, item: dict[str, Any], height: int, width: int, hs_dtype: str = "float32",
               ulp: str = "none", onednn: bool = True, seed: int = 0) -> Outcome:
        """Decode ``item`` (from :meth:`encode`) with the given h_s precision / ulp perturbation / conv path."""
        import numpy as np
        import torch

        from fxlic.qat.models import SCALE_MAX, SCALE_MIN, output_to_pixels

        t0 = time.perf_counter()
        eb, gc = self.model.entropy_bottleneck, self.codec.gaussian
        try:
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=onednn):
                z_hat = eb.decompress([item["z_string"].tobytes()], tuple(int(v) for v in item["z_size"]))
                dtype = getattr(torch, hs_dtype)
                log2_scales, means = self.model.hyper_synthesis(z_hat.to(dtype))
                log2_scales, means = log2_scales.float(), means.float()
                if ulp != "none":
                    generator = torch.Generator().manual_seed(seed)
                    log2_scales = nudge_ulp(log2_scales, ulp, generator)
                    means = nudge_ulp(means, ulp, generator)
                sigma = torch.clamp(torch.exp2(log2_scales), SCALE_MIN, SCALE_MAX)
                indexes, mean_r = gc.build_indexes(sigma), torch.floor(means + 0.5)
                y_hat = gc.decompress([item["y_string"].tobytes()], indexes, means=mean_r)
                x_hat = self.model.g_s(y_hat)
        except Exception as exc:  # noqa: BLE001 — any decoder crash is a failure to count
            return Outcome(True, f"{type(exc).__name__}: {exc}"[:200], seconds=time.perf_counter() - t0)
        pixels = output_to_pixels(x_hat)[0, :, :height, :width].round().byte().permute(1, 2, 0).numpy()
        bad = [name for name, got, key in (("ẑ", z_hat, "z_hat"), ("ŷ", y_hat, "y_hat"))
               if not np.array_equal(got.numpy(), item[key])]
        hs = torch.cat([log2_scales, means], 1).numpy()
        hs_changed = int((hs != item["hs"]).sum())
        hs_max_abs = float(np.abs(hs.astype(np.float64) - item["hs"]).max())
        index_changes = int((indexes.numpy() != item["index"]).sum())
        mean_changes = int((mean_r.numpy() != item["mean_r"]).sum())
        reason = ""
        if bad:
            wrong = int((y_hat.numpy() != item["y_hat"]).sum())
            reason = f"decoded {' and '.join(bad)} differ from the encoder's ({wrong} of {y_hat.numel()} ŷ values)"
        return Outcome(bool(bad), reason, index_changes, mean_changes, hs_changed, hs_max_abs,
                       time.perf_counter() - t0, pixels)


def nudge_ulp(t: Any, mode: str, generator: Any) -> Any:
    """Move elements of a float32 tensor by one ulp: all up, all down, or a random half up/down."""
    import torch

    up = torch.nextafter(t, torch.full_like(t, math.inf))
    down = torch.nextafter(t, torch.full_like(t, -math.inf))
    if mode == "up":
        return up
    if mode == "down":
        return down
    if mode != "random":
        raise ValueError(f"unknown ulp mode {mode!r}")
    choice = torch.randint(0, 4, t.shape, generator=generator)  # 0, 1: unchanged; 2: up; 3: down
    return torch.where(choice == 2, up, torch.where(choice == 3, down, t))


def int_encode(codec: Any, pixels: Any) -> dict[str, Any]:
    """Unperturbed integer encode: the bitstream and the encoder's ẑ, ŷ, table indexes and μ_r."""
    import numpy as np

    result = codec.encode(pixels, keep_trace=True)
    return {"bitstream": np.frombuffer(result.bitstream, np.uint8), "z_hat": result.z_hat, "y_hat": result.y_hat,
            "table": result.y_table_index, "mean": result.y_mean, "hs": _int_hs(result.trace)}


def _int_hs(trace: dict[str, Any]) -> Any:
    """The integer h_s outputs (scale codes, then mean codes) from a trace, stacked as int8."""
    import numpy as np

    return np.concatenate([trace[k] for k in ("h_s_scales", "h_s_means") if k in trace])


def int_decode(codec: Any, item: dict[str, Any]) -> Outcome:
    """Integer decode of ``item`` (from :func:`int_encode`), compared with the encoder's latents and tables."""
    import numpy as np

    t0 = time.perf_counter()
    trace: dict[str, Any] = {}
    try:
        pixels = codec.decode(item["bitstream"].tobytes(), trace=trace)
    except Exception as exc:  # noqa: BLE001 — any decoder error is a failure to count
        return Outcome(True, f"{type(exc).__name__}: {exc}"[:200], seconds=time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    table, mean = codec.net.y_coding_params(trace["h_s_scales"], trace.get("h_s_means"))
    bad = [name for name, key in (("ẑ", "z_hat"), ("ŷ", "y_hat")) if not np.array_equal(trace[key], item[key])]
    reason = f"decoded {' and '.join(bad)} differ from the encoder's" if bad else ""
    hs = _int_hs(trace)
    hs_changed = int((hs != item["hs"]).sum())
    hs_max_abs = float(np.abs(hs.astype(np.int64) - item["hs"]).max()) if hs.size else 0.0
    return Outcome(bool(bad), reason, int((table != item["table"]).sum()), int((mean != item["mean"]).sum()),
                   hs_changed, hs_max_abs, seconds, pixels)


# --------------------------------------------------------------------------------------------------
# work folder shared with the subprocesses
# --------------------------------------------------------------------------------------------------
def save_item(workdir: Path, index: int, name: str, height: int, width: int, float_item: dict[str, Any],
              int_item: dict[str, Any]) -> None:
    import numpy as np

    arrays = {f"float__{k}": v for k, v in float_item.items()}
    arrays.update({f"int__{k}": v for k, v in int_item.items()})
    np.savez(workdir / f"item{index:03d}.npz", size=np.array([height, width]), **arrays)
    (workdir / f"item{index:03d}.name").write_text(name)


def load_items(workdir: Path) -> list[tuple[str, int, int, dict[str, Any], dict[str, Any]]]:
    import numpy as np

    items = []
    for path in sorted(workdir.glob("item*.npz")):
        with np.load(path) as data:
            height, width = (int(v) for v in data["size"])
            float_item = {k[7:]: data[k] for k in data.files if k.startswith("float__")}
            int_item = {k[5:]: data[k] for k in data.files if k.startswith("int__")}
        items.append((path.with_suffix(".name").read_text(), height, width, float_item, int_item))
    return items


def run_worker(workdir: Path, label: str, threads: int) -> int:
    """Subprocess side: decode every item with both pipelines; write pixels and outcomes to the workdir."""
    import numpy as np
    import torch

    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    torch.set_num_threads(threads)
    meta = json.loads((workdir / "meta.json").read_text())
    model_file = load_model_file(meta["model_file"])
    pipeline = FloatPipeline(model_file)
    encoder_tables = torch.load(workdir / "float_tables.pt")
    rebuilt_equal = all(torch.equal(v, pipeline.tables()[k]) for k, v in encoder_tables.items())
    pipeline.load_tables(encoder_tables)
    codecs = {impl: Codec(model_file, impl=impl) for impl in INT_IMPLS}
    outcomes: dict[str, list[dict[str, Any]]] = {FLOAT: [], **{impl: [] for impl in INT_IMPLS}}
    arrays: dict[str, Any] = {}
    for i, (_, height, width, float_item, int_item) in enumerate(load_items(workdir)):
        results = {FLOAT: pipeline.decode(float_item, height, width)}
        results.update({impl: int_decode(codec, int_item) for impl, codec in codecs.items()})
        for key, outcome in results.items():
            if outcome.pixels is not None:
                arrays[f"{key}__{i}"] = outcome.pixels
            outcomes[key].append({k: v for k, v in asdict(outcome).items() if k != "pixels"})
    np.savez(workdir / f"result_{label}.npz", **arrays)
    info = {"outcomes": outcomes, "float_tables_rebuilt_identical": rebuilt_equal,
            "torch_threads": torch.get_num_threads(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "env": {k: os.environ.get(k) for k in THREAD_VARS + KERNEL_VARS}}
    (workdir / f"result_{label}.json").write_text(json.dumps(info))
    return 0


def run_subprocess(workdir: Path, label: str, threads: int, kernel_env: dict[str, str]) -> tuple[dict, float]:
    """Run this script as a worker under ``threads`` threads and ``kernel_env``; returns (outcomes, seconds)."""
    import numpy as np

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS + KERNEL_VARS}
    env.update({k: str(threads) for k in THREAD_VARS})
    env.update(kernel_env)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(workdir), "--label", label,
                           "--threads", str(threads)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {label} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    info = json.loads((workdir / f"result_{label}.json").read_text())
    with np.load(workdir / f"result_{label}.npz") as data:
        for key, rows in info["outcomes"].items():
            for i, row in enumerate(rows):
                row["pixels"] = data[f"{key}__{i}"] if f"{key}__{i}" in data.files else None
    return info, seconds


# --------------------------------------------------------------------------------------------------
# evaluation and report
# --------------------------------------------------------------------------------------------------
def summarize(outcomes: list[Outcome], baseline: list[Outcome], originals: list[Any]) -> dict[str, Any]:
    """Counts over the images: failures, corrupted (no image / PSNR drop > 0.1 dB vs baseline), pixels differ."""
    import numpy as np

    from fxlic.rd.metrics import psnr

    failures = corrupted = differ = no_image = 0
    drops: list[float] = []
    for out, base, original in zip(outcomes, baseline, originals):
        failures += out.failed
        if out.pixels is None or base.pixels is None:
            no_image += 1
            corrupted += 1
            differ += 1
            continue
        if np.array_equal(out.pixels, base.pixels):
            continue
        differ += 1
        drop = psnr(original, base.pixels) - psnr(original, out.pixels)
        drops.append(drop)
        corrupted += drop > PSNR_DROP_DB
    return {"images": len(outcomes), "failures": failures, "corrupted": corrupted, "pixels_differ": differ,
            "no_image": no_image, "max_psnr_drop_db": max(drops, default=0.0),
            "index_changes": sum(max(o.index_changes, 0) for o in outcomes),
            "mean_changes": sum(max(o.mean_changes, 0) for o in outcomes),
            "hs_changed": sum(max(o.hs_changed, 0) for o in outcomes),
            "hs_max_abs": max((o.hs_max_abs for o in outcomes), default=-1.0),
            "reasons": sorted({o.reason for o in outcomes if o.reason})[:5]}


def merge_int(summaries: list[dict[str, Any]], outcome_sets: list[list[Outcome]], baseline: list[Outcome],
              originals: list[Any]) -> dict[str, Any]:
    """An image counts as failed/corrupted for the integer pipeline if any of its impls fails/corrupts it."""
    import numpy as np

    def badness(outcome: Outcome, base: Outcome) -> int:
        if outcome.failed or outcome.pixels is None:
            return 2
        return int(base.pixels is None or not np.array_equal(outcome.pixels, base.pixels))

    worst = [max(outcomes, key=lambda o, b=base: badness(o, b)) for outcomes, base in zip(zip(*outcome_sets), baseline)]
    merged = summarize(worst, baseline, originals)
    merged["index_changes"] = sum(s["index_changes"] for s in summaries)
    merged["mean_changes"] = sum(s["mean_changes"] for s in summaries)
    merged["hs_changed"] = sum(s["hs_changed"] for s in summaries)
    merged["per_impl"] = summaries
    return merged


def cell(summary: dict[str, Any] | None, note: str = "") -> str:
    if summary is None:
        return f"{note} | — | —"
    n = summary["images"]
    return f"{summary['failures']}/{n} | {summary['corrupted']}/{n} | {summary['pixels_differ']}/{n}"


def render(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The markdown table, its legend and the h_s / table-choice diagnostics."""
    lines = [
        f"Decode-time perturbations on {meta['images']} Kodak images, model {meta['model']}; encoder unperturbed "
        f"({meta['threads']} threads, native kernels). Machine: {meta['machine']}.",
        "",
        "| perturbation (decoder only) | CompressAI float: failures | corrupted | pixels ≠ "
        "| fxlic integer: failures | corrupted | pixels ≠ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['label']} | {cell(row['float'])} | {cell(row['int'], row['int_note'])} |")
    lines += [
        "",
        "*failures*: an exception, or decoded ẑ/ŷ ≠ the encoder's. *corrupted*: no image, or pixels ≠ the "
        f"unperturbed decode with a PSNR drop > {PSNR_DROP_DB} dB. *pixels ≠*: any decoded pixel differs from "
        "the unperturbed decode. Integer rows with two impls count an image if either impl (blas, numba) is "
        "affected.",
        "",
        *FOOTNOTES,
        "",
        "Where the decoders moved (sums over all images): h_s output elements (log2 σ and μ) that differ from "
        "the encoder's, with the largest |difference| (float: in log2 σ / μ units; integer: in int8 codes), "
        "and the CDF-table indexes / rounded means μ_r that changed as a result.",
        "",
        "| perturbation | float: h_s elements ≠ (max abs) | tables ≠ | means ≠ | integer: h_s elements ≠ "
        "| tables ≠ | means ≠ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        f, i = row["float"], row["int"]
        float_part = "— | — | —" if f is None else (
            f"{f['hs_changed']} ({f['hs_max_abs']:.3g}) | {f['index_changes']} | {f['mean_changes']}")
        int_part = "— | — | —" if i is None else f"{i['hs_changed']} | {i['index_changes']} | {i['mean_changes']}"
        lines.append(f"| {row['key']} | {float_part} | {int_part} |")
    lines += ["", "GPU: out of scope for this run (no GPU on this machine); not measured."]
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} CPU cores, load average {load:.1f} at start"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help="folder of Kodak PNGs")
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--threads", type=int, default=2, help="threads of the encoder and the unperturbed decoders")
    p.add_argument("--model-file", help="default: the shipped default model")
    p.add_argument("--out", default="results/determinism.md", help="markdown table; JSON written beside it")
    p.add_argument("--seed", type=int, default=0, help="seed of the random-ulp perturbation")
    p.add_argument("--no-subprocess", action="store_true", help="skip the thread / kernel-set rows (c), (d)")
    p.add_argument("--keep-workdir", help="write the shared bitstreams here and keep them")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--label", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # Noise from torch/CompressAI that says nothing about determinism (torch.jit deprecation, Intel-GPU TF32).
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"TF32 acceleration on top of oneDNN", category=UserWarning)
    if args.worker:
        return run_worker(Path(args.worker), args.label, args.threads)
    if not args.images:
        p.error("--images is required")
    for var in THREAD_VARS:
        os.environ[var] = str(args.threads)
    return run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.imageio import read_image
    from fxlic.reference.modelfile import load_model_file

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    model_path = Path(args.model_file or models.resolve()).resolve()
    model_file = load_model_file(model_path)
    images = sorted(Path(args.images).glob("*.png"))[: args.limit]
    if not images:
        raise SystemExit(f"no PNG images in {args.images}")
    meta = {"images": len(images), "model": f"{model_file.name} q{model_file.quality} ({model_path.name})",
            "threads": args.threads, "machine": machine_description(),
            "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    print(meta["machine"], flush=True)
    workdir = Path(args.keep_workdir) if args.keep_workdir else Path(tempfile.mkdtemp(prefix="fxlic-determinism-"))
    workdir.mkdir(parents=True, exist_ok=True)
    float_pipeline = FloatPipeline(model_file)
    torch.save(float_pipeline.tables(), workdir / "float_tables.pt")
    (workdir / "meta.json").write_text(json.dumps({"model_file": str(model_path)}))
    codecs = {impl: Codec(model_file, impl=impl) for impl in INT_IMPLS}

    originals, sizes = [], []
    outcomes: dict[str, list[Outcome]] = {}
    for i, path in enumerate(images):
        pixels = read_image(path)
        height, width = pixels.shape[:2]
        originals.append(pixels)
        sizes.append((height, width))
        float_item, int_item = float_pipeline.encode(pixels), int_encode(codecs["blas"], pixels)
        save_item(workdir, i, path.name, height, width, float_item, int_item)
        for name, (dtype, ulp, onednn) in FLOAT_IN_PROCESS.items():
            outcome = float_pipeline.decode(float_item, height, width, dtype, ulp, onednn, seed=args.seed * 1000 + i)
            outcomes.setdefault(f"float:{name}", []).append(outcome)
        for impl, codec in codecs.items():
            outcomes.setdefault(f"int:{impl}", []).append(int_decode(codec, int_item))
        print(f"{path.name}: float " + " ".join(f"{k.split(':')[1]}={'F' if v[-1].failed else '.'}"
                                                for k, v in outcomes.items() if k.startswith("float"))
              + " | int " + " ".join(f"{impl}={'F' if outcomes[f'int:{impl}'][-1].failed else '.'}"
                                     for impl in INT_IMPLS)
              + f"  ({time.perf_counter() - t_start:.0f} s)", flush=True)

    subprocess_info: dict[str, Any] = {}
    if not args.no_subprocess:
        for label, (threads, kernel_env) in SUBPROCESS_ENVS.items():
            info, seconds = run_subprocess(workdir, label, threads or args.threads, kernel_env)
            for key, rows in info.pop("outcomes").items():
                outcomes[f"{label}:{key}"] = [Outcome(**row) for row in rows]
            subprocess_info[label] = {**info, "seconds": round(seconds, 1)}
            print(f"subprocess {label}: float failures "
                  f"{sum(o.failed for o in outcomes[f'{label}:float'])}, integer failures "
                  f"{sum(o.failed for impl in INT_IMPLS for o in outcomes[f'{label}:{impl}'])} ({seconds:.0f} s)",
                  flush=True)

    float_base, int_base = outcomes["float:none"], outcomes["int:blas"]
    table_rows = []
    for row in ROWS:
        key = row.float_key
        float_key = None if key is None else (key if ":" in key else f"float:{key}")
        key = row.key
        if float_key is not None and float_key not in outcomes:
            continue  # a subprocess row skipped with --no-subprocess
        int_keys = [k if ":" in k else f"int:{k}" for k in row.int_keys]
        float_summary = summarize(outcomes[float_key], float_base, originals) if float_key else None
        int_summary = None
        if int_keys:
            per_impl = [summarize(outcomes[k], int_base, originals) for k in int_keys]
            int_summary = (per_impl[0] if len(per_impl) == 1
                           else merge_int(per_impl, [outcomes[k] for k in int_keys], int_base, originals))
        table_rows.append({"key": key, "label": row.label, "float": float_summary, "int": int_summary,
                           "int_keys": int_keys, "int_note": row.int_note})

    meta["seconds"] = round(time.perf_counter() - t_start, 1)
    markdown = render(table_rows, meta)
    print("\n" + markdown)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Determinism under decode-time perturbations\n\nCommand: `{meta['command']}` "
                   f"({meta['seconds'] / 60:.1f} min).\n\n" + markdown)
    per_image = {key: [{"image": images[i].name, **{k: v for k, v in asdict(o).items() if k != "pixels"}}
                       for i, o in enumerate(rows)] for key, rows in outcomes.items()}
    out.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "rows": table_rows, "subprocesses": subprocess_info, "per_image": per_image},
        indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    if not args.keep_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    int_bad = [r["key"] for r in table_rows if r["int"] is not None and (r["int"]["failures"] or r["int"]["corrupted"]
                                                                          or r["int"]["pixels_differ"])]
    if int_bad:
        print(f"INTEGER PATH NOT INVARIANT under: {', '.join(int_bad)} — this is a bug; see the JSON", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
