"""The command line: happy paths, and every bad input ends in one line, exit code 1, no output file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fxlic.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fxlic.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def small_png(tmp_path_factory, kodak_image) -> Path:
    path = tmp_path_factory.mktemp("img") / "crop.png"
    Image.fromarray(kodak_image(7, (0, 0, 96, 130))).save(path)
    return path


@pytest.fixture(scope="module")
def stream(tmp_path_factory, small_png) -> Path:
    out = tmp_path_factory.mktemp("fxl") / "crop.fxl"
    assert main(["encode", str(small_png), "-o", str(out), "-q"]) == 0
    return out


def test_encode_decode_info_models(tmp_path, small_png, stream, capsys) -> None:
    decoded = tmp_path / "out.png"
    assert main(["decode", str(stream), "-o", str(decoded), "-q"]) == 0
    assert np.asarray(Image.open(decoded)).shape == (96, 130, 3)
    capsys.readouterr()
    assert main(["info", str(stream), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["width"], info["height"], info["bytes"]) == (130, 96, stream.stat().st_size)
    # docs/bitstream.md BS-11: an RGB mean-scale stream is version 1, whose architecture is hyperprior (implied)
    assert (info["format"], info["architecture"], info["model_architecture"]) == (1, "hyperprior", "meanscale")
    assert list(info["streams"]) == ["z", "y"]
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["default"] in [m["name"] for m in listing["models"]]
    assert all(m["qualities"] for m in listing["models"])


def test_folder_encode_and_decode(tmp_path, small_png) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        (images / f"im{i}.png").write_bytes(small_png.read_bytes())
    assert main(["encode", str(images), "--out-dir", str(tmp_path / "streams"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "streams").iterdir()) == ["im0.fxl", "im1.fxl"]
    assert main(["decode", str(tmp_path / "streams"), "--out-dir", str(tmp_path / "decoded"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "decoded").iterdir()) == ["im0.png", "im1.png"]


def _bad_streams(good: bytes, tmp: Path) -> dict[str, Path]:
    def put(name: str, data: bytes) -> Path:
        path = tmp / f"{name}.fxl"
        path.write_bytes(data)
        return path

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    newer = bytearray(good)
    newer[4] = 200
    huge = bytearray(good)
    huge[6:14] = (100000).to_bytes(4, "little") * 2
    return {
        "truncated": put("truncated", good[: len(good) // 2]),
        "header only": put("header", good[:10]),
        "empty": put("empty", b""),
        "foreign (PNG)": put("png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        "corrupted byte": put("flipped", bytes(flipped)),
        "newer version": put("newer", bytes(newer)),
        "absurd size": put("huge", bytes(huge)),
        "trailing garbage": put("trailing", good + b"junk"),
        "missing": tmp / "does-not-exist.fxl",
    }


def test_bad_bitstreams_fail_cleanly(tmp_path, stream) -> None:
    for case, path in _bad_streams(stream.read_bytes(), tmp_path).items():
        out = tmp_path / f"out-{path.stem}.png"
        proc = run_cli("decode", str(path), "-o", str(out))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, (case, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("fxlic: error: "), (case, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not out.exists(), case
        assert not list(tmp_path.glob(".out-*")), "temporary file left behind"


def test_bad_images_fail_cleanly(tmp_path) -> None:
    transparent = np.zeros((8, 8, 4), dtype=np.uint8)
    Image.fromarray(transparent, "RGBA").save(tmp_path / "alpha.png")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("alpha.png", "text.png", "empty.png", "missing.png"):
        out = tmp_path / f"{name}.fxl"
        proc = run_cli("encode", str(tmp_path / name), "-o", str(out))
        assert proc.returncode == 1, (name, proc.stderr)
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("fxlic: error: "), proc.stderr
        assert not out.exists()


def test_unknown_model_and_quality(tmp_path, small_png) -> None:
    for args in (["--model", "nope"], ["--quality", "99"]):
        proc = run_cli("encode", str(small_png), "-o", str(tmp_path / "x.fxl"), *args)
        assert proc.returncode == 1 and proc.stderr.startswith("fxlic: error: "), proc.stderr


# ---- command-line conventions ---------------------------------------------------------------------
def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == f"fxlic {version('fxlic')}\n"


@pytest.mark.parametrize(("args", "status"), [(["models", "--json"], 141), (["models"], 141), (["info", "STREAM"], 141),
                                              (["info", "--json", "STREAM"], 141), (["--help"], 0), (["--version"], 0),
                                              (["bdrate", "--help"], 0)],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_closed_stdout_ends_quietly(stream, args, status) -> None:
    """stdout whose reader has gone (`fxlic models --json | head -1`): no traceback, no "internal error", nothing
    on stderr; exit code 141 (128 + SIGPIPE, as a shell reports a writer killed by SIGPIPE), 0 for --help and
    --version (argparse ignores the failed write). The pipe's read end is closed before the command starts, so
    its first write fails, every time."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "fxlic.cli", *[str(stream) if a == "STREAM" else a for a in args]],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == status, (proc.returncode, proc.stderr)


def test_head_of_a_pipeline(stream) -> None:
    """The shell pipeline as a user types it: the first line arrives, stderr stays empty."""
    command = f"{sys.executable} -m fxlic.cli models --json | head -1"
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.strip() in ("{", "[") or proc.stdout.startswith(("{", "[")), proc.stdout

