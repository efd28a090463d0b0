"""Lite decoders (docs/model-file.md "Decoder files"): one stream, several decoders.

A decoder file holds another g_s for the streams of one model file. These tests build decoder files from the
shipped model's own int8 g_s (no torch): a copy, which must decode bit for bit like the full decoder, and a
channel-sliced one, which is a valid, different decoder. The torch side (pruning, least squares, export and
layer equality) is at the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fxlic import models
from fxlic.cli import main as cli_main
from fxlic.families import open_codec
from fxlic.imageio import read_image
from fxlic.reference.modelfile import (
    DECODER_FORMAT,
    DECODER_FORMAT_VERSION,
    DecoderFile,
    ModelFileError,
    load_decoder_file,
    load_model_file,
    with_decoder,
)

GOLDEN_SOURCE = Path(__file__).resolve().parents[1] / "golden" / "vectors" / "meanscale-q4"


def _source_images() -> list[np.ndarray]:
    """The bundled golden set's source crops (real photographs, small): shipped in the repository."""
    return [read_image(p) for p in sorted(GOLDEN_SOURCE.glob("*/source.png"))]


def _decoder_from(model, name: str, keep: int | None = None) -> DecoderFile:
    """A decoder file from ``model``'s own int8 g_s; ``keep``: only the first ``keep`` hidden channels."""
    layers, entries = {}, []
    chain = [f"g_s.{i}" for i in range(4)]
    for i, layer_name in enumerate(chain):
        layer = model.layers[layer_name]
        weight = layer.weight  # transposed conv: C_in × C_out × k × k
        bias = layer.bias
        if keep is not None:
            if i > 0:
                weight = weight[:keep]
            if i < 3:
                weight, bias = weight[:, :keep], bias[:keep]
        layers[layer_name] = dataclasses.replace(layer, weight=np.ascontiguousarray(weight),
                                                 bias=np.ascontiguousarray(bias))
        entry = next(e for e in model.meta["layers"] if e["name"] == layer_name)
        entries.append(dict(entry))
    meta = {"format": DECODER_FORMAT, "format_version": DECODER_FORMAT_VERSION, "name": name,
            "architecture": "lite-synthesis", "decodes": {"model": model.name, "quality": model.quality,
                                                          "hash": model.content_hash().hex()},
            "layers": entries, "training": {}}
    return DecoderFile(meta=meta, layers=layers)


@pytest.fixture(scope="module")
def parent():
    return models.load("meanscale", 4)


