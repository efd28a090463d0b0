"""Platform assumptions of the decoder, one test each (the audit list is docs/determinism.md §"Platform
assumptions"): byte order of every stored field, platform-width integer types, float use on the decode
path, Numba settings, and the pure-NumPy path (no Numba) being bit-identical to the Numba one.

Cross-architecture runs (aarch64, s390x under qemu) are made by ``tools/cross_arch_check.sh``; their
reports are in ``results/cross-arch/``. These tests guard, on any host, the properties those runs rely on.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fxlic.codec import Codec
from fxlic.entropy import rans
from fxlic.reference.modelfile import ModelFile, load_model_file

REPO = Path(__file__).resolve().parents[1]
# Every module a decode (and an encode) runs through: the golden path's arithmetic and coding.
DECODE_PATH = ["fxp/conv.py", "fxp/layer.py", "fxp/rounding.py", "fxp/quant.py", "fxp/_numba_kernels.py",
               "reference/hyperprior.py", "reference/modelfile.py", "entropy/rans.py", "entropy/_rans_numba.py",
               "entropy/substreams.py",
               "entropy/bitstream.py", "entropy/tables.py", "entropy/conditional.py", "fxlic/codec.py",
               "golden/vectors.py", "golden/goldenset.py"]


# ---- byte order --------------------------------------------------------------------------------------
def _byteswapped(array: np.ndarray) -> np.ndarray:
    """Same values, big-endian storage (what arrays look like in memory on s390x)."""
    return array.astype(array.dtype.newbyteorder(">"))


def test_model_hash_is_byte_order_independent(codec: Codec) -> None:
    """The model content hash (carried by every stream) is computed over little-endian bytes: a model
    whose arrays are held big-endian hashes the same, so a big-endian host accepts x86 streams."""
    model = codec.model
    arrays = model.arrays()
    assert any(a.dtype.itemsize > 1 for a in arrays.values()), "no multi-byte array: test would prove nothing"

    class BigEndianHost(ModelFile):  # arrays as a big-endian host holds them (native '>u4', '>i4')
        def arrays(self) -> dict[str, np.ndarray]:
            return {name: _byteswapped(a) for name, a in super().arrays().items()}

    big = BigEndianHost(meta=model.meta, layers=model.layers, scale_lut=model.scale_lut, y_tables=model.y_tables,
                        z_tables=model.z_tables)
    assert big.arrays()["y_tablescdf"].dtype.str == ">u4"
    assert big.content_hash() == model.content_hash()


def test_big_endian_model_file_loads_to_native_arrays(codec: Codec, tmp_path: Path) -> None:
    """A model file whose .npy members are stored big-endian loads with native-order arrays, the same
    hash, and decodes a stream of the original bit-exactly (the .npy header records the byte order)."""
    model = codec.model
    payload = {name: _byteswapped(a) for name, a in model.arrays().items()}
    payload["meta"] = np.frombuffer(json.dumps(model.meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "big.npz", **payload)
    loaded = load_model_file(tmp_path / "big.npz")
    assert loaded.y_tables.cdf.dtype.isnative and loaded.z_tables.offset.dtype.isnative
    assert loaded.content_hash() == model.content_hash()
    pixels = (np.arange(40 * 50 * 3) * 7 % 256).astype(np.uint8).reshape(40, 50, 3)
    stream = codec.encode(pixels).bitstream
    np.testing.assert_array_equal(Codec(loaded).decode(stream), codec.decode(stream))


def test_stream_fields_have_explicit_byte_order() -> None:
    """Bitstream header fields are packed with explicit little-endian struct formats ('<'); the rANS
    state is read and written byte by byte / with int.from_bytes(..., 'little') (docs/bitstream.md)."""
    source = (REPO / "entropy/bitstream.py").read_text()
    formats = [node.args[0].value for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Struct"]
    assert formats and all(f.startswith("<") for f in formats), formats
    rans_source = (REPO / "entropy/rans.py").read_text()
    assert "from_bytes(data[:4], \"little\")" in rans_source and "to_bytes(4, \"little\")" in rans_source


# ---- integer types -------------------------------------------------------------------------------
_PLATFORM_WIDTH = re.compile(r"np\.(int_|intc|intp|uint|long|ulong|longlong|float_)\b"
                             r"|dtype=(int|float)\b|astype\((int|float)\)")


@pytest.mark.parametrize("module", DECODE_PATH)
def test_decode_path_names_no_platform_width_type(module: str) -> None:
    """np.int_ (C long) is 32-bit on Windows with NumPy 1 and 64-bit elsewhere; Python ``int`` as a dtype
    means the same. The decode path names fixed widths only (int8/int32/int64/uint32...)."""
    text = (REPO / module).read_text()
    found = [m.group(0) for m in _PLATFORM_WIDTH.finditer(text)]
    assert not found, f"{module} uses platform-dependent types {found}"


@pytest.mark.parametrize("module", ["fxp/_numba_kernels.py", "entropy/_rans_numba.py"])
def test_numba_kernels_use_no_fastmath_and_no_target_pinning(module: str) -> None:
    """fastmath would license reassociation and approximations (irrelevant to integer loops, but it must
    never creep in); kernels are compiled for the host CPU with no target/CPU-name pinned in code
    (NUMBA_CPU_NAME=generic is exercised in test_determinism.py)."""
    tree = ast.parse((REPO / module).read_text())
    decorators = [d for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for d in node.decorator_list]
    assert decorators
    for decorator in decorators:
        keywords = {k.arg for k in getattr(decorator, "keywords", [])}
        assert not keywords & {"fastmath", "target", "target_backend", "error_model"}, keywords


# ---- float use on the decode path ----------------------------------------------------------------
def test_float_gemm_exactness_guard() -> None:
    """The BLAS conv path uses float32 GEMMs only when the data bound proves every partial sum < 2^24,
    float64 otherwise (FXP-A2): the one float use of the decoder, guarded by this bound."""
    from fxlic.fxp.conv import _exact_float_dtype

    full = np.full(4, 127, dtype=np.int8)
    assert _exact_float_dtype(2**24 // 127**2, full, full) is np.float32
    assert _exact_float_dtype(2**24 // 127**2 + 1, full, full) is np.float64


def test_integer_only_decode_equals_default(codec: Codec, kodak_image) -> None:
    """impl="reference" (int64 tensordot, no float anywhere) + the plain-Python rANS decode the same
    pixels as the default (float GEMM) path: the floats of the BLAS path change no result."""
    pixels = kodak_image(19, (100, 200, 70, 90))
    stream = codec.encode(pixels).bitstream
    integer_only = Codec(codec.model, impl="reference", entropy_impl="reference")
    assert integer_only.encode(pixels).bitstream == stream
    np.testing.assert_array_equal(integer_only.decode(stream), codec.decode(stream))


# ---- the pure-NumPy path ------------------------------------------------------------------------
_PURE_HELPER = r"""
import hashlib, json, sys
if sys.argv[1] == "block":
    sys.modules["numba"] = None  # as on a board where numba is not installed: `import numba` fails
