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

    from fxlic.qat.export import main as export_main
    from fxlic.reference.modelfile import load_model_file

    assert export_main([str(qat / "checkpoint.pt"), "-o", str(tmp_path / "m.npz"), "--quality", "3"]) == 0
    model = load_model_file(tmp_path / "m.npz")
    assert model.quality == 3 and set(model.layers) >= {"g_a.0", "h_s_means", "g_s.3"}


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
