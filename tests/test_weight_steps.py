"""Weight fix positions chosen by the RD objective (fxlic.qat.weight_steps, docs/training.md §2).

docs/fixed-point.md FXP-P1: "shift_cut = f_w + f_in − f_out ∈ [0, 16]; shift_bias = f_w + f_in − f_b ∈
[min(0, shift_cut − 16), 16]". The search may only move f_w to positions that satisfy it as they stand, so
that the export adjustment (FXP-P2, FXP-P3) moves nothing and the exported integer model still computes
what the QAT forward computes.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.codec import Codec  # noqa: E402
from fxlic.fxp.fixpos import shifts_in_dpu_range  # noqa: E402
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.export import export_model  # noqa: E402
from fxlic.qat.models import MeanScaleHyperprior, ModelConfig  # noqa: E402
from fxlic.qat.train import calibrate, quantized_objective  # noqa: E402
from fxlic.qat.verify import compare_image  # noqa: E402
from fxlic.qat.weight_steps import choose_weight_fix_positions, legal_weight_fix  # noqa: E402


def _calibrated(train_dir) -> MeanScaleHyperprior:
    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu", latent_rounding="accumulator"))
    calibrate(model, CropSampler(train_dir, 64, seed=0), batches=2, batch_size=2)
    model.entropy_bottleneck.update(force=True)
    return model


def test_the_search_takes_the_best_legal_offset_and_moves_nothing_else(train_dir) -> None:
    """A synthetic objective that prefers +1 everywhere and +2 for g_s.1: every layer where the offset is legal
    gets it, f_in, f_b and f_out stay as calibrated, and no illegal position is ever evaluated."""
    model = _calibrated(train_dir)
    calibrated = {name: layer.fix.clone() for name, layer in model.named_qconvs()}
    layers = dict(model.named_qconvs())
    top = min(12, 16 + layers["g_s.2"].fix_out - layers["g_s.2"].fix_in)  # the cap or shift_cut 16: +1 illegal
    layers["g_s.2"].fix[1] = top
    assert legal_weight_fix(layers["g_s.2"], top, None) and not legal_weight_fix(layers["g_s.2"], top + 1, None)
    calibrated["g_s.2"] = layers["g_s.2"].fix.clone()
    preferred = {name: 1 for name in layers} | {"g_s.1": 2}
    evaluated: list[tuple[str, int]] = []

    def objective(candidate: MeanScaleHyperprior) -> float:
        cost = 0.0
        for name, layer in candidate.named_qconvs():
            offset = layer.fix_w - int(calibrated[name][1])
            twin = 0 if candidate.twin_fix_out(layer) is not None else None
            assert legal_weight_fix(layer, layer.fix_w, twin), f"{name}: illegal f_w {layer.fix_w} evaluated"
            evaluated.append((name, offset))
            cost += (offset - preferred[name]) ** 2
        return cost

    chosen = choose_weight_fix_positions(model, objective)
    assert chosen["g_s.1"] == 2 and chosen["g_s.2"] == 0
    for name, layer in model.named_qconvs():
        assert layer.fix_w == int(calibrated[name][1]) + chosen[name]
        assert [layer.fix_in, layer.fix_b, layer.fix_out] == [int(calibrated[name][i]) for i in (0, 2, 3)]
        if name != "g_s.2":
            legal = legal_weight_fix(layer, int(calibrated[name][1]) + 1,
                                     0 if model.twin_fix_out(layer) is not None else None)
            assert chosen[name] == (1 if legal else 0) or name == "g_s.1"
    assert evaluated


def test_legal_means_the_dpu_shift_ranges_for_the_layer_and_its_twin(train_dir) -> None:
    """FXP-P1 for the layer and its ŷ twin (output position 0), and FXP-Q4's cap of 12."""
    model = _calibrated(train_dir)
    last = model.g_a[-1]
    for fix_w in range(-4, 24):
        expected = fix_w <= 12 and all(
            shifts_in_dpu_range(fix_w + last.fix_in - f_out, fix_w + last.fix_in - last.fix_b)
            for f_out in (last.fix_out, 0))
        assert legal_weight_fix(last, fix_w, 0) == expected
    assert not legal_weight_fix(last, 17 + last.fix_out - last.fix_in, None)  # shift_cut 17
    assert not legal_weight_fix(last, 13, None)  # finer than the quantizer's cap (FXP-Q4)