@pytest.fixture(scope="module")
def sliced_file(parent, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("decoders") / "meanscale-q4.slice32.npz"
    _decoder_from(parent, "slice32", keep=32).save(path)
    return path


def test_copy_of_own_synthesis_decodes_bit_for_bit(parent, tmp_path) -> None:
    """A decoder whose layers are the model's own g_s decodes every stream exactly as the full decoder, and
    the model with it attached writes the parent's streams (the stream hash is the parent's)."""
    path = tmp_path / "copy.npz"
    _decoder_from(parent, "copy").save(path)
    lite = with_decoder(parent, load_decoder_file(path))
    assert lite.stream_hash() == parent.content_hash() and lite.content_hash() != parent.content_hash()
    full_codec, lite_codec = open_codec(parent), open_codec(lite)
    for pixels in _source_images():
        stream = full_codec.encode(pixels).bitstream
        assert lite_codec.encode(pixels).bitstream == stream
        np.testing.assert_array_equal(lite_codec.decode(stream), full_codec.decode(stream))


def test_sliced_decoder_decodes_the_same_streams_differently(parent, sliced_file) -> None:
    decoder = load_decoder_file(sliced_file)
    assert decoder.widths == (32, 32, 32)
    lite = models.load("meanscale", 4, decoder_file=sliced_file)
    assert lite.decoder_name == "slice32"
    pixels = _source_images()[0]
    stream = open_codec(parent).encode(pixels).bitstream
    full, sliced = open_codec(parent).decode(stream), open_codec(lite).decode(stream)
    assert sliced.shape == full.shape and not np.array_equal(sliced, full)
    # tiles never change a pixel, for a lite decoder as for the full one (docs/tiling.md)
    np.testing.assert_array_equal(open_codec(lite, tile=64).decode(stream), open_codec(lite, tile=0).decode(stream))


def test_decoder_of_another_model_is_refused(parent, sliced_file) -> None:
    q2 = models.load("meanscale", 2)
    with pytest.raises(ModelFileError, match=r"decodes streams of model 'meanscale' q4 .* not of 'meanscale' q2"):
        with_decoder(q2, load_decoder_file(sliced_file))


def test_file_kinds_are_not_confused(parent, sliced_file) -> None:
    with pytest.raises(ModelFileError, match="a decoder file"):
        load_model_file(sliced_file)
    with pytest.raises(ModelFileError, match="not an fxlic decoder file"):
        load_decoder_file(models.resolve("meanscale", 4))


def test_inconsistent_decoder_is_refused(parent, tmp_path) -> None:
    decoder = _decoder_from(parent, "broken", keep=32)
    decoder.meta["layers"][1]["fix_in"] += 1  # g_s.1 no longer reads what g_s.0 writes
    decoder.save(tmp_path / "broken.npz")
    with pytest.raises(ModelFileError, match="g_s.1: fix_in"):
        load_decoder_file(tmp_path / "broken.npz")
    decoder = _decoder_from(parent, "newer")
    decoder.meta["format_version"] = DECODER_FORMAT_VERSION + 1
    decoder.save(tmp_path / "newer.npz")
    with pytest.raises(ModelFileError, match="newer than this fxlic"):
        load_decoder_file(tmp_path / "newer.npz")


def test_cli_decode_with_a_decoder(parent, sliced_file, tmp_path, capsys) -> None:
    source = GOLDEN_SOURCE / sorted(p.name for p in GOLDEN_SOURCE.iterdir() if p.is_dir())[0] / "source.png"
    stream = tmp_path / "a.fxl"
    assert cli_main(["encode", str(source), "-o", str(stream), "-q"]) == 0
    assert cli_main(["decode", str(stream), "-o", str(tmp_path / "full.png"), "-q"]) == 0
    assert cli_main(["decode", str(stream), "-o", str(tmp_path / "lite.png"), "--decoder-file", str(sliced_file)]) == 0
    assert "(decoder slice32)" in capsys.readouterr().out
    lite = open_codec(models.load("meanscale", 4, decoder_file=sliced_file)).decode(stream.read_bytes())
    np.testing.assert_array_equal(read_image(tmp_path / "lite.png"), lite)
    assert not np.array_equal(read_image(tmp_path / "full.png"), lite)
    # a decoder the stream's model does not have: one line naming the decoders it has
    assert cli_main(["decode", str(stream), "-o", str(tmp_path / "x.png"), "--decoder", "nope"]) == 1
    err = capsys.readouterr().err
    assert "has no decoder 'nope'; its decoders: full" in err and not (tmp_path / "x.png").exists()


def test_models_json_lists_decoders(capsys) -> None:
    assert cli_main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    for entry in listing["models"]:
        assert entry["decoders"][0] == "full"
        for quality, names in entry["decoders_by_quality"].items():
            assert names[0] == "full" and set(names) <= set(entry["decoders"])
            for name in names[1:]:  # every shipped decoder attaches to its model and names it
                model = models.load(entry["name"], int(quality), decoder=name)
                assert model.decoder_name == name


def test_golden_set_of_a_decoder(parent, sliced_file, tmp_path, capsys) -> None:
    """A golden set made with a lite decoder records it, verifies with it, and is refused by the full decoder."""
    from fxlic.golden.vectors import make_set, verify_set

    lite_codec = open_codec(models.load("meanscale", 4, decoder_file=sliced_file), tile=0)
    images = {"a": _source_images()[0]}
    manifest = make_set(lite_codec, images, tmp_path / "set")
    assert manifest["decoder"]["name"] == "slice32" and manifest["model"]["hash"] == parent.content_hash().hex()
    assert all(r.ok for r in verify_set(lite_codec, tmp_path / "set"))
    with pytest.raises(ValueError, match="decoder slice32"):
        verify_set(open_codec(parent), tmp_path / "set")


# ---- torch: the student, its initialization and its export ------------------------------------------------------
def test_least_squares_pruning_at_full_width_keeps_the_teacher() -> None:
    """Keeping every channel, the least-squares refit must reproduce the teacher's function: each refit
    layer's residual is ~0 and the student's output equals the teacher's (up to float error)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.lite import LiteSynthesis, prune_from_teacher, teacher_synthesis

    teacher = teacher_synthesis(models.load("meanscale", 4))
    torch.manual_seed(0)
    latents = [torch.randint(-3, 4, (2, 128, 4, 4)).float() for _ in range(3)]
    with torch.no_grad():
        images = [(teacher(y) * 256 + 128).clamp(0, 255) for y in latents]
    student = LiteSynthesis(128, (96, 96, 96))
    residuals = prune_from_teacher(student, teacher, list(zip(latents, images, strict=True)), "energy", True)
    assert max(residuals.values()) < 1e-3
    with torch.no_grad():  # in pixels: the float student matches the int8 teacher up to its roundings
        mse = float(((student(latents[0]) - teacher(latents[0])) * 256).pow(2).mean())
    assert 10 * np.log10(255**2 / mse) > 40, mse


def test_decode_macs_match_the_hand_count() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.models import synthesis_macs_per_pixel as decode_macs_per_pixel

    # k4 s2 transposed convs: 4 · C_in · C_out MACs per output pixel, outputs at 1/8, 1/4, 1/2, 1 per side
    assert decode_macs_per_pixel(128, (96, 96, 96)) == 4 * (128 * 96 / 64 + 96 * 96 / 16 + 96 * 96 / 4 + 96 * 3)
    assert decode_macs_per_pixel(128, (48, 48, 48)) == 3840


def test_exported_student_equals_its_qat_model_layer_by_layer(tmp_path) -> None:
    """A calibrated (QAT) student, its weight steps searched by its output (``--weight-steps search``), exports
    to a decoder file whose integer g_s equals the fake-quant forward in every element (fxlic.qat.verify), on
    the decoder side of real streams."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.export import model_from_model_file
    from fxlic.qat.lite import LiteSynthesis, crops_mse, export_decoder, prune_from_teacher, teacher_synthesis
    from fxlic.qat.verify import compare_image
    from fxlic.qat.weight_steps import choose_weight_fix_positions, legal_weight_fix

    parent = models.load("meanscale", 4)
    teacher = teacher_synthesis(parent)
    torch.manual_seed(1)
    latents = [torch.randint(-4, 5, (2, 128, 4, 4)).float() for _ in range(2)]
    images = [torch.rand(2, 3, 64, 64) * 255 for _ in latents]
    student = LiteSynthesis(128, (24, 16, 8))
    prune_from_teacher(student, teacher, list(zip(latents, images, strict=True)), "energy", True)
    student.start_calibration()
    with torch.no_grad():
        for y in latents:
            student(y)
    student.finish_calibration()
    crops = [(y, torch.rand(2, 3, 32, 32) * 255) for y in latents]  # margin 1: the centre 2 × 2 latents
    calibrated = crops_mse(student, crops, 1)
    chosen = choose_weight_fix_positions(student, lambda model: crops_mse(model, crops, 1))
    assert set(chosen) == {f"g_s.{i}" for i in range(4)} and all(o in (0, 1, 2) for o in chosen.values())
    assert crops_mse(student, crops, 1) <= calibrated  # +0 is among the offsets tried
    assert all(legal_weight_fix(layer, layer.fix_w, None) for _, layer in student.named_qconvs())
    decoder_file = tmp_path / "meanscale-q4.tiny.npz"
    export_decoder(student, parent, "tiny").save(decoder_file)
    lite = models.load("meanscale", 4, decoder_file=decoder_file)
    qat = model_from_model_file(lite)
    with torch.no_grad():  # the rebuilt QAT model's g_s is the student's, weight for weight
        for (_, ours), (_, theirs) in zip(student.named_qconvs(), [(n, m) for n, m in qat.named_qconvs()
                                                                   if n.startswith("g_s.")], strict=True):
            assert torch.equal(ours.fix, theirs.fix)
    stats: dict = {}
    from collections import defaultdict

    stats = defaultdict(lambda: {"elements": 0, "mismatches": 0})
    compare_image(qat, open_codec(lite), _source_images()[0], stats)
    decoded = {k: v for k, v in stats.items() if k.startswith("decoded g_s.")}
    assert len(decoded) == 4 and all(v["elements"] > 0 for v in decoded.values())
    assert sum(v["mismatches"] for v in stats.values()) == 0


def test_eval_with_a_decoder_and_the_full_one_on_the_same_streams(sliced_file, tmp_path) -> None:
    """`fxlic eval --decoder-files F --with-full` writes the lite decoder's curve and the full decoder's, from the
    same streams: the same bytes per image, the full decoder's PSNR as `fxlic eval` alone measures it."""
    photos = sorted((Path(__file__).resolve().parent / "fixtures" / "train").glob("*.png"))[:2]
    out = tmp_path / "eval"
    assert cli_main(["eval", "--decoder-files", str(sliced_file), "--with-full", "--images", *map(str, photos),
                     "--out", str(out)]) == 0
    lite = json.loads((out / "meanscale.slice32.json").read_text())
    full = json.loads((out / "meanscale.json").read_text())
    assert lite["results"]["bpp"] == full["results"]["bpp"] and lite["meta"]["decoder"] == "slice32"
    assert lite["results"]["psnr-rgb"][0] < full["results"]["psnr-rgb"][0]
    alone = tmp_path / "alone"
    assert cli_main(["eval", "--qualities", "4", "--images", *map(str, photos), "--out", str(alone)]) == 0
    assert json.loads((alone / "meanscale.json").read_text())["results"]["psnr-rgb"] == full["results"]["psnr-rgb"]


def test_shipped_decoders_are_exports_of_their_committed_qat_checkpoints() -> None:
    """Every shipped lite decoder file is what ``python -m fxlic.qat.lite export`` makes of the QAT checkpoint
    committed beside it (models/float/lite/<model>-q<Q>.<decoder>-qat.pt, weights only): the same layers, fix
    positions and integer arrays, so its layer equality (``fxlic verify-qat --decoder-checkpoint``) and any
    further training start from the repository, not from a lost run folder."""
    pytest.importorskip("torch")
    pytest.importorskip("compressai")
    from fxlic.qat.lite import export_decoder, load_student

    shipped = models.shipped_decoders()
    assert shipped, "no lite decoder ships"
    root = Path(__file__).resolve().parents[1] / "models"  # the checkpoints are in the repository, not the package
    for (model_name, quality), files in shipped.items():
        parent = models.load(model_name, quality)
        for name, path in files.items():
            checkpoint = root / "float" / "lite" / f"{model_name}-q{quality}.{name}-qat.pt"
            assert checkpoint.exists(), f"{path.name}: its QAT checkpoint {checkpoint} is not committed"
            student, _ = load_student(checkpoint)
            exported = export_decoder(student, parent, name)
            committed = load_decoder_file(path)
            assert exported.meta["layers"] == committed.meta["layers"], path.name
            ours, theirs = exported.arrays(), committed.arrays()
            assert sorted(ours) == sorted(theirs)
            for key, array in ours.items():
                assert np.array_equal(array, theirs[key]), f"{path.name}: {key}"


def test_weight_average_is_a_moving_average_applied_only_inside_its_block() -> None:
    """--ema (QAT): the average follows a ← d·a + (1 − d)·p after each step; inside ``applied()`` the model has
    the averaged parameters, after it (also after an exception) its own again; decay 0 changes nothing."""
    torch = pytest.importorskip("torch")
    from fxlic.qat.averaging import WeightAverage

    model = torch.nn.Linear(3, 2)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    average = WeightAverage(model, 0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    with average.applied():
        for n, p in model.named_parameters():
            assert torch.allclose(p, own[n] + 0.5)
    for n, p in model.named_parameters():
        assert torch.allclose(p, own[n] + 1.0)
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError
    assert all(torch.allclose(p, own[n] + 1.0) for n, p in model.named_parameters())
    off = WeightAverage(model, 0.0)
    off.update()
    with off.applied():
        assert all(torch.allclose(p, own[n] + 1.0) for n, p in model.named_parameters())
    assert off.state_dict() is None
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in off.model_state_dict().items())
    averaged = average.model_state_dict()  # the average, without touching the model
    assert all(torch.allclose(averaged[n], own[n] + 0.5) for n in own)
    assert all(torch.allclose(p, own[n] + 1.0) for n, p in model.named_parameters())


def test_log_mse_weighs_each_crop_by_its_inverse_error() -> None:
    """``--loss log-mse``: the gradient with respect to crop c's MSE is mean(MSE) / (N · (MSE_c + ε)), so a smooth
    crop (small error) weighs more than a busy one, and the plain MSE's size is kept (equal errors: 1 / N each)."""
    torch = pytest.importorskip("torch")
    from fxlic.qat.lite import LOG_MSE_FLOOR, crop_log_mse

    crop_mse = torch.tensor([1e-4, 1e-3, 1e-2], dtype=torch.float64, requires_grad=True)
    crop_log_mse(crop_mse).backward()
    expected = (crop_mse.detach().mean() + LOG_MSE_FLOOR) / (3 * (crop_mse.detach() + LOG_MSE_FLOOR))
    assert torch.allclose(crop_mse.grad, expected)
    equal = torch.full((4,), 2e-3, dtype=torch.float64, requires_grad=True)
    crop_log_mse(equal).backward()
    assert torch.allclose(equal.grad, torch.full((4,), 0.25, dtype=torch.float64))


def test_flips_are_the_eight_symmetries_of_the_square_and_rescaling_keeps_the_photo() -> None:
    """``fxlic.qat.lite_data``: each flip is a distinct new photo to encode (a symmetry of the square, "t"
    exchanging rows and columns first), and ``--scale`` resizes the way ``train-half`` was made."""
    pytest.importorskip("torch")
    from fxlic.qat.lite_data import FLIPS, flipped, rescaled

    photo = _source_images()[0]
    versions = {flip: flipped(photo, flip) for flip in FLIPS}
    assert len({v.tobytes() + bytes(v.shape) for v in versions.values()}) == 8
    assert np.array_equal(versions[""], photo)
    assert np.array_equal(versions["t"], photo.transpose(1, 0, 2))
    assert np.array_equal(versions["thv"], photo[::-1, ::-1].transpose(1, 0, 2))  # the anti-transpose
    assert all(sorted(v.shape[:2]) == sorted(photo.shape[:2]) for v in versions.values())
    half = rescaled(photo, 0.5)
    assert half.shape == (round(photo.shape[0] / 2), round(photo.shape[1] / 2), 3) and half.dtype == np.uint8
    # a smooth resampling: the half-size photo's mean colour is the photo's within a grey level
    assert np.allclose(half.reshape(-1, 3).mean(0), photo.reshape(-1, 3).mean(0), atol=1.0)
    assert rescaled(photo, 1.0) is photo
