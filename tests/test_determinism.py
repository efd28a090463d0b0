"""Decode invariance of the integer codec across processes, thread counts, kernel sets and conv impls.

The failure mode this guards against is CompressAI issue #279: a stream encoded on one machine decodes
to garbage on another because the float hyper-decoder output — and with it the CDF table index — differs
by an ulp. fxlic's decoder is integer end to end (docs/entropy.md §3), so every setting below must give
the same bitstreams and the same decoded pixels, byte for byte:

* separate processes with ``NUMBA_NUM_THREADS`` 1/2, ``OMP_NUM_THREADS`` 1/2, ``OPENBLAS_NUM_THREADS=1``;
* kernel sets: ``OPENBLAS_CORETYPE=Prescott`` (SSE3 GEMM kernels for the float64-BLAS conv path),
  ``NUMBA_CPU_NAME=generic`` (portable x86-64 code for the Numba kernels), and the torch settings
  ``ATEN_CPU_CAPABILITY=default`` / ``ONEDNN_MAX_CPU_ISA=SSE41`` (which cannot matter: the golden path
  never imports torch, and the helper checks that);
* both conv implementations (``Codec(model, impl="blas" | "numba")``), including cross-decoding.

Encode → decode latent identity, op-level numba/numpy/torch agreement and the rANS coder are tested in
test_codec.py, test_fxp_conv.py and test_rans.py; this file only adds the environment/impl invariance.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fxlic.codec import Codec

IMPLS = ("blas", "numba")
# (Kodak index, (top, left, height, width)): small crops, padded to 128×128 and 64×128, so that one
# helper process (import, two encodes and two decodes per impl) takes a few seconds.
CROPS = [(23, (0, 0, 96, 128)), (7, (200, 300, 64, 70))]
# Every variable an environment below sets; all are removed from the inherited environment first.
CONTROLLED = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "NUMBA_CPU_NAME")
REFERENCE_ENV = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "numba-1-thread": {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
    "omp-openblas-1-thread": {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "torch-kernel-sets": {**REFERENCE_ENV, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "openblas-prescott": {**REFERENCE_ENV, "OPENBLAS_CORETYPE": "Prescott"},
    # All at once, with Numba generating portable code (its first run compiles the kernels: ~10 s).
    "all-1-thread-generic": {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                             "MKL_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default",
                             "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Prescott",
                             "NUMBA_CPU_NAME": "generic"},
}

# The helper run in each environment: argv = JSON list of PNG files (the crops). Prints one JSON line:
# per impl and crop, SHA-256 of the bitstream, of the decoded ŷ and of the decoded pixels.
HELPER = r"""
import hashlib, json, sys
from pathlib import Path
import numba
from fxlic import models
from fxlic.codec import Codec
from fxlic.imageio import read_image
from fxlic.reference.modelfile import load_model_file

def sha(data):
    return hashlib.sha256(bytes(data)).hexdigest()

files = json.loads(sys.argv[1])
model = load_model_file(models.resolve())
out = {"numba_threads": numba.config.NUMBA_NUM_THREADS, "results": {}}
for impl in ("blas", "numba"):
    codec = Codec(model, impl=impl)
    rows = []
    for file in files:
        pixels = read_image(Path(file))
        stream = codec.encode(pixels).bitstream
        trace = {}
        decoded = codec.decode(stream, trace=trace)
        rows.append({"bitstream": sha(stream), "y_hat": sha(trace["y_hat"].tobytes()),
                     "pixels": sha(decoded.tobytes()), "shape": list(decoded.shape)})
    out["results"][impl] = rows
out["torch_loaded"] = any(m.split(".")[0] in ("torch", "compressai") for m in sys.modules)
print(json.dumps(out))
"""


def _run_helper(crop_files: list[str], env_vars: dict[str, str]) -> dict:
    """Run HELPER in a fresh interpreter with exactly ``env_vars`` among the CONTROLLED variables."""
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(env_vars)
    proc = subprocess.run([sys.executable, "-c", HELPER, json.dumps(crop_files)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"helper failed under {env_vars}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def crop_files(tmp_path_factory, kodak_image) -> list[str]:
    """CROPS as PNG files (lossless: the helper reads the same pixels)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("crops")
    files = []
    for index, crop in CROPS:
        files.append(str(folder / f"kodim{index:02d}-crop.png"))
        Image.fromarray(kodak_image(index, crop)).save(files[-1])
    return files


