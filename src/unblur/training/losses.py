"""Training losses: pixel losses, the FFT loss, multi-scale supervision, and the kernel losses.

All losses are computed in float32 (outputs produced under autocast are cast first) and
return a scalar (mean over the batch).

- ``l1``: mean |x - y|.
- ``charbonnier``: mean sqrt((x - y)^2 + eps^2) (equals ``eps`` when x == y).
- ``psnr``: the negative PSNR for data range 1, averaged over images: mean_b 10 log10(mse_b + 1e-8).
- ``fft``: mean of |Re| and |Im| of rfft2(x) - rfft2(y) (unnormalised FFT, as in DeepRFT; the small
  weight 0.01 compensates for its scale).

:class:`MultiScaleLoss` supervises every ``(image, scale)`` of ``model.forward_train`` against the
target downscaled with :func:`unblur.models.base.downscale`.

Kernel losses, for models whose ``forward_train`` returns ``"kernels"`` (physical PSFs per stage):

- ``kernel_loss``: distance between an estimated and the true kernel *up to a shift* (blind deblurring recovers
  the kernel only up to a translation): both are zero-padded to a common canvas, centres aligned, with the centre
  convention of :func:`unblur.physics.kernels.pad_kernel` (that of :func:`unblur.metrics.kernel_psnr`), and the
  smallest sum over taps of ``|difference|`` (``l1``) or ``difference^2`` (``l2``) over integer shifts of up to
  ``max_shift`` px is kept. Its ``l2`` value is the squared error behind ``kernel_psnr`` with the same
  ``max_shift``. Differentiable (the gradient flows through the best shift).
- ``reblur_loss``: ``mean |k_est (*) sharp - blurred|`` with the *valid* convolution
  (:func:`unblur.physics.conv2d`) against the matching crop of the blurred image
  (:func:`unblur.physics.pipeline.crop_valid`): exactly how the synthetic dataset makes its pairs (the sharp crop is
  aligned with the blurred image made by a valid blur), so the true kernel scores the noise level only.

:class:`TrainingLoss` adds both (weights ``kernel_weight``, ``reblur_weight``; 0 = off) to the image loss and
returns ``(total, parts)`` with ``parts`` a dict of named, detached terms that the trainer logs as they come.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..metrics import moved_onto
from ..physics.conv import conv2d
from ..physics.fft import rfft2
from ..physics.kernels import pad_kernel
from ..physics.pipeline import crop_valid


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
        image_max_shift: > 0 compares each full-scale output with the target moved onto it by the best integer
            shift within this many px (and both cropped by it): for blind networks with physical kernels, whose
            result is only defined up to a translation (the estimated kernel's centre is a convention); against
            the unmoved target such a network learns to blur the edges whose place it cannot know. 0: as is.

    ``forward(outputs, target)`` takes the ``[(image, scale), ...]`` list of ``forward_train`` (or a
    single tensor) and returns ``(total, parts)`` where ``parts`` holds detached per-term sums for logging.
    """

    def __init__(self, pixel: str = "l1", pixel_weight: float = 1.0, fft_weight: float = 0.01,
                 scale_weights=(1.0, 1.0, 1.0), all_outputs: bool = True, charbonnier_eps: float = 1e-3,
                 image_max_shift: int = 0):
        super().__init__()
        if pixel not in PIXEL_LOSSES:
            raise ValueError(f"unknown pixel loss {pixel!r}; choose from {', '.join(PIXEL_LOSSES)}")
        self.pixel = pixel
        self.pixel_weight = float(pixel_weight)
        self.fft_weight = float(fft_weight)
        self.scale_weights = {s: float(w) for s, w in zip(SCALES, scale_weights)}
        self.all_outputs = all_outputs
        self.eps = float(charbonnier_eps)
        self.image_max_shift = int(image_max_shift)

    @classmethod
    def from_config(cls, cfg) -> "MultiScaleLoss":
        return cls(pixel=cfg["pixel"], pixel_weight=cfg["pixel_weight"], fft_weight=cfg["fft_weight"],
                   scale_weights=cfg["scale_weights"], all_outputs=cfg["all_outputs"],
                   charbonnier_eps=cfg["charbonnier_eps"], image_max_shift=cfg["image_max_shift"])

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
        parts = {"pixel": 0.0, **({"fft": 0.0} if self.fft_weight > 0 else {})}
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
            if self.image_max_shift and scale == 1.0:  # compared inside the band where the moved target wrapped
                m = self.image_max_shift
                out, tgt = out[..., m:-m, m:-m], moved_onto(tgt, out, m)[..., m:-m, m:-m]
            pix = self._pixel(out, tgt)
            term = self.pixel_weight * pix
            parts["pixel"] += float(pix.detach()) * w
            if self.fft_weight > 0:
                f = fft_loss(out, tgt)
                term = term + self.fft_weight * f
                parts["fft"] += float(f.detach()) * w
            total = total + w * term
        return total, parts


