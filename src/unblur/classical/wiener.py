"""Wiener deconvolution (linear minimum-mean-square-error estimate) and the noise-level estimate.

With a Gaussian image prior of power spectrum ``S(w)`` and white noise of variance ``sigma^2`` the
LMMSE estimate solves ``(A^T A + R) x = A^T y`` with ``R(w) = NSR(w) = sigma^2 / S(w)``. For a
circular observation this is the textbook filter ``X = conj(K) Y / (|K|^2 + NSR)``; for a real photo
(:mod:`unblur.physics.boundary`, ``boundary="valid"``) the same system is solved on the extended domain with the
masked data term, which removes the border ringing of the textbook filter.

The NSR is either given (a scalar, the classical knob) or derived from the noise level: natural
images have a ~1/|w|^2 power spectrum, i.e. roughly white gradients of variance ``gradient_var``, so
``NSR(w) = sigma^2 (|Dh(w)|^2 + |Dv(w)|^2) / gradient_var`` with ``sigma`` estimated from the image
(:func:`estimate_noise_sigma`) unless given.
"""
from __future__ import annotations

import torch

from ..physics.boundary import Domain, gradient_otfs
from ..physics.noise import estimate_noise_sigma
from ..physics.solvers import fourier_data_step

__all__ = ["estimate_noise_sigma", "noise_sigma", "wiener"]


def noise_sigma(image: torch.Tensor, sigma, floor: float = 1e-3) -> torch.Tensor:
    """``sigma`` as a (B, 1, 1, 1) tensor (estimated when ``None``), at least ``floor``."""
    if sigma is None:
        s = estimate_noise_sigma(image)
    else:
        s = torch.as_tensor(sigma, dtype=image.dtype, device=image.device)
        s = s.reshape(-1, 1, 1, 1) if s.ndim else s.reshape(1, 1, 1, 1)
    return s.clamp_min(floor)


def wiener(
    blurred: torch.Tensor,
    kernel: torch.Tensor,
    *,
    nsr: float | None = None,
    sigma: float | None = None,
    gradient_var: float = 1e-2,
    boundary: str = "valid",
    cg_iters: int = 25,
) -> torch.Tensor:
    """Wiener deconvolution of ``blurred`` (B, C, H, W) with ``kernel`` (B|1, C|1, kh, kw).

    Args:
        nsr: scalar noise-to-signal power ratio; ``None`` derives a 1/|w|^2-model NSR from the noise level.
        sigma: noise standard deviation on [0, 1]; ``None`` estimates it per image.
        gradient_var: assumed variance of the sharp image's gradients (natural-image prior scale).
        boundary: ``"valid"`` (real photo, default) or ``"circular"``.
        cg_iters: conjugate-gradient iterations for ``boundary="valid"``.

    Returns the deblurred image, same size as ``blurred`` (not clamped).
    """
    dom = Domain(blurred.shape[-2:], kernel.shape[-2:], boundary, device=blurred.device)
    otf = dom.otf(kernel.to(blurred.dtype))
    if nsr is not None:  # R = nsr: the proximal term towards 0
        x = fourier_data_step(blurred, otf, beta=float(nsr), domain=dom, cg_iters=cg_iters)
    else:  # R = c (|Dh|^2 + |Dv|^2): gradient filters towards 0
        c = noise_sigma(blurred, sigma) ** 2 / gradient_var
        x = fourier_data_step(blurred, otf, filter_otfs=gradient_otfs(dom.shape, blurred.device), weights=(c, c),
                              domain=dom, cg_iters=cg_iters)
    return dom.crop(x)