from fxlic import models
from fxlic.codec import Codec
from fxlic.entropy.rans import default_impl
from fxlic.imageio import read_image
from fxlic.reference.modelfile import load_model_file

image = read_image(sys.argv[2])[:96, :160].copy()
codec = Codec(load_model_file(models.resolve()))
stream = codec.encode(image).bitstream
decoded = codec.decode(stream)
print(json.dumps({"impl": default_impl(), "stream": hashlib.sha256(stream).hexdigest(),
                  "pixels": hashlib.sha256(decoded.tobytes()).hexdigest(),
                  "numba_loaded": sys.modules.get("numba") is not None}))
"""


def _run_pure(mode: str, image: Path, env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != rans.PURE_NUMPY_ENV}
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", _PURE_HELPER, mode, str(image)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode, env_extra", [("block", {}), ("allow", {rans.PURE_NUMPY_ENV: "1"})],
                         ids=["numba-not-installed", "FXLIC_PURE_NUMPY=1"])
def test_pure_numpy_path_is_bit_identical(kodak_image, tmp_path: Path, mode: str, env_extra: dict[str, str]) -> None:
    """Without Numba (not importable, or switched off) the codec never imports it and produces the same
    stream and pixels as the Numba path in this process."""
    from PIL import Image

    pixels = kodak_image(5, (0, 0, 96, 160))
    image = tmp_path / "kodim05-crop.png"
    Image.fromarray(pixels).save(image)
    pure = _run_pure(mode, image, env_extra)
    assert pure["impl"] == "reference" and not pure["numba_loaded"]
    codec = Codec(load_model_file(__import__("fxlic.models", fromlist=["resolve"]).resolve()), entropy_impl="numba")
    stream = codec.encode(pixels).bitstream
    assert pure["stream"] == hashlib.sha256(stream).hexdigest()
    assert pure["pixels"] == hashlib.sha256(codec.decode(stream).tobytes()).hexdigest()


def test_golden_verify_passes_without_numba() -> None:
    """`fxlic golden verify` on the bundled set, with numba unimportable: exit 0, numba never loaded."""
    code = ("import sys\nsys.modules['numba'] = None\nfrom fxlic.cli import main\n"
            "rc = main(['golden', 'verify'])\nassert sys.modules.get('numba') is None\nsys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "images bit-exact" in proc.stdout


def test_default_entropy_impl_follows_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(rans.PURE_NUMPY_ENV, "1")
    assert rans.default_impl() == "reference"
    monkeypatch.setenv(rans.PURE_NUMPY_ENV, "0")
    assert rans.default_impl() == "numba"


def test_cross_arch_hash_tool_compares_two_platforms(kodak_image, tmp_path: Path) -> None:
    """tools/cross_arch_hashes.py, as cross_arch_check.sh drives it, with the Numba path as "host" and the
    pure-NumPy path as "target": streams and pixels identical both ways, report written, exit 0."""
    from PIL import Image

    tool = [sys.executable, str(REPO / "tools" / "cross_arch_hashes.py")]
    source = tmp_path / "kodim21.png"
    Image.fromarray(kodak_image(21, (40, 56, 64, 88))).save(source)  # cropped again by the tool's IMG@T,L,H,W
    image = f"{source}@0,4,64,80"
    env = {k: v for k, v in os.environ.items() if k != rans.PURE_NUMPY_ENV}
    host, target, report = tmp_path / "host", tmp_path / "target", tmp_path / "report" / "x"
    subprocess.run([*tool, "run", "--images", image, "--out", str(host)], check=True, env=env, timeout=300)
    subprocess.run([*tool, "run", "--images", image, "--out", str(target), "--decode", str(host)], check=True,
                   env={**env, rans.PURE_NUMPY_ENV: "1"}, timeout=300)
    subprocess.run([*tool, "decode", str(target), "--into", str(host)], check=True, env=env, timeout=300)
    proc = subprocess.run([*tool, "compare", str(host), str(target), "--report", str(report)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(report.with_suffix(".json").read_text())
    assert result["all_identical"] and result["target"]["entropy_impl"] == "reference"
    (row,) = result["images"]
    assert row["streams_identical"] and row["pixels_identical"] and row["size"] == "80x64"
