"""Tests for fxlic.rd: BD-rate against published anchors, metrics, results I/O, plots, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fxlic.rd.bdrate import bd_ms_ssim, bd_psnr, bd_rate, bd_rate_ms_ssim, compare_curves
from fxlic.rd.cli import bdrate_main, plot_main
from fxlic.rd.metrics import MS_SSIM_WEIGHTS, gaussian_window, ms_ssim, psnr
from fxlic.rd.results import RDCurve, db_to_msssim, load_curve, load_curves, msssim_to_db, save_curve

# A few published curves, copied verbatim into the repository (tests/fixtures/README.md); the data lane
# (`pytest -m data`) loads every anchor in $FXLIC_ANCHORS.
ANCHORS = Path(__file__).resolve().parent / "fixtures" / "anchors"
KODAK = ANCHORS / "kodak"
MEASURED = ANCHORS / "kodak-measured"

# A smooth synthetic RD curve (6 points, about +3 dB per rate doubling).
BPP = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
PSNR = [27.0, 29.6, 32.5, 35.6, 38.9, 42.3]
MS_DB = [9.0, 11.0, 13.5, 16.0, 18.0, 20.5]


# --------------------------------------------------------------------------------------------- BD


@pytest.mark.parametrize(
    ("anchor", "published", "tol"),
    [
        ("bpg_444_x265_ycbcr.json", 22.0, 0.5),
        ("webp.json", 79.0, 1.5),
        ("jpeg.json", 208.0, 3.0),
    ],
)
def test_bd_rate_reproduces_published_anchor_figures(anchor: str, published: float, tol: float) -> None:
    ref = load_curve(KODAK / "vtm.json")
    test = load_curve(KODAK / anchor)
    assert test.psnr is not None and ref.psnr is not None
    got = bd_rate(ref.bpp, ref.psnr, test.bpp, test.psnr)
    assert got == pytest.approx(published, abs=tol), f"{anchor}: BD-rate vs VTM {got:+.2f} %"


def test_bd_rate_cubic_method_close_to_pchip_on_bpg() -> None:
    ref, test = load_curve(KODAK / "vtm.json"), load_curve(KODAK / "bpg_444_x265_ycbcr.json")
    assert ref.psnr is not None and test.psnr is not None
    cubic = bd_rate(ref.bpp, ref.psnr, test.bpp, test.psnr, method="cubic")
    assert cubic == pytest.approx(22.0, abs=0.5)
    res = compare_curves(ref, test, "psnr", "pchip")
    assert res.bd_rate == pytest.approx(22.0, abs=0.5)
    assert -1.2 < res.bd_quality < -0.8  # BPG is about 1 dB worse than VTM at equal rate
    assert res.bpp_range[0] < res.bpp_range[1] and res.quality_range[0] < res.quality_range[1]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_identity_is_zero(method: str) -> None:
    assert bd_rate(BPP, PSNR, BPP, PSNR, method) == pytest.approx(0.0, abs=1e-10)
    assert bd_psnr(BPP, PSNR, BPP, PSNR, method) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_of_scaled_rate(method: str) -> None:
    scaled = [0.9 * b for b in BPP]
    assert bd_rate(BPP, PSNR, scaled, PSNR, method) == pytest.approx(-10.0, abs=1e-9)
    assert bd_rate(scaled, PSNR, BPP, PSNR, method) == pytest.approx(100 / 9, abs=1e-9)
    assert bd_psnr(BPP, PSNR, scaled, PSNR, method) > 0


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_psnr_of_shifted_quality(method: str) -> None:
    # A straight line in (log rate, PSNR) is reproduced exactly by both interpolants.
    bpp = [0.125, 0.25, 0.5, 1.0, 2.0]
    q = [26.0 + 3.0 * math.log2(b / 0.125) for b in bpp]
    q_up = [v + 0.75 for v in q]
    assert bd_psnr(bpp, q, bpp, q_up, method) == pytest.approx(0.75, abs=1e-9)
    # +0.75 dB at slope 3 dB per doubling = rate factor 2^-0.25
    assert bd_rate(bpp, q, bpp, q_up, method) == pytest.approx((2**-0.25 - 1) * 100, abs=1e-9)


def test_bd_points_sorted_and_deduplicated() -> None:
    order = [3, 0, 5, 1, 4, 2]
    shuffled_b = [BPP[i] for i in order]
    shuffled_q = [PSNR[i] for i in order]
    scaled = [0.9 * b for b in BPP]
    ref = bd_rate(BPP, PSNR, scaled, PSNR)
    assert bd_rate(shuffled_b, shuffled_q, scaled, PSNR) == pytest.approx(ref, abs=1e-12)
    # a repeated rate keeps the best quality at that rate
    dup_b = BPP + [BPP[2], BPP[2]]
    dup_q = PSNR + [PSNR[2], PSNR[2] - 1.0]
    assert bd_rate(dup_b, dup_q, scaled, PSNR) == pytest.approx(ref, abs=1e-12)


def test_bd_errors() -> None:
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate([0.1, 0.2, 0.3], [20.0, 22.0, 24.0], [0.1, 0.2, 0.3], [30.0, 32.0, 34.0])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr([0.1, 0.2], [20.0, 22.0], [1.0, 2.0], [21.0, 23.0])
    with pytest.raises(ValueError, match="at least 2"):
        bd_rate([0.1], [30.0], BPP, PSNR)
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(BPP[:3], PSNR[:3], BPP, PSNR, method="cubic")
    with pytest.raises(ValueError, match="at least 2"):  # two equal rates are one point
        bd_rate([0.5, 0.5], [30.0, 31.0], BPP, PSNR)
    with pytest.raises(ValueError, match="rates and 4|but 4"):
        bd_rate(BPP, PSNR[:4], BPP, PSNR)
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0.0, 0.2, 0.4], [25.0, 28.0, 31.0], BPP, PSNR)
    with pytest.raises(ValueError, match="does not increase"):
        bd_rate([0.1, 0.2, 0.4], [28.0, 27.0, 31.0], BPP, PSNR)
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate(BPP, PSNR, BPP, PSNR, method="akima")


def test_bd_ms_ssim_variants() -> None:
    ms = [db_to_msssim(v) for v in MS_DB]
    scaled = [0.9 * b for b in BPP]
    assert bd_rate_ms_ssim(BPP, ms, scaled, ms) == pytest.approx(-10.0, abs=1e-9)
    assert bd_ms_ssim(BPP, ms, BPP, ms) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="< 1"):
        bd_rate_ms_ssim(BPP, ms[:-1] + [1.0], BPP, ms)
    assert msssim_to_db(0.99) == pytest.approx(20.0)
    assert db_to_msssim(msssim_to_db(0.97)) == pytest.approx(0.97)


# ---------------------------------------------------------------------------------------- results


def _check_published(kodak: Path) -> list[RDCurve]:
    curves = load_curves([kodak], skip_invalid=False)
    for c in curves:
        assert len(c.bpp) >= 2 and (c.psnr is not None or c.ms_ssim is not None)
    elic_ms = load_curve(kodak / "paper-elic2022_ms-ssim.json")  # MS-SSIM in dB only, no PSNR
    assert elic_ms.psnr is None and elic_ms.ms_ssim is not None
    assert elic_ms.ms_ssim_db is not None and elic_ms.ms_ssim_db[0] == pytest.approx(11.593)
    paper = load_curve(kodak / "paper-bmshj2018-hyperprior.json")  # no MS-SSIM, no times
    assert paper.ms_ssim is None and paper.encoding_time is None
    return curves


def test_load_every_bundled_anchor() -> None:
    assert len(_check_published(KODAK)) == len(list(KODAK.glob("*.json")))
    measured = load_curves([MEASURED], skip_invalid=True)  # skips the timing reports
    assert measured and all(c.encoding_time is not None for c in measured)
    with pytest.raises(ValueError, match="compressai_speed"):
        load_curve(MEASURED / "compressai_speed.json")


@pytest.mark.data
def test_load_every_published_anchor(anchors_dir: Path) -> None:
    """Every published curve ($FXLIC_ANCHORS/kodak) loads; the bundled copies equal their originals."""
    assert len(_check_published(anchors_dir / "kodak")) >= 40
    for bundled in KODAK.glob("*.json"):
        assert json.loads(bundled.read_text()) == json.loads((anchors_dir / "kodak" / bundled.name).read_text())


def test_save_load_roundtrip_keeps_layout(tmp_path: Path) -> None:
    for src in [KODAK / "vtm.json", KODAK / "paper-elic2022_mse.json", MEASURED / "webp.json"]:
        c = load_curve(src)
        out = tmp_path / src.name
        save_curve(c, out)
        again = load_curve(out)
        assert again == c
        orig, saved = json.loads(src.read_text()), json.loads(out.read_text())
        for key in orig["results"]:
            if key != "ms-ssim-db-rgb":
                assert saved["results"][key] == pytest.approx(orig["results"][key])
        assert set(orig) == set(saved)


def test_curve_defaults_and_validation(tmp_path: Path) -> None:
    p = tmp_path / "ours.json"
    p.write_text(json.dumps({"results": {"bpp": [0.1, 0.2], "psnr": [28.0, 30.0], "encoding_time": 1.5}}))
    c = load_curve(p)
    assert c.name == "ours" and c.psnr == [28.0, 30.0] and c.encoding_time == [1.5, 1.5]
    with pytest.raises(ValueError, match="psnr has 1 points"):
        RDCurve("x", [0.1, 0.2], [30.0])
    p.write_text(json.dumps({"name": "t", "results": {"bpp": [0.1]}}))
    with pytest.raises(ValueError, match="neither PSNR"):
        load_curve(p)


# ---------------------------------------------------------------------------------------- metrics


def _test_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.normal(0.0, 1.0, (h, w, 3)), sigma=(4, 4, 0))
    img = (img - img.mean()) / img.std() * 45 + 128
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


def test_psnr() -> None:
    a = _test_image(64, 48)
    assert psnr(a, a) == math.inf
    b = a.astype(np.int16)
    b[a < 255] += 1
    b[a == 255] -= 1
    assert psnr(a, b.astype(np.uint8)) == pytest.approx(10 * math.log10(255**2))
    z = np.zeros((4, 4, 3), np.uint8)
    o = z.copy()
    o[0, 0, 0] = 255  # MSE = 255^2 / 48
    assert psnr(z, o) == pytest.approx(10 * math.log10(48))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, a[:10])


def test_ms_ssim_properties() -> None:
    a = _test_image(192, 224)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    b, c = _noisy(a, 6.0), _noisy(a, 20.0)
    ab, ba, ac = ms_ssim(a, b), ms_ssim(b, a), ms_ssim(a, c)
    assert ab == pytest.approx(ba, abs=1e-12)
    assert 1.0 > ab > ac > 0.0
    with pytest.raises(ValueError, match="> 160"):
        ms_ssim(a[:160], a[:160])
    assert sum(MS_SSIM_WEIGHTS) == pytest.approx(1.0, abs=1e-3)


def _torch_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Direct torch MS-SSIM (Wang 2003, pytorch_msssim conventions), independent of fxlic.rd."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F  # noqa: N812

    x = torch.from_numpy(a).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(b).permute(2, 0, 1)[None].double()
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    wh = g.view(1, 1, 11, 1).repeat(3, 1, 1, 1)
    ww = g.view(1, 1, 1, 11).repeat(3, 1, 1, 1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, wh, groups=3), ww, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64)
    vals = []
    for level in range(5):
        mx, my = filt(x), filt(y)
        sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        ssim = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
        if level < 4:
            vals.append(torch.relu(cs.mean(dim=(2, 3))))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        else:
            vals.append(torch.relu(ssim.mean(dim=(2, 3))))
    per_channel = torch.prod(torch.stack(vals) ** weights.view(-1, 1, 1), dim=0)
    return float(per_channel.mean())


@pytest.mark.parametrize("shape", [(192, 224), (171, 203)])  # odd sides exercise the pooling pad
def test_ms_ssim_matches_torch(shape: tuple[int, int]) -> None:
    a = _test_image(*shape, seed=3)
    b = _noisy(a, 12.0, seed=4)
    got = ms_ssim(a, b)
    assert got == pytest.approx(_torch_ms_ssim(a, b), abs=1e-10)
    try:
        import torch
        from pytorch_msssim import ms_ssim as ref_ms_ssim
    except ImportError:
        return
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].double()
    # pytorch_msssim builds its Gaussian window in float32: agreement to ~1e-7
    assert got == pytest.approx(float(ref_ms_ssim(ta, tb, data_range=255)), abs=1e-6)


def test_gaussian_window() -> None:
    g = gaussian_window()
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0) and np.allclose(g, g[::-1])


# ------------------------------------------------------------------------------------- plot & CLI


def _png_ok(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_rd(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from fxlic.rd.plot import plot_rd

    ms = [db_to_msssim(v) for v in MS_DB]
    anchor = RDCurve("anchor", BPP, PSNR, ms)
    ours = RDCurve("ours", [0.9 * b for b in BPP], PSNR, None)  # no MS-SSIM: left panel only
    ms_only = RDCurve("paper", BPP, None, [db_to_msssim(v + 0.5) for v in MS_DB])
    out = plot_rd([anchor, ours, ms_only], tmp_path / "a" / "rd.png", "test", highlight=["ours"])
    _png_ok(out)
    _png_ok(plot_rd([ours], tmp_path / "psnr_only.png", "psnr only"))
    with pytest.raises(ValueError, match="not among"):
        plot_rd([ours], tmp_path / "x.png", "t", highlight=["nope"])


def test_bdrate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref, test = tmp_path / "ref.json", tmp_path / "test.json"
    save_curve(RDCurve("REF", BPP, PSNR), ref)
    save_curve(RDCurve("Ours", [0.9 * b for b in BPP], PSNR), test)
    assert bdrate_main([str(ref), str(test)]) == 0
    table = capsys.readouterr().out
    assert "Ours" in table and "-10.00%" in table
    assert bdrate_main([str(ref), str(test), "--method", "cubic", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["bd_rate"] == pytest.approx(-10.0) and rows[0]["method"] == "cubic"
    far = tmp_path / "far.json"
    save_curve(RDCurve("Far", BPP, [p + 50 for p in PSNR]), far)
    assert bdrate_main([str(ref), str(test), str(far)]) == 1
    assert "do not overlap" in capsys.readouterr().out
    assert bdrate_main([str(ref), str(test), "--metric", "ms-ssim"]) == 1  # no MS-SSIM in these curves


def test_plot_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    ours = tmp_path / "ours.json"
    save_curve(RDCurve("Ours", [0.9 * b for b in BPP], PSNR), ours)
    out = tmp_path / "rd.png"
    rc = plot_main(
        [
            str(out),
            str(ours),
            "--anchors",
            str(KODAK / "vtm.json"),
            "--anchors",
            str(KODAK / "bpg_444_x265_ycbcr.json"),
            "--highlight",
            "VTM",
        ]
    )
    assert rc == 0
    _png_ok(out)
    assert plot_main([str(out), "--highlight", "nope", "--anchors", str(KODAK / "vtm.json")]) == 2


def test_rd_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import fxlic.rd.results, fxlic.rd.bdrate, fxlic.rd.metrics, fxlic.rd.plot, fxlic.rd.cli\n"
        "bad = [m for m in ('torch', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- issue 15: NumPy-only metrics and BD-rate, eval inputs, plot title and labels ---------------------------------
def test_numpy_filter_matches_scipy() -> None:
    """The NumPy 'valid' filter of MS-SSIM equals scipy.ndimage.correlate1d (SciPy is a dev extra only)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    from fxlic.rd.metrics import _filter_valid

    x = np.random.default_rng(3).uniform(0, 255, (40, 33, 3))
    win = gaussian_window()
    k, c = win.size, win.size // 2
    want = ndimage.correlate1d(x, win, axis=0, mode="constant")[c : x.shape[0] - (k - 1 - c)]
    want = ndimage.correlate1d(want, win, axis=1, mode="constant")[:, c : x.shape[1] - (k - 1 - c)]
    assert np.allclose(_filter_valid(x, win), want, rtol=0, atol=1e-9)


