"""Training runs: float → resume → QAT (calibration, frozen fix positions) → export; torchrun/DDP on gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

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
