"""Choose each hidden activation's fix position f_out by what it does to the model, not to the activation.

Calibration (``QConv.finish_calibration``) picks f_out among {f₀, f₀ + 1, f₀ + 2}, f₀ the finest position that
holds the largest sample, by the squared error of the quantized *activation*. What the model loses is another
measure: a coarser step costs every value a little, a finer one clips the few largest. And QAT cannot move a
position (they are frozen buffers), so whatever calibration chose is what the int8 model keeps, whereas the
weights' rounding is re-learned by QAT within a few hundred steps (docs/training.md §5, "AdaRound").

``choose_activation_fix_positions`` is a coordinate search on the quantized model's objective, as
``fxlic.qat.weight_steps`` does for weights: one pass in dataflow order over every *hidden* activation (a
layer output that only other convs read: not the image, not ŷ or ẑ, not the entropy model's log-scales and
means), trying its calibrated f_out + each offset, which moves its consumers' f_in with it, and keeping the
best. Only positions under which the producer and every consumer are DPU-legal as they stand (FXP-P1, the ŷ
twin included) are tried, so the export adjustment moves nothing. Calibrated models only; run it after the
weight-step search and before QAT.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .layers import QConv
from .weight_steps import _twin_fix_out, best_offset, legal_weight_fix


def _legal(model: nn.Module, layer: QConv) -> bool:
    return legal_weight_fix(layer, layer.fix_w, _twin_fix_out(model, layer))


def choose_activation_fix_positions(model: nn.Module, objective: Callable[[nn.Module], float],
                                    offsets: tuple[int, ...] = (-1, 0, 1),
                                    report: Callable[[str], None] | None = None) -> dict[str, int]:
    """Set each hidden activation's f_out (and its consumers' f_in) to the calibrated one + the offset of least
    ``objective(model)`` (in place). ``model.activation_consumers()`` names, for each hidden activation's
    producer, the layers that read it. Returns the chosen offsets by producer name."""
    if not model.quantized:
        raise ValueError("choose_activation_fix_positions needs a calibrated (quantized) model")
    layers = dict(model.named_qconvs())
    chosen: dict[str, int] = {}
    for name, consumer_names in model.activation_consumers().items():
        producer, consumers = layers[name], [layers[c] for c in consumer_names]
        if producer.forced_fix_out is not None:
            continue
        calibrated = producer.fix_out

        def set_output_fix(offset: int, producer: QConv = producer, consumers: list[QConv] = consumers,
                           calibrated: int = calibrated) -> bool:
            producer.fix[3] = calibrated + offset
            for consumer in consumers:
                consumer.fix[0] = calibrated + offset
            return all(_legal(model, layer) for layer in (producer, *consumers))

        chosen[name], tried = best_offset(model, objective, offsets, set_output_fix)
        if report is not None:
            report(f"{name} → {', '.join(consumer_names)}: f_out {calibrated} → {calibrated + chosen[name]} ({tried})")
    if hasattr(model, "check_latent_twin"):
        model.check_latent_twin()
    return chosen
