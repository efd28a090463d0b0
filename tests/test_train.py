"""Training runs: float → resume → QAT (calibration, frozen fix positions) → export; torchrun/DDP on gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from fxlic.qat.train import main as train_main  # noqa: E402

TINY = ["--N", "8", "--M", "12", "--crop", "64", "--batch", "2", "--threads", "1", "--log-every", "1",
        "--ckpt-every", "2"]


def _rows(run) -> list[dict]:
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_float_resume_qat_export(train_dir, tmp_path) -> None:
    run = tmp_path / "float"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "3", *TINY]) == 0
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "5", *TINY]) == 0  # resumes
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 5
    assert [int(r["step"]) for r in _rows(run)] == [1, 2, 3, 4, 5]

    qat = tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                       str(run / "checkpoint.pt"), "--steps", "2", "--calib-batches", "2", *TINY]) == 0
    state = torch.load(qat / "checkpoint.pt", weights_only=False)
    assert all(bool(v) for k, v in state["model"].items() if k.endswith(".quantized"))
    assert (qat / "fix_positions.json").is_file()
    # a resumed QAT run (no --init on the command line) keeps its parent: model cards and curve offsets use it
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--steps", "3", *TINY]) == 0
    state = torch.load(qat / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and state["args"]["init"] == str(run / "checkpoint.pt")

    from fxlic.qat.export import main as export_main
    from fxlic.reference.modelfile import load_model_file

    assert export_main([str(qat / "checkpoint.pt"), "-o", str(tmp_path / "m.npz"), "--quality", "3"]) == 0
    model = load_model_file(tmp_path / "m.npz")
    assert model.quality == 3 and set(model.layers) >= {"g_a.0", "h_s_means", "g_s.3"}

    from fxlic.qat.curves import plot_learning_curves, step_offsets

    assert step_offsets([run, qat]) == {run: 0.0, qat: 5.0}  # QAT continues where its float run ended
    plot_learning_curves([run, qat], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_log(train_dir, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "tb"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", "--tensorboard", *TINY]) == 0
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0


def test_weights_only_checkpoint_resumes(train_dir, tmp_path) -> None:
    """A slim checkpoint (what a GPU call returns, what the repo commits) resumes at its step, fresh Adam."""
    from fxlic.qat.slim import slim_checkpoint

    run = tmp_path / "float"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *TINY]) == 0
    full = torch.load(run / "checkpoint.pt", weights_only=False)
    slim = slim_checkpoint(run / "checkpoint.pt", tmp_path / "slim.pt", torch.float16)
    assert "optimizer" not in slim and slim["step"] == 2 and slim["sampler"] == full["sampler"]
    for key, value in full["model"].items():  # float tensors halved, integer buffers untouched
        expected = value.half() if value.is_floating_point() else value
        assert torch.equal(slim["model"][key], expected), key

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "checkpoint.pt").write_bytes((tmp_path / "slim.pt").read_bytes())
    assert train_main(["--data", str(train_dir), "--out", str(resumed), "--steps", "3", *TINY]) == 0
    state = torch.load(resumed / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and "optimizer" in state
    assert state["model"]["g_a.0.conv.weight"].dtype == torch.float32


@pytest.mark.slow
def test_torchrun_gloo_two_processes(train_dir, tmp_path) -> None:
    """The same command under torchrun: 2 CPU processes, gloo, DDP; rank 0 logs and checkpoints."""
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fxlic.qat.train", "--data", str(train_dir), "--out", str(run), "--steps", "3", *TINY]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3
    assert [int(r["step"]) for r in _rows(run)] == [1, 2, 3]


def test_fast_path_choice() -> None:
    """docs/training.md §1: bf16 autocast (where the CPU has bf16 kernels, else fp32) + channels_last + fused
    Adam for the float phase, fp32 for QAT."""
    from fxlic.qat.train import FastPath, native_bf16

    cpu = torch.device("cpu")
    fast = FastPath.choose("auto", "float", cpu)
    dtype = torch.bfloat16 if native_bf16(cpu) else None
    assert (fast.autocast_dtype, fast.channels_last, fast.adam_impl) == (dtype, True, "fused")
    bf16 = FastPath.choose("bf16", "float", cpu)
    assert (bf16.autocast_dtype, bf16.channels_last, bf16.adam_impl) == (torch.bfloat16, True, "fused")
    qat = FastPath.choose("auto", "qat", cpu)  # fake quantization must stay exact: float32
    assert (qat.autocast_dtype, qat.channels_last) == (None, False)
    assert FastPath.choose("fp32", "float", cpu) == FastPath.baseline(cpu)
    with pytest.raises(SystemExit, match="QAT needs float32"):
        FastPath.choose("bf16", "qat", cpu)


def test_fast_path_step_tracks_fp32() -> None:
    """One step on the same crops: the bf16 path's loss is the fp32 loss up to bf16 rounding, and the
    rate terms (likelihoods) stay float32 under autocast."""
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig
    from fxlic.qat.train import FastPath, rd_step

    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64)).astype(np.float32))
    losses = {}
    for name, fast in {"fp32": FastPath.baseline(torch.device("cpu")),
                       "bf16": FastPath.choose("bf16", "float", torch.device("cpu"))}.items():
        torch.manual_seed(0)
        model = MeanScaleHyperprior(ModelConfig(N=16, M=24, hyper_activation="relu"))
        fast.prepare(model)
        params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
        losses[name] = rd_step(model, pixels, 0.013, fast.adam(params, 1e-4), params, 1.0, fast)
        with torch.no_grad(), fast.autocast():
            out = model(fast.to_input(pixels), noisy_rate=False)
        assert out["y_likelihood"].dtype == torch.float32 and out["z_likelihood"].dtype == torch.float32
    bpp = {k: float(v["bpp"].detach()) for k, v in losses.items()}
    psnr = {k: float(v["psnr"]) for k, v in losses.items()}
    assert abs(bpp["bf16"] / bpp["fp32"] - 1) < 0.05 and abs(psnr["bf16"] - psnr["fp32"]) < 0.2


def test_prefetcher_keeps_the_sampler_order(train_dir) -> None:
    """Batches drawn on the background thread are the ones the sampler gives in order (reproducible runs)."""
    from fxlic.qat.data import CropSampler
    from fxlic.qat.train import Prefetcher

    direct = CropSampler(train_dir, 32, seed=3)
    want = [direct.batch(2) for _ in range(4)]
    sampler = CropSampler(train_dir, 32, seed=3)
    loader = Prefetcher(lambda: sampler.batch(2))
    got = [loader.next() for _ in range(4)]
    loader.close()
    assert all(torch.equal(a, b) for a, b in zip(want, got))


def test_hyper_activation(train_dir, tmp_path) -> None:
    """New models use ReLU in h_a/h_s (pinned DPU rounding); configs saved before the field load as the
    LeakyReLU models they were; --hyper-activation switches a parent's; the model file records it."""
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig

    assert ModelConfig(**{"N": 8, "M": 12, "use_means": True}).hyper_activation == "leaky_relu"
    with pytest.raises(ValueError, match="hyper_activation"):
        ModelConfig(hyper_activation="tanh")
    leaky = MeanScaleHyperprior(ModelConfig(N=8, M=12))
    assert {m.activation for m in [*leaky.h_a[:2], *leaky.h_s]} == {"leaky_relu"}

    new = tmp_path / "new"
    assert train_main(["--data", str(train_dir), "--out", str(new), "--steps", "1", *TINY]) == 0
    assert torch.load(new / "checkpoint.pt", weights_only=False)["config"]["hyper_activation"] == "relu"

    old = tmp_path / "old"
    assert train_main(["--data", str(train_dir), "--out", str(old), "--steps", "1",
                       "--hyper-activation", "leaky_relu", *TINY]) == 0
    switched = tmp_path / "switched"
    assert train_main(["--data", str(train_dir), "--out", str(switched), "--init", str(old / "checkpoint.pt"),
                       "--steps", "1", "--hyper-activation", "relu", *TINY]) == 0
    state = torch.load(switched / "checkpoint.pt", weights_only=False)
    assert state["config"]["hyper_activation"] == "relu"
    parent = torch.load(old / "checkpoint.pt", weights_only=False)
    assert set(state["model"]) == set(parent["model"])  # an activation has no parameters

    qat = tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                       str(switched / "checkpoint.pt"), "--steps", "1", "--calib-batches", "1", *TINY]) == 0
    from fxlic.qat.export import main as export_main
    from fxlic.reference.modelfile import load_model_file

    assert export_main([str(qat / "checkpoint.pt"), "-o", str(tmp_path / "m.npz"), "--quality", "4"]) == 0
    layers = load_model_file(tmp_path / "m.npz").layers
    assert {layers[name].activation for name in ("h_a.0", "h_a.1", "h_s.0", "h_s.1")} == {"relu"}


