"""Brevitas both ways (fxlic.qat.brevitas_dpu, docs/brevitas.md): DPU quantizers, import with layer equality, the
refusal of every non-DPU-legal setting (naming the layer), and fxlic → Brevitas → fxlic with the same content hash."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the Brevitas route is torch-side (the [qat] extra)")
pytest.importorskip("brevitas", reason="Brevitas is the optional [brevitas] extra (in [dev])")

with warnings.catch_warnings():  # Brevitas 0.13 scripts its ops with the deprecated torch.jit.script
    warnings.simplefilter("ignore", FutureWarning)
    import brevitas.nn as qnn
import torch  # noqa: E402
from brevitas.core.function_wrapper import DPURoundSte, RoundSte  # noqa: E402
from brevitas.function.ops import dpu_round  # noqa: E402
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint  # noqa: E402
from brevitas.quant.scaled_int import Int8Bias, Int8WeightPerTensorFloat  # noqa: E402

from fxlic.fxp.rounding import round_half_away, round_half_up  # noqa: E402
from fxlic.qat.brevitas_dpu import (  # noqa: E402
    BrevitasMeanScale,
    DpuActQuant,
    DpuBiasQuant,
    DpuLegalityError,
    DpuRoundHalfUp,
    DpuWeightQuant,
    StdRoundHalfAway,
    brevitas_from_model_file,
    brevitas_to_model_file,
    calibrated_brevitas_model,
    check_dpu_legal,
    fixed_act_quant,
    layer_fixes,
    load_brevitas_checkpoint,
    main,
    save_brevitas_checkpoint,
    threshold,
    verify_brevitas,
)
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input  # noqa: E402
from fxlic.qat.train import rd_loss  # noqa: E402
from fxlic.reference.modelfile import load_model_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHIPPED = REPO / "models" / "meanscale-q4.npz"
KODAK_CROP = FIXTURES / "kodak" / "kodim23_100_200.png"
SMALL = ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator")


@pytest.fixture(scope="module")
def small_model() -> BrevitasMeanScale:
    """A small Brevitas mean-scale model: calibrated from a random float model on training-photo crops, then three
    Brevitas QAT steps (positions learnable)."""
    torch.manual_seed(0)
    sampler = CropSampler(FIXTURES / "train", 64, seed=0)
    model = calibrated_brevitas_model(MeanScaleHyperprior(SMALL), [sampler.batch(2) for _ in range(2)])
    model.train()
    main_params = [p for n, p in model.named_parameters() if not n.startswith("entropy_bottleneck")]
    optimizer = torch.optim.Adam(main_params, lr=1e-4)
    for _ in range(3):
        pixels = sampler.batch(2)
        loss = rd_loss(model(pixels_to_input(pixels)), pixels, 0.013)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


# ---- rounding ---------------------------------------------------------------------------------------------------
def test_rounding_modules_are_fxp_rounding() -> None:
    """DpuRoundHalfUp is FXP-R1 and StdRoundHalfAway FXP-R2, on ties and random values, in float32 and float64."""
    rng = np.random.default_rng(1)
    values = np.concatenate([np.arange(-8, 8) + 0.5, rng.normal(0, 40, 2000), [0.5 - 2.0**-30, -0.5 + 2.0**-30]])
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor(values, dtype=dtype)
        want_up = round_half_up(x.double().numpy())
        want_away = round_half_away(x.double().numpy())
        assert np.array_equal(DpuRoundHalfUp()(x).double().numpy(), want_up)
        assert np.array_equal(StdRoundHalfAway()(x).double().numpy(), want_away)


def test_brevitas_dpu_round_is_not_the_dpus() -> None:
    """Brevitas's dpu_round rounds positive ties to even; the DPU (FXP-R1, the simulator) rounds them up."""
    ties = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert dpu_round(ties).tolist() == [-2.0, -1.0, 0.0, 0.0, 2.0, 2.0]
    assert round_half_up(ties.double().numpy()).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


# ---- fxlic → Brevitas → fxlic ----------------------------------------------------------------------------------------
def test_round_trip_of_the_shipped_model_keeps_the_content_hash(tmp_path: Path) -> None:
    model_file = load_model_file(SHIPPED)
    brevitas_model = brevitas_from_model_file(model_file)
    assert check_dpu_legal(brevitas_model) == []
    assert brevitas_to_model_file(brevitas_model).content_hash() == model_file.content_hash()
    # the same through a saved Brevitas checkpoint
    save_brevitas_checkpoint(brevitas_model, tmp_path / "b.pt")
    reloaded, _ = load_brevitas_checkpoint(tmp_path / "b.pt")
    again = brevitas_to_model_file(reloaded)
    again.save(tmp_path / "again.npz")
    assert load_model_file(tmp_path / "again.npz").content_hash() == model_file.content_hash()


