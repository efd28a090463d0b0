"""Lite decoders: a narrower synthesis transform g_s that decodes the shipped encoder's streams.

What a stream costs is fixed by the encoder and the entropy model; the decoder's g_s can be replaced by a
narrower network that learns, from the same ŷ, to reconstruct the image (no rate term, no change to the
bitstream). The student is the teacher's figure with other widths (Minnen 2018's g_s, IGDN → ReLU):

    ŷ (M, fix 0) ─tconv k4 s2─ReLU─▶ c₁ ─tconv─ReLU─▶ c₂ ─tconv─ReLU─▶ c₃ ─tconv─▶ x̂ (3, fix 8)

Method (measured in docs/lite-decoders.md):

* **Structured pruning as the start.** Keep c_l of the teacher's N output channels of each hidden layer,
  ranked by a measured importance (``CRITERIA``), then refit each next layer by least squares on the kept
  channels (``refit_least_squares``): the kept channels take over what the dropped ones carried, as far as a
  linear map can (He et al. 2017's channel pruning by reconstruction; Net2Net-style merging is a special
  case). The last layer is fitted to the *image*, not the teacher's output.
* **Distillation** (FEDS, Fu et al. 2023; Allemand et al. 2025): the loss is the MSE to the image, plus
  ``α·MSE(x̂, x̂_teacher)`` (the int8 teacher's decoded image, cached) and ``β·Σ_l MSE(A_l(f_l), t_l)`` with
  training-only 1×1 adapters A_l from the student's hidden features f_l to the teacher's t_l, for the first
  ``feature_until`` of the run (staged).
* **QAT and export** as the full model: calibration of the fix positions, fake-quantized fine-tuning, then
  the int8 decoder file (``fxlic.reference.modelfile``: a file of g_s layers naming the model whose streams
  it decodes).

Shapes: ŷ B×M×h×w integers (float tensors), features B×c_l×2^l h×2^l w, x̂ B×3×16h×16w in network units
((p − 128)/256).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .activation_steps import choose_activation_fix_positions
from .adaround import adaround_model
from .averaging import WeightAverage
from .layers import QConv
from .lite_data import LatentCropSampler, held_out, load_pairs
from .models import LATENT_FIX, output_to_pixels, pixels_to_input, synthesis_transform
from .train import FastPath, Prefetcher, learning_rate, save_checkpoint
from .weight_steps import choose_weight_fix_positions

CRITERIA = ("l1", "energy")
"""How hidden channels are ranked for keeping: ``l1``, the L1 norm of the producing filter (Li et al. 2017);
``energy``, E[f_c²] · ‖W_next[c]‖², the share of the next layer's input energy that channel carries."""
INITS = ("scratch", "prune", "prune-ls")