def test_learning_rate_schedule_with_warmup() -> None:
    """Step decay ÷10 for the last 20 %; --warmup scales the first steps linearly up to the base rate."""
    from fxlic.qat.train import learning_rate

    assert learning_rate(0.0, 2e-4) == learning_rate(0.79, 2e-4) == 2e-4
    assert learning_rate(0.8, 2e-4) == pytest.approx(2e-5)
    assert learning_rate(0.0, 2e-4, warmup=0.25) == pytest.approx(5e-5)
    assert learning_rate(0.9, 2e-4, warmup=0.5) == pytest.approx(1e-5)


def test_z_rate_coded_prices_the_coded_z_hat() -> None:
    """``--z-rate coded``: while training, z is priced at the coded ẑ, not at z + U(-½, ½).

    The case it is for: an int8 z at fix position 1 holding a near-constant channel at ½. It is rounded
    again to ẑ = 1 (DPU_ROUND, half up; docs/fixed-point.md FXP-Q6), while a factorized prior fitted to
    z ≈ ½ puts its mass on ẑ = 0 and would charge the coded ẑ = 1 far more than the noise proxy does."""
    from fxlic.qat.fakequant import round_to_integer_ste
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig, rate_terms

    torch.manual_seed(0)
    model = MeanScaleHyperprior(ModelConfig(N=4, M=6, hyper_activation="relu"))
    z = torch.full((1, 4, 3, 3), 0.5, requires_grad=True)
    z_hat = round_to_integer_ste(z)
    assert torch.equal(z_hat, torch.ones_like(z))
    y = torch.randn(1, 6, 6, 6)
    y_hat = torch.floor(y + 0.5)
    scales, means = torch.zeros_like(y), torch.zeros_like(y)
    coded = [rate_terms(model.z_likelihood, y, z, y_hat, z_hat, scales, means, True, "coded") for _ in range(2)]
    # z's price is deterministic and is that of ẑ; y is still priced with noise
    assert torch.equal(coded[0]["z_likelihood"], coded[1]["z_likelihood"])
    exact = rate_terms(model.z_likelihood, y, z, y_hat, z_hat, scales, means, False)
    assert torch.equal(coded[0]["z_likelihood"], exact["z_likelihood"])
    assert not torch.equal(coded[0]["y_likelihood"], exact["y_likelihood"])
    # the gradient reaches z through the rounding (straight-through)
    (-torch.log2(coded[0]["z_likelihood"]).sum()).backward()
    assert z.grad is not None and bool(torch.any(z.grad != 0))
    with pytest.raises(ValueError, match="z_rate"):
        rate_terms(model.z_likelihood, y, z, y_hat, z_hat, scales, means, True, "ste")


