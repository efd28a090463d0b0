"""What a new user hits (issue 15), through the installed command line as a subprocess.

Each test reproduces one reported problem and asserts the fixed behaviour: batches never lose output,
errors name their file and the batch goes on, outputs in missing folders, extension warnings, EXIF
orientation, grayscale round trip, help texts, and ``python -m fxlic.cli`` error handling.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def fxlic(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fxlic.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


@pytest.fixture(scope="module")
def photo(tmp_path_factory, kodak_image) -> np.ndarray:
    """A small, non-square real photo crop (so that a rotation changes the shape)."""
    return kodak_image(7, (0, 0, 64, 96))


def _save(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_same_name_in_two_folders_is_refused_before_writing(tmp_path, photo) -> None:
    """`a/x.png b/x.png` used to leave one x.fxl (exit 0): now refused, both named, nothing written."""
    a = _save(tmp_path / "a" / "x.png", photo)
    b = _save(tmp_path / "b" / "x.png", photo[:, ::-1])
    proc = fxlic("encode", a, b, "--out-dir", tmp_path / "out")
    assert proc.returncode == 1, proc.stderr
    assert str(a) in proc.stderr and str(b) in proc.stderr and "nothing was written" in proc.stderr
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_same_stem_different_format_is_refused(tmp_path, photo) -> None:
    """photo.jpg and photo.webp in one folder would collide on photo.fxl."""
    _save(tmp_path / "in" / "photo.jpg", photo, quality=95)
    _save(tmp_path / "in" / "photo.webp", photo, lossless=True)
    proc = fxlic("encode", tmp_path / "in", "--out-dir", tmp_path / "out")
    assert proc.returncode == 1 and "photo.jpg" in proc.stderr and "photo.webp" in proc.stderr
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_dash_o_is_always_a_file(tmp_path, photo) -> None:
    """`-o out/two.fxl` with two inputs used to create a folder named two.fxl; -o is now one file only."""
    a = _save(tmp_path / "a.png", photo)
    b = _save(tmp_path / "b.png", photo[::-1])
    proc = fxlic("encode", a, b, "-o", tmp_path / "out" / "two.fxl")
    assert proc.returncode == 1 and "--out-dir" in proc.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "existing").mkdir()
    proc = fxlic("encode", a, "-o", tmp_path / "existing")
    assert proc.returncode == 1 and "is a folder" in proc.stderr
    proc = fxlic("encode", a, b, "--out-dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / "out") == ["a.fxl", "b.fxl"]


def test_batch_goes_on_after_a_bad_file_names_it_and_fails(tmp_path, photo) -> None:
    """A corrupted stream in a batch: its error names it, the others are decoded, summary, exit 1."""
    src = tmp_path / "src"
    for name in ("a", "b", "c"):
        _save(src / f"{name}.png", photo)
    assert fxlic("encode", src, "--out-dir", tmp_path / "fxl", "-q").returncode == 0
    bad = tmp_path / "fxl" / "b.fxl"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    proc = fxlic("decode", tmp_path / "fxl", "--out-dir", tmp_path / "png", "-q")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fxlic: error:")]
    assert errors == [f"fxlic: error: {bad}: CRC mismatch: file corrupted"], proc.stderr
    assert "decoded 2 of 3 files; 1 failed" in proc.stderr
    assert _files(tmp_path / "png") == ["a.png", "c.png"]


def test_encode_batch_goes_on_after_a_bad_image(tmp_path, photo) -> None:
    _save(tmp_path / "in" / "good.png", photo)
    (tmp_path / "in" / "broken.png").write_text("not an image")
    proc = fxlic("encode", tmp_path / "in", "--out-dir", tmp_path / "out", "-q")
    assert proc.returncode == 1 and "broken.png" in proc.stderr and "encoded 1 of 2 files" in proc.stderr
    assert _files(tmp_path / "out") == ["good.fxl"]


def test_single_output_in_missing_folder(tmp_path, photo) -> None:
    """Used to fail naming the hidden temp file (.x.fxl.q4ks77hk); the parent is created now."""
    src = _save(tmp_path / "x.png", photo)
    target = tmp_path / "new" / "deeper" / "x.fxl"
    proc = fxlic("encode", src, "-o", target, "-q")
    assert proc.returncode == 0, proc.stderr
    assert target.is_file() and _files(tmp_path / "new") == ["deeper/x.fxl"]


def test_unwritable_output_names_the_users_path(tmp_path, photo) -> None:
    src = _save(tmp_path / "x.png", photo)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    proc = fxlic("encode", src, "-o", blocker / "x.fxl")
    assert proc.returncode == 1
    assert str(blocker / "x.fxl") in proc.stderr or str(blocker) in proc.stderr
    assert ".x.fxl." not in proc.stderr  # never the temporary file


def test_extension_warnings(tmp_path, photo) -> None:
    src = _save(tmp_path / "x.png", photo)
    proc = fxlic("encode", src, "-o", tmp_path / "x.png.out", "-q")
    assert proc.returncode == 0 and "warning" in proc.stderr and ".fxl" in proc.stderr
    proc = fxlic("encode", src, "-o", tmp_path / "x.fxl", "-q")
    assert proc.returncode == 0 and proc.stderr == ""
    proc = fxlic("decode", tmp_path / "x.fxl", "-o", tmp_path / "x.jpg", "-q")
    assert proc.returncode == 0 and "warning" in proc.stderr and "PNG" in proc.stderr
    proc = fxlic("decode", tmp_path / "x.fxl", "-o", tmp_path / "y.png", "-q")
    assert proc.returncode == 0 and proc.stderr == ""


def test_exif_orientation_is_applied(tmp_path, photo) -> None:
    """A portrait JPEG stored landscape with Orientation = 6 (rotate 90° CW) decodes upright, as viewers show it."""
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "portrait.jpg"
    Image.fromarray(photo).save(src, quality=98, exif=exif.tobytes())
    assert fxlic("encode", src, "-o", tmp_path / "p.fxl", "-q").returncode == 0
    assert fxlic("decode", tmp_path / "p.fxl", "-o", tmp_path / "p.png", "-q").returncode == 0
    decoded = np.asarray(Image.open(tmp_path / "p.png"))
    height, width = photo.shape[:2]
    assert decoded.shape == (width, height, 3)  # turned: portrait
    upright = np.rot90(np.asarray(Image.open(src)), k=-1)  # what a viewer shows for orientation 6
    wrong = np.rot90(np.asarray(Image.open(src)), k=1)
    error = np.abs(decoded.astype(int) - upright).mean()
    assert error < np.abs(decoded.astype(int) - wrong).mean() / 2, error


def test_gray_decodes_to_gray(tmp_path, photo) -> None:
    """A grayscale source used to come back as RGB with colour noise; the stream now records it (BS-10)."""
    gray = photo.astype(np.uint16).sum(axis=2) // 3
    src = _save(tmp_path / "gray.png", gray.astype(np.uint8))
    assert fxlic("encode", src, "-o", tmp_path / "g.fxl", "-q").returncode == 0
    info = fxlic("info", tmp_path / "g.fxl", "--json")
    assert '"colour": "gray"' in info.stdout
    assert fxlic("decode", tmp_path / "g.fxl", "-o", tmp_path / "g.png", "-q").returncode == 0
    decoded = Image.open(tmp_path / "g.png")
    assert decoded.mode == "L" and decoded.size == (gray.shape[1], gray.shape[0])
    # RGB sources stay version-1 RGB streams
    rgb = _save(tmp_path / "rgb.png", photo)
    assert fxlic("encode", rgb, "-o", tmp_path / "c.fxl", "-q").returncode == 0
    assert (tmp_path / "c.fxl").read_bytes()[4] == 1
    assert fxlic("decode", tmp_path / "c.fxl", "-o", tmp_path / "c.png", "-q").returncode == 0
    assert Image.open(tmp_path / "c.png").mode == "RGB"


def test_golden_help_and_quality_help() -> None:
    """`fxlic golden --help` printed only a usage line; --quality lists the shipped qualities."""
    from fxlic import models

    proc = fxlic("golden", "--help")
    assert proc.returncode == 0 and "make" in proc.stdout and "verify" in proc.stdout
    assert "recompute" in proc.stdout
    name = models.default_model()
    shipped = ", ".join(map(str, sorted(models.available()[name])))
    for command in (("encode",), ("golden", "make")):
        proc = fxlic(*command, "--help")
        assert proc.returncode == 0 and shipped in " ".join(proc.stdout.split()), proc.stdout


def _all_parsers():
    from fxlic.board.cli import build_parser as board_parser
    from fxlic.cli import build_parser
    from fxlic.golden.cli import build_parser as golden_parser
    from fxlic.rd.cli import bdrate_parser, plot_parser
    from fxlic.rd.evaluate import eval_parser

    yield "fxlic", build_parser()
    yield "fxlic golden", golden_parser()
    yield "fxlic board", board_parser()
    yield "fxlic eval", eval_parser()
    yield "fxlic bdrate", bdrate_parser()
    yield "fxlic plot", plot_parser()


def test_every_option_has_a_help_line() -> None:
    import argparse

    missing = []
    for prog, parser in _all_parsers():
        stack = [(prog, parser)]
        while stack:
            name, current = stack.pop()
            for action in current._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack.extend((f"{name} {sub}", p) for sub, p in action.choices.items())
                elif not isinstance(action, argparse._HelpAction) and not action.help:
                    missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_module_entry_point_errors_are_user_errors(tmp_path) -> None:
    """`python -m fxlic.cli golden verify /nonexistent` printed 'internal error: CliError', exit 3."""
    proc = fxlic("golden", "verify", tmp_path / "nonexistent")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("fxlic: error: ") and "not a golden set" in proc.stderr
    assert "internal" not in proc.stderr


def test_info_on_corrupt_file_names_it(tmp_path) -> None:
    bad = tmp_path / "bad.fxl"
    bad.write_bytes(b"FXLC" + bytes(40))
    proc = fxlic("info", bad)
    assert proc.returncode == 1 and str(bad) in proc.stderr
