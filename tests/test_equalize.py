"""Cross-layer equalization of g_s's last input (fxlic.qat.equalize, docs/training.md §5)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.equalize import channel_maxima, equalize_synthesis_input  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input  # noqa: E402
from fxlic.qat.train import calibrate  # noqa: E402


def _tiny() -> MeanScaleHyperprior:
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator"))
    with torch.no_grad():  # channels of very different ranges, as a trained g_s.2 has
        model.g_s[-2].conv.weight.mul_(torch.linspace(0.1, 2.0, 8).view(1, -1, 1, 1))
    return model.double().eval()


def test_equalization_keeps_the_float_model_and_fills_every_channel(train_dir) -> None:
    """ReLU(s·t) = s·ReLU(t): the float output is unchanged; afterwards every channel of g_s[-2]'s output
    that is ever non-zero reaches the same maximum on the crops it was measured on (no scale reached the cap
    here; a dead ReLU channel stays zero whatever its scale)."""
    model = _tiny()
    x = pixels_to_input(CropSampler(train_dir, 64, seed=3).batch(2)).double()
    with torch.no_grad():
        before = model(x, noisy_rate=False)["x_hat"]
    scales = equalize_synthesis_input(model, CropSampler(train_dir, 64, seed=1), batches=2, batch_size=2,
                                      max_scale=1e6)
    assert float(scales.min()) == pytest.approx(1.0) and float(scales.max()) > 2.0
    with torch.no_grad():
        after = model(x, noisy_rate=False)["x_hat"]
    assert torch.allclose(before, after, rtol=0, atol=1e-12)
    maxima = channel_maxima(model, model.g_s[-2], CropSampler(train_dir, 64, seed=1), 2, 2)
    alive = maxima > 0
    assert int(alive.sum()) >= 4
    assert torch.allclose(maxima[alive], maxima.max().expand(int(alive.sum())), rtol=1e-9)


def test_equalization_is_refused_on_a_quantized_model(train_dir) -> None:
    model = _tiny().float()
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=1, batch_size=2)
    with pytest.raises(ValueError, match="float model"):
        equalize_synthesis_input(model, CropSampler(train_dir, 64, seed=1), batches=1, batch_size=2)
