"""Differential test of fxlic.fxp against the DPU instruction simulator of VART (issue 33).

    python tools/dpu_oracle/run.py --vendor-src PATH/TO/vart --target-factory-src PATH/TO/target_factory \\
        [--target DPUCZDX8G_ISA1_B4096] [--seed 33] [--scale 1.0] [--out results/dpu-oracle]

``--vendor-src``: a checkout of the public VART sources holding ``sim-runner/`` (AMD/Xilinx, Apache-2.0;
e.g. github.com/zmaychek84/vart). ``--target-factory-src``: the matching ``target_factory`` checkout
(``src/target.proto``, ``targets/*.prototxt``; e.g. github.com/zmaychek84/target_factory). Both are
compiled into ``--build-dir`` (default ``build/dpu_oracle``, ignored by git) with our shims
(``tools/dpu_oracle/shim``) and driver (``driver.cpp``); nothing from them is written into the
repository. The vendor commits are recorded when the paths are git checkouts (else pass
``--vendor-rev`` / ``--target-factory-rev``), together with a SHA-256 of the compiled sources.

Every case draws random int8 tensors, fix positions and geometry, runs the instruction(s) on the
simulator and compares every output element with fxlic.fxp on the same integers, under each value of
the open switches (docs/fixed-point.md §9). Writes ``summary.json`` (counts), ``summary.md`` and the
replay file ``cases.npz`` (a selection of cases with the simulator's outputs; replayed without the
simulator by tests/test_dpu_oracle_replay.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import oracle as orc  # noqa: E402

from fxlic.fxp import (  # noqa: E402
    DEFAULT,
    DpuAssumptions,
    add_int,
    conv2d_acc,
    conv_transpose2d_acc,
    requantize,
    requantize_accumulator,
)


def _label(text: str, is_default: bool) -> str:
    return text + (" (default)" if is_default else "")


CONV_VARIANTS = {
    _label(f"{leaky}+{nsb}", (leaky, nsb) == (DEFAULT.leaky_relu_rounding, DEFAULT.negative_shift_bias)):
    DpuAssumptions(leaky_relu_rounding=leaky, negative_shift_bias=nsb)
    for nsb in ("scale_accumulator", "floor_bias")
    for leaky in ("single", "double")
}
ADD_VARIANTS = {_label(mode, mode == DEFAULT.eltwise_add): mode for mode in ("exact", "floor_read_2bit")}
ACTS = ("none", "relu", "leaky_relu")


# --------------------------------------------------------------------------------------------------
# random data
# --------------------------------------------------------------------------------------------------
def rand_int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """int8 data from a random one of: uniform, small, sparse, extremes, one sign."""
    kind = rng.integers(6)
    if kind == 0:
        a = rng.integers(-128, 128, size=shape)
    elif kind == 1:
        m = int(rng.integers(1, 16))
        a = rng.integers(-m, m + 1, size=shape)
    elif kind == 2:
        a = rng.integers(-128, 128, size=shape) * (rng.random(shape) < 0.3)
    elif kind == 3:
        a = rng.choice(np.array([-128, -127, -1, 0, 1, 126, 127]), size=shape)
    elif kind == 4:
        a = -rng.integers(0, 129, size=shape)
    else:
        a = rng.integers(-128, 128, size=shape)
    return np.asarray(a, dtype=np.int8)


def pick_shift_cut(rng: np.random.Generator, t: np.ndarray, sb: int, hi: int = 16) -> int:
    """A shift_cut that puts most outputs in range (so rounding, not saturation, is tested), jittered.
    ``t`` is the bias-aligned accumulator (FXP-C4/C5); its total right shift is shift_cut − min(sb, 0)."""
    hi = min(hi, 16 + min(sb, 0))  # FXP-P1: shift_bias >= shift_cut - 16
    if rng.random() < 0.15:
        return int(rng.integers(0, hi + 1))
    mag = float(np.percentile(np.abs(t), 90)) if t.size else 0.0
    total = int(np.ceil(np.log2(mag + 1))) - 6
    return int(np.clip(total + min(sb, 0) + rng.integers(-2, 3), 0, hi))


def aligned(acc: np.ndarray, b: np.ndarray, sb: int) -> np.ndarray:
    bb = b.astype(np.int64).reshape((-1,) + (1,) * (acc.ndim - 1))
    return acc + (bb << sb) if sb >= 0 else (acc << -sb) + bb


# --------------------------------------------------------------------------------------------------
# bookkeeping
# --------------------------------------------------------------------------------------------------
class Tally:
    def __init__(self, variants: list[str]):
        self.cases = 0
        self.elements = 0
        self.rejected = 0
        self.mismatch_cases = dict.fromkeys(variants, 0)
        self.mismatch_elements = dict.fromkeys(variants, 0)
        self.first_mismatch: dict[str, dict] = {}
        self.by_activation: dict[str, dict] = {}

    def add(self, got: np.ndarray, wants: dict[str, np.ndarray], case: dict) -> None:
        self.cases += 1
        self.elements += got.size
        act = case.get("activation")
        if act is not None:
            ba = self.by_activation.setdefault(act, {"cases": 0, "elements": 0,
                                                     "mismatching_elements": dict.fromkeys(wants, 0)})
            ba["cases"] += 1
            ba["elements"] += got.size
        for name, want in wants.items():
            bad = np.asarray(got != want)
            n = int(bad.sum())
            if n:
                self.mismatch_cases[name] += 1
                self.mismatch_elements[name] += n
                if act is not None:
                    ba["mismatching_elements"][name] += n
                if name not in self.first_mismatch:
                    idx = tuple(int(i) for i in np.argwhere(bad)[0])
                    self.first_mismatch[name] = {
                        "case": case["id"],
                        "index": idx,
                        "simulator": int(got[idx]),
                        "fxp": int(want[idx]),
                    }

    def as_dict(self) -> dict:
        return {
            "cases": self.cases,
            "elements": self.elements,
            "rejected_by_simulator": self.rejected,
            "mismatching_cases": self.mismatch_cases,
            "mismatching_elements": self.mismatch_elements,
            "first_mismatch": self.first_mismatch,
            "by_activation": self.by_activation,
        }


class Recorder:
    """Cases kept for the replay file: all flagged ones, and the random ones up to a budget per op."""

    def __init__(self, budget: dict[str, int]):
        self.budget = dict(budget)
        self.cases: list[dict] = []

    def offer(self, op: str, meta: dict, arrays: dict[str, np.ndarray], bucket: str | None = None) -> None:
        """Keep the case if ``bucket`` is None or still has budget."""
        if bucket is not None:
            if self.budget.get(bucket, 0) <= 0:
                return
            self.budget[bucket] -= 1
        self.cases.append({"op": op, "meta": meta, "arrays": arrays})

    def save(self, path: Path, header: dict) -> None:
        """One npz with two arrays: ``data`` (every case array, int8, raveled and concatenated) and
        ``meta_json`` (UTF-8 JSON: the header and, per case, its parameters and each array's offset and shape)."""
        chunks, index, offset = [], [], 0
        for c in self.cases:
            keys = {}
            for k, v in c["arrays"].items():
                v = np.asarray(v)
                assert v.dtype == np.int8, (k, v.dtype)
                chunks.append(v.ravel())
                keys[k] = [offset, list(v.shape)]
                offset += v.size
            index.append({"op": c["op"], **c["meta"], "arrays": keys})
        meta = json.dumps({**header, "cases": index}, sort_keys=True, separators=(",", ":")).encode()
        np.savez_compressed(path, data=np.concatenate(chunks), meta_json=np.frombuffer(meta, dtype=np.uint8))


# --------------------------------------------------------------------------------------------------
# the ops
# --------------------------------------------------------------------------------------------------
def conv_wants(acc: np.ndarray, b: np.ndarray, sb: int, sc: int, act: str) -> dict[str, np.ndarray]:
    return {name: requantize_accumulator(acc, b, sb, sc, act, a) for name, a in CONV_VARIANTS.items()}


def run_conv_case(ora, rng, tally, rec, cid, transposed, suite, record=True, **fixed):
    """One random (transposed) conv case; ``fixed`` overrides drawn parameters."""
    if transposed:
        k = int(fixed.get("k", rng.choice([2, 3, 4, 4, 5, 6])))
        s = int(fixed.get("s", rng.choice([1, 2, 2, 3])))
        p = int(fixed.get("p", rng.integers(0, k)))
        while True:
            H, W = (int(v) for v in rng.integers(1, 8, size=2))
            if (H - 1) * s - 2 * p + k >= 1 and (W - 1) * s - 2 * p + k >= 1:
                break
        C, O = int(fixed.get("C", rng.integers(1, 41))), int(fixed.get("O", rng.integers(1, 41)))
        x = rand_int8(rng, (C, H, W))
        w = rand_int8(rng, (C, O, k, k))
        acc = conv_transpose2d_acc(x, w, s, p, impl="reference")
    else:
        k = int(fixed.get("k", rng.choice([1, 1, 2, 3, 3, 3, 4, 5, 5, 7, 9])))
        s = int(fixed.get("s", rng.choice([1, 1, 1, 2, 2, 3, 4])))
        p = int(fixed.get("p", rng.integers(0, k)))
        lo = max(1, k - 2 * p)
        H, W = (int(v) for v in rng.integers(lo, lo + 12, size=2))
        C, O = int(fixed.get("C", rng.integers(1, 49))), int(fixed.get("O", rng.integers(1, 41)))
        x = rand_int8(rng, (C, H, W))
        w = rand_int8(rng, (O, C, k, k))
        acc = conv2d_acc(x, w, s, p, impl="reference")
    act = str(fixed.get("act", rng.choice(ACTS)))
    b = rand_int8(rng, (acc.shape[0],))
    sb = int(fixed.get("sb", rng.integers(-1, 20)))
    sc = int(fixed.get("sc", pick_shift_cut(rng, aligned(acc, b, sb), sb)))
    field = fixed.get("field")
    b_sim, sb_sim = b, sb
    emulate = fixed.get("emulate")
    if emulate is not None:
        # shift_bias <= -2 does not fit the dpuv2 field: run shift_bias = -1 with the bias pre-shifted by
        # k = -shift_bias - 1 bits, the way a compiler could realize it ("floor": arithmetic shift;
        # "round": add half, then shift, i.e. R)
        k_ = -sb - 1
        b64 = b.astype(np.int64)
        b_sim = (b64 >> k_ if emulate == "floor" else (b64 + (1 << (k_ - 1))) >> k_).astype(np.int8)
        sb_sim = -1
    fn = ora.conv_transpose if transposed else ora.conv
    try:
        got = fn(x, w, b_sim, s, p, sc, sb_sim, act, rng, shift_bias_field=field)
    except orc.OracleError as e:
        tally.rejected += 1
        return {"rejected": str(e)}
    wants = conv_wants(acc, b, sb, sc, act)
    case = {"id": cid, "suite": suite, "activation": act}
    tally.add(got, wants, case)
    op = "conv_transpose" if transposed else "conv"
    meta = {"id": cid, "suite": suite, "stride": s, "padding": p, "shift_cut": sc, "shift_bias": sb,
            "activation": act}
    if emulate is not None:
        meta["emulated_bias"] = emulate
        meta["replay_assumptions"] = {"negative_shift_bias": "floor_bias"}
    small = x.size + w.size <= 1500
    discriminating = any(not np.array_equal(got, v) for v in wants.values())
    if record and small:
        bucket = f"{op}_{suite}_discriminating" if discriminating else f"{op}_{suite}"
        rec.offer(op, meta, {"x": x, "w": w, "b": b, "out": got}, bucket)
    return {"got": got, "wants": wants}


def run_sweep_case(ora, rng, tally, rec, cid, w0, sb, sc, act, emulate=None):
    """1×1 conv of one channel over all 256 int8 inputs (16×16 image), weight w0, 16 output channels
    with 16 biases: every accumulator value w0·x, so every tie of the rounding (and of the LeakyReLU
    product) that exists is hit. ``emulate="floor"``: shift_bias ≤ −2 run as −1 with the bias shifted."""
    x = (np.arange(256) - 128).astype(np.int8).reshape(1, 16, 16)
    w = np.full((16, 1, 1, 1), w0, dtype=np.int8)
    b = (rng.integers(-128, 128, size=16)).astype(np.int8)
    b[0] = 0
    if emulate:
        b[1:8] |= 1  # odd biases: the bits a shift drops
    acc = conv2d_acc(x, w, 1, 0, impl="reference")
    b_sim, sb_sim = (b.astype(np.int64) >> (-sb - 1)).astype(np.int8), -1
    got = ora.conv(x, w, b_sim if emulate else b, 1, 0, sc, sb_sim if emulate else sb, act, rng)
    wants = conv_wants(acc, b, sb, sc, act)
    suite = "nsb_floor_sweep" if emulate else "tie_sweep"
    tally.add(got, wants, {"id": cid, "suite": suite, "activation": act})
    discriminating = any(bool((got != v).any()) for v in wants.values())
    meta = {"id": cid, "suite": suite, "stride": 1, "padding": 0, "shift_cut": sc, "shift_bias": sb,
            "activation": act}
    if emulate:
        meta["emulated_bias"] = emulate
        meta["replay_assumptions"] = {"negative_shift_bias": "floor_bias"}
    rec.offer("conv", meta, {"x": x, "w": w, "b": b, "out": got},
              f"conv_{suite}_discriminating" if discriminating else f"conv_{suite}")


def run_wide_acc_case(ora, rng, tally, rec, cid, wide_log):
    """Accumulators beyond 2^31: constant input and weights so that the simulator's bank reads may wrap
    (K up to 16·16·256·16 = 2^20 products, more than one legal instruction fetches) and still read the
    intended data. The accumulator is K·x·w exactly; compare with fxp exact and with a 32-bit wrap."""
    pp, icp, ocp = ora.pp, ora.icp, ora.ocp
    k = int(rng.choice([8, 12, 16]))
    cg = int(rng.choice([16, 64, 128, 256]))
    xv = int(rng.choice([-128, -127, -100, 97, 127]))
    wv = int(rng.choice([-128, -113, 101, 127]))
    bv = int(rng.integers(-128, 128))
    act = str(rng.choice(ACTS))
    sb = int(rng.integers(-1, 20))
    K = cg * icp * k * k
    acc_val = K * xv * wv
    t = acc_val * 2 + bv * 2 ** (sb + 1)
    sc = int(np.clip(int(np.ceil(np.log2(abs(t) + 1))) - 8 + rng.integers(-1, 2), 0, 60))
    # the whole VB0 and CONVW groups hold the constant, the bias bank the bias
    cmds = []
    base_in, n_in, width, depth = ora.groups["VB0"]
    for bank in range(base_in, base_in + n_in):
        cmds.append(f"W {bank} 0 {width * depth} " + " ".join([str(xv)] * (width * depth)))
    base_w, n_w, width_w, depth_w = ora.groups["CONVW"]
    for bank in range(base_w, base_w + n_w):
        cmds.append(f"W {bank} 0 {width_w * depth_w} " + " ".join([str(wv)] * (width_w * depth_w)))
    cmds.append(f"W {ora.bias_bank} 0 {ocp} " + " ".join([str(bv)] * ocp))
    length = 2
    cmds.append(
        "I CONVINIT 0000 0000"
        f" act_type {orc.ACT_TYPE[act]} shift_cut {sc} jump_read 1 stride_out 1 shift_bias {sb + 1}"
        f" jump_read_endl 1 stride_h 1 kernel_h {k} valid_pixel_parallel {pp} stride_offset_in 0"
        f" jump_write 1 stride_w 1 kernel_w {k} stride_offset_out 0 jump_write_endl 1"
    )
    cmds.append(
        "I CONV 0000 0000"
        f" pad_left 0 pad_top 0 bank_addr_in 0 channel_group {cg} pad_right {k - 1} pad_bottom {k - 1}"
        f" bank_addr_out 0 length {length} bank_id_in {ora.in_bank} bank_addr_weights 0 bank_addr_in_1 0"
        f" bank_id_out {ora.out_bank} bank_addr_bias 0 channel_offset 0 bank_addr_in_3 0 bank_addr_in_2 0"
    )
    for r in range(pp):
        cmds.append(f"R {ora.out_bank + r} 0 {length * ocp}")
    rows = ora.run(cmds)
    got = np.stack(rows).reshape(pp, length, ocp).transpose(2, 0, 1).astype(np.int8)
    acc = np.full(got.shape, acc_val, dtype=np.int64)
    b = np.full(ocp, bv, dtype=np.int8)
    wants = conv_wants(acc, b, sb, sc, act)
    # what a 32-bit two's-complement accumulator would give (wrap of acc and of the aligned sum)
    wrapped = ((acc_val + 2**31) % 2**32) - 2**31
    wants_wrap = requantize_accumulator(np.full(got.shape, wrapped, dtype=np.int64), b, sb, sc, act)
    wants["int32 wrap of the accumulator"] = wants_wrap
    tally.add(got, wants, {"id": cid, "suite": "wide_accumulator", "activation": act})
    wide_log.append({"id": cid, "K": K, "acc": acc_val, "log2_abs_acc": round(float(np.log2(abs(acc_val))), 2),
                     "shift_cut": sc, "shift_bias": sb, "activation": act,
                     "simulator": int(got.ravel()[0]), "fxp_exact": int(wants[next(iter(CONV_VARIANTS))].ravel()[0]),
                     "int32_wrap": int(wants_wrap.ravel()[0])})
    rec.offer("conv_const", {"id": cid, "suite": "wide_accumulator", "K": K, "x": xv, "w": wv, "shift_cut": sc,
                             "shift_bias": sb, "activation": act},
              {"b": b, "out": got[:, :1, :1]})


def run_add_case(ora, rng, tally, rec, cid, suite, **fixed):
    C = int(fixed.get("C", rng.integers(1, 40)))
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    a = rand_int8(rng, (C, H, W))
    b = rand_int8(rng, (C, H, W))
    fa = int(fixed.get("fa", rng.integers(-4, 12)))
    d = int(fixed.get("d", rng.choice([0, 0, 1, 2, 3, 3, 4, 5, 6, 8, 11, 15])))
    fb = fa + d if rng.random() < 0.5 else fa - d
    if "odd" in fixed:  # odd low bits in the finer input
        (a if fa > fb else b)[...] |= 1
    m = min(fa, fb)
    fo = int(fixed.get("fo", m + rng.integers(-8, 9)))
    sw = fo - m
    if not -15 <= sw <= 15:
        fo = m + int(np.clip(sw, -15, 15))
        sw = fo - m
    relu = bool(fixed.get("relu", rng.random() < 0.25))
    field = sw if sw >= 0 else 16 - sw
    got = ora.elew([a, b], [fa - m, fb - m], field, relu, rng)
    wants = {}
    for name, mode in ADD_VARIANTS.items():
        out = add_int(a, fa, b, fb, fo, DpuAssumptions(eltwise_add=mode))
        wants[name] = np.maximum(out, 0).astype(np.int8) if relu else out
    tally.add(got, wants, {"id": cid, "suite": suite})
    meta = {"id": cid, "suite": suite, "fix_a": fa, "fix_b": fb, "fix_out": fo, "relu": relu}
    discriminating = any(not np.array_equal(got, v) for v in wants.values())
    if a.size <= 400:
        rec.offer("add", meta, {"a": a, "b": b, "out": got}, f"add_{suite}_discriminating" if discriminating
                  else f"add_{suite}")


def run_requant_case(ora, rng, tally, rec, cid):
    C = int(rng.integers(1, 40))
    H, W = (int(v) for v in rng.integers(1, 9, size=2))
    q = rand_int8(rng, (C, H, W))
    fi = int(rng.integers(-4, 13))
    fo = fi + int(rng.integers(-15, 16))
    sw = fo - fi
    field = sw if sw >= 0 else 16 - sw
    got = ora.elew([q], [0], field, False, rng)
    tally.add(got, {"requantize (FXP-Q5)": requantize(q, fi, fo)}, {"id": cid, "suite": "random"})
    if q.size <= 400:
        rec.offer("requantize", {"id": cid, "suite": "random", "fix_in": fi, "fix_out": fo}, {"q": q, "out": got},
                  "requantize")


def probe_negative_shift_bias(ora, rng) -> list[dict]:
    """shift_bias ≤ −2 on the dpuv2 CONVINIT: the unsigned field would need sb + 1 < 0. Try the encodings
    other DPU generations use (v ≥ 32 means 32 − v) and a negative literal; record what the simulator does."""
    out = []
    x = rand_int8(rng, (3, 5, 5))
    w = rand_int8(rng, (4, 3, 3, 3))
    b = rand_int8(rng, (4,))
    for sb in (-2, -3, -8, -16):
        for label, field in (("32 - shift_bias (generic Conv::bias decoding)", 32 - sb),
                             ("shift_bias + 1 (negative)", sb + 1)):
            try:
                ora.conv(x, w, b, 1, 1, 2, sb, "leaky_relu", rng, shift_bias_field=field)
                res = "executed"
            except orc.OracleError as e:
                # "<file>:<line>: <ERRID> (check failed): <the simulator's message>": keep id and message
                res = "rejected: " + e.args[0].split(": ", 1)[-1].replace(" (check failed):", ":")[:120]
            except ValueError as e:
                res = "not encodable: " + str(e)[:160]
            out.append({"shift_bias": sb, "encoding": label, "field": field, "result": res})
    return out


def reproducers(ora, rng) -> list[dict]:
    """The smallest cases that tell the values of each switch apart, run on the simulator."""
    out = []

    def one(x1, w1, b1, sb, sc, act, b_sim=None, sb_sim=None):
        x = np.array([[[x1]]], np.int8)
        w = np.full((1, 1, 1, 1), w1, np.int8)
        b = np.array([b1], np.int8)
        got = ora.conv(x, w, b if b_sim is None else np.array([b_sim], np.int8), 1, 0, sc,
                       sb if sb_sim is None else sb_sim, act, rng)
        acc = conv2d_acc(x, w, 1, 0, impl="reference")
        return int(got.ravel()[0]), {k: int(v.ravel()[0]) for k, v in conv_wants(acc, b, sb, sc, act).items()}

    got, wants = one(-59, 1, 0, 0, 2, "leaky_relu")
    out.append({"switch": "FXP-A-LEAKY", "case": "1x1 conv, x = -59, w = 1, b = 0, shift_bias 0, shift_cut 2, "
                "LeakyReLU (t = -59, s = 2)", "simulator": got, "fxp": wants})
    got, wants = one(-15, 1, 1, -2, 0, "leaky_relu", b_sim=0, sb_sim=-1)
    out.append({"switch": "FXP-A-NSB", "case": "1x1 conv, x = -15, w = 1, b = 1, shift_bias -2, shift_cut 0, "
                "LeakyReLU; run as shift_bias -1 with the bias floored (1 >> 1 = 0): the only form the dpuv2 "
                "CONVINIT can hold", "simulator": got, "fxp": wants})
    a, b = np.array([[[1]]], np.int8), np.array([[[0]]], np.int8)
    got = int(ora.elew([a, b], [3, 0], 2, False, rng).ravel()[0])
    out.append({"switch": "FXP-A-ADD", "case": "add a = 1 at fix 3 (0.125) + b = 0 at fix 0, output fix 2 "
                "(ELEWINIT shift_read 3 / 0, ELEW shift_write 2)", "simulator": got,
                "fxp": {name: int(add_int(a, 3, b, 0, 2, DpuAssumptions(eltwise_add=mode)).ravel()[0])
                        for name, mode in ADD_VARIANTS.items()}})
    return out


# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vendor-src", required=True, type=Path, help="VART checkout with sim-runner/")
    ap.add_argument("--target-factory-src", required=True, type=Path, help="target_factory checkout")
    ap.add_argument("--vendor-rev", default=None, help="commit of --vendor-src if it is not a git checkout")
    ap.add_argument("--target-factory-rev", default=None, help="commit of --target-factory-src (idem)")
    ap.add_argument("--target", default="DPUCZDX8G_ISA1_B4096", help="target_factory target name")
    ap.add_argument("--build-dir", type=Path, default=Path("build/dpu_oracle"))
    ap.add_argument("--out", type=Path, default=Path("results/dpu-oracle"))
    ap.add_argument("--seed", type=int, default=33)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of cases")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.time()
    b = orc.build(args.vendor_src, args.target_factory_src, args.build_dir)
    build_seconds = time.time() - t0
    print(f"built {b.driver} in {build_seconds:.0f} s", file=sys.stderr)
    if args.build_only:
        return 0
    t0 = time.time()
    prototxt = b.target_factory / "targets" / f"{args.target}.prototxt"
    rng = np.random.default_rng(args.seed)
    n = {k: max(1, int(round(v * args.scale))) for k, v in
         {"conv": 2000, "conv_transpose": 2000, "add": 3000, "add_odd": 1000, "requant": 2000,
          "leaky_sb": 600, "wide": 200, "field_probe": 200, "nsb_emul": 600, "geometry": 300}.items()}
    tallies: dict[str, Tally] = {}
    rec = Recorder({
        "conv_random": 60, "conv_random_discriminating": 40,
        "conv_leaky_sb-1": 10, "conv_leaky_sb-1_discriminating": 40,
        "conv_tie_sweep": 8, "conv_tie_sweep_discriminating": 40,
        "conv_transpose_random": 40, "conv_transpose_random_discriminating": 30,
        "add_random": 100, "add_random_discriminating": 60,
        "add_delta>=3,odd": 20, "add_delta>=3,odd_discriminating": 100,
        "requantize": 150,
        "conv_nsb_floor": 20, "conv_nsb_floor_discriminating": 60,
        "conv_nsb_floor_sweep": 5, "conv_nsb_floor_sweep_discriminating": 25,
        "conv_geometry": 20, "conv_geometry_discriminating": 10,
    })
    wide_log: list[dict] = []
    cid = 0
    work = args.build_dir / "work"
    with orc.Oracle(b.driver, prototxt, work) as ora:
        info = dict(ora.info)

        def tally(name, variants):
            return tallies.setdefault(name, Tally(variants))

        # conv, random geometry
        tc = tally("conv", list(CONV_VARIANTS))
        for _ in range(n["conv"]):
            run_conv_case(ora, rng, tc, rec, cid, False, "random")
            cid += 1
        print(f"conv done {time.time() - t0:.0f} s", file=sys.stderr)
        # conv + LeakyReLU at shift_bias = -1 (the lowest the dpuv2 field encodes) and small shifts
        tl = tally("conv_leaky_shift_bias_-1", list(CONV_VARIANTS))
        for _ in range(n["leaky_sb"]):
            run_conv_case(ora, rng, tl, rec, cid, False, "leaky_sb-1", act="leaky_relu", sb=-1,
                          sc=int(rng.integers(0, 5)))
            cid += 1
        # ties: every accumulator value of a weight, every shift_cut 0..8, shift_bias -1..4
        ts = tally("conv_tie_sweep", list(CONV_VARIANTS))
        for w0 in (1, -1, 3, 13, 32, 64, 96, 127, -128):
            for sc in range(0, 9):
                for sb in (-1, 0, 2, 4):
                    for act in ACTS:
                        run_sweep_case(ora, rng, ts, rec, cid, w0, sb, sc, act)
                        cid += 1
        # extreme geometry: kernels 10..16, strides up to 8 (the conv_limit of the target)
        tg = tally("conv_large_kernel_or_stride", list(CONV_VARIANTS))
        for _ in range(n["geometry"]):
            run_conv_case(ora, rng, tg, rec, cid, False, "geometry", k=int(rng.integers(10, 17)),
                          s=int(rng.integers(1, 9)), C=int(rng.integers(1, 21)), O=int(rng.integers(1, 21)))
            cid += 1
        print(f"sweeps done {time.time() - t0:.0f} s", file=sys.stderr)
        # transposed conv
        tt = tally("conv_transpose", list(CONV_VARIANTS))
        for _ in range(n["conv_transpose"]):
            run_conv_case(ora, rng, tt, rec, cid, True, "random")
            cid += 1
        print(f"conv_transpose done {time.time() - t0:.0f} s", file=sys.stderr)
        # accumulators beyond 2^31
        tw = tally("conv_wide_accumulator", list(CONV_VARIANTS) + ["int32 wrap of the accumulator"])
        for _ in range(n["wide"]):
            run_wide_acc_case(ora, rng, tw, rec, cid, wide_log)
            cid += 1
        # the shift_bias field encoding: field = shift_bias (instead of + 1) on cases with a bias
        tf = tally("conv_field_equals_shift_bias", list(CONV_VARIANTS))
        for _ in range(n["field_probe"]):
            sb = int(rng.integers(0, 17))
            run_conv_case(ora, rng, tf, rec, cid, False, "field_probe", record=False, sb=sb, field=sb,
                          act=str(rng.choice(ACTS)))
            cid += 1
        # shift_bias <= -2: what the instruction set allows, and two ways a compiler could realize it
        nsb_probe = probe_negative_shift_bias(ora, rng)
        tn = tally("conv_shift_bias_<=-2_as_-1_with_floor_shifted_bias_sweep", list(CONV_VARIANTS))
        for w0 in (1, 3, 13, 64, -128):
            for sc in range(0, 4):
                for sb in (-2, -3, -5, -8):
                    for act in ACTS:
                        run_sweep_case(ora, rng, tn, rec, cid, w0, sb, sc, act, emulate="floor")
                        cid += 1
        for emulate in ("floor", "round"):
            te = tally(f"conv_shift_bias_<=-2_as_-1_with_{emulate}_shifted_bias", list(CONV_VARIANTS))
            for _ in range(n["nsb_emul"]):
                sb = int(rng.integers(-8, -1))
                run_conv_case(ora, rng, te, rec, cid, False, f"nsb_{emulate}", record=emulate == "floor",
                              sb=sb, emulate=emulate)
                cid += 1
        # element-wise add
        ta = tally("add", list(ADD_VARIANTS))
        for _ in range(n["add"]):
            run_add_case(ora, rng, ta, rec, cid, "random")
            cid += 1
        to = tally("add_positions_differ_by_3_or_more", list(ADD_VARIANTS))
        for _ in range(n["add_odd"]):
            run_add_case(ora, rng, to, rec, cid, "delta>=3,odd", d=int(rng.integers(3, 16)), odd=True)
            cid += 1
        # requantizing copy (ELEW with one input)
        tq = tally("requantize", ["requantize (FXP-Q5)"])
        for _ in range(n["requant"]):
            run_requant_case(ora, rng, tq, rec, cid)
            cid += 1
        repro = reproducers(ora, rng)
        instructions = ora.instructions

    elapsed = time.time() - t0
    header = {
        "tool": "tools/dpu_oracle/run.py",
        "date": datetime.date.today().isoformat(),
        "seed": args.seed,
        "scale": args.scale,
        "target": info,
        "vendor": {
            "sim_runner": str(b.sim_runner),
            "vendor_rev": args.vendor_rev or orc.git_revision(b.sim_runner),
            "sim_runner_sources_sha256": b.vendor_digest,
            "target_factory_rev": args.target_factory_rev or orc.git_revision(b.target_factory),
            "target_factory_sources_sha256": b.target_factory_digest,
        },
    }
    summary = {
        **header,
        "instructions_executed": instructions,
        "seconds": round(elapsed, 1),
        "build_seconds": round(build_seconds, 1),
        "ops": {k: v.as_dict() for k, v in tallies.items()},
        "reproducers": repro,
        "negative_shift_bias_probe": nsb_probe,
        "wide_accumulator_stats": {
            "cases": len(wide_log),
            "abs_acc_at_least_2^31": sum(abs(c["acc"]) >= 2**31 for c in wide_log),
            "max_log2_abs_acc": max((c["log2_abs_acc"] for c in wide_log), default=None),
            "int32_wrap_would_change_output": sum(c["int32_wrap"] != c["fxp_exact"] for c in wide_log),
            "simulator_equals_exact": sum(c["simulator"] == c["fxp_exact"] for c in wide_log),
        },
        "wide_accumulator_cases": wide_log[:20],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
    rec.save(args.out / "cases.npz", header)
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


def markdown(s: dict) -> str:
    lines = ["| op / suite | cases | elements | rejected | mismatching elements per fxp variant |",
             "|---|---|---|---|---|"]
    for name, t in s["ops"].items():
        mm = "; ".join(f"{k}: {v}" for k, v in t["mismatching_elements"].items())
        lines.append(f"| {name} | {t['cases']} | {t['elements']} | {t['rejected_by_simulator']} | {mm} |")
        for act, ba in sorted(t.get("by_activation", {}).items()):
            mm = "; ".join(f"{k}: {v}" for k, v in ba["mismatching_elements"].items())
            lines.append(f"| ↳ {act} | {ba['cases']} | {ba['elements']} | | {mm} |")
    lines.append("")
    w = s["wide_accumulator_stats"]
    lines.append(f"wide accumulators: {w['cases']} cases, {w['abs_acc_at_least_2^31']} with |acc| >= 2^31 (up to "
                 f"2^{w['max_log2_abs_acc']}); simulator == exact in {w['simulator_equals_exact']}; a 32-bit wrap "
                 f"would change the output in {w['int32_wrap_would_change_output']}")
    lines.append("")
    lines.append("minimal reproducers:")
    for r in s["reproducers"]:
        lines.append(f"- {r['switch']}: {r['case']}: simulator {r['simulator']}, fxp {r['fxp']}")
    lines.append("")
    lines.append("shift_bias <= -2 probe:")
    for p in s["negative_shift_bias_probe"]:
        lines.append(f"- shift_bias {p['shift_bias']}, field {p['field']} ({p['encoding']}): {p['result']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