def test_z_rate_defaults_by_phase(train_dir, tmp_path) -> None:
    """The float phase prices z with noise, QAT at the coded ẑ unless ``--z-rate`` says otherwise; the
    checkpoint's args record what was used."""
    run = tmp_path / "float"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *TINY]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=False)["args"]["z_rate"] == "noise"
    for z_rate, flags in (("coded", []), ("noise", ["--z-rate", "noise"])):
        qat = tmp_path / f"qat-{z_rate}"
        assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                           str(run / "checkpoint.pt"), "--steps", "2", "--calib-batches", "2",
                           "--no-search-weight-steps", *flags, *TINY]) == 0
        state = torch.load(qat / "checkpoint.pt", weights_only=False)
        assert state["args"]["z_rate"] == z_rate and state["step"] == 2


def test_distill_pulls_towards_the_float_teacher(train_dir, tmp_path) -> None:
    """``--distill W``: the QAT loss adds W·λ·255²·MSE(x̂, x̂_teacher) with the float ``--init`` as teacher.

    A student identical to its teacher has no gap; a perturbed one has a positive gap whose gradient moves
    it (the logged loss stays the plain RD loss). The option needs a float --init."""
    from fxlic.qat.models import MeanScaleHyperprior, ModelConfig
    from fxlic.qat.train import FastPath, rd_step

    torch.manual_seed(0)
    teacher = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu")).eval()
    student = MeanScaleHyperprior(ModelConfig(N=8, M=12, hyper_activation="relu"))
    student.load_state_dict(teacher.state_dict())
    student.eval()  # same rounding as the teacher: the two reconstructions are equal
    pixels = torch.randint(0, 256, (2, 3, 64, 64)).float()
    fast = FastPath.baseline(torch.device("cpu"))
    params = [p for n, p in student.named_parameters() if not n.endswith(".quantiles")]
    optimizer = torch.optim.SGD(params, lr=0.0)
    plain = rd_step(student, pixels, 0.013, optimizer, params, 1.0, fast)
    same = rd_step(student, pixels, 0.013, optimizer, params, 1.0, fast, teacher, 1.0)
    assert float(same["distill_mse"]) == 0.0
    assert float(same["loss"].detach()) == pytest.approx(float(plain["loss"].detach()))
    with torch.no_grad():
        student.g_s[-1].conv.bias.add_(0.05)
    apart = rd_step(student, pixels, 0.013, optimizer, params, 1.0, fast, teacher, 1.0)
    assert float(apart["distill_mse"]) > 0.0
    assert student.g_s[-1].conv.bias.grad is not None and bool(torch.any(student.g_s[-1].conv.bias.grad != 0))

    run = tmp_path / "float"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *TINY]) == 0
    qat = tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init",
                       str(run / "checkpoint.pt"), "--steps", "2", "--calib-batches", "2",
                       "--no-search-weight-steps", "--distill", "1", *TINY]) == 0
    assert torch.load(qat / "checkpoint.pt", weights_only=False)["args"]["distill"] == 1.0
    with pytest.raises(SystemExit, match="distill"):
        train_main(["--data", str(train_dir), "--out", str(tmp_path / "bad"), "--steps", "1", "--distill", "1",
                    *TINY])
    with pytest.raises(SystemExit, match="teacher must be float"):
        train_main(["--data", str(train_dir), "--out", str(tmp_path / "bad2"), "--phase", "qat", "--init",
                    str(qat / "checkpoint.pt"), "--steps", "1", "--distill", "1", *TINY])