def test_brevitas_forward_of_the_shipped_model_equals_the_integer_reference() -> None:
    model_file = load_model_file(SHIPPED)
    stats = verify_brevitas(brevitas_from_model_file(model_file), model_file, [KODAK_CROP])
    assert {"g_a.0", "g_a_y_hat", "h_a.2", "decoded h_s_means", "decoded g_s.3", "y_hat", "z_hat"} <= set(stats)
    assert sum(row["mismatches"] for row in stats.values()) == 0
    assert sum(row["elements"] for row in stats.values()) > 1_000_000


def test_z_tables_follow_the_factorized_prior_once_it_trains() -> None:
    model_file = load_model_file(SHIPPED)
    brevitas_model = brevitas_from_model_file(model_file)
    with torch.no_grad():
        brevitas_model.entropy_bottleneck.quantiles.add_(0.25)  # as an aux step would
    rebuilt = brevitas_to_model_file(brevitas_model)
    assert rebuilt.content_hash() != model_file.content_hash()
    assert brevitas_to_model_file(brevitas_model, z_tables="stored").content_hash() == model_file.content_hash()


# ---- a Brevitas-trained model, imported ---------------------------------------------------------------------------
def test_trained_brevitas_model_imports_with_layer_equality(small_model: BrevitasMeanScale, tmp_path: Path) -> None:
    assert check_dpu_legal(small_model) == []
    model_file = brevitas_to_model_file(small_model, "brevitas-small", 4, {"steps": 3})
    model_file.save(tmp_path / "small.npz")
    loaded = load_model_file(tmp_path / "small.npz")
    assert loaded.meta["config"]["N"] == 8 and loaded.meta["format_version"] == 3
    for name, layer in small_model.named_layers():
        assert [loaded.layers[name].fix_in, loaded.layers[name].fix_w, loaded.layers[name].fix_b,
                loaded.layers[name].fix_out] == list(layer_fixes(small_model, name))
        want = layer.conv.quant_weight().int().numpy()
        assert np.array_equal(loaded.layers[name].weight, want)
    stats = verify_brevitas(small_model, loaded, [KODAK_CROP, FIXTURES / "kodak" / "kodim05_0_0.png"])
    assert sum(row["mismatches"] for row in stats.values()) == 0
    assert small_model.g_a[0].conv.weight.dtype == torch.float32  # verify works on a float64 copy


# ---- refusals --------------------------------------------------------------------------------------------------------
def _replace_conv(model: BrevitasMeanScale, name: str, **overrides) -> None:
    """Rebuild layer ``name``'s conv with other quantizers / geometry (same weights where shapes allow)."""
    layer = dict(model.named_layers())[name]
    old = layer.conv
    f_w = -int(np.log2(float(old.quant_weight().scale.detach())))
    f_b = -int(np.log2(float(old.bias_quant(old.bias).scale.detach())))
    kwargs = dict(kernel_size=old.kernel_size, stride=old.stride, padding=old.padding, bias=True,
                  weight_quant=DpuWeightQuant.let(scaling_init=threshold(f_w)),
                  bias_quant=DpuBiasQuant.let(scaling_init=threshold(f_b)), return_quant_tensor=False)
    kwargs.update(overrides)
    cls = qnn.QuantConvTranspose2d if layer.transposed else qnn.QuantConv2d
    conv = cls(old.in_channels, old.out_channels, **kwargs)
    with torch.no_grad():
        if conv.weight.shape == old.weight.shape:
            conv.weight.copy_(old.weight)
        conv.bias.copy_(old.bias)
    layer.conv = conv


def _act_fix(model: BrevitasMeanScale, name: str) -> int:
    return layer_fixes(model, name)[3]


def _set_act(model: BrevitasMeanScale, name: str, quant=None, cls=None, fix: int | None = None) -> None:
    layer = dict(model.named_layers())[name]
    fix = _act_fix(model, name) if fix is None else fix
    quant = DpuActQuant if quant is None else quant  # (an injector class is falsy)
    layer.act = (cls or type(layer.act))(act_quant=quant.let(scaling_init=threshold(fix)), return_quant_tensor=False)


def _narrow(m):
    _replace_conv(m, "g_a.1", weight_quant=DpuWeightQuant.let(narrow_range=True, scaling_init=1.0))


def _per_channel(m):
    _replace_conv(m, "h_a.1", weight_quant=Int8WeightPerChannelFixedPoint.let(
        narrow_range=False, float_to_int_impl=StdRoundHalfAway))


def _float_scale(m):
    _replace_conv(m, "g_s.1", weight_quant=Int8WeightPerTensorFloat.let(
        narrow_range=False, float_to_int_impl=StdRoundHalfAway))


def _half_even_act(m):
    _set_act(m, "h_s.0", DpuActQuant.let(float_to_int_impl=RoundSte))


