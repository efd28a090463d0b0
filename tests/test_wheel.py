"""A non-editable install (a wheel in a fresh venv, base dependencies only) works as the README says.

Before issue 15 a wheel had no golden vectors (``fxlic golden verify`` worked only in editable installs),
and eval/bdrate/plot died with "internal error: ModuleNotFoundError: scipy" on the base install. The venv
gets no pip downloads: the wheel is built without build isolation and installed without dependencies,
and the base dependencies (NumPy, Numba, Pillow, tqdm) are linked in from this interpreter through a
.pth file, so the venv sees neither SciPy, matplotlib, torch nor the source tree.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BASE_PACKAGES = ("numpy", "numba", "llvmlite", "PIL", "tqdm")
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", "*.egg-info", "__pycache__", ".pytest_cache")

pytestmark = pytest.mark.slow


def _run(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=SKIP)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist",
         source, cwd=root)
    wheel = next((root / "dist").glob("fxlic-*.whl"))
    env = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env, cwd=root)
    python = env / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=root)
    deps = root / "deps"
    deps.mkdir()
    for name in BASE_PACKAGES:
        folder = Path(importlib.import_module(name).__file__).parent
        (deps / folder.name).symlink_to(folder)
        libs = folder.parent / f"{'pillow' if name == 'PIL' else name}.libs"  # manylinux shared libraries
        if libs.is_dir():
            (deps / libs.name).symlink_to(libs)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
                .stdout.strip())
    (site / "base-deps.pth").write_text(f"{deps}\n")
    return env


def test_installed_package_is_the_wheel_without_extras(venv: Path, tmp_path: Path) -> None:
    probe = ("import importlib.util, fxlic.cli; print(fxlic.cli.__file__); "
             "print([m for m in ('scipy', 'matplotlib', 'torch') if importlib.util.find_spec(m)])")
    out = _run(venv / "bin" / "python", "-c", probe, cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(venv)) and out[1] == "[]"


def test_golden_verify_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    proc = _run(venv / "bin" / "fxlic", "golden", "verify", cwd=tmp_path)
    assert str(venv) in proc.stdout  # the set shipped as package data
    counts = proc.stdout.strip().splitlines()[-1].split()[0]
    done, total = map(int, counts.split("/"))
    assert done == total >= 1


def test_base_install_commands(venv: Path, tmp_path: Path, kodak_image) -> None:
    fxlic = venv / "bin" / "fxlic"
    Image.fromarray(kodak_image(5, (0, 0, 176, 200))).save(tmp_path / "a.png")
    _run(fxlic, "encode", "a.png", "-o", "a.fxl", cwd=tmp_path)
    _run(fxlic, "decode", "a.fxl", "-o", "a-decoded.png", cwd=tmp_path)
    _run(fxlic, "eval", "--images", "a.png", "--qualities", "4", "--out", "eval", cwd=tmp_path)
    curve = json.loads((tmp_path / "eval" / "meanscale.json").read_text())
    assert curve["meta"]["images"] == 1 and len(curve["results"]["bpp"]) == 1
    bpp, psnr = [0.2, 0.4, 0.8, 1.6], [27.0, 30.0, 33.0, 36.0]
    (tmp_path / "ref.json").write_text(json.dumps({"name": "ref", "results": {"bpp": bpp, "psnr-rgb": psnr}}))
    (tmp_path / "test.json").write_text(json.dumps({"name": "test", "results": {"bpp": [b * 1.1 for b in bpp],
                                                                               "psnr-rgb": psnr}}))
    proc = _run(fxlic, "bdrate", "ref.json", "test.json", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout)[0]["bd_rate"] == pytest.approx(10.0, abs=1e-6)
    proc = _run(fxlic, "plot", "rd.png", "ref.json", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "fxlic[rd]" in proc.stderr and not (tmp_path / "rd.png").exists()
