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


def _pair_ranges(model: MeanScaleHyperprior, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(producer's output-channel weight ranges, consumer's input-channel weight ranges) of a ReLU pair."""
    from fxlic.qat.equalize import _channel_ranges, _layer, _output_axis

    producer, consumer = _layer(model, name)
    return (_channel_ranges(producer.conv.weight, _output_axis(producer)),
            _channel_ranges(consumer.conv.weight, 1 - _output_axis(consumer)))


def test_weight_equalization_keeps_the_float_model_and_balances_every_pair(train_dir) -> None:
    """Nagel et al. 2019 CLE through ReLU: the float output is unchanged, and after enough sweeps the producer's
    output-channel range equals the consumer's input-channel range, channel by channel, for every pair."""
    from fxlic.qat.equalize import equalize_weight_ranges

    model = _tiny()
    x = pixels_to_input(CropSampler(train_dir, 64, seed=3).batch(2)).double()
    with torch.no_grad():  # the two transforms apart: a 1e-16 change of y may flip a rounding of ŷ
        y_before = model.g_a(x)
        y_hat = torch.round(y_before)
        before = model.g_s(y_hat)
    pairs = ("g_a.0", "g_a.1", "g_a.2", "g_s.0", "g_s.1", "g_s.2")
    imbalance = {name: float((r1 / r2).max() / (r1 / r2).min()) for name in pairs
                 for r1, r2 in [_pair_ranges(model, name)]}
    assert max(imbalance.values()) > 5.0  # a random init with g_s.2's channels spread 20×
    scales = equalize_weight_ranges(model, iterations=200, max_scale=1e6, producers=pairs)
    assert set(scales) == set(pairs)
    with torch.no_grad():
        assert torch.allclose(y_before, model.g_a(x), rtol=0, atol=1e-10)
        assert torch.allclose(before, model.g_s(y_hat), rtol=0, atol=1e-10)
    for name in pairs:
        r1, r2 = _pair_ranges(model, name)
        assert torch.allclose(r1, r2, rtol=1e-6), name


def test_weight_equalization_refuses_a_pair_without_relu() -> None:
    from fxlic.qat.equalize import equalize_weight_ranges

    with pytest.raises(ValueError, match="no ReLU pair"):
        equalize_weight_ranges(_tiny(), producers=("g_a.3",))



def test_power_of_two_alignment_keeps_the_float_model_and_takes_the_best_factor(train_dir) -> None:
    """scale_pair leaves the float model unchanged; the search takes, per pair, the grid factor of least
    objective (here a made-up one: distance of g_a.1's largest weight from 1.5× its start, so 2^(5/8))."""
    from fxlic.qat.equalize import align_power_of_two_scales

    model = _tiny()
    x = pixels_to_input(CropSampler(train_dir, 64, seed=3).batch(2)).double()
    with torch.no_grad():
        before = model(x, noisy_rate=False)["x_hat"]
    start = float(model.g_a[1].conv.weight.detach().abs().max())
    chosen = align_power_of_two_scales(
        model, lambda m: abs(float(m.g_a[1].conv.weight.detach().abs().max()) - 1.5 * start), producers=("g_a.1",))
    assert chosen == {"g_a.1": pytest.approx(2 ** (5 / 8))}
    assert float(model.g_a[1].conv.weight.detach().abs().max()) == pytest.approx(start * 2 ** (5 / 8))
    with torch.no_grad():
        after = model(x, noisy_rate=False)["x_hat"]
    assert torch.allclose(before, after, rtol=0, atol=1e-10)


def test_ptq_objective_is_deterministic_and_leaves_the_candidate_calibrated(train_dir) -> None:
    """The alignment's objective: the same candidate scores the same twice (same calibration crops and
    subsampling draws), and the float model it was copied from is not touched."""
    import copy

    from fxlic.qat.train import ptq_objective

    model = _tiny().float()
    objective = ptq_objective(train_dir, 64, seed=0, calib_batches=1, batch_size=2, lmbda=0.013, eval_batches=1)
    first, second = copy.deepcopy(model), copy.deepcopy(model)
    score = objective(first)
    assert score == objective(second) and score > 0
    assert first.quantized and not model.quantized