def test_qat_with_weight_averaging_checkpoints_the_average_and_resumes_its_own(train_dir, tmp_path) -> None:
    """--ema (docs/training.md): the checkpoint's "model" (what export reads) is the moving average of the
    weights, "model_live" the run's own; a resumed run goes on from its own weights and keeps the average."""
    run, qat = tmp_path / "float", tmp_path / "qat"
    assert train_main(["--data", str(train_dir), "--out", str(run), "--steps", "2", *TINY]) == 0
    args = ["--data", str(train_dir), "--out", str(qat), "--phase", "qat", "--init", str(run / "checkpoint.pt"),
            "--calib-batches", "1", "--no-search-weight-steps", "--lr", "1e-2", "--ema", "0.5", *TINY]
    assert train_main([*args, "--steps", "2"]) == 0
    state = torch.load(qat / "checkpoint.pt", weights_only=False)
    name = "g_a.0.conv.weight"
    assert not torch.equal(state["model"][name], state["model_live"][name])  # the average lags the run
    assert all(torch.equal(value, state["model"][key]) for key, value in state["ema"].items())
    assert train_main([*args, "--steps", "3"]) == 0
    resumed = torch.load(qat / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 3 and set(resumed["ema"]) == set(state["ema"])

    from fxlic.qat.export import main as export_main

    assert export_main([str(qat / "checkpoint.pt"), "-o", str(tmp_path / "m.npz"), "--quality", "3"]) == 0
