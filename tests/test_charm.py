"""ChARM (Minnen & Singh 2020, docs/charm.md): the integer slice-by-slice reference equals the QAT forward,
encode → decode is the identity on the latents, the container carries one stream per slice."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.entropy.bitstream import unpack  # noqa: E402
from fxlic.families import open_codec  # noqa: E402
from fxlic.qat.charm import LRP_FIX, CharmConfig, CharmHyperprior  # noqa: E402
from fxlic.qat.data import CropSampler  # noqa: E402
from fxlic.qat.export import model_from_model_file  # noqa: E402
from fxlic.qat.train import main as train_main  # noqa: E402
from fxlic.qat.verify import compare_image  # noqa: E402
from fxlic.reference.modelfile import load_model_file  # noqa: E402

# the tiny model (fixture ``tiny_charm`` in conftest.py): N 8, M 12, 3 slices, context 8/6


def test_calibration_forces_concat_and_lrp_fix_positions(tiny_charm) -> None:
    """docs/charm.md CH-2: "each support head's output position is forced to f_c = min(its max-abs position,
    ŷ's max-abs position)" and every stack reads its support's f_c; CH-3: lrp.i's last conv "output fix
    position is forced to 8"; CH-4: one scale_lut row per slice; CH-8: g_s.0 takes fix f_ỹ; CH-9:
    architecture charm, format version 2 (this fixture has no ŷ twin; with one it is 3)."""
    model, model_file = tiny_charm
    slices = model.config.slices
    layers = model_file.layers
    f_cm, f_cs = layers["h_s_means"].fix_out, layers["h_s_scales"].fix_out
    assert f_cm >= 0 and f_cs >= 0
    for i in range(slices):
        assert layers[f"lrp.{i}.2"].fix_out == LRP_FIX
        assert layers[f"cc_means.{i}.0"].fix_in == layers[f"lrp.{i}.0"].fix_in == f_cm
        assert layers[f"cc_scales.{i}.0"].fix_in == f_cs
    assert model_file.scale_lut.shape == (slices, 256)
    assert model_file.meta["architecture"] == "charm"
    assert layers["g_s.0"].fix_in == model_file.meta["charm"]["fix_y_tilde"] == int(model.fix_y_tilde)
    assert 0 <= int(model.fix_y_tilde) <= LRP_FIX and model_file.meta["format_version"] == 2


def test_integer_charm_equals_qat_forward(tiny_charm, kodak_image) -> None:
    """Layer equality, integer codes, on two Kodak crops: every slice stack, ỹ and g_s on the decoder side."""
    model, model_file = tiny_charm
    codec = open_codec(model_file)
    stats: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    for index, crop in ((23, (0, 0, 100, 150)), (5, (200, 300, 64, 64))):
        compare_image(model, codec, kodak_image(index, crop), stats)
    bad = {name: row for name, row in stats.items() if row["mismatches"]}
    assert not bad, f"layers differing from the QAT forward: {bad}"
    for name in ("g_a.3", "h_s_means", "cc_means.0.2", "decoded cc_scales.2.2", "decoded lrp.2.2",
                 "decoded y_tilde", "decoded g_s.3", "decoded y_hat"):
        assert name in stats, name
    # the model rebuilt from the file is the same QAT forward
    rebuilt = model_from_model_file(model_file)
    stats2: dict = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(rebuilt, codec, kodak_image(23, (0, 0, 100, 150)), stats2)
    assert not any(row["mismatches"] for row in stats2.values())


def test_encode_decode_identity(tiny_charm, kodak_image) -> None:
    """Decoding reproduces the encoder's ŷ exactly; CH-6: "1 + S rANS streams: ẑ, then ŷ_0, …, ŷ_{S−1}"."""
    model, model_file = tiny_charm
    codec = open_codec(model_file)
    pixels = kodak_image(3, (10, 20, 70, 130))
    result = codec.encode(pixels, keep_trace=True)
    _, streams = unpack(result.bitstream)
    assert len(streams) == 1 + model.config.slices
    trace: dict = {}
    decoded = codec.decode(result.bitstream, trace=trace)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(trace["y_hat"], result.y_hat)
    np.testing.assert_array_equal(trace["z_hat"], result.z_hat)
    assert np.array_equal(codec.decode(result.bitstream), decoded)  # deterministic


def test_train_charm_qat_export(train_dir, tmp_path) -> None:
    """`fxlic train --arch charm` float → QAT → export → a charm model file the codec opens."""
    tiny = ["--arch", "charm", "--slices", "2", "--N", "8", "--M", "12", "--crop", "64", "--batch", "2",
            "--threads", "1", "--log-every", "1", "--ckpt-every", "2"]
    run, qat = tmp_path / "float", tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *tiny]) == 0
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                       str(run / "checkpoint.pt"), "--steps", "1", "--calib-batches", "1", *tiny]) == 0
    from fxlic.qat.export import main as export_main

    assert export_main([str(qat / "checkpoint.pt"), "-o", str(tmp_path / "c.npz"), "--quality", "1"]) == 0
    model_file = load_model_file(tmp_path / "c.npz")
    assert model_file.name == "charm" and model_file.meta["charm"]["slices"] == 2
    codec = open_codec(model_file)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert codec.decode(codec.encode(pixels).bitstream).shape == (64, 64, 3)


