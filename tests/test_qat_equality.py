"""The integer reference equals the QAT fake-quant forward, layer by layer, in integer codes.

This is the contract between `fxlic.qat` (torch) and `fxlic.reference` (integers): docs/fixed-point.md
"fake-quant exactness" — in float64 every fake-quant value is an exact multiple of its power-of-two
step, so the only rounding is the explicit one and the integer codes must agree element for element.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.codec import Codec  # noqa: E402
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.export import export_model, model_from_model_file  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig  # noqa: E402
from fxlic.qat.train import calibrate  # noqa: E402
from fxlic.qat.verify import compare_image  # noqa: E402


def _assert_equal(stats) -> None:
    bad = {name: row for name, row in stats.items() if row["mismatches"]}
    assert not bad, f"layers differing from the QAT forward: {bad}"
    names = set(stats)
    for layer in ("g_a.0", "g_a.3", "h_a.2", "h_s_scales", "decoded g_s.3", "y_hat", "decoded y_hat"):
        assert layer in names


@pytest.mark.parametrize(("use_means", "latent_rounding"),
                         [(True, "accumulator"), (True, "requantize"), (False, "accumulator")])
def test_fresh_export_equals_qat_forward(train_dir, kodak_image, tmp_path, use_means, latent_rounding) -> None:
    """Calibrate → export → integer codec equals the QAT forward (mean-scale and scale hyperprior; ŷ from the
    twin of g_a's last conv, model-file version 3, or requantized from y, version 1: FXP-Q6)."""
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, use_means=use_means, latent_rounding=latent_rounding))
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    path = tmp_path / "tiny.npz"
    export_model(model, "tiny", 1).save(path)
    from fxlic.reference.modelfile import load_model_file

    model_file = load_model_file(path)
    assert (model_file.y_hat_twin is not None) == (latent_rounding == "accumulator")
    assert model_file.meta["format_version"] == (3 if latent_rounding == "accumulator" else 1)
    codec = Codec(model_file)
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    for index, crop in ((23, (0, 0, 100, 150)), (5, (200, 300, 64, 64))):
        compare_image(model, codec, kodak_image(index, crop), stats)
    _assert_equal(stats)


@pytest.mark.slow
@pytest.mark.data
def test_shipped_model_equals_its_qat_forward(codec, kodak_image) -> None:
    """The shipped int8 model, rebuilt as a torch QAT model, matches the integer reference on Kodak."""
    model = model_from_model_file(codec.model)
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    for index in (1, 4):  # a landscape and a portrait image; all 24: `fxlic verify-qat` (closing note)
        compare_image(model, codec, kodak_image(index), stats, f"kodim{index:02d}")
    _assert_equal(stats)
