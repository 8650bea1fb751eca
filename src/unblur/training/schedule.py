"""Learning-rate schedule: linear warm-up, then cosine decay to ``min_lr``.

Implemented as a :class:`torch.optim.lr_scheduler.LambdaLR` whose factor is a small picklable
object, so ``scheduler.state_dict()`` round-trips through checkpoints.

Step ``t`` (0-based, the number of optimiser steps already taken) gets
``lr * (t + 1) / warmup`` for ``t < warmup`` and then
``min_lr + (lr - min_lr) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2``.
"""
from __future__ import annotations

import math

import torch


class WarmupCosine:
    def __init__(self, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float):
        self.total_steps = int(total_steps)
        self.warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
        self.base_lr = float(base_lr)
        self.min_lr = float(min_lr)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(max(step - self.warmup_steps, 0) / span, 1.0)
        floor = self.min_lr / self.base_lr if self.base_lr > 0 else 0.0
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                  min_lr: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR for every parameter group of ``optimizer`` (base lr = the group's initial lr)."""
    lambdas = [WarmupCosine(total_steps, warmup_steps, g["lr"], min_lr) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
