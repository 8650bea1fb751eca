"""Sensor noise models: additive Gaussian and Poisson-Gaussian (shot + read noise).

Both are callables ``noise(x, *, generator=None) -> Tensor`` on images ``(B, C, H, W)``. A level
(``sigma``, ``gain``) is either

- a number: the same for every image,
- a ``(B,)`` tensor: one value per image,
- a pair ``(low, high)``: one value per image drawn uniformly from the generator.

Random numbers are drawn on the generator's device (or the image's device without a generator)
and moved to the image, so one seed gives the same noise whatever device the image is on.

Example:
    >>> import torch
    >>> from unblur.physics.noise import GaussianNoise
    >>> x = torch.zeros(2, 1, 64, 64)
    >>> y = GaussianNoise(torch.tensor([0.1, 0.2]))(x, generator=torch.Generator().manual_seed(0))
    >>> [round(float(s), 1) for s in y.std(dim=(1, 2, 3))]
    [0.1, 0.2]
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError

__all__ = ["GaussianNoise", "PoissonGaussianNoise", "estimate_noise_sigma"]


def _draw_device(x: torch.Tensor, generator) -> torch.device:
    return generator.device if generator is not None else x.device


def _draw_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_image(x) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        raise InputError(f"noise expects a floating-point image (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    return x


def _check_level(value, what: str):
    """Validate a level at construction: number >= 0, (low, high) pair, or 1-D tensor."""
    if torch.is_tensor(value):
        if value.ndim > 1 or bool((value < 0).any()) or not bool(torch.isfinite(value).all()):
            raise InputError(f"{what} tensor must be finite, >= 0 and of shape () or (B,), got {value!r}")
        return value.detach()
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(isinstance(v, (int, float)) for v in value) or not 0 <= value[0] <= value[1]:
            raise InputError(f"{what} range must be (low, high) with 0 <= low <= high, got {value!r}")
        return (float(value[0]), float(value[1]))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise InputError(f"{what} must be a finite number >= 0, a (B,) tensor or a (low, high) pair, got {value!r}")
    return float(value)


def _per_image(value, x: torch.Tensor, generator, what: str) -> torch.Tensor:
    """The level as a (B, 1, 1, 1) tensor on x's device (drawing it if it is a range)."""
    B = x.shape[0]
    if isinstance(value, tuple):
        lo, hi = value
        u = torch.rand(B, generator=generator, device=_draw_device(x, generator), dtype=_draw_dtype(x))
        v = lo + (hi - lo) * u.to(x.device)
    elif torch.is_tensor(value):
        v = value.to(device=x.device, dtype=_draw_dtype(x))
        if v.ndim == 1 and v.shape[0] not in (1, B):
            raise InputError(f"{what} has {v.shape[0]} values for a batch of {B} images")
        v = v.reshape(-1).expand(B)
    else:
        v = torch.full((B,), value, device=x.device, dtype=_draw_dtype(x))
    return v.reshape(B, 1, 1, 1)


def _randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    n = torch.randn(x.shape, generator=generator, device=_draw_device(x, generator), dtype=_draw_dtype(x))
    return n.to(x.device)


class GaussianNoise:
    """Additive white Gaussian noise: ``y = x + sigma * n``, ``n ~ N(0, 1)`` i.i.d. per pixel and channel."""

    def __init__(self, sigma=0.01):
        self.sigma = _check_level(sigma, "GaussianNoise sigma")

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _check_image(x)
        sigma = _per_image(self.sigma, x, generator, "GaussianNoise sigma")
        return (x + sigma * _randn_like(x, generator)).to(x.dtype)

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma!r})"


class PoissonGaussianNoise:
    """Poisson-Gaussian (shot + read) noise: ``y = gain * Poisson(max(x, 0) / gain) + sigma * n``.

    ``gain`` is the intensity of one photo-electron: a pixel of value ``x`` collects on average
    ``x / gain`` photons (so ``1 / gain`` photons at full scale, e.g. ``gain=0.01`` is 100 photons).
    The noise keeps the mean (``E[y] = x`` for ``x >= 0``) and has variance ``gain * x + sigma**2``.
    ``sigma`` is the standard deviation of the additive Gaussian read noise. ``gain=0`` means no shot
    noise (only the Gaussian part). Apply it to linear intensities for a physical model.
    """

    def __init__(self, gain=0.01, sigma=0.0):
        self.gain = _check_level(gain, "PoissonGaussianNoise gain")
        self.sigma = _check_level(sigma, "PoissonGaussianNoise sigma")

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        x = _check_image(x)
        gain = _per_image(self.gain, x, generator, "PoissonGaussianNoise gain")
        sigma = _per_image(self.sigma, x, generator, "PoissonGaussianNoise sigma")
        shot = gain > 0
        safe = torch.where(shot, gain, torch.ones_like(gain))
        rate = (x.to(gain.dtype).clamp(min=0) / safe).to(_draw_device(x, generator))
        counts = torch.poisson(rate, generator=generator).to(x.device)
        y = torch.where(shot, counts * safe, x.to(gain.dtype))
        return (y + sigma * _randn_like(x, generator)).to(x.dtype)

    def __repr__(self) -> str:
        return f"PoissonGaussianNoise(gain={self.gain!r}, sigma={self.sigma!r})"


_MAD_TO_SIGMA = 1.0 / 0.6744897501960817  # 1 / Phi^-1(3/4)


def estimate_noise_sigma(image: torch.Tensor) -> torch.Tensor:
    """Robust per-image estimate of the standard deviation of white Gaussian noise, shape (B, 1, 1, 1).

    Uses the finest diagonal Haar detail ``(a - b - c + d) / 2`` of non-overlapping 2x2 blocks
    (unit gain for white noise, nearly blind to blurred image content) and the median absolute
    deviation (Donoho & Johnstone 1994), pooled over channels.
    """
    B, C, H, W = image.shape
    x = image[..., : H - H % 2, : W - W % 2].float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    d = hh.reshape(B, -1).abs()
    if torch.compiler.is_exporting():  # ONNX has no median: the same lower median as the k-th smallest (TopK)
        mad = d.topk((d.shape[1] + 1) // 2, dim=1, largest=False).values[:, -1]
    else:
        mad = d.median(dim=1).values
    return (mad * _MAD_TO_SIGMA).view(B, 1, 1, 1).to(image.dtype)
