"""More latent channels for a trained model (fxlic.qat.widen, docs/training.md §5): the widened model starts
as the old one — same x̂, same z, same rate for the old channels — and its new channels can learn."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.qat.charm import model_from_config  # noqa: E402
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input  # noqa: E402
from fxlic.qat.train import rd_loss  # noqa: E402
from fxlic.qat.widen import widen_latents  # noqa: E402


def _float_state(M: int = 12) -> dict:
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=M, hyper_activation="relu"))
    return {"model": model.state_dict(), "config": model.config_dict(), "step": 7}


def test_widened_model_reconstructs_and_prices_the_old_channels_as_before(train_dir) -> None:
    state = _float_state()
    wide = widen_latents(state, 20, train_dir, new_std=0.6, batches=1, batch=2)
    assert wide["config"]["M"] == 20
    old, new = model_from_config(state["config"]), model_from_config(wide["config"])
    old.load_state_dict(state["model"])
    new.load_state_dict(wide["model"])
    old.eval()
    new.eval()
    pixels = CropSampler(train_dir, 64, seed=3).batch(2)
    with torch.no_grad():
        a, b = old(pixels_to_input(pixels), noisy_rate=False), new(pixels_to_input(pixels), noisy_rate=False)
        assert torch.equal(a["x_hat"], b["x_hat"])
        assert torch.equal(a["z_hat"], b["z_hat"])
        assert torch.allclose(a["y_likelihood"], b["y_likelihood"][:, :12])
        y_new = new.g_a(pixels_to_input(pixels))[:, 12:]
    # the new channels are neither dead (ŷ never non-zero, so g_s could not learn them) nor loud
    assert 0.3 < float(y_new.std()) < 1.2
    assert bool((torch.round(y_new) != 0).any())


def test_the_new_channels_learn(train_dir) -> None:
    """One gradient step: g_s's weights on the new inputs (zero at the start) receive a gradient."""
    wide = widen_latents(_float_state(), 16, train_dir, batches=1, batch=2)
    model = model_from_config(wide["config"])
    model.load_state_dict(wide["model"])
    model.train()
    pixels = CropSampler(train_dir, 64, seed=4).batch(2)
    rd_loss(model(pixels_to_input(pixels)), pixels, 0.18)["loss"].backward()
    assert float(model.g_s[0].conv.weight.grad[12:].abs().sum()) > 0
    assert float(model.g_a[-1].conv.weight.grad[12:].abs().sum()) > 0


def test_widen_refuses_to_shrink_or_to_widen_a_quantized_model(train_dir) -> None:
    state = _float_state()
    with pytest.raises(ValueError, match="must grow"):
        widen_latents(state, 12, train_dir)
    quantized = dict(state, model={k: (torch.ones_like(v) if k.endswith(".quantized") else v)
                                   for k, v in state["model"].items()})
    with pytest.raises(ValueError, match="float model"):
        widen_latents(quantized, 16, train_dir)
