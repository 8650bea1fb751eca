"""Base class of every restoration model: the call shapes DEVELOPERS.md promises."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..physics.conv import pad


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W are multiples of ``multiple``; returns the original size."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = pad(x, (0, ph, 0, pw), "reflect")
    return x, (H, W)


class RestorationModel(nn.Module):
    """Subclasses implement ``_forward(x)`` on inputs whose size is a multiple of ``size_multiple``
    and return ``[(image, scale), ...]`` (scale 1.0 = full resolution, 0.5 = half, 0.25 = quarter), last
    full-scale = prediction. ``forward_train`` crops a scale-``s`` output of an (H, W) input to
    ``(ceil(H * s), ceil(W * s))``, which ``size_multiple >= 1 / s`` guarantees is available."""

    size_multiple: int = 1

    def _forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        raise NotImplementedError

    def forward_train(self, x: torch.Tensor) -> dict:
        xp, (H, W) = pad_to_multiple(x, self.size_multiple)
        outs = []
        for img, scale in self._forward(xp):
            h, w = -(-H * scale // 1), -(-W * scale // 1)  # ceil(H * scale), exact for 0.5, 0.25
            outs.append((img[..., : int(h), : int(w)], scale))
        return {"outputs": outs}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.forward_train(x)["outputs"]
        return [img for img, s in outs if s == 1.0][-1]

    def estimate_kernels(self, x: torch.Tensor, size: int = 65) -> torch.Tensor | None:
        return None


def downscale(x: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """Image pyramid step used by multi-scale models and losses (bilinear, antialiased)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, antialias=True)