def test_cli_with_a_charm_model(tiny_charm, kodak_image, tmp_path, monkeypatch, capsys) -> None:
    """`fxlic models --json` lists a shipped charm model with its qualities and architecture; `encode --model
    charm`, `info` (1 + S streams, architecture) and `decode` (model found from the stream's header) work."""
    import json
    import shutil

    from fxlic import models
    from fxlic.cli import main as cli_main
    from fxlic.imageio import encode_png, read_image

    _, model_file = tiny_charm
    shipped = tmp_path / "models"
    shipped.mkdir()
    shutil.copy(model_file.path, shipped / "charm-q2.npz")
    (shipped / "index.json").write_text(json.dumps({"default": "charm", "default_quality": {"charm": 2}}))
    monkeypatch.setattr(models, "MODELS_DIR", shipped)
    monkeypatch.setattr(models, "_LOADED", {})

    assert cli_main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["default"] == "charm"
    assert listing["models"][0]["architecture"] == "charm" and listing["models"][0]["qualities"] == [2]

    pixels = kodak_image(7, (0, 0, 64, 96))
    (tmp_path / "in.png").write_bytes(encode_png(pixels))
    assert cli_main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "a.fxl"), "--model", "charm",
                     "--quality", "2"]) == 0
    capsys.readouterr()
    assert cli_main(["info", str(tmp_path / "a.fxl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "charm" and list(info["streams"]) == ["z", "y0", "y1", "y2"]
    assert cli_main(["decode", str(tmp_path / "a.fxl"), "-o", str(tmp_path / "out.png")]) == 0
    expected = open_codec(model_file).decode((tmp_path / "a.fxl").read_bytes())
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), expected)


def test_warm_start_from_meanscale_is_the_meanscale_model_at_step_zero(train_dir):
    """warm_start_from_meanscale: with no noise, ChARM's slice stacks are the identity on their support
    channels and LRP is zero, so σ, μ, the likelihoods and x̂ are the mean-scale model's (docs/charm.md)."""
    from fxlic.qat.charm import warm_start_from_meanscale
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, pixels_to_input

    torch.manual_seed(1)
    config = CharmConfig(N=8, M=12, slices=3, context_hidden=(8, 8))  # ≥ 2K hidden units carry ±x
    meanscale = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu")).eval()
    charm = CharmHyperprior(config).eval()
    loaded = warm_start_from_meanscale(charm, meanscale.state_dict(), noise=0.0)
    assert not [k for k in meanscale.state_dict() if k not in loaded]  # every mean-scale tensor is reused
    x = pixels_to_input(CropSampler(train_dir, 64, seed=3).batch(2))
    with torch.no_grad():
        a, b = meanscale(x, noisy_rate=False), charm(x, noisy_rate=False)
    torch.testing.assert_close(b["y_likelihood"], a["y_likelihood"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(b["z_likelihood"], a["z_likelihood"])
    torch.testing.assert_close(b["x_hat"], a["x_hat"], rtol=1e-5, atol=1e-6)
    # with the default noise the unused units are alive (non-zero weights) and the start stays close
    charm_noisy = CharmHyperprior(config).eval()
    warm_start_from_meanscale(charm_noisy, meanscale.state_dict())
    assert all(float(stack[1].conv.weight.detach().abs().min()) > 0 for stack in charm_noisy.cc_means)


def test_decoder_refuses_a_stream_of_another_architecture(tiny_charm, codec, kodak_image, tmp_path, capsys) -> None:
    """docs/bitstream.md BS-11: a charm stream "names its architecture explicitly: version 3, architecture id
    1"; "a decoder refuses a stream whose architecture is not the one its model file codes", with one line,
    before it looks at the weights (BS-4) — in both directions, and from the command line."""
    from fxlic import models
    from fxlic.cli import main as cli_main
    from fxlic.codec import DecodeError

    _, model_file = tiny_charm
    charm = open_codec(model_file)
    pixels = kodak_image(3, (0, 0, 64, 64))
    charm_stream = charm.encode(pixels).bitstream
    assert charm_stream[4] == 3 and unpack(charm_stream)[0].architecture == "charm"
    meanscale_stream = codec.encode(pixels).bitstream
    assert meanscale_stream[4] == 1 and unpack(meanscale_stream)[0].architecture == "hyperprior"
    with pytest.raises(DecodeError, match=r"^bitstream is a charm stream \(format version 3, model 'charm' q2\), "
                                          r"but model 'meanscale' q4 is meanscale, which codes hyperprior streams$"):
        codec.decode(charm_stream)
    with pytest.raises(DecodeError, match=r"^bitstream is a hyperprior stream \(format version 1, .* is charm, which"):
        charm.decode(meanscale_stream)
    (tmp_path / "c.fxl").write_bytes(charm_stream)
    assert cli_main(["decode", str(tmp_path / "c.fxl"), "-o", str(tmp_path / "x.png"),
                     "--model-file", str(models.resolve())]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fxlic: error: ") and err.count("\n") == 1 and "is a charm stream" in err
    assert not (tmp_path / "x.png").exists()