def _brevitas_dpu_round_act(m):
    _set_act(m, "g_a.2", DpuActQuant.let(float_to_int_impl=DPURoundSte))


def _half_even_weight(m):
    _replace_conv(m, "g_a.0", weight_quant=DpuWeightQuant.let(float_to_int_impl=RoundSte, scaling_init=1.0))


def _unsigned_act(m):
    _set_act(m, "g_s.0", DpuActQuant.let(signed=False))


def _four_bit_weights(m):
    _replace_conv(m, "h_s_scales", weight_quant=DpuWeightQuant.let(bit_width=4, scaling_init=1.0))


def _sixteen_bit_bias(m):
    _replace_conv(m, "h_s_means", bias_quant=DpuBiasQuant.let(bit_width=16, scaling_init=1.0))


def _bias_from_input_scale(m):
    _replace_conv(m, "g_a.3", bias_quant=Int8Bias)


def _sigmoid(m):
    _set_act(m, "g_s.2", cls=qnn.QuantSigmoid)


def _output_padding(m):
    _replace_conv(m, "g_s.2", output_padding=1)


def _conv_output_quantized(m):
    _replace_conv(m, "h_a.0", output_quant=DpuActQuant)


def _shift_cut_out_of_range(m):
    f_in, f_w, _, _ = layer_fixes(m, "h_s.1")
    _set_act(m, "h_s.1", fix=f_w + f_in + 1)  # shift_cut = −1


def _shift_bias_not_encodable(m):
    f_in, f_w, _, f_out = layer_fixes(m, "g_s.1")
    assert 0 <= f_w + f_in - f_out <= 14
    _replace_conv(m, "g_s.1", bias_quant=DpuBiasQuant.let(scaling_init=threshold(f_w + f_in + 2)))  # shift_bias −2


def _input_position(m):
    m.input_quant = qnn.QuantIdentity(act_quant=fixed_act_quant(7), return_quant_tensor=False)


REFUSALS = {
    "narrow range": (_narrow, "g_a.1", "narrow range"),
    "per-channel scales": (_per_channel, "h_a.1", "per-channel"),
    "scale not a power of two": (_float_scale, "g_s.1", "not a power of two"),
    "round-half-even activations": (_half_even_act, "h_s.0", "half to even"),
    "Brevitas DPURoundSte activations": (_brevitas_dpu_round_act, "g_a.2", "DPURoundSte"),
    "round-half-even weights": (_half_even_weight, "g_a.0", "half to even"),
    "unsigned activations": (_unsigned_act, "g_s.0", "unsigned"),
    "4-bit weights": (_four_bit_weights, "h_s_scales", "bit width 4"),
    "16-bit bias": (_sixteen_bit_bias, "h_s_means", "bit width 16"),
    "bias scale from the input": (_bias_from_input_scale, "g_a.3", "own fix position"),
    "an op the DPU lacks (sigmoid)": (_sigmoid, "g_s.2", "QuantSigmoid"),
    "output padding": (_output_padding, "g_s.2", "output_padding"),
    "conv output quantized before its activation": (_conv_output_quantized, "h_a.0", "before the activation"),
    "shift_cut outside [0, 16]": (_shift_cut_out_of_range, "h_s.1", "shift_cut = f_w + f_in − f_out = -1"),
    "shift_bias without a DPUCZDX8G encoding": (_shift_bias_not_encodable, "g_s.1", "FXP-P5"),
    "input not at fix 8": (_input_position, "input", "fixes it at 8"),
}


@pytest.mark.parametrize("setting", list(REFUSALS))
def test_non_dpu_legal_setting_is_refused_naming_the_layer(small_model: BrevitasMeanScale, setting: str) -> None:
    change, layer, words = REFUSALS[setting]
    model = copy.deepcopy(small_model)
    change(model)
    found = check_dpu_legal(model)
    assert found, setting
    assert found[0].layer == layer, found
    assert words in found[0].reason, found[0].reason
    with pytest.raises(DpuLegalityError) as caught:
        brevitas_to_model_file(model)
    assert caught.value.layer == layer
    assert str(caught.value).startswith(f"{layer}: ")


# ---- command line ----------------------------------------------------------------------------------------------------
def test_cli_from_check_import_verify(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["from", str(SHIPPED), "-o", str(tmp_path / "b.pt")]) == 0
    assert main(["check", str(tmp_path / "b.pt")]) == 0
    assert "DPU-legal" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "b.pt"), "-o", str(tmp_path / "m.npz"), "--verify", str(KODAK_CROP)]) == 0
    out = capsys.readouterr().out
    assert f"hash {load_model_file(SHIPPED).content_hash().hex()[:16]}" in out
    assert out.strip().endswith("0 mismatches")
