"""Export a QAT checkpoint to the integer model file that the golden reference loads.

The export is what the QAT forward computes: weights and biases are quantized with the same STD_ROUND
at the same frozen, export-adjusted fix positions, so the integer reference equals the QAT fake-quant
forward layer by layer (checked by ``fxlic.qat.verify``). Entropy tables are built here, once, from
float distributions and stored as integers (Sun, Yu & Katto 2021): the decoder never evaluates a float.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fxlic.entropy.conditional import (  # the conditional entropy model owns the grid and the y tables
    SCALE_LEVELS,
    SCALE_MAX,
    SCALE_MIN,
    TAIL_MASS,
    build_scale_lut,
    build_y_tables,
    mean_frac_bits_for,
    scale_grid,
)
from fxlic.entropy.tables import TableSet, table_set_from_pmfs
from fxlic.fxp.layer import QuantConv
from fxlic.fxp.quant import quantize_param
from fxlic.reference.modelfile import CHARM_FORMAT_VERSION, FORMAT, Y_HAT_TWIN, Y_HAT_TWIN_FORMAT_VERSION, ModelFile

from .charm import CharmHyperprior, model_from_config
from .models import LATENT_FIX, MeanScaleHyperprior, synthesis_transform


@torch.no_grad()
def build_z_tables(model: MeanScaleHyperprior) -> TableSet:
    """Per-channel factorized tables of ẑ over [floor(lower quantile), ceil(upper quantile)] ∩ int8."""
    eb = model.entropy_bottleneck
    quantiles = eb.quantiles.detach().double()  # C×1×3: lower, median, upper
    lo = torch.clamp(torch.floor(quantiles[:, 0, 0]), -128, 127).long()
    hi = torch.clamp(torch.ceil(quantiles[:, 0, 2]), -128, 127).long()
    hi = torch.maximum(hi, lo)
    width = int((hi - lo).max()) + 1
    values = (lo[:, None] + torch.arange(width)[None, :]).float().unsqueeze(1)  # C×1×width
    lower = eb._logits_cumulative(values - 0.5, stop_gradient=True)
    upper = eb._logits_cumulative(values + 0.5, stop_gradient=True)
    sign = -torch.sign(lower + upper)
    pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).squeeze(1).double().numpy()
    pmfs, offsets = [], []
    for c in range(pmf.shape[0]):
        n = int(hi[c] - lo[c]) + 1
        direct = pmf[c, :n]
        pmfs.append(np.append(direct, max(0.0, 1.0 - float(direct.sum()))))
        offsets.append(int(lo[c]))
    return table_set_from_pmfs(pmfs, offsets)


def export_layers(model: MeanScaleHyperprior) -> tuple[list[dict], dict[str, QuantConv]]:
    """The int8 layers of a QAT model (and their meta entries), in dataflow order, with the ŷ twin where the
    model has one. Also for a lite decoder (``fxlic.qat.lite.LiteSynthesis``: g_s only, no twin)."""
    if not model.quantized:
        raise ValueError("export needs a QAT (quantized) model; run `fxlic train --phase qat` first")
    entries, layers = [], {}
    g_a = getattr(model, "g_a", None)
    twin_of = g_a[-1] if g_a is not None and model.config.latent_rounding == "accumulator" else None
    for name, qconv in model.named_qconvs():
        f_in, f_w, f_b, f_out = (int(v) for v in qconv.fix)
        weight = quantize_param(qconv.conv.weight.detach().double().numpy(), f_w)
        bias = quantize_param(qconv.conv.bias.detach().double().numpy(), f_b)
        entry = {"name": name, "transposed": qconv.transposed, "stride": qconv.stride,
                 "padding": qconv.padding, "activation": qconv.activation,
                 "fix_in": f_in, "fix_w": f_w, "fix_b": f_b, "fix_out": f_out}
        entries.append(entry)
        layers[name] = QuantConv(name=name, transposed=qconv.transposed, weight=weight, bias=bias,
                                 stride=qconv.stride, padding=qconv.padding, fix_in=f_in, fix_w=f_w,
                                 fix_b=f_b, fix_out=f_out, activation=qconv.activation)
        if qconv is twin_of:
            # the ŷ twin (FXP-Q6): a second DPU conv with g_a's last weights and output fix 0
            twin = replace(layers[name], name=Y_HAT_TWIN, fix_out=LATENT_FIX)
            entries.append({**entry, "name": Y_HAT_TWIN, "fix_out": LATENT_FIX})
            layers[Y_HAT_TWIN] = twin
    return entries, layers


def format_version(model: MeanScaleHyperprior) -> int:
    """The lowest model-file version that describes ``model`` (docs/model-file.md, Versioning)."""
    if model.config.latent_rounding == "accumulator":
        return Y_HAT_TWIN_FORMAT_VERSION
    return CHARM_FORMAT_VERSION if isinstance(model, CharmHyperprior) else 1


def mean_heads(model: MeanScaleHyperprior) -> list:
    """The QConvs whose int8 output is a mean μ of the y tables: h_s's mean head, or each ChARM slice's."""
    if isinstance(model, CharmHyperprior):
        return [stack[-1] for stack in model.cc_means]
    return [] if model.h_s_means is None else [model.h_s_means]


def export_model(model: MeanScaleHyperprior, name: str, quality: int, training: dict | None = None) -> ModelFile:
    model = model.cpu().eval()
    entries, layers = export_layers(model)
    grid = scale_grid()
    if isinstance(model, CharmHyperprior):  # one log2 σ head, so one scale LUT, per slice (docs/charm.md)
        scale_lut = np.stack([build_scale_lut(int(stack[-1].fix[3]), grid) for stack in model.cc_scales])
    else:
        scale_lut = build_scale_lut(int(model.h_s_scales.fix[3]), grid)
    mean_frac_bits = mean_frac_bits_for(max((int(head.fix[3]) for head in mean_heads(model)), default=None))
    meta = {
        "format": FORMAT,
        "format_version": format_version(model),
        "name": name,
        "quality": int(quality),
        "architecture": model.config.architecture,
        "config": model.config_dict(),
        "layers": entries,
        "entropy": {"mean_frac_bits": mean_frac_bits, "scale_levels": SCALE_LEVELS, "scale_min": SCALE_MIN,
                    "scale_max": SCALE_MAX, "tail_mass": TAIL_MASS, "precision": 16},
        "training": training or {},
    }
    if isinstance(model, CharmHyperprior):
        meta["charm"] = {"slices": model.config.slices, "fix_y_tilde": int(model.fix_y_tilde)}
    return ModelFile(meta=meta, layers=layers, scale_lut=scale_lut,
                     y_tables=build_y_tables(grid, mean_frac_bits), z_tables=build_z_tables(model))


def load_checkpoint_model(path: str | Path) -> tuple[MeanScaleHyperprior, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = model_from_config(state["config"])
    model.load_state_dict(state["model"])
    model.entropy_bottleneck.update(force=True)
    return model.eval(), state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fxlic export", description=__doc__)
    p.add_argument("checkpoint", help="QAT checkpoint.pt")
    p.add_argument("-o", "--out", required=True, help="model file to write (.npz)")
    p.add_argument("--name", help="model name stored in the file and in bitstreams "
                                       "(default: charm for a charm checkpoint, else meanscale)")
    p.add_argument("--quality", type=int, required=True, help="quality index stored in the file (0-255)")
    p.add_argument("--card", help="JSON with training facts to store in the model (data, steps, minutes, ...)")
    args = p.parse_args(argv)
    model, state = load_checkpoint_model(args.checkpoint)
    training = {"lambda": state.get("lmbda"), "steps": state.get("step"), "phase": state.get("phase"),
                "exported": time.strftime("%Y-%m-%d")}
    if args.card:
        training.update(json.loads(Path(args.card).read_text()))
    default_name = "charm" if isinstance(model, CharmHyperprior) else "meanscale"
    model_file = export_model(model, args.name or default_name, args.quality, training)
    model_file.save(args.out)
    print(f"wrote {args.out}: {len(model_file.layers)} layers, hash {model_file.content_hash().hex()[:16]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def model_from_model_file(model_file: ModelFile) -> MeanScaleHyperprior:
    """The QAT torch model whose fake-quant forward the model file encodes (for verification, fine-tuning).

    Weights and biases become q · 2^-f, which the fake quantizers map to themselves (STD_ROUND of an
    integer is that integer), and the fix positions are copied, so this model's QAT forward is the
    exported one. The factorized prior's density is not in the file (only its integer tables).
    """
    model = model_from_config(model_file.meta["config"])
    if model_file.decoder is not None:  # a lite decoder in place of g_s (fxlic.qat.lite)
        model.g_s = synthesis_transform(model.config.M, model_file.decoder.widths)
    with torch.no_grad():
        for name, qconv in model.named_qconvs():
            layer = model_file.layers[name]
            qconv.conv.weight.copy_(torch.from_numpy(layer.weight.astype(np.float64) * 2.0 ** -layer.fix_w))
            qconv.conv.bias.copy_(torch.from_numpy(layer.bias.astype(np.float64) * 2.0 ** -layer.fix_b))
            qconv.fix.copy_(torch.tensor([layer.fix_in, layer.fix_w, layer.fix_b, layer.fix_out]))
            qconv.quantized.fill_(True)
        if isinstance(model, CharmHyperprior):
            model.fix_y_tilde.fill_(int(model_file.meta["charm"]["fix_y_tilde"]))
    return model.eval()
