"""PSNR and MAE between images, one value per image of a batch.

Inputs are ``(B, C, H, W)`` or ``(C, H, W)`` (a batch of one) or ``(H, W)``, any real dtype (integer
images such as uint8 are fine with ``data_range=255``). Computations run in float64 (float32 on
devices without it) and the result is a float64 tensor of shape ``(B,)`` on the inputs' device.
``border`` pixels are removed from each side before measuring.

Example:
    >>> import torch
    >>> x = torch.zeros(2, 3, 8, 8); y = x + 0.1
    >>> psnr(x, y)
    tensor([20.0000, 20.0000], dtype=torch.float64)
"""
from __future__ import annotations

import torch

from ..errors import InputError

__all__ = ["psnr", "mae", "mse"]


def work_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device supports it."""
    return torch.float32 if device.type == "mps" else torch.float64


def as_batch(x: torch.Tensor, name: str = "image") -> torch.Tensor:
    """View ``x`` as (B, C, H, W)."""
    if not torch.is_tensor(x):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        return x[None]
    if x.ndim == 4:
        return x
    raise InputError(f"{name} must have shape (B, C, H, W), (C, H, W) or (H, W), got {tuple(x.shape)}")


def prepare_pair(x: torch.Tensor, y: torch.Tensor, border: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, crop ``border`` and convert both to the working float dtype as (B, C, H, W)."""
    x, y = as_batch(x, "x"), as_batch(y, "y")
    if x.shape != y.shape:
        raise InputError(f"images to compare differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    border = int(border)
    if border < 0:
        raise InputError(f"border must be >= 0, got {border}")
    H, W = x.shape[-2:]
    if border and (H <= 2 * border or W <= 2 * border):
        raise InputError(f"border {border} leaves no pixels of a {H}x{W} image")
    if border:
        x = x[..., border:H - border, border:W - border]
        y = y[..., border:H - border, border:W - border]
    dt = work_dtype(x.device)
    return x.to(dt), y.to(device=x.device, dtype=dt)


def mse(x: torch.Tensor, y: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Mean squared error per image, shape (B,)."""
    x, y = prepare_pair(x, y, border)
    return (x - y).square().mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, border: int = 0) -> torch.Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB per image, shape (B,).

    The MSE is over all channels and pixels of an image; identical images give ``inf``.
    """
    if data_range <= 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    err = mse(x, y, border)
    return 10.0 * torch.log10(float(data_range) ** 2 / err)


def mae(x: torch.Tensor, y: torch.Tensor, border: int = 0) -> torch.Tensor:
    """Mean absolute error per image (in the images' units), shape (B,)."""
    x, y = prepare_pair(x, y, border)
    return (x - y).abs().mean(dim=(1, 2, 3))


def _shifted_psnrs(x: torch.Tensor, y: torch.Tensor, max_shift: int, data_range: float) -> tuple[torch.Tensor, list]:
    """PSNR of every integer shift of ``x`` within ``+-max_shift`` px against ``y`` minus that border: (S, B), and
    the shifts (dy, dx) in the same order."""
    x, y = prepare_pair(x, y, 0)
    m = int(max_shift)
    H, W = y.shape[-2:]
    if m < 0 or 2 * m >= min(H, W):
        raise InputError(f"max_shift {max_shift} does not fit images of {H}x{W}")
    ref = y[..., m:H - m, m:W - m]
    shifts = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    scores = [psnr(x[..., m + dy:H - m + dy, m + dx:W - m + dx], ref, data_range) for dy, dx in shifts]
    return torch.stack(scores), shifts


def psnr_up_to_shift(x: torch.Tensor, y: torch.Tensor, max_shift: int = 4, data_range: float = 1.0) -> torch.Tensor:
    """Best PSNR per image over integer shifts of ``x`` within ``+-max_shift`` px, on ``y`` minus a
    ``max_shift`` border: a blind estimate is only defined up to a translation. Shape (B,)."""
    return _shifted_psnrs(x, y, max_shift, data_range)[0].amax(0)


def best_shift(x: torch.Tensor, y: torch.Tensor, max_shift: int = 4) -> torch.Tensor:
    """The integer shift (dy, dx) per image, within ``+-max_shift`` px, at which ``x`` matches ``y`` best (the one
    :func:`psnr_up_to_shift` scores): ``x[i + dy, j + dx]`` ~ ``y[i, j]``, so ``y.roll((dy, dx), (-2, -1))`` is ``y``
    moved onto ``x``. Shape (B, 2), integers."""
    scores, shifts = _shifted_psnrs(x, y, max_shift, 1.0)
    return torch.tensor(shifts, device=scores.device)[scores.argmax(0)]


def moved_onto(y: torch.Tensor, x: torch.Tensor, max_shift: int = 4) -> torch.Tensor:
    """``y`` (B, C, H, W) moved onto ``x`` per image by :func:`best_shift` (circularly: the ``max_shift`` px band at
    the edges wraps around, so compare inside it). For training a blind method against sharp targets: its result is
    defined up to a translation, and a loss against the unmoved target teaches it to blur edges whose place it cannot
    know. No gradient flows through the choice of the shift."""
    with torch.no_grad():
        shifts = best_shift(x.detach(), y.detach(), max_shift)
    return torch.stack([t.roll(tuple(d.tolist()), (-2, -1)) for t, d in zip(y, shifts)])
