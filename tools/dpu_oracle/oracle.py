"""Build and drive the DPU instruction simulator of VART (sim-runner) as an arithmetic oracle.

Nothing from the vendor is stored in this repository: ``build`` compiles the user's own checkouts
(VART with ``sim-runner/``, and the matching ``target_factory`` for ``target.proto`` and the DPU
target descriptions) together with our shims (``shim/``: logging, xir stand-in) and our driver
(``driver.cpp``) into a build folder outside git (default ``build/dpu_oracle``, ignored).

``Oracle`` runs the driver and encodes DPUCZDX8G (``dpuv2`` instruction set) instructions:

* ``conv``: CONVINIT + CONV per tile of (≤ pixel_parallel output rows) × (≤ output_channel_parallel
  output channels) × (a column chunk), with the input window, weights and bias written into the
  on-chip banks exactly where the simulator's ``Conv::read()`` fetches them, padding and unused
  input channels filled with garbage that the simulator's ``pad()`` must clear;
* ``conv_transpose``: the same CONV on the zero-inserted input with the flipped, channel-swapped
  kernel (FXP-C2);
* ``elew``: ELEWINIT × n + ELEW (element-wise add of n inputs; n = 1 is the requantizing copy).

Field encodings that the simulator does not define and the (closed) compiler chooses are the
parameters ``shift_bias_field`` (default shift_bias + 1, see ``conv``) and the ``shift_read`` /
``shift_write`` choice of ``elew`` (m = min of the input positions).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Calc::act_type_t in the simulator (util/Calc.hpp): the values the act_type fields carry.
ACT_TYPE = {"none": 0, "relu": 1, "leaky_relu": 3}

# The simulator's CMake definitions (sim-runner/CMakeLists.txt) plus -fsigned-char: DPU_DATA_TYPE is
# `char`, which must be signed for int8 data (it is on x86-64, not on aarch64 by default).
DEFINES = ["-DRESIZE_DATA_TYPE=uint8_t", "-DSMFC_DATA_TYPE=float", "-DDPU_DATA_TYPE=char"]
CXXFLAGS = ["-std=c++17", "-O2", "-fsigned-char", "-w"]
# The simulator sources that need the VART runner / xir graph API (not used by the oracle).
EXCLUDED = {"sim_runner.cpp", "sim_tensor_buffer.cpp"}
# sim-runner/CMakeLists.txt: aux_source_directory list and private include directories.
SOURCE_DIRS = [
    "src",
    "src/util",
    "src/conf",
    "src/buffer",
    "src/inst",
    "src/inst/pub",
    "src/inst/xvdpu",
    "src/inst/xv2dpu",
    "src/inst/xv2dpu/load_ctrlpkt/src",
    "src/inst/xv2dpu/alu_ctrlpkt/AIECfg",
    "src/inst/xv2dpu/alu_ctrlpkt/Util",
]
INCLUDE_DIRS = [
    "include",
    "src",
    "src/conf",
    "src/inst",
    "src/inst/pub",
    "src/buffer",
    "src/util",
    "src/inst/xv2dpu",
    "src/inst/xv2dpu/alu_ctrlpkt/AIECfg",
    "src/inst/xv2dpu/alu_ctrlpkt/Ops",
    "src/inst/xv2dpu/alu_ctrlpkt/Util",
    "src/inst/xv2dpu/load_ctrlpkt/inc",
]


class OracleError(RuntimeError):
    """The simulator rejected an instruction (a failed check in the vendor code)."""


# --------------------------------------------------------------------------------------------------
# locating and building the vendor sources
# --------------------------------------------------------------------------------------------------
def find_sim_runner(vendor_src: Path) -> Path:
    """sim-runner/ inside a VART checkout (``<vart>/sim-runner``) or a Vitis-AI one."""
    for cand in (vendor_src, vendor_src / "sim-runner", vendor_src / "src/vai_runtime/vart/sim-runner"):
        if (cand / "src/inst/Conv.cpp").is_file() and (cand / "src/inst/parser/xml/dpuv2.xml").is_file():
            return cand
    raise FileNotFoundError(
        f"no sim-runner sources under {vendor_src} (expected sim-runner/src/inst/Conv.cpp; the public VART "
        "repository with the DPU instruction simulator, e.g. a checkout of zmaychek84/vart)"
    )


def find_target_factory(tf_src: Path) -> Path:
    """target_factory/ (``src/target.proto``, ``targets/*.prototxt``) or a Vitis-AI checkout holding it."""
    for cand in (tf_src, tf_src / "target_factory", tf_src / "src/vai_runtime/target_factory"):
        if (cand / "src/target.proto").is_file() and (cand / "targets").is_dir():
            return cand
    raise FileNotFoundError(f"no target_factory sources (src/target.proto, targets/) under {tf_src}")


def git_revision(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return out or None
    except (OSError, subprocess.CalledProcessError):
        return None


def tree_digest(files: list[Path], root: Path) -> str:
    """SHA-256 over (relative path, content) of the files compiled: identifies the vendor sources."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: str(p.relative_to(root))):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _run(cmd: list[str], log: list[str]) -> None:
    log.append(" ".join(shlex.quote(c) for c in cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"command failed ({res.returncode}): {log[-1]}\n{res.stderr[-4000:]}")


@dataclass
class Build:
    driver: Path
    sim_runner: Path
    target_factory: Path
    vendor_digest: str
    target_factory_digest: str
    commands: list[str]


def build(vendor_src: Path, tf_src: Path, build_dir: Path, nice: int = 15, verbose: bool = True) -> Build:
    """Compile the simulator (all of sim-runner but the runner glue), target.proto and our driver.

    One compiler process at a time, under ``nice``. Objects are cached by a hash of their source,
    the shims and the flags, so a second call only relinks when nothing changed.
    """
    sim = find_sim_runner(Path(vendor_src).resolve())
    tf = find_target_factory(Path(tf_src).resolve())
    build_dir = Path(build_dir).resolve()
    (build_dir / "obj").mkdir(parents=True, exist_ok=True)
    (build_dir / "pb").mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    niced = ["nice", "-n", str(nice)] if nice else []

    sources = [
        f for d in SOURCE_DIRS for f in sorted((sim / d).glob("*.cpp")) if f.name not in EXCLUDED
    ]
    headers = [f for f in sim.rglob("*") if f.suffix in (".hpp", ".h") and f.is_file()]
    shims = sorted((HERE / "shim").rglob("*.h*"))
    vendor_digest = tree_digest(sources + headers, sim)
    tf_files = [tf / "src/target.proto", tf / "include/vitis/ai/target_factory.hpp"]
    tf_digest = tree_digest(tf_files + sorted((tf / "targets").glob("*.prototxt")), tf)

    # target.proto -> target.pb.{h,cc}
    proto_key = hashlib.sha256((tf / "src/target.proto").read_bytes()).hexdigest()[:16]
    pb_dir = build_dir / "pb" / proto_key
    if not (pb_dir / "target.pb.cc").is_file():
        pb_dir.mkdir(parents=True, exist_ok=True)
        _run(niced + ["protoc", f"-I{tf / 'src'}", f"--cpp_out={pb_dir}", str(tf / "src/target.proto")], log)

    includes = [f"-I{HERE / 'shim'}", f"-I{pb_dir}", f"-I{tf / 'include'}"] + [f"-I{sim / d}" for d in INCLUDE_DIRS]
    flags = CXXFLAGS + DEFINES + includes
    # cache key: contents, not paths (the same sources checked out elsewhere reuse the objects)
    common_key = hashlib.sha256(
        ("\0".join(CXXFLAGS + DEFINES) + vendor_digest + tf_digest + "".join(p.read_text() for p in shims)).encode()
    ).hexdigest()

    objects = []
    todo = sources + [pb_dir / "target.pb.cc", HERE / "driver.cpp"]
    for i, src in enumerate(todo):
        rel = src.relative_to(sim) if src.is_relative_to(sim) else src.name
        key = hashlib.sha256((common_key + str(rel) + src.read_text(errors="replace")).encode()).hexdigest()[:20]
        obj = build_dir / "obj" / f"{src.stem}-{key}.o"
        objects.append(obj)
        if obj.is_file():
            continue
        if verbose:
            print(f"[dpu-oracle build] {i + 1}/{len(todo)} {src.name}", file=sys.stderr, flush=True)
        _run(niced + ["g++", *flags, "-c", str(src), "-o", str(obj) + ".tmp"], log)
        os.replace(str(obj) + ".tmp", obj)
    driver = build_dir / "dpu_oracle_driver"
    _run(niced + ["g++", "-o", str(driver), *map(str, objects), "-lprotobuf", "-lpthread"], log)
    return Build(driver, sim, tf, vendor_digest, tf_digest, log)


# --------------------------------------------------------------------------------------------------
# the driver process
# --------------------------------------------------------------------------------------------------
SIM_CONFIG = """\
# fxlic DPU oracle: configuration of the simulator (read by its SimCfg from ./config/SIMCfg.txt).
# No debug dumps, no instruction printing; banks start zeroed.
debug: false
debug_path: ./sim-debug
debug_layer: false
dump_inst: false
bank_init: false
ddr_dump_init: false
ddr_dump_end: false
ddr_dump_layer: false
"""


def _ints(a: np.ndarray) -> str:
    return " ".join(map(str, np.asarray(a, dtype=np.int64).ravel().tolist()))


class Oracle:
    """One simulator process for one DPU target (e.g. ``DPUCZDX8G_ISA1_B4096``)."""

    def __init__(self, driver: Path, target_prototxt: Path, workdir: Path):
        self.driver, self.prototxt, self.workdir = Path(driver), Path(target_prototxt), Path(workdir)
        (self.workdir / "config").mkdir(parents=True, exist_ok=True)
        (self.workdir / "config" / "SIMCfg.txt").write_text(SIM_CONFIG)
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, str] = {}
        self.instructions = 0
        self._start()

    # -- process -----------------------------------------------------------------------------------
    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.driver), str(self.prototxt), str(self.workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1 << 20,
        )
        self.groups: dict[str, tuple[int, int, int, int]] = {}
        line = self.proc.stdout.readline().split()
        while line and line[0] == "GROUP":
            self.groups[line[1]] = tuple(int(v) for v in line[3:7])  # base_id, bank_num, width, depth
            line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"simulator driver did not start: {' '.join(line)}")
        self.info = {"name": line[1], "type": line[2]}
        self.info.update({line[i]: line[i + 1] for i in range(3, len(line) - 1, 2)})
        if self.info["type"] != "DPUCZDX8G":
            raise RuntimeError(f"the oracle encodes the DPUCZDX8G (dpuv2) instruction set, not {self.info['type']}")
        self.pp = int(self.info["conv_pp"])
        self.icp = int(self.info["conv_icp"])
        self.ocp = int(self.info["conv_ocp"])
        self.elew_pp = int(self.info["elew_pp"])
        self.elew_cp = int(self.info["elew_cp"])
        if self.info["char_signed"] != "1":
            raise RuntimeError("the simulator was built with an unsigned char: int8 data would be misread")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None

    def restart(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self._start()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one case: a list of commands, reads answered in order ---------------------------------------
    def run(self, commands: list[str]) -> list[np.ndarray]:
        """Send the commands of one case; return the data of its R commands (int64 arrays)."""
        self.proc.stdin.write("\n".join(commands) + "\nE\n")
        self.proc.stdin.flush()
        reads = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("simulator driver died")
            if line.startswith("D"):
                reads.append(np.array(line.split()[1:], dtype=np.int64))
            elif line.startswith("OK"):
                self.instructions += sum(1 for c in commands if c.startswith("I "))
                return reads
            elif line.startswith("ERR"):
                # the rest of the case is skipped by the driver; static instruction state (ElewInit
                # queues) may be left half consumed, so start a fresh process
                while True:
                    rest = self.proc.stdout.readline()
                    if not rest or rest.startswith("OK"):
                        break
                self.restart()
                raise OracleError(line[4:].strip())

    # -- encoders ---------------------------------------------------------------------------------
    def conv(
        self,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray,
        stride: int,
        padding: int,
        shift_cut: int,
        shift_bias: int,
        activation: str,
        rng: np.random.Generator,
        shift_bias_field: int | None = None,
        max_cols: int | None = None,
    ) -> np.ndarray:
        """int8 [O, H', W'] of a conv (x int8 [C, H, W], w int8 [O, C, k, k], b int8 [O]) on the simulator.

        The ConvInit ``shift_bias`` field is ``shift_bias + 1`` unless ``shift_bias_field`` is given:
        the simulator's DPUV2 ``Conv::bias()`` computes 2·acc + b·2^field and ``transform()`` divides by
        2^(shift_cut + 1), so field = shift_bias + 1 is the encoding under which the instruction
        computes acc + b·2^shift_bias (the field is unsigned: shift_bias ≥ −1).
        """
        C, H, W = x.shape
        O, Cw, kh, kw = w.shape
        assert Cw == C and kh == kw and b.shape == (O,)
        k, s, p = kh, stride, padding
        if not 0 <= p <= k - 1:
            raise ValueError("padding must be in [0, k-1] (the CONV pad fields address the kernel window)")
        field = shift_bias + 1 if shift_bias_field is None else shift_bias_field
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        pp, icp, ocp = self.pp, self.icp, self.ocp
        cg = -(-C // icp)
        co = cg * icp - C
        out = np.zeros((O, Ho, Wo), dtype=np.int64)
        src_h = (pp - 1) * s + k
        # the window's rows go s per bank line block, pp banks per address group (Conv::read)
        slots = -(-src_h // s)  # ceil: bank line blocks of s rows
        groups = -(-slots // pp)  # ceil: address groups of pp banks
        depth = self.groups["VB0"][3]

        def fits(ln: int) -> bool:
            # a window row (src_w pixels of cg lines) must fit jump_read_endl (10 bits, minus 1) and the
            # address groups, s rows each, must fit one bank without wrapping onto each other
            jre_ = ((ln - 1) * s + k) * cg
            return jre_ <= 1024 and groups * s * jre_ <= depth

        length = max(1, min(Wo, max_cols or Wo))
        while length > 1 and not fits(length):
            length -= 1
        src_w = (length - 1) * s + k
        jr, jre = cg, src_w * cg
        if not fits(length) or groups > 4 or k * k * cg > self.groups["CONVW"][3]:
            raise ValueError(f"case does not fit the banks: k={k} s={s} cg={cg}")
        # garbage everywhere the simulator must not use (padding, channel tail, unused out channels)
        xpad = rng.integers(-128, 128, size=(cg * icp, H + 2 * p + src_h + s, W + 2 * p + src_w + s))
        xpad[:C, p : p + H, p : p + W] = x
        xpad[C:, p : p + H, p : p + W] = rng.integers(-128, 128, size=(cg * icp - C, H, W))
        for g0 in range(0, O, ocp):
            og = min(ocp, O - g0)
            wg = rng.integers(-128, 128, size=(ocp, cg * icp, k, k))
            wg[:og, :C] = w[g0 : g0 + og]
            bg = rng.integers(-128, 128, size=ocp)
            bg[:og] = b[g0 : g0 + og]
            cmds = []
            # weights: bank CONVW[o] line (i*k + j)*cg + c//icp holds w[o, c, i, j] for the icp channels
            for o in range(ocp):
                lines = wg[o].transpose(1, 2, 0).reshape(k * k * cg * icp)  # [i, j, c]
                cmds.append(f"W {self.weight_bank + o} 0 {lines.size} {_ints(lines)}")
            cmds.append(f"W {self.bias_bank} 0 {ocp} {_ints(bg)}")
            for oy0 in range(0, Ho, pp):
                vpp = min(pp, Ho - oy0)
                for ox0 in range(0, Wo, length):
                    ln = min(length, Wo - ox0)
                    sw = (ln - 1) * s + k
                    cmds_t = list(cmds) if (oy0 == 0 and ox0 == 0) else []
                    # input window rows R = oy0*s + i (padded coordinates), columns ox0*s + j
                    for i in range(src_h):
                        slot, off = divmod(i, s)
                        bank, group = slot % pp, slot // pp
                        base = group * s * jre + off * jre
                        r = oy0 * s + i
                        block = xpad[:, r, ox0 * s : ox0 * s + sw]  # [cg*icp, sw]
                        cmds_t.append(f"W {self.in_bank + bank} {base} {block.size} {_ints(block.T)}")
                    pad_top = max(0, p - oy0 * s)
                    pad_left = max(0, p - ox0 * s)
                    pad_bottom = min(k - 1, p + H - oy0 * s - (vpp - 1) * s - 1)
                    pad_right = min(k - 1, p + W - ox0 * s - (ln - 1) * s - 1)
                    cmds_t.append(
                        "I CONVINIT 0000 0000"
                        f" act_type {ACT_TYPE[activation]} shift_cut {shift_cut} jump_read {jr} stride_out 1"
                        f" shift_bias {field} jump_read_endl {jre} stride_h {s} kernel_h {k}"
                        f" valid_pixel_parallel {vpp} stride_offset_in 0 jump_write 1 stride_w {s}"
                        f" kernel_w {k} stride_offset_out 0 jump_write_endl 1"
                    )
                    cmds_t.append(
                        "I CONV 0000 0000"
                        f" pad_left {pad_left} pad_top {pad_top} bank_addr_in 0 channel_group {cg}"
                        f" pad_right {pad_right} pad_bottom {pad_bottom} bank_addr_out 0 length {ln}"
                        f" bank_id_in {self.in_bank} bank_addr_weights 0 bank_addr_in_1 {s * jre}"
                        f" bank_id_out {self.out_bank} bank_addr_bias 0 channel_offset {co}"
                        f" bank_addr_in_3 {3 * s * jre} bank_addr_in_2 {2 * s * jre}"
                    )
                    for r in range(vpp):
                        cmds_t.append(f"R {self.out_bank + r} 0 {ln * ocp}")
                    rows = self.run(cmds_t)
                    for r, row in enumerate(rows):
                        out[g0 : g0 + og, oy0 + r, ox0 : ox0 + ln] = row.reshape(ln, ocp).T[:og]
        return out.astype(np.int8)

    def conv_transpose(
        self,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray,
        stride: int,
        padding: int,
        shift_cut: int,
        shift_bias: int,
        activation: str,
        rng: np.random.Generator,
        shift_bias_field: int | None = None,
    ) -> np.ndarray:
        """Transposed conv (w int8 [C, O, k, k], PyTorch layout) as the DPU runs it: a stride-1 CONV
        of the input with stride−1 zeros inserted, padded by k−1−p, kernel flipped and channel-swapped."""
        C, H, W = x.shape
        _, O, k, _ = w.shape
        s, p = stride, padding
        xu = np.zeros((C, (H - 1) * s + 1, (W - 1) * s + 1), dtype=np.int8)
        xu[:, ::s, ::s] = x
        wc = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return self.conv(xu, wc, b, 1, k - 1 - p, shift_cut, shift_bias, activation, rng, shift_bias_field)

    def elew(
        self,
        inputs: list[np.ndarray],
        shift_reads: list[int],
        shift_write_field: int,
        relu: bool,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """ELEWINIT × n + ELEW add of n int8 tensors [C, H, W] (n = 1: requantizing copy)."""
        n = len(inputs)
        C, H, W = inputs[0].shape
        cp, epp = self.elew_cp, self.elew_pp
        cg = -(-C // cp)
        out = np.zeros((C, H, W), dtype=np.int64)
        # input k at bank_addr_in 512*k of VB0 banks 0..3 (one image row per bank), output in VB1
        for y0 in range(0, H, epp):
            vpp = min(epp, H - y0)
            cmds = []
            for k, t in enumerate(inputs):
                for r in range(vpp):
                    block = rng.integers(-128, 128, size=(cg * cp, W))
                    block[:C] = t[:, y0 + r, :]
                    cmds.append(f"W {self.in_bank + r} {512 * k} {block.size} {_ints(block.T)}")
            for k in range(n):
                cmds.append(
                    f"I ELEWINIT 0000 0000 bank_id_in {self.in_bank} share_pp 0 jump_bank 1 id {k}"
                    f" jump_read_endl 1 bank_addr_in {512 * k} shift_read {shift_reads[k]} jump_read {cg}"
                )
            cmds.append(
                f"I ELEW 0000 0000 bank_id_out {self.out_bank} elew_type 0 act_type {int(relu)} length {W}"
                f" valid_pixel_parallel {vpp} num {n} jump_write_endl 1 bank_addr_out 0 channel_group {cg}"
                f" shift_write {shift_write_field} jump_write {cg}"
            )
            for r in range(vpp):
                cmds.append(f"R {self.out_bank + r} 0 {W * cg * cp}")
            rows = self.run(cmds)
            for r, row in enumerate(rows):
                out[:, y0 + r, :] = row.reshape(W, cg * cp).T[:C]
        return out.astype(np.int8)

    # bank ids from the target's bank groups (DPUCZDX8G: VB0, VB1, CONVW, BIAS)
    @property
    def in_bank(self) -> int:
        return self.groups["VB0"][0]

    @property
    def out_bank(self) -> int:
        return self.groups["VB1"][0]

    @property
    def weight_bank(self) -> int:
        return self.groups["CONVW"][0]

    @property
    def bias_bank(self) -> int:
        return self.groups["BIAS"][0]