# --------------------------------------------------------------------------- kernel losses

KERNEL_NORMS = ("l1", "l2")


def _kernel_batch(k: torch.Tensor, name: str) -> torch.Tensor:
    """(kh, kw), (B, kh, kw) or (B, 1, kh, kw) -> (B, kh, kw) float32."""
    if k.ndim == 4 and k.shape[1] == 1:
        k = k[:, 0]
    elif k.ndim == 2:
        k = k[None]
    if k.ndim != 3:
        raise ValueError(f"{name} must have shape (kh, kw), (B, kh, kw) or (B, 1, kh, kw), got {tuple(k.shape)}")
    return k.float()


def kernel_loss(k_est: torch.Tensor, k_true: torch.Tensor, max_shift: int = 2, norm: str = "l1") -> torch.Tensor:
    """Distance between estimated and true kernels up to an integer shift, averaged over the batch.

    Per kernel: ``min over |dy|, |dx| <= max_shift of sum_taps |E shifted by (dy, dx) - T|`` (``norm="l1"``) or
    of the squared differences (``"l2"``), both kernels zero-padded to a common canvas with their centres aligned
    (large enough that no tap is lost by a shift). Kernels are compared as given (they should sum to 1).
    """
    if norm not in KERNEL_NORMS:
        raise ValueError(f"kernel loss norm must be one of {KERNEL_NORMS}, got {norm!r}")
    s = int(max_shift)
    if s < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    e, t = _kernel_batch(k_est, "estimated kernel"), _kernel_batch(k_true, "true kernel").to(k_est.device)
    H = max(e.shape[-2], t.shape[-2]) + 2 * s
    W = max(e.shape[-1], t.shape[-1]) + 2 * s
    T = pad_kernel(t, (H, W))
    E = pad_kernel(e, (H + 2 * s, W + 2 * s))  # its centre sits s px further from the top-left than T's
    costs = []
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            d = E[..., s - dy:s - dy + H, s - dx:s - dx + W] - T  # the estimate moved down dy, right dx
            costs.append(d.abs().sum((-2, -1)) if norm == "l1" else d.square().sum((-2, -1)))
    return torch.stack(costs, -1).amin(-1).mean()


def reblur_loss(k_est: torch.Tensor, sharp: torch.Tensor, blurred: torch.Tensor) -> torch.Tensor:
    """``mean |conv2d(sharp, k_est, "valid") - crop_valid(blurred)|`` for kernels (B | 1, 1, k, k) or (k, k).

    The valid blur of the sharp crop is aligned with the blurred image's crop by :func:`crop_valid` (the same
    alignment the synthetic dataset uses), so no boundary assumption enters the loss.
    """
    k = k_est.float()
    k = k[None, None] if k.ndim == 2 else k
    if k.shape[-2] > sharp.shape[-2] or k.shape[-1] > sharp.shape[-1]:
        raise ValueError(f"reblur loss: kernel {tuple(k.shape[-2:])} larger than the images {tuple(sharp.shape[-2:])}")
    pred = conv2d(sharp.float(), k, "valid")
    return (pred - crop_valid(blurred.float(), k.shape[-2:])).abs().mean()


