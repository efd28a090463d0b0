"""Shared fixtures: the bundled test data (tests/fixtures), the full data sets of the data lane, the shipped
default model, tiny exported models; Hypothesis profiles; the two lanes.

Two lanes:

* the default lane (``pytest``) needs nothing outside the repository: Kodak crops, training-photo crops and
  RD curves are bundled in ``tests/fixtures/`` (tests/fixtures/README.md: what they are, their sources and
  licences);
* the data lane (``pytest -m data``) runs the tests marked ``data``, whose claims are about whole data sets
  (whole Kodak images, every published anchor, the committed Kodak measurements). It reads
  ``$FXLIC_DATA/kodak`` and ``$FXLIC_ANCHORS`` (default: ``../shared/data`` and ``../shared/anchors``
  beside the repository) and fails, naming what is missing and how to get it, when they are not there.
  Tests marked ``data`` are deselected unless the ``-m`` expression names ``data``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Hypothesis profiles. Properties that pin max_examples in their own @settings keep it; the others (the
# cross-impl determinism property, tests/test_determinism.py) take it from the profile.
#   "ci" (default): derandomized -- every run draws the same examples (a function of the test's source and
#       the Hypothesis version), so the suite's time does not depend on luck; .ci/run uses it.
#   "explore": the same budget, freshly random draws on each run (a failure prints its reproduction blob).
#   "nightly": a long random search: FXLIC_HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_determinism.py
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=30, deadline=None, print_blob=True)
settings.register_profile("nightly", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("FXLIC_HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_KODAK = FIXTURES / "kodak"
FIXTURE_TRAIN = FIXTURES / "train"
FIXTURE_ANCHORS = FIXTURES / "anchors"
DATA = Path(os.environ.get("FXLIC_DATA") or REPO.parent / "shared" / "data")
ANCHORS = Path(os.environ.get("FXLIC_ANCHORS") or REPO.parent / "shared" / "anchors")
KODAK = DATA / "kodak"

GET_KODAK = (
    "The data lane (pytest -m data) needs the 24 Kodak images kodim01.png ... kodim24.png (768×512 or 512×768, "
    "the Kodak Lossless True Color Image Suite, released by Eastman Kodak for unrestricted use) in $FXLIC_DATA/kodak. "
    "Download them, e.g.\n"
    "    mkdir -p data/kodak && for i in $(seq -w 1 24); do\n"
    "      curl -fsS -o data/kodak/kodim$i.png http://r0k.us/graphics/kodak/kodak/kodim$i.png; done\n"
    "and run FXLIC_DATA=$PWD/data python -m pytest -m data (default FXLIC_DATA: ../shared/data beside the "
    "repository). The default lane, python -m pytest, needs no data."
)
GET_ANCHORS = (
    "The data lane (pytest -m data) needs the published RD curves in $FXLIC_ANCHORS/kodak (CompressAI's "
    "results/image/kodak folder, https://github.com/InterDigitalInc/CompressAI/tree/master/results/image/kodak, "
    "JSON files such as vtm.json). Copy that folder to ANCHORS/kodak and run FXLIC_ANCHORS=ANCHORS python -m "
    "pytest -m data (default FXLIC_ANCHORS: ../shared/anchors beside the repository)."
)


# ---------------------------------------------------------------------------------------------- lanes
def _data_lane_selected(config: pytest.Config) -> bool:
    """True when the -m expression names the ``data`` marker (``-m data``, ``-m "data and not slow"``, ...)."""
    return re.search(r"\bdata\b", config.getoption("markexpr") or "") is not None


# The fast lane is `pytest -m "not slow"`. Tests marked slow: whole Kodak images, torch/QAT forwards over
# images, multi-process training, subprocess installs (tests/test_wheel.py). The determinism module
# (several subprocess environments per test) is marked here rather than in its file.
SLOW_MODULES = {"test_determinism.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    if not _data_lane_selected(config):
        deselected = [item for item in items if item.get_closest_marker("data")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker("data")]


_RUNNING: dict[str, pytest.Item | None] = {"item": None}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _RUNNING["item"] = item  # the test whose fixtures are being set up (session fixtures ask who needs them)


def _require_data_marker(what: str) -> None:
    item = _RUNNING["item"]
    if item is not None and item.get_closest_marker("data") is None:
        pytest.fail(f"{item.nodeid} needs {what}, which only tests marked `data` may use: mark it "
                    "@pytest.mark.data, or take a crop that tests/fixtures holds (tools/make_test_fixtures.py)",
                    pytrace=False)


def _require(path: Path, how: str) -> Path:
    if not path.is_dir():
        pytest.fail(f"{path} not found.\n{how}", pytrace=False)
    return path


# ------------------------------------------------------------------------------------- bundled fixtures
def _kodak_regions() -> list[tuple[int, int, int, Path]]:
    """[(index, top, left, file)] of the bundled Kodak regions, named kodimNN_TOP_LEFT.png."""
    regions = []
    for path in sorted(FIXTURE_KODAK.glob("kodim*.png")):
        index, top, left = (int(v) for v in re.fullmatch(r"kodim(\d+)_(\d+)_(\d+)", path.stem).groups())
        regions.append((index, top, left, path))
    return regions


@pytest.fixture(scope="session")
def kodak_image():
    """Loader: kodak_image(index, crop=None) -> uint8 H×W×3, crop = (top, left, height, width) in the original
    Kodak image. Served from the bundled regions (tests/fixtures/kodak) when one holds the crop; a whole image
    or any other crop comes from $FXLIC_DATA/kodak and only for tests marked ``data``."""
    from fxlic.imageio import read_image

    cache: dict[Path, np.ndarray] = {}

    def load_file(path: Path) -> np.ndarray:
        if path not in cache:
            cache[path] = read_image(path)
        return cache[path]

    def load(index: int, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
        if crop is not None:
            top, left, height, width = crop
            for region_index, r_top, r_left, path in _kodak_regions():
                if region_index != index or top < r_top or left < r_left:
                    continue
                region = load_file(path)
                if top + height <= r_top + region.shape[0] and left + width <= r_left + region.shape[1]:
                    return np.ascontiguousarray(region[top - r_top : top - r_top + height,
                                                       left - r_left : left - r_left + width])
        what = f"kodim{index:02d}" + ("" if crop is None else f" crop {crop}")
        _require_data_marker(f"{what} (not in tests/fixtures/kodak)")
        image = load_file(_require(KODAK, GET_KODAK) / f"kodim{index:02d}.png")
        if crop is None:
            return np.ascontiguousarray(image)
        top, left, height, width = crop
        return np.ascontiguousarray(image[top : top + height, left : left + width])

    return load


@pytest.fixture(scope="session")
def kodak_regions(kodak_image) -> list[np.ndarray]:
    """Every bundled Kodak region as an image (for tests that draw their own crops)."""
    return [kodak_image(index, (top, left, *read_size(path))) for index, top, left, path in _kodak_regions()]


def read_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


@pytest.fixture(scope="session")
def train_dir() -> Path:
    """Five crops (256×384) of public-domain training photographs: CropSampler and the training commands read
    them like the real training folder (tests/fixtures/README.md)."""
    return FIXTURE_TRAIN


@pytest.fixture(scope="session")
def fixture_anchors() -> Path:
    """A few published RD curves, copied verbatim (kodak/: VTM, BPG, WebP, JPEG, two papers; kodak-measured/:
    WebP and a timing report)."""
    return FIXTURE_ANCHORS


def _synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 16 + 2, width // 16 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    rows = coarse[y0] * (1 - fy) + coarse[y0 + 1] * fy
    smooth = rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx
    return np.clip(np.round(smooth + rng.normal(0, 4, smooth.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def synthetic_image():
    """Maker: synthetic_image(height, width, seed=0) -> a photo-like uint8 H×W×3 image (a smooth random colour
    field plus mild noise), for tests that need pixels but not natural-image statistics."""
    return _synthetic_image


# ------------------------------------------------------------------------------------------ data lane
@pytest.fixture()
def kodak_dir() -> Path:
    """The whole Kodak set ($FXLIC_DATA/kodak; data lane only)."""
    _require_data_marker("the whole Kodak set")
    return _require(KODAK, GET_KODAK)


@pytest.fixture()
def anchors_dir() -> Path:
    """The published RD curves ($FXLIC_ANCHORS/kodak; data lane only)."""
    _require_data_marker("the published RD curves")
    _require(ANCHORS / "kodak", GET_ANCHORS)
    return ANCHORS


# ------------------------------------------------------------------------------------------------ models
@pytest.fixture(scope="session")
def codec():
    """The golden codec with the shipped default model."""
    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.reference.modelfile import load_model_file

    return Codec(load_model_file(models.resolve()))


@pytest.fixture(scope="session")
def tiny_charm(tmp_path_factory, train_dir):
    """A tiny ChARM model (docs/charm.md; N 8, M 12, 3 slices, context 8/6): random init, calibrated on two
    batches of training crops, exported, reloaded. Returns (QAT model, integer ModelFile). Needs torch."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.charm import CharmConfig, CharmHyperprior
    from fxlic.qat.data import CropSampler
    from fxlic.qat.export import export_model
    from fxlic.qat.train import calibrate
    from fxlic.reference.modelfile import load_model_file

    torch.manual_seed(0)
    model = CharmHyperprior(CharmConfig(N=8, M=12, slices=3, context_hidden=(8, 6)))
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    path = tmp_path_factory.mktemp("charm") / "charm.npz"
    export_model(model, "charm", 2).save(path)
    return model, load_model_file(path)


@pytest.fixture(scope="session")
def tiny_twin(tmp_path_factory, train_dir):
    """A tiny mean-scale model (N 8, M 12) with the ŷ twin (``latent_rounding="accumulator"``, FXP-Q6): random
    init, calibrated on two batches of training crops, exported, reloaded. Returns (QAT model, ModelFile)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.data import CropSampler
    from fxlic.qat.export import export_model
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig
    from fxlic.qat.train import calibrate
    from fxlic.reference.modelfile import load_model_file

    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, latent_rounding="accumulator", hyper_activation="relu"))
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    path = tmp_path_factory.mktemp("twin") / "twin.npz"
    export_model(model, "meanscale", 4).save(path)
    return model, load_model_file(path)
