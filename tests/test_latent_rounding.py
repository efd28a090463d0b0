"""ŷ rounded once from g_a's accumulator: the ŷ twin (docs/fixed-point.md FXP-Q6, docs/model-file.md v3).

FXP-Q6: "ŷ = sat(R(t / 2^s₀)) with s₀ = f_w + f_in: one rounding of the exact conv result, what float
training's round(y) is. requantize(y → 0) of y = sat(R(t / 2^s)) at f_y > 0 rounds twice: every y within
2^-(f_y+1) below k + ½ goes to k + 1."
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.fxp.layer import QuantConv
from fxlic.fxp.quant import requantize
from fxlic.reference.modelfile import Y_HAT_TWIN, ModelFileError, load_model_file


def _one_rounding(t: int, shift: int) -> int:
    """The spec, on rationals: sat(⌊t / 2^shift + ½⌋)."""
    return max(-128, min(127, floor(Fraction(t, 2**shift) + Fraction(1, 2))))


def _layer(weight: int, bias: int, fix_in: int, fix_w: int, fix_b: int, fix_out: int) -> QuantConv:
    """A 1×1 conv with one input and one output channel: out = R((w·x + b·2^sb) / 2^sc)."""
    return QuantConv(name="g_a.3", transposed=False, weight=np.full((1, 1, 1, 1), weight, np.int8),
                     bias=np.array([bias], np.int8), stride=1, padding=0, fix_in=fix_in, fix_w=fix_w,
                     fix_b=fix_b, fix_out=fix_out, activation="none")


@settings(max_examples=300, deadline=None)
@given(weight=st.integers(-128, 127), bias=st.integers(-128, 127), fix_y=st.integers(1, 3),
       x=st.lists(st.integers(-128, 127), min_size=1, max_size=64))
def test_twin_rounds_once_and_requantize_twice(weight, bias, fix_y, x) -> None:
    """The twin (fix_out 0) equals one rounding of the exact sum; requantize(y → 0) differs exactly where the
    exact value lies in [k + ½ − 2^-(f_y+1), k + ½) (two roundings, both half up)."""
    layer = _layer(weight, bias, fix_in=3, fix_w=7, fix_b=8, fix_out=fix_y)
    twin = replace(layer, name=Y_HAT_TWIN, fix_out=0)
    inputs = np.array(x, np.int8).reshape(1, 1, -1)
    y = layer(inputs, impl="reference")
    y_hat = twin(inputs, impl="reference")
    shift_bias = layer.shift_bias
    for xi, yi, twin_i, req_i in zip(x, y.ravel(), y_hat.ravel(), requantize(y, fix_y, 0).ravel(), strict=True):
        t = weight * xi + bias * 2**shift_bias  # accumulator units 2^-(f_w + f_in) = 2^-10
        assert twin_i == _one_rounding(t, 10)
        assert yi == _one_rounding(t, 10 - fix_y)
        exact = Fraction(t, 2**10)
        k = floor(exact + Fraction(1, 2))
        in_band = exact - k >= Fraction(1, 2) - Fraction(1, 2 ** (fix_y + 1)) and -128 <= k + 1 <= 127
        if abs(exact) < 120:  # away from saturation
            assert (req_i != twin_i) == in_band


def test_tiny_twin_model_file(tiny_twin) -> None:
    """docs/model-file.md v3: the twin layer is g_a's last conv (same int8 weights, bias, input position) with
    output fix 0, DPU-legal shifts, in a file of format version 3; calibration makes it legal even for an
    untrained model (the twin's adjustment first, FXP-P2)."""
    _, model_file = tiny_twin
    twin, last = model_file.layers[Y_HAT_TWIN], model_file.layers["g_a.3"]
    assert model_file.meta["format_version"] == 3 and model_file.meta["config"]["latent_rounding"] == "accumulator"
    assert twin.fix_out == 0 and twin.shifts_in_dpu_range and last.shifts_in_dpu_range
    assert (twin.fix_in, twin.fix_w, twin.fix_b) == (last.fix_in, last.fix_w, last.fix_b)
    assert np.array_equal(twin.weight, last.weight) and np.array_equal(twin.bias, last.bias)


def _resave(model_file, path, **changes) -> None:
    model_file.meta = dict(model_file.meta, **changes.pop("meta", {}))
    for name, layer in changes.items():
        model_file.layers[name] = layer
    model_file.save(path)


def test_foreign_twin_is_refused(tiny_twin, tmp_path) -> None:
    """A twin whose weights differ from g_a's last, or a twin in a version-1 file, is refused in one line."""
    _, model_file = tiny_twin
    original = load_model_file(model_file.path)
    twin = original.layers[Y_HAT_TWIN]
    weight = twin.weight.copy()
    weight.flat[0] = weight.flat[0] + 1 if weight.flat[0] < 127 else 126
    _resave(original, tmp_path / "w.npz", **{Y_HAT_TWIN: replace(twin, weight=weight)})
    with pytest.raises(ModelFileError, match="not a twin of g_a.3"):
        load_model_file(tmp_path / "w.npz")
    original = load_model_file(model_file.path)
    _resave(original, tmp_path / "v1.npz", meta={"format_version": 1})
    with pytest.raises(ModelFileError, match="needs format version 3"):
        load_model_file(tmp_path / "v1.npz")


def test_twin_codec_tiles_and_board(tiny_twin, kodak_image) -> None:
    """With the twin: streams do not depend on the tile (docs/tiling.md), ŷ is the twin's output, and the board
    partition runs the twin in the encoder subgraph, its output ŷ (docs/board.md)."""
    from fxlic.board.partition import ENCODER, partition_from_model
    from fxlic.board.runner import SimulatedDpuRunner
    from fxlic.codec import Codec
    from fxlic.reference.hyperprior import IntegerHyperprior

    _, model_file = tiny_twin
    pixels = kodak_image(3, (40, 60, 150, 200))
    whole = Codec(model_file).encode(pixels, keep_trace=True)
    assert np.array_equal(whole.y_hat, whole.trace[Y_HAT_TWIN])
    for tile in (64, 128):
        assert Codec(model_file, tile=tile).encode(pixels).bitstream == whole.bitstream
    partition = partition_from_model(model_file)
    encoder = partition.subgraph(ENCODER)
    assert Y_HAT_TWIN in encoder.layers and Y_HAT_TWIN in encoder.outputs
    assert partition.tensors["y_hat"].producer == Y_HAT_TWIN
    runner = SimulatedDpuRunner(model_file, partition=partition)
    x = whole.trace["input"]
    out = runner.run_subgraph(ENCODER, {"input": np.ascontiguousarray(x.transpose(1, 2, 0))[None]})
    assert np.array_equal(out[Y_HAT_TWIN][0].transpose(2, 0, 1), whole.y_hat)
    net = IntegerHyperprior(model_file)
    y, y_hat = net.analysis_latents(x)
    assert np.array_equal(y_hat, whole.y_hat) and np.array_equal(y, whole.trace["g_a.3"])


def test_twin_golden_set_locates_a_wrong_twin(tiny_twin, kodak_image, tmp_path) -> None:
    """docs/golden.md: a golden set of a version-3 model records g_a_y_hat; a platform whose twin is off by one
    LSB in one element is located at g_a_y_hat (recomputed from the committed g_a.2), not at g_a.3."""
    import json

    from fxlic.codec import Codec
    from fxlic.golden.vectors import make_set, verify_set

    _, model_file = tiny_twin
    codec = Codec(model_file)
    folder = tmp_path / "golden"
    make_set(codec, {"a": kodak_image(9, (0, 0, 128, 192))}, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert Y_HAT_TWIN in manifest["images"][0]["arrays"]
    assert all(report.ok for report in verify_set(codec, folder))

    twin = codec.net.y_hat_twin

    def off_by_one(x, impl="blas", assumptions=None):
        out = twin(x, impl=impl).copy()
        out[0, 0, 0] = out[0, 0, 0] + 1 if out[0, 0, 0] < 127 else 126
        return out

    codec.net.y_hat_twin = _Wrapped(twin, off_by_one)
    try:
        reports = verify_set(codec, folder)
    finally:
        codec.net.y_hat_twin = twin
    assert not reports[0].ok
    assert reports[0].first_divergence.startswith(f"{Y_HAT_TWIN} (from its committed input)")


class _Wrapped:
    """A layer evaluated by another function (same name and geometry): a platform's faulty layer."""

    def __init__(self, layer: QuantConv, evaluate) -> None:
        self._layer, self._evaluate = layer, evaluate

    def __getattr__(self, name):
        return getattr(self._layer, name)

    def __call__(self, x, impl="blas", assumptions=None):
        return self._evaluate(x, impl)


def test_int8_cost_tool_on_a_tiny_float_checkpoint(tmp_path, train_dir, capsys) -> None:
    """`python -m fxlic.qat.int8_cost`: a float checkpoint calibrated both ways; `none` is the float model for
    either rounding, and the FXP-Q6 rounding changes only rows that quantize g_a.3."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from dataclasses import asdict

    from fxlic.imageio import encode_png, read_image
    from fxlic.qat.int8_cost import main
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig

    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu"))
    torch.save({"config": asdict(model.config), "model": model.state_dict()}, tmp_path / "float.pt")
    images = tmp_path / "images"
    images.mkdir()
    source = sorted(train_dir.glob("*.png"))[0]
    (images / "a.png").write_bytes(encode_png(read_image(source)[:96, :128]))
    assert main([str(tmp_path / "float.pt"), "--quality", "4", "--images", str(images), "--train", str(train_dir),
                 "--calib-batches", "1", "--batch", "2", "--groups", "none,all,g_s"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    table = {(r[0], r[1]): [float(v) for v in r[2:6]] for r in rows}  # bpp, z bpp, PSNR, objective
    assert set(table) == {(lr, g) for lr in ("requantize", "accumulator") for g in ("none", "all", "g_s")}
    assert table["requantize", "none"] == table["accumulator", "none"]
    assert table["requantize", "g_s"] == table["accumulator", "g_s"]
    assert all(0 < z_bpp < bpp for bpp, z_bpp, _, _ in table.values())
    assert table["accumulator", "g_s"][:2] == table["accumulator", "none"][:2]  # g_s changes no rate


def test_int8_cost_quantizes_weights_or_outputs_alone(train_dir) -> None:
    """`g:w` fake-quantizes only the weights and biases of group g (its outputs stay float), `g:a` only its
    outputs; every other layer stays float, and `all` is the PTQ model's own forward."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.data import CropSampler
    from fxlic.qat.fakequant import fake_quant_activation, fake_quant_param
    from fxlic.qat.int8_cost import select
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input
    from fxlic.qat.train import calibrate

    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator"))
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=1, batch_size=2)
    layer = model.g_s[1]
    x = fake_quant_activation(torch.rand(1, 8, 6, 6), layer.fix_in)
    exact = torch.relu(torch.nn.functional.conv_transpose2d(x, layer.conv.weight, layer.conv.bias, 2, 1))
    with_int_weights = torch.relu(torch.nn.functional.conv_transpose2d(
        x, fake_quant_param(layer.conv.weight, layer.fix_w), fake_quant_param(layer.conv.bias, layer.fix_b), 2, 1))
    with torch.no_grad():
        assert select(model, "g_s:w") is False
        assert torch.equal(layer(x), with_int_weights)
        assert not bool(model.g_a[0].quantized) and bool(model.g_s[0].quantized)
        assert select(model, "g_s:a") is False
        assert torch.equal(layer(x), fake_quant_activation(exact, layer.fix_out))
        assert select(model, "all") is True
        assert torch.equal(layer(x), fake_quant_activation(with_int_weights, layer.fix_out))
        assert select(model, "all:w") is False and select(model, "all:a") is True
    with pytest.raises(ValueError, match=":w or :a"):
        select(model, "g_s:x")
    assert pixels_to_input is not None


def test_hyper_latents_rounded_once_export_exactly(train_dir, kodak_image, tmp_path) -> None:
    """``round_hyper_latents_once``: h_a's last conv is calibrated to output position 0, so ẑ is one DPU_ROUND
    of its accumulator (the fix op z → ẑ is the identity, FXP-Q5 with f_in = f_out); the exported model
    decodes to the QAT forward's integer codes, ẑ included."""
    from collections import defaultdict

    from fxlic.codec import Codec
    from fxlic.qat.data import CropSampler
    from fxlic.qat.export import export_model
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig
    from fxlic.qat.train import calibrate
    from fxlic.qat.verify import compare_image
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator"))
    model.round_hyper_latents_once()
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    assert model.h_a[-1].fix_out == 0
    path = tmp_path / "z0.npz"
    export_model(model, "tiny", 1).save(path)
    model_file = load_model_file(path)
    assert model_file.layers["h_a.2"].fix_out == 0
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(model, Codec(model_file), kodak_image(23, (0, 0, 100, 150)), stats)
    assert {"h_a.2", "z_hat", "decoded z_hat"} <= set(stats)
    assert not {name: row for name, row in stats.items() if row["mismatches"]}