def test_the_search_is_refused_on_a_float_model() -> None:
    model = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu"))
    with pytest.raises(ValueError, match="calibrated"):
        choose_weight_fix_positions(model, lambda m: 0.0)


def test_searched_model_never_loses_on_its_crops_and_exports_exactly(train_dir, kodak_image, tmp_path) -> None:
    """With the RD objective on training crops: offset 0 is always a candidate, so the objective on those crops
    cannot grow; the exported model decodes to the QAT forward's integer codes, layer by layer."""
    model = _calibrated(train_dir)
    objective = quantized_objective(train_dir, 64, seed=0, batch_size=2, lmbda=0.0483, eval_batches=2)
    before = objective(model)
    choose_weight_fix_positions(model, objective)
    assert objective(model) <= before
    path = tmp_path / "searched.npz"
    export_model(model, "tiny", 1).save(path)
    from fxlic.reference.modelfile import load_model_file

    model_file = load_model_file(path)
    exported = model_file.layers
    for name, layer in model.named_qconvs():  # the export adjustment moved nothing
        assert exported[name].fix_w == layer.fix_w and exported[name].fix_out == layer.fix_out
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(model, Codec(model_file), kodak_image(23, (0, 0, 100, 150)), stats)
    assert stats and not {name: row for name, row in stats.items() if row["mismatches"]}


def test_train_cli_searches_after_calibration_and_keeps_the_positions(train_dir, tmp_path) -> None:
    """``fxlic train --phase qat --search-weight-steps``: the chosen offsets are written next to the fix
    positions, and the positions QAT trained with (the checkpoint's) are the ones written."""
    import json

    from fxlic.qat.train import main as train_main

    tiny = ["--N", "8", "--M", "12", "--crop", "64", "--batch", "2", "--threads", "1", "--calib-batches", "2"]
    run = tmp_path / "float"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *tiny]) == 0
    qat = tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                       str(run / "checkpoint.pt"), "--steps", "1", "--search-weight-steps", *tiny]) == 0
    offsets = json.loads((qat / "weight_step_offsets.json").read_text())
    fixes = json.loads((qat / "fix_positions.json").read_text())
    assert set(offsets) == set(fixes) and set(offsets.values()) <= {0, 1, 2}
    state = torch.load(qat / "checkpoint.pt", weights_only=False)["model"]
    for name, fix in fixes.items():
        assert state[f"{name}.fix"].tolist() == fix


def test_activation_search_keeps_consumers_in_step_and_exports_exactly(train_dir, kodak_image, tmp_path) -> None:
    """``fxlic.qat.activation_steps``: a hidden activation's f_out moves with its consumers' f_in, only to
    positions legal as they stand (FXP-P1), never for the image, ẑ or the entropy parameters; the objective on
    the search's crops cannot grow (offset 0 is a candidate), and the export moves nothing."""
    from fxlic.qat.activation_steps import choose_activation_fix_positions

    model = _calibrated(train_dir)
    before_fixes = model.fix_positions()
    objective = quantized_objective(train_dir, 64, seed=0, batch_size=2, lmbda=0.0483, eval_batches=2)
    before = objective(model)
    offsets = choose_activation_fix_positions(model, objective, offsets=(-1, 0, 1, 2))
    assert objective(model) <= before
    consumers = model.activation_consumers()
    assert set(offsets) == set(consumers) and not {"g_s.3", "h_a.2", "h_s_scales", "h_s_means"} & set(consumers)
    layers = dict(model.named_qconvs())
    for name, readers in consumers.items():
        assert layers[name].fix_out == before_fixes[name][3] + offsets[name]
        assert all(layers[r].fix_in == layers[name].fix_out for r in readers)
    for name, layer in layers.items():  # the weights' positions and every non-hidden output stay
        assert layer.fix_w == before_fixes[name][1]
        if name not in consumers:
            assert layer.fix_out == before_fixes[name][3]
        assert legal_weight_fix(layer, layer.fix_w, 0 if name == "g_a.3" else None)
    path = tmp_path / "searched.npz"
    export_model(model, "tiny", 1).save(path)
    from fxlic.reference.modelfile import load_model_file

    model_file = load_model_file(path)
    for name, layer in model.named_qconvs():
        assert model_file.layers[name].fix_out == layer.fix_out and model_file.layers[name].fix_w == layer.fix_w
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(model, Codec(model_file), kodak_image(23, (0, 0, 100, 150)), stats)
    assert stats and not {name: row for name, row in stats.items() if row["mismatches"]}
