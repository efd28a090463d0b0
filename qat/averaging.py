"""Weight averaging for quantization-aware training (``--ema`` of ``fxlic train`` and ``fxlic.qat.lite``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage:
    """An exponential moving average of a model's parameters (Polyak averaging), for QAT.

    Fake-quantized weights oscillate across their rounding thresholds (Nagel et al. 2022, "Overcoming
    oscillations in quantization-aware training"): the lite students' validation swung by up to ±0.3 dB between
    evaluations 500 steps apart, even at lr 5e-6. The average of the latent float weights moves slowly, so its
    quantized model is the steadier one to validate and export (docs/lite-decoders.md, docs/training.md).
    ``decay`` 0 disables it. Fix positions are buffers, not parameters: they are never averaged."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model, self.decay = model, decay
        self.average = {n: p.detach().clone() for n, p in model.named_parameters()} if decay > 0 else None

    def update(self) -> None:
        if self.average is None:
            return
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                self.average[name].mul_(self.decay).add_(param.detach(), alpha=1 - self.decay)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model with the averaged parameters inside the block, its own ones after it."""
        if self.average is None:
            yield
            return
        saved = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                param.copy_(self.average[name])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self.model.named_parameters():
                    param.copy_(saved[name])

    def model_state_dict(self) -> dict:
        """The model's state_dict with the averaged parameters in place of its own (its own when off)."""
        state = self.model.state_dict()
        return state if self.average is None else {**state, **self.average}

    def state_dict(self) -> dict | None:
        return self.average

    def load_state_dict(self, state: dict | None) -> None:
        if self.average is not None and state is not None:
            for name, value in state.items():
                self.average[name].copy_(value)
