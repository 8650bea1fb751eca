"""sRGB <-> linear intensity (IEC 61966-2-1 transfer curves).

``srgb_to_linear`` decodes stored sRGB values to linear light (what a sensor integrates, so blur and
noise are physical there); ``linear_to_srgb`` encodes back. The curves are the standard piecewise
ones: a linear segment near black and a 2.4 power with offset above it. The linear-side threshold
is ``0.04045 / 12.92`` (not the rounded ``0.0031308``), so each function switches branch exactly where
the other one does and they are inverses of each other to floating-point rounding (the standard
constants leave a 2e-9 step at the joint, so right there the round trip is off by at most 3e-8).

Values outside ``[0, 1]`` are allowed: negative values (e.g. from noise) use the linear segment,
values above 1 the power curve; gradients are finite everywhere.

Example:
    >>> import torch
    >>> from unblur.physics.color import linear_to_srgb, srgb_to_linear
    >>> x = torch.linspace(0, 1, 5, dtype=torch.float64)
    >>> srgb_to_linear(x)
    tensor([0.0000, 0.0509, 0.2140, 0.5225, 1.0000], dtype=torch.float64)
    >>> bool(torch.allclose(linear_to_srgb(srgb_to_linear(x)), x))
    True
"""
from __future__ import annotations

import torch

__all__ = ["srgb_to_linear", "linear_to_srgb", "luminance"]

_A = 0.055
_GAMMA = 2.4
_SLOPE = 12.92
_SRGB_T = 0.04045  # encoded threshold
_LIN_T = _SRGB_T / _SLOPE  # linear threshold (~0.0031308)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values to linear intensities: ``x / 12.92`` below 0.04045, else ``((x + 0.055) / 1.055) ** 2.4``."""
    power = ((x.clamp(min=_SRGB_T) + _A) / (1 + _A)) ** _GAMMA
    return torch.where(x <= _SRGB_T, x / _SLOPE, power)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Encode linear intensities as sRGB: ``12.92 x`` below ``0.04045/12.92``, else ``1.055 x ** (1/2.4) - 0.055``."""
    power = (1 + _A) * x.clamp(min=_LIN_T) ** (1 / _GAMMA) - _A
    return torch.where(x <= _LIN_T, x * _SLOPE, power)


_LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Grey-level guidance image (B, 1, H, W): Rec. 601 luma for RGB, channel mean otherwise."""
    if image.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        return (image * w).sum(1, keepdim=True)
    return image.mean(1, keepdim=True)
