"""Adaptive rounding of the int8 weights (fxlic.qat.adaround; Nagel et al. 2020).

docs/fixed-point.md FXP-Q4: weights are int8 at one power-of-two position per tensor, and the export rounds
them with STD_ROUND. AdaRound only chooses, for each weight, the step below or the step above: the weights it
leaves are exact multiples of 2^-f_w in the int8 range, so STD_ROUND keeps them and the exported integer model
still equals the QAT forward layer by layer.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.codec import Codec  # noqa: E402
from fxlic.qat.adaround import adaround_model, rectified_sigmoid, round_layer  # noqa: E402
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.export import export_model  # noqa: E402
from fxlic.qat.fakequant import fake_quant_param  # noqa: E402
from fxlic.qat.layers import QConv  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input  # noqa: E402
from fxlic.qat.train import calibrate  # noqa: E402
from fxlic.qat.verify import compare_image  # noqa: E402


def _on_grid(weight: torch.Tensor, fix_w: int) -> bool:
    codes = weight.double() * 2.0**fix_w
    return bool(torch.equal(codes, torch.round(codes)) and codes.min() >= -128 and codes.max() <= 127)


def test_rectified_sigmoid_reaches_both_ends() -> None:
    h = rectified_sigmoid(torch.tensor([-10.0, 0.0, 10.0]))
    assert h.tolist() == [0.0, pytest.approx(0.5), 1.0]


def test_a_coarse_layer_keeps_its_output_better_than_nearest_rounding() -> None:
    """A conv whose weights are 2–3 steps wide: rounding each to its nearest step loses much of the output;
    the chosen roundings lose less on the data they were fitted to, and stay on the grid."""
    torch.manual_seed(0)
    layer = QConv(8, 4, 3, 1, 1, activation="relu")
    layer.conv.weight.data = torch.randn_like(layer.conv.weight) * 0.1
    layer.conv.bias.data.zero_()
    layer.fix.copy_(torch.tensor([4, 5, 8, 4]))  # step 1/32 for weights ~0.1: a coarse grid
    layer.quantized.fill_(True)
    inputs = [torch.rand(4, 8, 12, 12) for _ in range(4)]
    with torch.no_grad():
        targets = [torch.relu(layer._conv(x, layer.conv.weight, layer.conv.bias)) for x in inputs]
    result = round_layer(layer, list(zip(inputs, targets)), "toy", iters=300)
    assert _on_grid(layer.conv.weight.detach(), 5)
    assert result.error_adaround < 0.8 * result.error_nearest
    assert 0.0 < result.flipped < 0.5
    nearest = fake_quant_param(layer.conv.weight.detach(), 5)
    assert torch.equal(nearest, layer.conv.weight.detach())  # STD_ROUND (the export) keeps the chosen weights


def test_adarounded_model_exports_exactly(train_dir, kodak_image, tmp_path) -> None:
    """A whole calibrated model, every layer rounded by its output: weights on the grid, positions unchanged,
    and the exported integer model decodes to the QAT forward's integer codes, layer by layer."""
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator"))
    float_model = copy.deepcopy(model)
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    fixes = model.fix_positions()
    crops = CropSampler(train_dir, 64, seed=3)
    batches = [crops.batch(2) for _ in range(2)]
    results = adaround_model(model, float_model, batches,
                             lambda net, pixels: net(pixels_to_input(pixels), noisy_rate=False), iters=20)
    assert [r.name for r in results] == [name for name, _ in model.named_qconvs()]
    assert all(r.error_adaround <= r.error_nearest for r in results)
    assert model.fix_positions() == fixes
    for _, layer in model.named_qconvs():
        assert _on_grid(layer.conv.weight.detach(), layer.fix_w)
    path = tmp_path / "adarounded.npz"
    export_model(model, "tiny", 1).save(path)
    from fxlic.reference.modelfile import load_model_file

    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(model, Codec(load_model_file(path)), kodak_image(23, (0, 0, 100, 150)), stats)
    assert stats and not {name: row for name, row in stats.items() if row["mismatches"]}