class TrainingLoss(nn.Module):
    """The loss the trainer minimises: ``image + kernel_weight * kernel + reblur_weight * reblur + map_weight *
    map`` (``map``: L1 between a model's ``"radius_map"`` and the true blur-radius map, in pixels).

    ``image`` is a :class:`MultiScaleLoss`; the kernel terms average :func:`kernel_loss` (against the true kernels)
    and :func:`reblur_loss` (against the blurred input) over the stage kernels of ``forward_train``'s ``"kernels"``.

    ``forward(out, target, blurred=None, kernel=None)`` takes ``forward_train``'s dict (or an outputs list) and
    returns ``(total, parts)``; ``parts`` maps each active term's name (``pixel``, ``fft``, ``kernel``,
    ``reblur``) to its detached value, so new terms need no change in the trainer.
    """

    def __init__(self, image: MultiScaleLoss, kernel_weight: float = 0.0, reblur_weight: float = 0.0,
                 kernel_max_shift: int = 2, kernel_norm: str = "l1", map_weight: float = 0.0):
        super().__init__()
        if kernel_norm not in KERNEL_NORMS:
            raise ValueError(f"kernel loss norm must be one of {KERNEL_NORMS}, got {kernel_norm!r}")
        self.image = image
        self.kernel_weight, self.reblur_weight = float(kernel_weight), float(reblur_weight)
        self.kernel_max_shift, self.kernel_norm = int(kernel_max_shift), kernel_norm
        self.map_weight = float(map_weight)

    @property
    def uses_kernels(self) -> bool:
        """Whether a term needs the model's ``"kernels"``."""
        return self.kernel_weight > 0 or self.reblur_weight > 0

    @classmethod
    def from_config(cls, cfg) -> "TrainingLoss":
        return cls(MultiScaleLoss.from_config(cfg), kernel_weight=cfg["kernel_weight"],
                   reblur_weight=cfg["reblur_weight"], kernel_max_shift=cfg["kernel_max_shift"],
                   kernel_norm=cfg["kernel_norm"], map_weight=cfg["map_weight"])

    def forward(self, out, target: torch.Tensor, blurred: torch.Tensor | None = None,
                kernel: torch.Tensor | None = None, radius: torch.Tensor | None = None):
        out = out if isinstance(out, dict) else {"outputs": out}
        total, parts = self.image(out["outputs"], target)
        if self.map_weight > 0:
            if "radius_map" not in out:
                raise ConfigError("config: loss.map_weight > 0 but the model returns no blur-radius map")
            if radius is None:
                raise ConfigError("config: loss.map_weight > 0 needs the true blur-radius maps "
                                  "(train.data.blur: defocus-map)")
            m = (out["radius_map"].float() - radius.float()).abs().mean()
            total = total + self.map_weight * m
            parts["map"] = float(m.detach())
        if not self.uses_kernels:
            return total, parts
        stages = out.get("kernels")
        if not stages:
            raise ConfigError("config: loss.kernel_weight / loss.reblur_weight > 0 but the model returns no kernels")
        if self.kernel_weight > 0:
            if kernel is None:
                raise ConfigError("config: loss.kernel_weight > 0 needs the true kernels (synthetic training data)")
            k = sum(kernel_loss(s, kernel, self.kernel_max_shift, self.kernel_norm) for s in stages) / len(stages)
            total = total + self.kernel_weight * k
            parts["kernel"] = float(k.detach())
        if self.reblur_weight > 0:
            if blurred is None:
                raise ValueError("reblur loss needs the blurred input")
            r = sum(reblur_loss(s, target, blurred) for s in stages) / len(stages)
            total = total + self.reblur_weight * r
            parts["reblur"] = float(r.detach())
        return total, parts
