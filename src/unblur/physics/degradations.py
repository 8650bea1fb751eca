"""Pointwise camera degradations: clipping, sensor saturation and JPEG compression.

Example:
    >>> import torch
    >>> from unblur.physics.degradations import clip, jpeg, saturate
    >>> saturate(torch.tensor([0.2, 0.5, 0.8]), gain=1.5)
    tensor([0.3000, 0.7500, 1.0000])
    >>> x = torch.rand(2, 3, 16, 16)
    >>> jpeg(x, 90).shape
    torch.Size([2, 3, 16, 16])
"""
from __future__ import annotations

import io
import operator

import numpy as np
import torch
from PIL import Image

from ..errors import InputError

__all__ = ["clip", "saturate", "jpeg"]


def clip(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Clamp values to ``[lo, hi]`` (what storing an image in a fixed range does)."""
    return x.clamp(lo, hi)


def saturate(x: torch.Tensor, threshold: float = 1.0, gain=1.5) -> torch.Tensor:
    """Sensor saturation: ``min(gain * x, threshold)``.

    Models an exposure ``gain`` times longer (or a scene ``gain`` times brighter) than the one that
    produced ``x`` on a sensor whose wells fill up at ``threshold``: everything brighter than
    ``threshold / gain`` becomes a flat highlight. Only the top is clipped. ``gain`` may be a number
    or a ``(B,)`` tensor (one per image of a ``(B, C, H, W)`` batch). Blurring between the scaling and
    the clipping (as :class:`unblur.physics.DegradationPipeline` does) gives the saturated blur of
    bright lights in real photos.
    """
    if torch.is_tensor(gain) and gain.ndim == 1:
        gain = gain.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return (x * gain).clamp(max=threshold)


def _check_quality(quality) -> int:
    try:
        if isinstance(quality, bool):
            raise TypeError
        q = operator.index(quality)
    except TypeError:
        raise InputError(f"JPEG quality must be an integer in 1..100, got {quality!r}") from None
    if not 1 <= q <= 100:
        raise InputError(f"JPEG quality must be in 1..100, got {q}")
    return q


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip through Pillow at ``quality`` (1..100), batched.

    ``x`` is ``(B, C, H, W)`` or ``(C, H, W)`` with ``C`` = 1 (grayscale) or 3 (RGB), values in [0, 1]
    (clipped and quantised to 8 bits first). Returns the decoded image with the same shape, dtype and
    device. Pillow's default chroma subsampling (4:2:0) is used. Not differentiable (the result is
    detached).
    """
    q = _check_quality(quality)
    if not torch.is_tensor(x) or x.ndim not in (3, 4) or not x.is_floating_point():
        raise InputError(f"jpeg expects a floating-point image (B, C, H, W) or (C, H, W), got {getattr(x, 'shape', type(x))}")
    batch = x if x.ndim == 4 else x[None]
    if batch.shape[1] not in (1, 3):
        raise InputError(f"jpeg needs 1 or 3 channels, got {batch.shape[1]}")
    a = (batch.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img in a:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img, mode="L" if img.shape[-1] == 1 else "RGB")
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as dec:
            d = np.asarray(dec.convert(pil.mode))
        out.append(d.reshape(img.shape))
    y = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
    return y if x.ndim == 4 else y[0]