class LiteSynthesis(nn.Module):
    """g_s with hidden widths ``widths`` = (c₁, c₂, c₃): ŷ (M channels, fix 0) → x̂ (3 channels, fix 8).

    The full model's synthesis with other widths (``fxlic.qat.models.synthesis_transform``); the layers are
    named ``g_s.0`` … ``g_s.3`` as there, so the exported layers replace the teacher's one for one
    (``fxlic.reference.hyperprior.IntegerHyperprior``)."""

    def __init__(self, latent_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.g_s = synthesis_transform(latent_channels, self.widths)

    def forward(self, y_hat: torch.Tensor, features: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = y_hat
        for i, layer in enumerate(self.g_s):
            x = layer(x)
            if features is not None and i < 3:
                features.append(x)
        return x

    def named_qconvs(self) -> list[tuple[str, QConv]]:
        return [(f"g_s.{i}", m) for i, m in enumerate(self.g_s)]

    def config_dict(self) -> dict:
        return {"latent_channels": int(self.g_s[0].conv.in_channels), "widths": list(self.widths)}

    @property
    def quantized(self) -> bool:
        return bool(self.g_s[0].quantized)

    def start_calibration(self) -> None:
        for _, m in self.named_qconvs():
            m.calibrating = True
            m._samples = []

    def finish_calibration(self) -> dict[str, list[int]]:
        fix_in = LATENT_FIX
        for _, layer in self.named_qconvs():
            fix_in = layer.finish_calibration(fix_in)
        return self.fix_positions()

    def activation_consumers(self) -> dict[str, list[str]]:
        """Each hidden activation's producer → the layer that reads it (``fxlic.qat.activation_steps``)."""
        names = [name for name, _ in self.named_qconvs()]
        return {name: [next_name] for name, next_name in zip(names, names[1:])}

    def fix_positions(self) -> dict[str, list[int]]:
        """(f_in, f_w, f_b, f_out) of every layer, by name."""
        return {name: [int(v) for v in m.fix] for name, m in self.named_qconvs()}


def teacher_synthesis(model_file) -> nn.Sequential:
    """The int8 teacher's g_s as a torch QAT module (fake-quantized, = the integer g_s), frozen."""
    from .export import model_from_model_file

    teacher = model_from_model_file(model_file).g_s
    return teacher.eval().requires_grad_(False)


def teacher_features(teacher: nn.Sequential, y_hat: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(pre-activation outputs, post-activation outputs) of every teacher layer on ŷ."""
    pre, post = [], []
    x = y_hat
    for layer in teacher:
        z = layer._conv(x, *_effective_params(layer))
        pre.append(z)
        x = layer(x)
        post.append(x)
    return pre, post


def _effective_params(layer: QConv) -> tuple[torch.Tensor, torch.Tensor]:
    from .fakequant import fake_quant_param

    if bool(layer.quantized):
        return fake_quant_param(layer.conv.weight, layer.fix_w), fake_quant_param(layer.conv.bias, layer.fix_b)
    return layer.conv.weight, layer.conv.bias


# ---- initialization -------------------------------------------------------------------------------------
@torch.no_grad()
def channel_ranking(teacher: nn.Sequential, batches: list[torch.Tensor], criterion: str) -> list[torch.Tensor]:
    """For each hidden layer (0, 1, 2) of the teacher, its output channels from most to least important."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    rankings = []
    for layer_index in range(3):
        producer, consumer = teacher[layer_index], teacher[layer_index + 1]
        if criterion == "l1":
            score = producer.conv.weight.abs().sum(dim=(0, 2, 3))  # tconv weight: C_in × C_out × k × k
        else:
            energy = torch.zeros(producer.conv.out_channels, dtype=torch.float64)
            for y_hat in batches:
                _, post = teacher_features(teacher, y_hat)
                energy += post[layer_index].double().pow(2).mean(dim=(0, 2, 3))
            outgoing = consumer.conv.weight.double().pow(2).sum(dim=(1, 2, 3))  # per input channel
            score = energy * outgoing
        rankings.append(torch.argsort(score, descending=True))
    return rankings


def _unfold_transposed(x: torch.Tensor, layer: QConv) -> torch.Tensor:
    """im2col of a k×k stride-s transposed conv: B×(C_in·k²)×(H_out·W_out) columns U such that the layer's
    output is W' U + b with W'[o, (i, a, b)] = W[i, o, k−1−a, k−1−b] (a transposed conv is a conv of the
    zero-upsampled input with the flipped kernel, padded by k − 1 − p)."""
    k, s, p = layer.conv.kernel_size[0], layer.stride, layer.padding
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, (h - 1) * s + 1, (w - 1) * s + 1)
    up[:, :, ::s, ::s] = x
    return F.unfold(up, k, padding=k - 1 - p)


@torch.no_grad()
def refit_least_squares(layer: QConv, inputs: list[torch.Tensor], targets: list[torch.Tensor],
                        ridge: float = 1e-4) -> float:
    """Set ``layer``'s weight and bias to the least-squares fit of ``targets`` (pre-activation, B×C_out×H×W)
    from ``inputs`` (B×C_in×h×w), over all batches; returns the relative residual ‖T − W'U − b‖² / ‖T‖².
    A small ridge (relative to the mean diagonal) keeps the normal equations well conditioned."""
    k = layer.conv.kernel_size[0]
    c_in, c_out = layer.conv.in_channels, layer.conv.out_channels
    dim = c_in * k * k + 1
    gram = torch.zeros(dim, dim, dtype=torch.float64)
    cross = torch.zeros(c_out, dim, dtype=torch.float64)
    target_energy = 0.0
    pairs = [(x[i : i + 1], t[i : i + 1]) for x, t in zip(inputs, targets, strict=True) for i in range(len(x))]
    for x, t in pairs:  # one crop at a time: the columns of a whole batch at full resolution do not fit
        cols = _unfold_transposed(x.double(), layer)  # 1 × (C_in k²) × P
        cols = torch.cat([cols, cols.new_ones(cols.shape[0], 1, cols.shape[2])], dim=1)
        flat_t = t.double().flatten(2)  # B × C_out × P
        gram += torch.einsum("bip,bjp->ij", cols, cols)
        cross += torch.einsum("bop,bjp->oj", flat_t, cols)
        target_energy += float(flat_t.pow(2).sum())
    gram += ridge * gram.diagonal().mean() * torch.eye(dim, dtype=torch.float64)
    solution = torch.linalg.solve(gram, cross.T).T  # C_out × dim
    residual = target_energy - 2 * float((solution * cross).sum()) + float((solution @ gram * solution).sum())
    flipped = solution[:, :-1].reshape(c_out, c_in, k, k)
    layer.conv.weight.copy_(flipped.flip(2, 3).permute(1, 0, 2, 3).to(layer.conv.weight.dtype))
    layer.conv.bias.copy_(solution[:, -1].to(layer.conv.bias.dtype))
    return residual / max(target_energy, 1e-30)


@torch.no_grad()
def prune_from_teacher(student: LiteSynthesis, teacher: nn.Sequential, batches: list[tuple[torch.Tensor, torch.Tensor]],
                       criterion: str = "energy", least_squares: bool = True) -> dict[str, float]:
    """Initialize ``student`` from ``teacher`` by keeping each hidden layer's most important channels.

    ``batches``: (ŷ, image pixels) pairs of training crops. Without ``least_squares`` the kept weights are
    copied (the teacher's function is cut, not kept); with it, layers 1–3 are refitted in order on the
    student's own inputs (so each fit corrects the errors of the layers before), layers 1–2 to the teacher's
    pre-activations of the kept channels, layer 3 to the image. Returns each refit's relative residual."""
    latents = [y for y, _ in batches]
    keep = [r[:w].sort().values for r, w in zip(channel_ranking(teacher, latents, criterion), student.widths,
                                                strict=True)]
    previous: torch.Tensor | None = None
    for i, (s_layer, t_layer) in enumerate(zip(student.g_s, teacher, strict=True)):
        w, b = _effective_params(t_layer)
        w = w if previous is None else w[previous]  # tconv weight: C_in × C_out × k × k
        if i < 3:
            w, b = w[:, keep[i]], b[keep[i]]
        s_layer.conv.weight.copy_(w)
        s_layer.conv.bias.copy_(b)
        previous = keep[i] if i < 3 else None
    residuals: dict[str, float] = {}
    if not least_squares:
        return residuals
    inputs = latents
    for i in range(4):
        layer = student.g_s[i]
        if i > 0:
            targets = ([teacher_features(teacher, y)[0][i][:, keep[i]] for y in latents] if i < 3 else
                       [pixels_to_input(p) for _, p in batches])
            residuals[f"g_s.{i}"] = refit_least_squares(layer, inputs, targets)
        inputs = [layer(x) for x in inputs]
    return residuals


@torch.no_grad()
def fit_adapters(adapters: nn.ModuleList, student: LiteSynthesis, teacher: nn.Sequential,
                 latents: list[torch.Tensor], ridge: float = 1e-4) -> list[float]:
    """Least-squares 1×1 adapters from the student's hidden features to the teacher's (per pixel, with bias),
    so feature distillation starts from the best linear match rather than a random map. Returns each
    adapter's relative residual."""
    residuals = []
    for index, adapter in enumerate(adapters):
        rows, targets = [], []
        for y_hat in latents:
            features: list[torch.Tensor] = []
            student(y_hat, features)
            _, post = teacher_features(teacher, y_hat)
            rows.append(features[index].double().permute(0, 2, 3, 1).reshape(-1, features[index].shape[1]))
            targets.append(post[index].double().permute(0, 2, 3, 1).reshape(-1, post[index].shape[1]))
        x = torch.cat(rows)
        x = torch.cat([x, x.new_ones(len(x), 1)], dim=1)
        t = torch.cat(targets)
        gram = x.T @ x
        gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        solution = torch.linalg.solve(gram, x.T @ t)  # (C_s + 1) × C_t
        adapter.weight.copy_(solution[:-1].T.reshape(adapter.weight.shape).float())
        adapter.bias.copy_(solution[-1].float())
        residuals.append(float((x @ solution - t).pow(2).sum() / t.pow(2).sum()))
    return residuals


# ---- evaluation -----------------------------------------------------------------------------------------
VALIDATION_LATENTS = 32
"""Side, in latents, of the validation window of each photo (512² pixels)."""


@torch.no_grad()
def psnr_on(student: nn.Module, pairs: list[dict], margin: int = 2) -> dict[str, float]:
    """PSNR (dB, over all pixels) of the student's and the cached teacher's reconstructions of the central
    (up to) 512² pixels of whole photos (``fxlic.qat.lite_data.load_pairs``), decoded from the photo's ŷ with
    ``margin`` latents of context a side: what a whole-image decode gives there (g_s sees about one latent
    around each; the teacher's reconstruction was decoded from the whole ŷ)."""
    student.eval()
    err_s = err_t = count = 0.0
    for pair in pairs:  # a window of up to VALIDATION_LATENTS² latents, `margin` inside the photo's edges
        side_h = min(VALIDATION_LATENTS, pair["latent_h"] - 2 * margin)
        side_w = min(VALIDATION_LATENTS, pair["latent_w"] - 2 * margin)
        top = (pair["latent_h"] - side_h) // 2
        left = (pair["latent_w"] - side_w) // 2
        y_hat = pair["y_hat"][:, top - margin : top + side_h + margin, left - margin : left + side_w + margin]
        x_hat = output_to_pixels(student(torch.from_numpy(y_hat).float()[None]).float())[0].round()
        cut = 16 * margin
        x_hat = x_hat[:, cut : cut + 16 * side_h, cut : cut + 16 * side_w]
        rows, cols = slice(16 * top, 16 * (top + side_h)), slice(16 * left, 16 * (left + side_w))
        image = torch.from_numpy(pair["image"][rows, cols]).permute(2, 0, 1).float()
        teacher = torch.from_numpy(pair["teacher"][rows, cols]).permute(2, 0, 1).float()
        err_s += float(((x_hat - image) ** 2).sum())
        err_t += float(((teacher - image) ** 2).sum())
        count += image.numel()
    student.train()
    return {"psnr": 10 * math.log10(255**2 * count / err_s), "teacher_psnr": 10 * math.log10(255**2 * count / err_t)}


LOG_MSE_FLOOR = 1.0 / 255.0**2
"""ε of ``crop_log_mse``: an MSE of one squared grey level, so that a crop of flat sky (MSE near 0) cannot take
the whole batch's weight."""


def crop_log_mse(crop_mse: torch.Tensor) -> torch.Tensor:
    """Mean over crops of log(MSE + ε), scaled by the batch's (detached) mean MSE (``--loss log-mse``).

    Kodak's figures, like every RD curve here, average PSNR per image: a dB lost on a smooth image counts as
    much as one on a busy image, although the smooth image's MSE is a tenth of the busy one's. The plain MSE of
    a batch weighs each crop by its own error, so the student learns the busy crops and leaves smooth ones with
    an error that costs it most in dB. The gradient of log(MSE_c) is ∇MSE_c / MSE_c: each crop weighs as its
    share of a per-crop PSNR. The detached scale keeps the gradient's size that of the plain MSE (so gradient
    clipping and the learning rate mean what they did); it changes only how crops are weighed."""
    return torch.log(crop_mse + LOG_MSE_FLOOR).mean() * (crop_mse.detach().mean() + LOG_MSE_FLOOR)


@torch.no_grad()
def crops_mse(student: nn.Module, crops: list[tuple[torch.Tensor, ...]], margin: int) -> float:
    """The student's MSE to the photo, in squared grey levels, on sampled training crops (ŷ, pixels, …),
    scored on the crops' centres as in training: the objective of the weight-step search."""
    total = 0.0
    for y_hat, pixels, *_ in crops:
        recon = output_to_pixels(crop_margin(student(y_hat), y_hat, margin).float())
        total += float(torch.mean((recon - pixels) ** 2))
    return total / len(crops)


def crop_margin(x: torch.Tensor, latents: torch.Tensor, margin: int) -> torch.Tensor:
    """The centre of an N×C×H×W tensor computed from ``latents`` (N×M×h×w): ``margin`` latents cut from every
    side, at the tensor's own resolution (H / h pixels per latent)."""
    if not margin:
        return x
    cut = margin * (x.shape[-1] // latents.shape[-1])
    return x[..., cut:-cut, cut:-cut]


def validation_pairs(args: argparse.Namespace) -> list[dict]:
    """What every choice is measured on (never Kodak). With ``--holdout-every K``: the held-out photos (never
    trained on), as they are (no flips), from every ``--val-cache`` folder (default: the training caches).
    Without: every ``--val-every-nth`` cached training photo (a fit, not a generalization, measure)."""
    if args.holdout_every:
        folders = args.val_cache or args.cache
        return [pair for folder in folders for pair in
                load_pairs(folder, lambda stem: held_out(stem, args.holdout_every) and "_" not in stem)]
    return load_pairs(args.cache[0])[:: args.val_every_nth]


# ---- training -------------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> Path:
    """Train (or resume) a lite decoder: float, then ``--phase qat``. Checkpoints and ``log.csv`` in --out."""
    from fxlic.models import load

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    teacher_file = load(args.model, args.quality, args.model_file)
    teacher = teacher_synthesis(teacher_file)
    sampler = LatentCropSampler(args.cache, args.crop, seed=args.seed, margin=args.margin,
                                holdout_every=args.holdout_every)
    validation = validation_pairs(args)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False) if ckpt_path.exists() else None
    init = torch.load(args.init_from, map_location="cpu", weights_only=False) if args.init_from and not state else None
    source = state or init  # a resumed run or a start from another lite checkpoint keeps that student's widths
    widths = tuple(source["config"]["widths"]) if source else tuple(args.widths)
    student = LiteSynthesis(sampler.latent_channels, widths)
    adapters = nn.ModuleList([nn.Conv2d(w, t.conv.out_channels, 1) for w, t in zip(widths, teacher[:3], strict=True)])
    record: dict = {}
    if state is not None:
        student.load_state_dict(state["model"])
        if "adapters" in state:
            adapters.load_state_dict(state["adapters"])
        record = state.get("record", {})
        print(f"resuming {ckpt_path} at step {state['step']} ({state.get('phase', 'float')})")
    elif init is not None:
        student.load_state_dict(init["model"])
        record = {"init": f"from {args.init_from}", **init.get("record", {})}
        print(f"initialized from {args.init_from}")
    else:
        plain = LatentCropSampler(args.cache, args.crop, seed=args.seed + 1,  # no margin: the image is the target
                                  holdout_every=args.holdout_every)
        init_batches = [plain.batch(args.batch)[:2] for _ in range(args.init_batches)]
        if args.init != "scratch":
            residuals = prune_from_teacher(student, teacher, init_batches, args.criterion, args.init == "prune-ls")
            record["init_residuals"] = residuals
        record["init"] = args.init
        record["criterion"] = args.criterion
        record["start_psnr"] = psnr_on(student, validation)["psnr"]
        print(f"init {args.init} ({args.criterion}): {record['start_psnr']:.2f} dB on the validation crops "
              f"(teacher {psnr_on(student, validation)['teacher_psnr']:.2f}); residuals {record.get('init_residuals')}")
    if state is None and args.feature_distill > 0:
        latents = [sampler.batch(args.batch)[0] for _ in range(args.init_batches)]
        fits = fit_adapters(adapters, student, teacher, latents)
        print(f"adapters fitted by least squares: relative residuals {fits}")
    phase = args.phase
    if phase == "qat" and not student.quantized:
        float_student = copy.deepcopy(student) if args.adaround else None
        student.start_calibration()
        with torch.no_grad():
            for _ in range(args.calib_batches):
                student(sampler.batch(args.batch)[0])
        fixes = student.finish_calibration()
        searches = [(choose_weight_fix_positions, args.weight_steps),  # f_w, then the hidden layers' f_out,
                    (choose_activation_fix_positions, args.activation_steps)]  # by the student's output
        if any(kind == "search" for _, kind in searches):
            crops = [sampler.batch(args.batch) for _ in range(args.calib_batches)]
            for search, kind in searches:
                if kind == "search":
                    search(student, lambda model: crops_mse(model, crops, args.margin), report=print)
            fixes = student.fix_positions()
        if args.adaround:  # each weight's floor or ceil by the layer's output (fxlic.qat.adaround)
            print(f"PTQ before AdaRound {psnr_on(student, validation)['psnr']:.2f} dB")
            latents = [sampler.batch(args.batch)[0] for _ in range(args.calib_batches)]
            adaround_model(student, float_student, latents, lambda model, y_hat: model(y_hat), iters=args.adaround,
                           report=print)
        (out / "fix_positions.json").write_text(json.dumps(fixes, indent=1))
        print(f"calibrated: {fixes}; PTQ {psnr_on(student, validation)['psnr']:.2f} dB")
        record["ptq_psnr"] = psnr_on(student, validation)["psnr"]
    fast = FastPath.choose(args.precision, phase, torch.device("cpu"))
    params = list(student.parameters()) + (list(adapters.parameters()) if args.feature_distill > 0 else [])
    optimizer = fast.adam(params, lr=args.lr)
    average = WeightAverage(student, args.ema)
    step, elapsed_before = 0, 0.0
    if state is not None and state.get("phase", "float") == phase:
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        average.load_state_dict(state.get("ema"))
        sampler.set_state(state["sampler"])
        step, elapsed_before = state["step"], state.get("elapsed_s", 0.0)
    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log_file = log_path.open("a", newline="")
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "phase", "lr", "loss", "mse", "psnr", "distill_out", "distill_feat", "val_psnr",
                      "elapsed_s"])
    start = time.time()

    def elapsed() -> float:
        return elapsed_before + time.time() - start

    def checkpoint(val: float | None = None) -> None:
        loader.settle()
        if val is not None:
            record[f"{phase}_val_psnr"] = val
        save_checkpoint(ckpt_path, {"model": student.state_dict(), "adapters": adapters.state_dict(),
                                    "optimizer": optimizer.state_dict(), "sampler": sampler.state(), "step": step,
                                    "phase": phase, "config": student.config_dict(), "elapsed_s": elapsed(),
                                    "record": record, "args": {k: str(v) for k, v in vars(args).items()},
                                    "ema": average.state_dict()})

    best_path = out / "best.pt"
    best = torch.load(best_path, map_location="cpu", weights_only=False)["val_psnr"] if best_path.exists() else None

    def keep_best(val: float) -> None:
        """QAT: keep the student of the best validation so far (``best.pt``, what the recipe exports): its
        validation swings by ±0.1 dB from one evaluation to the next as weights cross rounding thresholds."""
        nonlocal best
        if phase == "qat" and (best is None or val > best):
            best = val
            # with --ema, the validated student is the averaged one
            save_checkpoint(best_path, {"model": average.model_state_dict(), "config": student.config_dict(),
                                        "step": step, "phase": phase, "val_psnr": val, "record": record,
                                        "elapsed_s": elapsed(), "ema": args.ema})

    deadline = start + args.minutes * 60 if args.minutes else math.inf
    loader = Prefetcher(lambda: sampler.batch(args.batch))
    running: dict[str, float] = {}
    first = step
    bar = tqdm(total=args.steps, initial=step, desc=f"lite {phase} {widths}", unit="step", smoothing=0.05,
               mininterval=30)
    student.train()
    while step < args.steps and time.time() < deadline:
        progress = step / args.steps
        if args.minutes:
            progress = max(progress, (time.time() - start) / (args.minutes * 60))
        warmup = min(1.0, (step - first + 1) / args.warmup) if args.warmup else 1.0
        lr = learning_rate(progress, args.lr, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        y_hat, pixels, teacher_pixels = loader.next()
        use_features = args.feature_distill > 0 and progress < args.feature_until
        features: list[torch.Tensor] | None = [] if use_features else None
        with fast.autocast():
            x_hat = student(y_hat, features)
            if use_features:
                with torch.no_grad():
                    _, targets = teacher_features(teacher, y_hat)
                feat_loss = sum(F.mse_loss(crop_margin(a(f).float(), y_hat, args.margin),
                                           crop_margin(t, y_hat, args.margin).float())
                                / crop_margin(t, y_hat, args.margin).float().pow(2).mean().clamp_min(1e-12)
                                for a, f, t in zip(adapters, features, targets, strict=False)) / 3
        recon = output_to_pixels(crop_margin(x_hat, y_hat, args.margin).float())
        crop_mse = torch.mean(((recon - pixels) / 255.0) ** 2, dim=(1, 2, 3))
        mse = crop_mse.mean()
        loss = mse if args.loss == "mse" else crop_log_mse(crop_mse)
        out_gap = torch.mean(((recon - teacher_pixels) / 255.0) ** 2)
        if args.output_distill > 0:
            loss = loss + args.output_distill * out_gap
        if use_features:  # relative feature error (‖A(f) − t‖² / ‖t‖², mean of the three layers)
            loss = loss + args.feature_distill * feat_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        average.update()
        step += 1
        values = {"loss": float(loss.detach()), "mse": float(mse.detach()), "distill_out": float(out_gap.detach()),
                  "distill_feat": float(feat_loss.detach()) if use_features else 0.0}
        for key, value in values.items():
            running[key] = 0.98 * running.get(key, value) + 0.02 * value
        psnr = -10 * math.log10(max(running["mse"], 1e-12))
        bar.update(1)
        bar.set_postfix(psnr=f"{psnr:.2f}")
        val = None
        if step % args.val_every == 0:
            with average.applied():
                val = psnr_on(student, validation)["psnr"]
            keep_best(val)
        if step % args.log_every == 0 or val is not None:
            log.writerow([step, phase, f"{lr:.3g}", f"{running['loss']:.6f}", f"{running['mse']:.7f}", f"{psnr:.3f}",
                          f"{running['distill_out']:.7f}", f"{running['distill_feat']:.5f}",
                          "" if val is None else f"{val:.3f}", f"{elapsed():.1f}"])
            log_file.flush()
        if step % args.ckpt_every == 0:
            checkpoint(val)
    bar.close()
    loader.close()
    with average.applied():
        final = psnr_on(student, validation)
    keep_best(final["psnr"])
    log.writerow([step, phase, "", "", "", "", "", "", f"{final['psnr']:.3f}", f"{elapsed():.1f}"])
    log_file.close()
    checkpoint(final["psnr"])
    print(f"lite {phase} {widths}: step {step}, {elapsed() / 60:.1f} min in all, validation {final['psnr']:.2f} dB "
          f"(teacher {final['teacher_psnr']:.2f})")
    return ckpt_path


# ---- export ---------------------------------------------------------------------------------------------
def load_student(path: str | Path) -> tuple[LiteSynthesis, dict]:
    """A lite checkpoint's student (float or QAT, as saved) and the checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    student = LiteSynthesis(state["config"]["latent_channels"], state["config"]["widths"])
    student.load_state_dict(state["model"])
    return student.eval(), state


def export_decoder(student: LiteSynthesis, parent, name: str, training: dict | None = None):
    """The int8 decoder file of a QAT student for the streams of ``parent`` (a ``ModelFile``)."""
    from fxlic.reference.modelfile import DECODER_FORMAT, DECODER_FORMAT_VERSION, DecoderFile

    from .export import export_layers

    entries, layers = export_layers(student)
    meta = {"format": DECODER_FORMAT, "format_version": DECODER_FORMAT_VERSION, "name": name,
            "architecture": "lite-synthesis", "widths": list(student.widths),
            "decodes": {"model": parent.name, "quality": parent.quality, "hash": parent.content_hash().hex()},
            "layers": entries, "training": training or {}}
    return DecoderFile(meta=meta, layers=layers)


def export_main(argv: list[str]) -> int:
    from fxlic.models import load

    p = argparse.ArgumentParser(prog="python -m fxlic.qat.lite export",
                                description="Export a QAT lite checkpoint to an int8 decoder file.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="decoder file (models/decoders/<model>-q<Q>.<name>.npz)")
    p.add_argument("--name", required=True, help="decoder name, e.g. lite48")
    p.add_argument("--model", default="meanscale")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--model-file", default=None)
    args = p.parse_args(argv)
    student, state = load_student(args.checkpoint)
    if not student.quantized:
        raise SystemExit(f"{args.checkpoint} is a float checkpoint: run --phase qat first")
    parent = load(args.model, args.quality, args.model_file)
    training = {"record": state.get("record", {}), "steps": state["step"], "elapsed_s": state.get("elapsed_s"),
                "args": state.get("args", {})}
    decoder = export_decoder(student, parent, args.name, training)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    decoder.save(args.out)
    print(f"wrote {args.out}: {args.name} {decoder.widths} for {parent.name} q{parent.quality}, "
          f"hash {decoder.content_hash().hex()[:16]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fxlic.qat.lite", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="meanscale", help="teacher model (its streams are what the student decodes)")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--model-file", default=None, help="teacher model file instead of a shipped one")
    p.add_argument("--cache", type=Path, nargs="+", required=True,
                   help="folders of cached (ŷ, image) pairs (python -m fxlic.qat.lite_data)")
    p.add_argument("--holdout-every", type=int, default=0, metavar="K",
                   help="hold every K-th photo (all its flips and scales) out of training and validate on it")
    p.add_argument("--val-cache", type=Path, nargs="+", default=None,
                   help="with --holdout-every: validate on the held-out photos of these folders (default: --cache)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--widths", type=int, nargs=3, default=(48, 48, 48), metavar=("C1", "C2", "C3"),
                   help="hidden widths of g_s (a resumed run, or one --init-from a lite checkpoint, keeps its own)")
    p.add_argument("--init", choices=INITS, default="prune-ls")
    p.add_argument("--init-from", type=Path, default=None, help="start from another lite checkpoint (same widths)")
    p.add_argument("--criterion", choices=CRITERIA, default="energy")
    p.add_argument("--init-batches", type=int, default=8)
    p.add_argument("--phase", choices=("float", "qat"), default="float")
    p.add_argument("--calib-batches", type=int, default=16)
    p.add_argument("--weight-steps", choices=("calibrated", "search"), default="calibrated",
                   help="QAT: each layer's weight fix position as calibrated (least squared error of the weights), "
                        "or searched among +0, +1, +2 by the student's MSE on training crops "
                        "(fxlic.qat.weight_steps)")
    p.add_argument("--activation-steps", choices=("calibrated", "search"), default="calibrated",
                   help="QAT: hidden activations' fix positions as calibrated, or searched among -1, +0, +1 by the "
                        "student's MSE on training crops (fxlic.qat.activation_steps)")
    p.add_argument("--adaround", type=int, default=0, metavar="ITERS",
                   help="QAT: after calibration, choose each weight's rounding by its layer's output (AdaRound), "
                        "ITERS steps per layer; 0: nearest")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and keep the exponential moving average of the weights (e.g. 0.999; 0: off)")
    p.add_argument("--loss", choices=("mse", "log-mse"), default="mse",
                   help="training loss: the batch's MSE, or the mean of each crop's log MSE (weighs crops as a "
                        "per-image PSNR average does; crop_log_mse)")
    p.add_argument("--output-distill", type=float, default=0.0, help="α: weight of MSE(x̂, teacher's x̂)")
    p.add_argument("--feature-distill", type=float, default=0.0, help="β: weight of the adapted feature MSE")
    p.add_argument("--feature-until", type=float, default=0.5, help="feature distillation for this part of the run")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--minutes", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=int, default=1, help="latents around each crop the student sees but is not "
                   "scored on (no zero padding inside the scored area, as in a whole-image decode)")
    p.add_argument("--val-every-nth", type=int, default=4, help="validate on the centre of every n-th cached "
                   "training photo")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m fxlic.qat.lite [train] ARGS`` trains; ``python -m fxlic.qat.lite export CKPT …`` exports."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    train(build_parser().parse_args(argv[1:] if argv[:1] == ["train"] else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
