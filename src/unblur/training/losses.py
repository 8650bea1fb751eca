"""Training losses: pixel losses, the FFT loss and multi-scale supervision.

All losses are computed in float32 (outputs produced under autocast are cast first) and
return a scalar (mean over the batch).

- ``l1``: mean |x - y|.
- ``charbonnier``: mean sqrt((x - y)^2 + eps^2) (equals ``eps`` when x == y).
- ``psnr``: the negative PSNR for data range 1, averaged over images: mean_b 10 log10(mse_b + 1e-8).
- ``fft``: mean of |Re| and |Im| of rfft2(x) - rfft2(y) (unnormalised FFT, as in DeepRFT; the small
  weight 0.01 compensates for its scale).

:class:`MultiScaleLoss` supervises every ``(image, scale)`` of ``model.forward_train`` against the
target downscaled with :func:`unblur.models.base.downscale`.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..physics.fft import rfft2


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).abs().mean()


def mse_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).square().mean()


def charbonnier_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    d = x.float() - y.float()
    return torch.sqrt(d * d + eps * eps).mean()


def psnr_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-PSNR (data range 1) averaged over the batch; minimising it maximises PSNR."""
    mse = (x.float() - y.float()).square().flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + 1e-8).mean()


def fft_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = rfft2(x.float()) - rfft2(y.float())
    return torch.view_as_real(d).abs().mean()


PIXEL_LOSSES = {"l1": l1_loss, "mse": mse_loss, "charbonnier": charbonnier_loss, "psnr": psnr_loss}
SCALES = (1.0, 0.5, 0.25)


def _match(out: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop both to their common size (an odd size gives ceil vs floor at half scale)."""
    h = min(out.shape[-2], tgt.shape[-2])
    w = min(out.shape[-1], tgt.shape[-1])
    return out[..., :h, :w], tgt[..., :h, :w]


class MultiScaleLoss(nn.Module):
    """``sum over outputs of scale_weight[s] * (pixel_weight * pixel + fft_weight * fft)``.

    Args:
        pixel: ``"l1"``, ``"charbonnier"``, ``"psnr"`` or ``"mse"``.
        pixel_weight, fft_weight: weights of the two terms (``fft_weight=0`` skips the FFT).
        scale_weights: weights of outputs at scales 1, 1/2, 1/4 (0 skips that scale).
        all_outputs: supervise every output; if False only the prediction (last full-scale output).
        charbonnier_eps: ``eps`` of the Charbonnier loss.

    ``forward(outputs, target)`` takes the ``[(image, scale), ...]`` list of ``forward_train`` (or a
    single tensor) and returns ``(total, parts)`` where ``parts`` holds detached per-term sums for logging.
    """

    def __init__(self, pixel: str = "l1", pixel_weight: float = 1.0, fft_weight: float = 0.01,
                 scale_weights=(1.0, 1.0, 1.0), all_outputs: bool = True, charbonnier_eps: float = 1e-3):
        super().__init__()
        if pixel not in PIXEL_LOSSES:
            raise ValueError(f"unknown pixel loss {pixel!r}; choose from {', '.join(PIXEL_LOSSES)}")
        self.pixel = pixel
        self.pixel_weight = float(pixel_weight)
        self.fft_weight = float(fft_weight)
        self.scale_weights = {s: float(w) for s, w in zip(SCALES, scale_weights)}
        self.all_outputs = all_outputs
        self.eps = float(charbonnier_eps)

    @classmethod
    def from_config(cls, cfg) -> "MultiScaleLoss":
        return cls(pixel=cfg["pixel"], pixel_weight=cfg["pixel_weight"], fft_weight=cfg["fft_weight"],
                   scale_weights=cfg["scale_weights"], all_outputs=cfg["all_outputs"],
                   charbonnier_eps=cfg["charbonnier_eps"])

    def _pixel(self, x, y):
        if self.pixel == "charbonnier":
            return charbonnier_loss(x, y, self.eps)
        return PIXEL_LOSSES[self.pixel](x, y)

    def forward(self, outputs, target: torch.Tensor):
        from ..models.base import downscale

        if torch.is_tensor(outputs):
            outputs = [(outputs, 1.0)]
        outputs = list(outputs)
        if not self.all_outputs:
            outputs = [[(img, s) for img, s in outputs if s == 1.0][-1]]
        targets: dict[float, torch.Tensor] = {1.0: target.float()}
        total = target.new_zeros((), dtype=torch.float32)
        parts = {"pixel": 0.0, "fft": 0.0}
        for img, scale in outputs:
            scale = float(scale)
            w = self.scale_weights.get(scale)
            if w is None:
                raise ValueError(f"MultiScaleLoss: unsupported output scale {scale} (expected one of {SCALES})")
            if w == 0:
                continue
            if scale not in targets:
                with torch.no_grad():
                    targets[scale] = downscale(target.float(), scale)
            out, tgt = _match(img.float(), targets[scale])
            pix = self._pixel(out, tgt)
            term = self.pixel_weight * pix
            parts["pixel"] += float(pix.detach()) * w
            if self.fft_weight > 0:
                f = fft_loss(out, tgt)
                term = term + self.fft_weight * f
                parts["fft"] += float(f.detach()) * w
            total = total + w * term
        return total, parts