@pytest.fixture(scope="module")
def reference_run(crop_files: list[str]) -> dict:
    return _run_helper(crop_files, REFERENCE_ENV)


def test_reference_process_agrees_across_impls(reference_run: dict) -> None:
    """In one process, blas and numba produce the same streams and decoded images; torch is not loaded."""
    assert reference_run["results"]["blas"] == reference_run["results"]["numba"]
    assert reference_run["numba_threads"] == 2
    assert not reference_run["torch_loaded"]


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_decode_is_identical_in_every_environment(crop_files: list[str], reference_run: dict, name: str) -> None:
    """Bitstreams, decoded latents and pixels hash identically under each thread / kernel-set setting."""
    run = _run_helper(crop_files, ENVIRONMENTS[name])
    assert run["numba_threads"] == int(ENVIRONMENTS[name]["NUMBA_NUM_THREADS"])
    assert not run["torch_loaded"], "the integer codec must not load torch (ATEN/oneDNN settings are moot)"
    for impl in IMPLS:
        assert run["results"][impl] == reference_run["results"][impl], f"{name}, impl={impl}"


@pytest.fixture(scope="module")
def codecs(codec: Codec) -> dict[str, Codec]:
    """The shipped model with each conv implementation (the shared fixture is blas)."""
    return {"blas": codec, "numba": Codec(codec.model, impl="numba")}


@pytest.mark.parametrize("index, crop", CROPS)
def test_cross_impl_decoding(codecs: dict[str, Codec], kodak_image, index: int, crop) -> None:
    """A stream encoded with impl=blas decodes identically with impl=numba, and vice versa."""
    pixels = kodak_image(index, crop)
    streams = {impl: c.encode(pixels).bitstream for impl, c in codecs.items()}
    assert streams["blas"] == streams["numba"]
    decoded = {(enc, dec): codecs[dec].decode(streams[enc]) for enc in IMPLS for dec in IMPLS}
    reference = decoded[("blas", "blas")]
    for key, image in decoded.items():
        np.testing.assert_array_equal(image, reference, err_msg=f"encoded with {key[0]}, decoded with {key[1]}")


def _random_image(kind: str, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "smooth":  # bilinear upsampling of a coarse random grid: photo-like, realistic latents
        coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float64)
        ys = np.linspace(0, coarse.shape[0] - 1, height)
        xs = np.linspace(0, coarse.shape[1] - 1, width)
        y0 = np.minimum(ys.astype(int), coarse.shape[0] - 2)
        x0 = np.minimum(xs.astype(int), coarse.shape[1] - 2)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        rows = coarse[y0] * (1 - fy) + coarse[y0 + 1] * fy
        return np.round(rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx).astype(np.uint8)
    return (rng.integers(0, 2, (height, width, 3)) * 255).astype(np.uint8)  # extremes


# max_examples from the Hypothesis profile (tests/conftest.py): 30 in CI, 500 with the "nightly" profile.
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 80), width=st.integers(1, 80), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["noise", "smooth", "extremes"]))
def test_decoded_image_does_not_depend_on_impl(codecs: dict[str, Codec], height: int, width: int, seed: int,
                                               kind: str) -> None:
    """Property: for random images, stream and decoded image are the same whichever impl runs either side."""
    pixels = _random_image(kind, height, width, seed)
    streams = {impl: c.encode(pixels).bitstream for impl, c in codecs.items()}
    assert streams["blas"] == streams["numba"]
    digests = {hashlib.sha256(codecs[dec].decode(streams[enc]).tobytes()).hexdigest()
               for enc in IMPLS for dec in IMPLS}
    assert len(digests) == 1
