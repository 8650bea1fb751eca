"""Exponential moving average of a model's weights (the weights we validate and ship).

``ema = d * ema + (1 - d) * weights`` after every optimiser step, with the usual warm-up of the
decay, ``d = min(decay, (1 + n) / (10 + n))`` (n = updates so far), so the average is not dominated
by the random initialisation early in training. Integer buffers are copied.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP / the training wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(unwrap(model)).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.updates += 1
        src = unwrap(model).state_dict()
        for name, e in self.module.state_dict().items():
            s = src[name].detach()
            if e.dtype.is_floating_point:
                e.lerp_(s.to(e.dtype), 1.0 - d)
            else:
                e.copy_(s)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
