"""Shared fixtures: the real data beside the repo (../shared) and the shipped default model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Hypothesis profiles. Properties that pin max_examples in their own @settings keep it; those that do not
# (the cross-impl determinism property, tests/test_determinism.py) take it from the profile:
# "ci" (default) for every run of the suite, "nightly" for a long search:
#     FXLIC_HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_determinism.py
settings.register_profile("ci", max_examples=30, deadline=None)
settings.register_profile("nightly", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("FXLIC_HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
KODAK = SHARED / "data" / "kodak"
TRAIN = SHARED / "data" / "train-half"


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not KODAK.is_dir():
        pytest.skip(f"Kodak images not found at {KODAK}")
    return KODAK


@pytest.fixture(scope="session")
def train_dir() -> Path:
    if not TRAIN.is_dir():
        pytest.skip(f"training images not found at {TRAIN}")
    return TRAIN


@pytest.fixture(scope="session")
def kodak_image(kodak_dir):
    """Loader: kodak_image(index, crop=None) -> uint8 H×W×3 (crop = (top, left, height, width))."""
    from fxlic.imageio import read_image

    cache: dict[int, np.ndarray] = {}

    def load(index: int, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
        if index not in cache:
            cache[index] = read_image(kodak_dir / f"kodim{index:02d}.png")
        image = cache[index]
        if crop:
            top, left, height, width = crop
            image = image[top : top + height, left : left + width]
        return np.ascontiguousarray(image)

    return load


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


# The fast lane is `pytest -m "not slow"`. Tests marked slow: whole Kodak images, torch/QAT forwards over
# real images, multi-process training, subprocess installs (tests/test_wheel.py). The determinism
# module (several subprocess environments per test) is marked here rather than in its file.
SLOW_MODULES = {"test_determinism.py"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