def test_numpy_pchip_matches_scipy() -> None:
    """The NumPy PCHIP integral equals SciPy's PchipInterpolator.integrate on random curves."""
    interpolate = pytest.importorskip("scipy.interpolate")
    from fxlic.rd.bdrate import pchip_integral

    rng = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng.integers(2, 9))
        x = np.cumsum(rng.uniform(0.05, 1.0, n))
        y = rng.normal(size=n) if trial % 2 else np.cumsum(rng.uniform(0, 2, n))
        lo, hi = np.sort(rng.uniform(x[0], x[-1], 2))
        want = float(interpolate.PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi))
        assert pchip_integral(x, y, lo, hi) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_eval_accepts_files_and_any_format(tmp_path: Path, kodak_image) -> None:
    """`fxlic eval --images file.png` crashed with NotADirectoryError; files, folders, JPEG/WebP are accepted,
    and the data set name ends up in the JSON (the plot's default title)."""
    from PIL import Image

    png = tmp_path / "one.png"
    Image.fromarray(kodak_image(1, (0, 0, 176, 176))).save(png)
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(kodak_image(2, (0, 0, 176, 176))).save(folder / "two.webp", lossless=True)
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "fxlic.cli", "eval", "--images", str(png), str(folder),
                           "--qualities", "4", "--out", str(out), "--dataset", "mine"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    curve = json.loads((out / "meanscale.json").read_text())
    assert curve["meta"]["images"] == 2 and curve["meta"]["dataset"] == "mine"
    rows = (out / "meanscale-q4.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["one.png", "two.webp"]
    missing = subprocess.run([sys.executable, "-m", "fxlic.cli", "eval", "--images", str(tmp_path / "nope"),
                              "--out", str(tmp_path / "never")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file" in missing.stderr and not (tmp_path / "never").exists()


def test_plot_title_and_anchor_labels_do_not_overlap(tmp_path: Path) -> None:
    """The default title was 'Kodak' whatever the images; anchor labels ending at one point overlapped."""
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from fxlic.rd import plot as plot_module
    from fxlic.rd.cli import default_title

    ours = RDCurve("ours", [0.2, 0.5, 1.0], [28.0, 31.0, 34.0], extra={"meta": {"dataset": "clic"}})
    anchors = [RDCurve(f"anchor {i}", [0.1, 0.6, 1.4], [27.0, 31.0, 34.5 + 0.01 * i]) for i in range(4)]
    assert default_title([ours]) == "clic" and default_title(anchors) == "Rate-distortion"
    captured = {}
    original = plot_module._spread_labels

    def spy(fig, labels, gap_px=1.0):
        original(fig, labels, gap_px)
        captured.setdefault("labels", []).extend(labels)
        captured["fig"] = fig

    plot_module._spread_labels = spy
    try:
        plot_module.plot_rd([ours, *anchors], tmp_path / "rd.png", "t", highlight=["ours"])
    finally:
        plot_module._spread_labels = original
    renderer = FigureCanvasAgg(captured["fig"]).get_renderer()
    boxes = [a.get_window_extent(renderer) for a in captured["labels"]]
    assert len(boxes) == 4
    for i in range(len(boxes)):
        for j in range(i):
            assert not boxes[i].overlaps(boxes[j]), (i, j)
