"""Sub-pixel translation of images, and registering a blind result to its kernel's centroid.

A blind estimate is defined up to a translation: ``k (*) x`` equals ``k' (*) x'`` when ``k'`` is ``k`` moved by ``d``
and ``x'`` is ``x`` moved by ``-d``. Our kernels follow one convention (the centroid on the centre pixel, as the
generators in :mod:`unblur.physics.kernels` make them), but an estimate can only be centred by whole pixels
(:func:`~unblur.physics.project_kernel`), so its centroid stays up to half a pixel off the centre, and the image
deconvolved with it is moved by as much. On sharp edges half a pixel is a large error: on the synthetic shakes of the
training photos ``blind-l0``'s results scored 1.0 and 1.3 dB higher without any shift once registered
(``benchmarks/blind_synthetic.md``, the sections with ``register=False`` rows). :func:`register_to_kernel` moves an
image by its kernel's sub-pixel centroid offset, so the result sits where the same kernel centred exactly would have
put it.

    >>> import torch
    >>> x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    >>> moved = translate(x, (2.0, -1.0))
    >>> torch.allclose(moved[..., 2:, :-1], x[..., :-2, 1:])
    True
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError
from .boundary import Domain
from .fft import irfft2, rfft2
from .kernels import kernel_centroid

__all__ = ["translate", "register_to_kernel"]

PAD = 16  # px of extension around the image (at least): the circular wrap of the Fourier shift happens beyond them


def _shifts(shift, batch: int) -> torch.Tensor:
    s = torch.as_tensor(shift, dtype=torch.float64).detach().cpu()
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] not in (1, batch):
        raise InputError(f"shift must be (dy, dx) or one (dy, dx) per image ({batch}), got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise InputError(f"shift must be finite, got {s.tolist()}")
    return s.expand(batch, 2)


def _phase(n: int, d: float, half: bool, device) -> torch.Tensor:
    """The 1-D phase ``exp(-2 pi i f d)`` of a shift by ``d`` over the FFT frequencies of ``n`` samples (``half``: the
    ``rfft`` ones). On an even ``n`` the Nyquist bin gets ``cos(pi d)``: it must stay real (its own conjugate), and the
    mean of the two exponentials is the band-limited choice (exact for whole pixels)."""
    f = (torch.fft.rfftfreq if half else torch.fft.fftfreq)(n, dtype=torch.float64, device=device)
    ramp = torch.polar(torch.ones_like(f), -2 * math.pi * f * d)
    if n % 2 == 0:
        ramp[n // 2] = math.cos(math.pi * d)
    return ramp


def translate(x: torch.Tensor, shift, pad: int = PAD) -> torch.Tensor:
    """``x`` (B, C, H, W) moved by ``shift`` pixels, sub-pixel: (dy, dx) for all images or (B, 2), rows down and
    columns right (``out[i + dy, j + dx] = x[i, j]``).

    Band-limited (Fourier) interpolation: a linear phase on the FFT of the smooth periodic extension of ``x``
    (:meth:`~unblur.physics.Domain.extend`, mirror and raised-cosine blend) by at least ``pad`` px plus the shift's
    whole pixels on every side, so the wrap-around stays outside the frame; whole-pixel shifts are exact inside the
    image, and pixels moved in from outside the frame come from the mirrored border. Sub-pixel shifts of a smooth
    image are off by a few 1e-3 in the outermost pixels (the mirror's kink), under 1e-3 beyond 16 px. One image channel
    at a time (memory of one extended channel), in float32 (float64 when given); differentiable in ``x`` (the shift is
    a constant). A zero shift returns ``x`` itself.
    """
    if x.ndim != 4:
        raise InputError(f"image must be (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    s = _shifts(shift, B)
    if not bool(s.abs().gt(0).any()):
        return x
    out = torch.empty_like(x)
    for b in range(B):
        dy, dx = float(s[b, 0]), float(s[b, 1])
        if dy == 0 and dx == 0:
            out[b] = x[b]
            continue
        margin = pad + math.ceil(max(abs(dy), abs(dx)))
        dom = Domain((H, W), (2 * margin + 1, 2 * margin + 1), "valid", device=x.device)
        P, Q = dom.shape
        ramp = _phase(P, dy, False, x.device)[:, None] * _phase(Q, dx, True, x.device)[None]
        for c in range(C):
            X = rfft2(dom.extend(x[b:b + 1, c:c + 1]))
            out[b:b + 1, c:c + 1] = dom.crop(irfft2(X * ramp.to(X.dtype), s=(P, Q))).to(x.dtype)
    return out


def register_to_kernel(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) moved by the sub-pixel centroid offset of ``kernel`` ((B, 1, kh, kw) or (1, 1, kh, kw);
    :func:`~unblur.physics.kernels.kernel_centroid`): an image deconvolved with ``kernel`` becomes the image the same
    kernel centred exactly on its centroid would give; a blurred photo becomes the one to deconvolve with ``kernel`` to
    get that image. No gradient flows into the kernel."""
    return translate(x, kernel_centroid(kernel.detach()))
