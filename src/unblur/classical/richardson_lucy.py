"""Richardson–Lucy deconvolution (Poisson maximum likelihood, multiplicative EM updates).

``x <- x * A^T(y / A x) / A^T 1`` with ``A`` the observation model of :mod:`unblur.physics.boundary`. With
``boundary="valid"`` the unknown image lives on the extended domain and ``A^T 1`` is the per-pixel
sensitivity (smaller near the frame, zero outside the kernel's reach): this is the boundary-corrected
RL of Bertero & Boccacci (2005), free of border ringing. An optional total-variation term (Dey et
al. 2006; by default its weight is proportional to the estimated noise level) damps the noise
amplification of late iterations; ``iterations`` is the other (early-stopping) regulariser.
"""
from __future__ import annotations

import torch

from ..physics.boundary import Domain, gradients
from .wiener import noise_sigma

TV_EPS = 1e-2


def _tv_divergence(x: torch.Tensor, eps: float = TV_EPS) -> torch.Tensor:
    """div(grad x / |grad x|) with the circular differences of :func:`gradients`."""
    gh, gv = gradients(x)
    norm = torch.sqrt(gh * gh + gv * gv + eps * eps)
    nh, nv = gh / norm, gv / norm
    return (nh - nh.roll(1, -1)) + (nv - nv.roll(1, -2))


def richardson_lucy(
    blurred: torch.Tensor,
    kernel: torch.Tensor,
    *,
    iterations: int = 100,
    tv: float | None = None,
    tv_scale: float = 0.3,
    sigma: float | None = None,
    boundary: str = "valid",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Richardson–Lucy deconvolution of ``blurred`` (B, C, H, W) with ``kernel`` (B|1, C|1, kh, kw).

    Args:
        iterations: number of multiplicative updates (more = sharper and noisier).
        tv: weight of the RL-TV regulariser (0 = plain RL); ``None`` uses ``tv_scale * sigma``.
        tv_scale: see ``tv``.
        sigma: noise standard deviation on [0, 1] (estimated per image when ``None``).
        boundary: ``"valid"`` (default) or ``"circular"``.
        eps: floor of the predicted observation and of the sensitivity.

    Returns the deblurred image, same size as ``blurred`` (not clamped).
    """
    dom = Domain(blurred.shape[-2:], kernel.shape[-2:], boundary, device=blurred.device)
    otf = dom.otf(kernel.to(blurred.dtype))
    y = blurred.clamp_min(0)
    tv_w = tv_scale * noise_sigma(blurred, sigma) if tv is None else torch.as_tensor(float(tv), dtype=y.dtype, device=y.device)
    use_tv = bool((tv_w > 0).any())
    sens = dom.adjoint(torch.ones_like(y), otf)
    seen = sens > 1e-3
    sens = sens.clamp_min(1e-3)
    x = dom.extend(y).clamp_min(eps)
    for _ in range(iterations):
        ratio = y / dom.forward(x, otf).clamp_min(eps)
        denom = sens
        if use_tv:
            denom = sens * (1 - tv_w * _tv_divergence(x)).clamp_min(0.1)
        x = torch.where(seen, x * dom.adjoint(ratio, otf) / denom, x).clamp_min(eps)
    return dom.crop(x)
