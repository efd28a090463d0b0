"""Rate-distortion training: float pre-training, then calibration + QAT fine-tuning into the fxp formats.

Loss (Ballé 2018 / CompressAI): L = λ · 255² · MSE + bpp, MSE on [0, 1] pixels; plus the auxiliary loss of
the factorized prior's quantiles on its own optimizer. Every run checkpoints and resumes: the checkpoint
holds model, optimizers, step, sampler RNG state and config, so a run interrupted on one machine
continues on another.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .activation_steps import choose_activation_fix_positions
from .adaround import adaround_model
from .averaging import WeightAverage
from .charm import CharmConfig, model_from_config, warm_start_from_meanscale
from .data import CropSampler
from .equalize import align_power_of_two_scales, equalize_synthesis_input, equalize_weight_ranges
from .models import LATENT_ROUNDINGS, Z_RATES, MeanScaleHyperprior, ModelConfig, output_to_pixels, pixels_to_input
from .weight_steps import choose_weight_fix_positions

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

# λ of CompressAI's MSE-optimized qualities 1..8 (its zoo's training λs), so our quality numbers compare;
# quality 0 extends the ladder downwards (about ÷2 per step, as CompressAI's) to reach ~0.1 bpp with models
# whose rate falls slowly with λ; qualities 9 and 10 extend it upwards the same way (×1.93 per step), because
# these small models' rate also grows slowly with λ at the top (q8 reached 1.08 bpp on Kodak, the issue asks
# for 1.5).
LAMBDAS = {0: 0.0009, 1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800,
           9: 0.3470, 10: 0.6700}


def rd_loss(model_out: dict, pixels: torch.Tensor, lmbda: float) -> dict[str, torch.Tensor]:
    num_pixels = pixels.size(0) * pixels.size(2) * pixels.size(3)
    bits = -(torch.log2(model_out["y_likelihood"]).sum() + torch.log2(model_out["z_likelihood"]).sum())
    bpp = bits / num_pixels
    mse = torch.mean(((output_to_pixels(model_out["x_hat"]) - pixels) / 255.0) ** 2)
    return {"loss": lmbda * 255.0**2 * mse + bpp, "bpp": bpp, "mse": mse,
            "psnr": -10.0 * torch.log10(mse.detach().clamp_min(1e-12))}


def learning_rate(progress: float, base: float, warmup: float = 1.0) -> float:
    """Constant, then ÷10 for the last 20 % of the run (CompressAI-style step decay, compressed).

    ``progress`` ∈ [0, 1] is the larger of steps done / steps and minutes spent / minutes allowed, so a
    time-boxed run (a GPU lease, a CPU session) still gets its low-learning-rate finish. ``warmup`` ∈ (0, 1]
    scales the rate during a run's first steps (``--warmup``): a run that starts from a trained model with
    a fresh Adam state otherwise moves every weight by about the full rate on its first steps, whatever
    its gradient (Adam's first updates are ±lr), and spends hundreds of steps recovering.
    """
    return (base if progress < 0.8 else base / 10.0) * warmup


def is_quantized_state(model_state: dict) -> bool:
    """Whether a checkpoint's model state is calibrated (QAT/PTQ): any layer's ``quantized`` flag set."""
    return any(k.endswith(".quantized") and bool(v) for k, v in model_state.items())


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: an interrupted save never corrupts the last good checkpoint


def calibrate(model: MeanScaleHyperprior, sampler: CropSampler, batches: int, batch_size: int) -> dict:
    """Record activations on training crops, then freeze export-adjusted fix positions."""
    model.eval()
    model.start_calibration()
    with torch.no_grad():
        for _ in range(batches):
            model(pixels_to_input(sampler.batch(batch_size)), noisy_rate=False)
    return model.finish_calibration()


def quantized_objective(data: str | Path, crop: int, seed: int, batch_size: int, lmbda: float,
                        eval_batches: int = 6) -> Callable[[MeanScaleHyperprior], float]:
    """The RD objective of a calibrated model as it stands, for ``choose_weight_fix_positions``: quantized,
    at the ideal rate, on ``eval_batches`` batches of training crops (``seed + 2``). Training photos only:
    nothing is chosen on the test set."""
    evaluation = CropSampler(data, crop, seed=seed + 2)
    crops = [evaluation.batch(batch_size) for _ in range(eval_batches)]

    @torch.no_grad()
    def objective(candidate: MeanScaleHyperprior) -> float:
        candidate.eval()
        losses = [float(rd_loss(candidate(pixels_to_input(p), noisy_rate=False), p, lmbda)["loss"]) for p in crops]
        return sum(losses) / len(losses)

    return objective


def ptq_objective(data: str | Path, crop: int, seed: int, calib_batches: int, batch_size: int, lmbda: float,
                  eval_batches: int = 6) -> Callable[[MeanScaleHyperprior], float]:
    """The RD objective of a float model once calibrated (PTQ), for ``align_power_of_two_scales``.

    The candidate is calibrated on the crops the QAT run calibrates on (``seed``), then evaluated as
    ``quantized_objective`` does (other training crops, ``seed + 2``; the equalization uses ``seed + 1``).
    Training photos only: nothing is chosen on the test set."""
    evaluate = quantized_objective(data, crop, seed, batch_size, lmbda, eval_batches)

    def objective(candidate: MeanScaleHyperprior) -> float:
        with torch.random.fork_rng():  # calibration subsamples with torch's RNG: same draws for every candidate
            torch.manual_seed(seed)
            calibrate(candidate, CropSampler(data, crop, seed=seed), calib_batches, batch_size)
        return evaluate(candidate)

    return objective


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) under torchrun (WORLD_SIZE > 1: gloo on CPU, nccl on CUDA), else (0, 1, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device)
    cuda = device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device(device)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays on ``device``: CUDA with bf16 support, or a CPU on which oneDNN has bf16
    kernels (AVX-512 / AVX-512 BF16 / AMX; ``torch.ops.mkldnn._is_mkldnn_bf16_supported``). AVX2-only CPUs
    (e.g. the AMD EPYC machines seen here) emulate bf16 and run slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the probe: judge by the vector ISA
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@dataclass(frozen=True)
class FastPath:
    """How one training step runs: autocast dtype, memory format, optimizer implementation.

    The float phase runs under bfloat16 autocast with channels_last tensors where the hardware has native
    bf16 kernels (``native_bf16``: GPUs, CPUs with AVX-512 / AMX, where oneDNN runs bf16 convolutions), and in
    float32 with channels_last elsewhere (on an AVX2-only CPU, oneDNN has no bf16 convolution and autocast ran
    13× slower than fp32, docs/training.md §6); the rate terms stay float32 (``MeanScaleHyperprior.forward``
    leaves autocast for the likelihoods). The QAT phase keeps float32: its fake quantization must compute
    exactly what the integer model computes. ``benchmarks/train_speed.py`` measures the speedup and
    ``docs/training.md`` the convergence against fp32.
    """

    autocast_dtype: torch.dtype | None
    channels_last: bool
    device_type: str
    adam_impl: str  # "fused" | "default"

    @classmethod
    def choose(cls, precision: str, phase: str, device: torch.device, channels_last: bool | None = None) -> FastPath:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
        if precision == "auto":
            precision = "bf16" if phase == "float" and native_bf16(device) else "fp32"
            if channels_last is None and phase == "float":
                channels_last = True
        if precision == "bf16" and phase != "float":
            raise SystemExit("--precision bf16 is for the float phase; QAT needs float32 for exact fake quantization")
        if channels_last is None:
            channels_last = precision == "bf16"
        fast = precision == "bf16" or channels_last
        return cls(torch.bfloat16 if precision == "bf16" else None, channels_last, device.type,
                   "fused" if fast else "default")

    @classmethod
    def baseline(cls, device: torch.device) -> FastPath:
        """The trainer before the fast path: float32, contiguous tensors, per-parameter Adam."""
        return cls(None, False, device.type, "default")

    def describe(self) -> str:
        dtype = "bf16 autocast" if self.autocast_dtype is not None else "fp32"
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{dtype}, {layout}, {self.adam_impl} Adam"

    def prepare(self, model: torch.nn.Module) -> None:
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def adam(self, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=lr, fused=True if self.adam_impl == "fused" else None)

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels_to_input(pixels)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def rd_step(net: torch.nn.Module, pixels: torch.Tensor, lmbda: float, optimizer: torch.optim.Optimizer,
            main_params: list[torch.nn.Parameter], clip: float, fast: FastPath,
            teacher: torch.nn.Module | None = None, distill: float = 0.0) -> dict[str, torch.Tensor]:
    """One rate-distortion step of the main parameters (forward under the fast path's autocast).

    With a ``teacher`` (QAT's ``--distill``), the loss adds ``distill · λ · 255² · MSE(x̂, x̂_teacher)``: the
    fake-quantized model is also pulled towards the float model's reconstruction (the teacher runs in eval
    mode, rounded latents, no gradient), output distillation as in QAT with knowledge distillation (Kim et
    al. 2019) and FEDS (Fu et al. 2023). ``losses["loss"]`` stays the plain RD loss, so logs compare."""
    with fast.autocast():
        out = net(fast.to_input(pixels))
    losses = rd_loss(out, pixels, lmbda)
    objective = losses["loss"]
    if teacher is not None and distill > 0:
        with torch.no_grad():
            target = output_to_pixels(teacher(fast.to_input(pixels), noisy_rate=False)["x_hat"])
        gap = torch.mean(((output_to_pixels(out["x_hat"]) - target) / 255.0) ** 2)
        losses["distill_mse"] = gap.detach()
        objective = objective + distill * lmbda * 255.0**2 * gap
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    torch.nn.utils.clip_grad_norm_(main_params, clip)
    optimizer.step()
    return losses


def aux_step(model: MeanScaleHyperprior, aux_optimizer: torch.optim.Optimizer,
             aux_params: list[torch.nn.Parameter], world: int = 1) -> torch.Tensor:
    """One step of the factorized prior's quantiles on the auxiliary loss (float32, outside autocast)."""
    aux = model.aux_loss()
    aux_optimizer.zero_grad(set_to_none=True)
    aux.backward()
    if world > 1:
        for param in aux_params:
            dist.all_reduce(param.grad)
            param.grad /= world
    aux_optimizer.step()
    return aux


class Prefetcher:
    """Draws the next batch on a background thread while the current step computes.

    The draw order is the sampler's own (one batch ahead), so a run stays reproducible from the seed;
    the one batch drawn ahead when a run stops is not trained on, and its RNG draws are in the saved
    sampler state, so a resumed run continues with the next one.
    """

    def __init__(self, draw: Callable[[], torch.Tensor]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._draw = draw
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crops")
        self._next = self._pool.submit(draw)

    def next(self) -> torch.Tensor:
        batch = self._next.result()
        self._next = self._pool.submit(self._draw)
        return batch

    def settle(self) -> None:
        """Wait for the batch being drawn, so the sampler's state is stable (before saving it)."""
        self._next.result()

    def close(self) -> None:
        self._next.cancel()
        self._pool.shutdown(wait=True)


def train(args: argparse.Namespace) -> Path:
    rank, world, device = setup_distributed(args.device)
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} is not divisible by the {world} processes")
    torch.manual_seed(args.seed)  # same on every rank: identical init and calibration
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    lmbda = args.lmbda if args.lmbda is not None else LAMBDAS[args.quality]
    sampler = CropSampler(args.data, args.crop, seed=args.seed)
    local_batch = args.batch // world

    state = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        config = model_from_config(state["config"]).config
        print(f"resuming {ckpt_path} at step {state['step']}")
        if args.hyper_activation and args.hyper_activation != config.hyper_activation:
            print(f"hyper activation {config.hyper_activation} → {args.hyper_activation} (asked for)")
            config = replace(config, hyper_activation=args.hyper_activation)
        if not args.init:  # keep the provenance (model cards, learning-curve offsets) across resumed runs
            args.init = (state.get("args") or {}).get("init")
    elif args.init:
        init = torch.load(args.init, map_location="cpu", weights_only=False)
        config = model_from_config(init["config"]).config
        if args.arch == "charm" and not isinstance(config, CharmConfig):
            # ChARM on a trained mean-scale model's transforms (warm_start_from_meanscale)
            print(f"charm from the mean-scale model {args.init} (N={config.N}, M={config.M})")
            config = CharmConfig(N=config.N, M=config.M, slices=args.slices,
                                 hyper_activation=config.hyper_activation)
        if args.hyper_activation and args.hyper_activation != config.hyper_activation:
            # An activation has no parameters: the parent's weights load as they are and fine-tuning
            # adapts them (LeakyReLU(26/256) → ReLU changes only negative pre-activations, by 10 %).
            print(f"hyper activation {config.hyper_activation} → {args.hyper_activation} (from --init)")
            config = replace(config, hyper_activation=args.hyper_activation)
        init_quantized = is_quantized_state(init["model"])
        if args.phase == "qat" and not init_quantized and config.latent_rounding != args.latent_rounding:
            # chosen at calibration, which follows: the float model is the same either way (FXP-Q6)
            print(f"latent rounding {config.latent_rounding} → {args.latent_rounding} (QAT calibration)")
            config = replace(config, latent_rounding=args.latent_rounding)
    elif args.arch == "charm":
        config = CharmConfig(N=args.N, M=args.M, slices=args.slices, hyper_activation=args.hyper_activation or "relu")
    else:
        config = ModelConfig(N=args.N, M=args.M, use_means=not args.scale_only,
                             hyper_activation=args.hyper_activation or "relu")

    model = model_from_config(asdict(config))
    teacher = None
    if args.distill:
        if args.phase != "qat" or not args.init:
            raise SystemExit("--distill is for QAT from a float --init (the teacher)")
        teacher_state = torch.load(args.init, map_location="cpu", weights_only=False)
        if is_quantized_state(teacher_state["model"]):
            raise SystemExit(f"--distill: the --init {args.init} is already quantized; the teacher must be float")
        teacher = model_from_config(teacher_state["config"])
        teacher.load_state_dict(teacher_state["model"])
        teacher.eval().requires_grad_(False)
        print(f"distilling from the float model {args.init} (weight {args.distill})")
    if state is not None:  # with --ema, "model" is the average (what export reads) and "model_live" the run's own
        model.load_state_dict(state.get("model_live", state["model"]))
    elif args.init:
        if isinstance(config, CharmConfig) and init["config"].get("architecture") != "charm":
            if args.phase != "float":
                raise SystemExit("--arch charm from a mean-scale --init: train the float phase first")
            warm_start_from_meanscale(model, init["model"])
        else:
            model.load_state_dict(init["model"])
        if args.phase == "qat" and not model.quantized:
            if args.equalize_weights:
                totals = equalize_weight_ranges(model)
                print("equalized weight ranges of " + ", ".join(
                    f"{name} (scales {float(t.min()):.2f}–{float(t.max()):.2f})" for name, t in totals.items()))
            if args.hyper_latent_rounding == "accumulator":
                model.round_hyper_latents_once()
            if args.equalize:  # on crops of their own, so the calibration crops stay those of older runs
                scales = equalize_synthesis_input(model, CropSampler(args.data, args.crop, seed=args.seed + 1),
                                                  args.calib_batches, args.batch)
                print(f"equalized g_s's last input: channel scales median {float(scales.median()):.2f}, "
                      f"max {float(scales.max()):.2f}")
            if args.align_scales:
                objective = ptq_objective(args.data, args.crop, args.seed, args.calib_batches, args.batch, lmbda)
                alphas = align_power_of_two_scales(model, objective, report=print)
                (out_dir / "aligned_scales.json").write_text(json.dumps(alphas, indent=1))
            float_model = copy.deepcopy(model) if args.adaround else None
            fixes = calibrate(model, sampler, args.calib_batches, args.batch)
            print(f"calibrated {len(fixes)} layers on {args.calib_batches}×{args.batch} crops")
            searches = [(choose_weight_fix_positions, args.search_weight_steps, "weight_step_offsets.json"),
                        (choose_activation_fix_positions, args.search_activation_steps, "activation_step_offsets.json")]
            if any(on for _, on, _ in searches):  # one objective (the same crops) for both searches
                objective = quantized_objective(args.data, args.crop, args.seed, args.batch, lmbda)
                for search, on, record in searches:
                    if on:
                        offsets = search(model, objective, report=print)
                        (out_dir / record).write_text(json.dumps(offsets, indent=1))
            if args.adaround:  # each weight's floor or ceil by its layer's output (fxlic.qat.adaround)
                crops = CropSampler(args.data, args.crop, seed=args.seed + 3)
                batches = [crops.batch(args.batch) for _ in range(args.calib_batches)]
                adaround_model(model, float_model, batches,
                               lambda net, pixels: net(pixels_to_input(pixels), noisy_rate=False),
                               iters=args.adaround, report=print)
            (out_dir / "fix_positions.json").write_text(json.dumps(model.fix_positions(), indent=1))
    if args.z_rate is None:
        args.z_rate = "coded" if args.phase == "qat" and hasattr(model, "z_rate") else "noise"
    if args.z_rate == "coded" and not hasattr(model, "z_rate"):
        raise SystemExit("--z-rate coded is for the mean-scale model")
    if hasattr(model, "z_rate"):
        model.z_rate = args.z_rate
    model.to(device)
    if teacher is not None:
        teacher.to(device)

    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    fast = FastPath.choose(args.precision, args.phase, device, channels_last=args.channels_last)
    fast.prepare(model)
    optimizer = fast.adam(main_params, lr=args.lr)
    aux_optimizer = fast.adam(aux_params, lr=1e-3)
    average = WeightAverage(model, args.ema)
    step = 0
    elapsed_before = 0.0
    if state is not None:
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            aux_optimizer.load_state_dict(state["aux_optimizer"])
        else:  # a weights-only checkpoint (fxlic.qat.slim): Adam re-estimates its moments in a few hundred steps
            print("weights-only checkpoint: fresh optimizer state")
        average.load_state_dict(state.get("ema"))
        sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
        elapsed_before = state.get("elapsed_s", 0.0)
    if rank > 0:  # other ranks draw other crops; reseeded from the step so a resume stays reproducible
        sampler.rng = np.random.default_rng([args.seed, rank, step])
        torch.manual_seed(args.seed + 7919 * rank + step)
    net: torch.nn.Module = model
    if world > 1:
        # The quantiles of the factorized prior are trained by the auxiliary loss outside forward():
        # DDP must not wait for their gradients; they are averaged by hand below.
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            model, ["entropy_bottleneck.quantiles"])
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank == 0:
        print(f"fast path: {fast.describe()}")

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="") if rank == 0 else open(os.devnull, "w")  # noqa: SIM115
    log = csv.writer(log_file)
    if new_log and rank == 0:
        log.writerow(["step", "phase", "lr", "loss", "bpp", "mse", "psnr", "aux", "elapsed_s"])
    board = _tensorboard_writer(out_dir / "tensorboard") if args.tensorboard and rank == 0 else None

    def checkpoint() -> None:
        if rank > 0:
            return
        loader.settle()  # the sampler's state must not change while it is saved
        save_checkpoint(ckpt_path, {  # --ema: the checkpoint's model (exported, evaluated) is the average
            "model": average.model_state_dict(),
            **({"model_live": model.state_dict(), "ema": average.state_dict()} if args.ema else {}),
            "optimizer": optimizer.state_dict(),
            "aux_optimizer": aux_optimizer.state_dict(), "sampler": sampler.state(),
            "torch_rng": torch.get_rng_state(), "step": step, "config": model.config_dict(),
            "lmbda": lmbda, "phase": args.phase, "elapsed_s": elapsed_before + time.time() - start,
            "args": vars(args),
        })

    start = time.time()
    deadline = start + args.minutes * 60 if args.minutes else math.inf
    model.train()
    loader = Prefetcher(lambda: sampler.batch(local_batch))
    running: dict[str, float] = {}
    bar = tqdm(total=args.steps, initial=step, desc=f"{args.phase} λ={lmbda}", unit="step", smoothing=0.05,
               disable=rank > 0)
    first_step = step
    while step < args.steps and not _stop(deadline, world, device):
        progress = step / args.steps
        if args.minutes:
            progress = max(progress, (time.time() - start) / (args.minutes * 60))
        warmup = min(1.0, (step - first_step + 1) / args.warmup) if args.warmup else 1.0
        lr = learning_rate(progress, args.lr, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixels = loader.next().to(device, non_blocking=True)
        losses = rd_step(net, pixels, lmbda, optimizer, main_params, args.clip, fast, teacher, args.distill)
        aux = aux_step(model, aux_optimizer, aux_params, world)
        average.update()
        step += 1
        for key in ("loss", "bpp", "mse", "psnr"):
            value = float(losses[key].detach())
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        bar.update(1)
        bar.set_postfix(bpp=f"{running['bpp']:.3f}", psnr=f"{running['psnr']:.2f}", loss=f"{running['loss']:.3f}")
        if step % args.log_every == 0:
            log.writerow([step, args.phase, lr, *(f"{running[k]:.5f}" for k in ("loss", "bpp", "mse", "psnr")),
                          f"{float(aux.detach()):.3f}", f"{elapsed_before + time.time() - start:.1f}"])
            log_file.flush()
            if board is not None:
                for key in ("loss", "bpp", "psnr"):
                    board.add_scalar(f"{args.phase}/{key}", running[key], step)
                board.add_scalar(f"{args.phase}/lr", lr, step)
        if step % args.ckpt_every == 0:
            checkpoint()
    bar.close()
    loader.close()
    checkpoint()
    log_file.close()
    if board is not None:
        board.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    print(f"{args.phase}: step {step}/{args.steps}, {(time.time() - start) / 60:.1f} min this run, "
          f"bpp≈{running.get('bpp', float('nan')):.3f} psnr≈{running.get('psnr', float('nan')):.2f}")
    return ckpt_path


def _tensorboard_writer(folder: Path) -> SummaryWriter:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # torch ships the writer, the event-file format needs the package
        raise SystemExit(f"--tensorboard needs the tensorboard package (pip install tensorboard): {error}") from None
    return SummaryWriter(str(folder))


def _stop(deadline: float, world: int, device: torch.device) -> bool:
    """Time is up — decided on rank 0 and broadcast, so every rank stops at the same step."""
    flag = torch.tensor([1 if time.time() >= deadline else 0], device=device)
    if world > 1:
        dist.broadcast(flag, 0)
    return bool(flag.item())


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="fxlic train", description=__doc__)
    p.add_argument("--data", required=True, help="folder of training images (never Kodak)")
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, log.csv (resumes if present)")
    p.add_argument("--phase", choices=["float", "qat"], default="float")
    p.add_argument("--init", help="checkpoint to start from (qat: a float checkpoint, calibrated first)")
    p.add_argument("--quality", type=int, default=4, choices=sorted(LAMBDAS))
    p.add_argument("--lmbda", type=float, help="override the quality's λ")
    p.add_argument("--N", type=int, default=96)
    p.add_argument("--M", type=int, default=128)
    p.add_argument("--scale-only", action="store_true", help="Ballé 2018 scale hyperprior (no means)")
    p.add_argument("--arch", choices=["meanscale", "charm"], default="meanscale",
                   help="new runs: meanscale (Minnen 2018) or charm (Minnen & Singh 2020, docs/charm.md)")
    p.add_argument("--slices", type=int, default=4, help="charm: number of latent slices (M divisible by it)")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--minutes", type=float, help="stop (and checkpoint) after this wall time")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="QAT: checkpoint (and so export) the exponential moving average of the weights, e.g. 0.995 "
                        "(0: off); the run resumes from its own weights")
    p.add_argument("--warmup", type=int, default=0,
                   help="ramp the learning rate linearly over this run's first WARMUP steps (0: none); "
                        "for fine-tunes from a trained model with a fresh optimizer")
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: one GPU per process)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto (default): channels_last for the float phase, under bf16 autocast where the "
                        "hardware has bf16 kernels (AVX-512/AMX CPUs, GPUs; fp32 on AVX2-only CPUs, where "
                        "bf16 is emulated and slower); fp32 for QAT. fp32: the plain float32 trainer")
    p.add_argument("--amp", dest="precision", action="store_const", const="bf16",
                   help="same as --precision bf16 (kept for older scripts)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: with bf16)")
    p.add_argument("--equalize-weights", action=argparse.BooleanOptionalAction, default=False,
                   help="QAT from a float --init: first equalize the weight ranges of g_a's and g_s's ReLU pairs "
                        "(Nagel et al. 2019 CLE, fxlic.qat.equalize.equalize_weight_ranges)")
    p.add_argument("--align-scales", action=argparse.BooleanOptionalAction, default=False,
                   help="QAT from a float --init: after equalization, choose one factor in [1, 2) per ReLU pair "
                        "that fits the power-of-two steps best (PTQ objective on training crops; a few minutes)")
    p.add_argument("--hyper-latent-rounding", choices=LATENT_ROUNDINGS, default="requantize",
                   help="QAT from a float --init: how ẑ is made; accumulator: h_a's last conv writes z at fix 0, "
                        "one rounding (MeanScaleHyperprior.round_hyper_latents_once); requantize: z at its own "
                        "fix position, then rounded again to fix 0")
    p.add_argument("--z-rate", choices=Z_RATES, default=None,
                   help="how training prices z: noise, z + U(-½, ½) (Ballé 2018; the float phase's default); "
                        "coded, the likelihood of the coded ẑ, straight-through (what the int8 stream spends; "
                        "fxlic.qat.models.rate_terms; the QAT phase's default since 2026-12-03)")
    p.add_argument("--search-activation-steps", action=argparse.BooleanOptionalAction, default=False,
                   help="QAT from a float --init: after the weight-step search, choose each hidden activation's fix "
                        "position among the calibrated one -1, +0, +1 by the RD objective on training crops "
                        "(fxlic.qat.activation_steps)")
    p.add_argument("--adaround", type=int, default=0, metavar="ITERS",
                   help="QAT from a float --init: after calibration and the weight-step search, choose each weight's "
                        "rounding by its layer's output on training crops (AdaRound, fxlic.qat.adaround), ITERS "
                        "optimizer steps per layer; 0 (default): nearest")
    p.add_argument("--search-weight-steps", action=argparse.BooleanOptionalAction, default=True,
                   help="QAT from a float --init: after calibration, choose each layer's weight fix position "
                        "(calibrated, +1, +2) by the RD objective on training crops (fxlic.qat.weight_steps; "
                        "default on since the fifth 2026-12-02 release; --no-search-weight-steps: the "
                        "calibrated positions, as every earlier release)")
    p.add_argument("--equalize", action=argparse.BooleanOptionalAction, default=True,
                   help="QAT from a float --init: equalize the channels of g_s's last input before calibration "
                        "(cross-layer equalization, fxlic.qat.equalize; default on)")
    p.add_argument("--distill", type=float, default=0.0,
                   help="QAT from a float --init: add DISTILL · λ·255²·MSE(x̂, x̂ of the float --init model) to "
                        "the loss (output distillation; the float model is the teacher; 0: off)")
    p.add_argument("--latent-rounding", choices=["accumulator", "requantize"], default="accumulator",
                   help="QAT from a float --init: how the int8 model rounds ŷ (docs/fixed-point.md FXP-Q6): "
                        "accumulator (a twin of g_a's last conv at fix 0, one rounding; default) or requantize "
                        "(y requantized to fix 0, two roundings: the models shipped before 2026-12-02)")
    p.add_argument("--hyper-activation", choices=["relu", "leaky_relu"],
                   help="activation in h_a/h_s: relu for new models (pinned DPU rounding); given with --init "
                        "or a resumed run, switches the parent's (default: keep it)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard (needs tensorboard)")
    p.add_argument("--ckpt-every", type=int, default=200)
    return p


def main(argv: list[str] | None = None) -> int:
    train(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
