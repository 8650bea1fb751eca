"""Blind deblurring with L0 priors on intensity and gradients (after Pan, Hu, Su & Yang, CVPR 2014).

Model::

    min_{x,k} ||A_k x - y||^2 + lambda_pixel ||x||_0 + lambda_grad ||grad x||_0 + gamma ||k||^2

Kernel estimation runs on the luminance, coarse to fine over a pyramid whose kernel sizes grow by
~sqrt(2) from 3 (or more) up to ``kernel_size``. At each level, ``iters_per_level`` alternations
(``final_iters`` at the finest) of

1. **image step** (half-quadratic splitting, closed-form/FFT): auxiliaries ``u ~ x`` and
   ``g ~ grad x`` are hard-thresholded (``u = x`` where ``x^2 >= lambda_pixel / beta``; ``g = grad x``
   where ``|grad x|^2 >= lambda_grad / mu``), then ``(A^T A + beta + mu D^T D) x = A^T y + beta u + mu D^T g``
   is solved on the extended domain of :mod:`.boundary`; ``beta`` and ``mu`` start at twice their
   lambda and double together up to ``mu_max``;
2. **kernel step** in the gradient domain: ``min_k sum_d ||M_d (d x (*) k) - M_d d y||^2 + gamma ||k||^2``
   (``M_d`` the observed-window mask, so no boundary artefact enters the estimate), conjugate
   gradients warm-started from the current kernel;
3. **clean-up**: negatives clipped, entries below ``threshold`` x max zeroed, 8-connected components
   holding less than ``min_component_mass`` of the mass removed, renormalised to sum 1, re-centred
   on its centroid (whole pixels);
4. ``lambda_grad`` and ``lambda_pixel`` divided by ``lambda_decay`` (floor ``lambda_min``); the
   decay runs over all levels (it does not restart at each level), so the fine levels refine the
   kernel with small weights.

The kernel Tikhonov weight follows each level's estimated noise (``gamma_scale * sigma_level^2``).
Departures from the paper and the reasons are in ``docs/classical.md``.

The final image is a non-blind hyper-Laplacian HQS deconvolution of every channel with the estimate.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..physics.fft import irfft2, otf2psf, psf2otf, rfft2
from ..physics.boundary import Domain, gradient_otfs, gradients
from ..physics.kernels import _normalise, clean_kernel, delta_kernel as _delta
from .hqs import hqs
from .wiener import noise_sigma

_LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Grey-level guidance image (B, 1, H, W): Rec. 601 luma for RGB, channel mean otherwise."""
    if image.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        return (image * w).sum(1, keepdim=True)
    return image.mean(1, keepdim=True)


def pyramid_kernel_sizes(kernel_size: int, step: float = math.sqrt(2)) -> list[int]:
    """Odd kernel sizes from the coarsest level to ``kernel_size`` (growing by ~``step``)."""
    size = max(3, 2 * ((kernel_size - 1) // 16) + 1)
    sizes = []
    while size < kernel_size:
        sizes.append(size)
        size = math.ceil(size * step)
        size += 1 - size % 2
    sizes.append(kernel_size)
    return sizes


def _l0_image(dom: Domain, y, k, lambda_pixel, lambda_grad, mu_max, cg_iters, d_otfs, x0):
    """Image step: HQS with hard thresholds on intensity and gradients (joint continuation)."""
    oh, ov = d_otfs
    d2 = oh.abs() ** 2 + ov.abs() ** 2
    otf = dom.otf(k)
    x = x0
    beta, mu = 2 * lambda_pixel, 2 * lambda_grad
    while mu < mu_max:
        gh, gv = gradients(x)
        keep = (gh * gh + gv * gv) >= lambda_grad / mu
        gh, gv = gh * keep, gv * keep
        rhs = mu * (oh.conj() * rfft2(gh) + ov.conj() * rfft2(gv))
        reg = mu * d2
        if lambda_pixel > 0:
            u = torch.where(x * x >= lambda_pixel / beta, x, torch.zeros_like(x))
            rhs = rhs + beta * rfft2(u)
            reg = reg + beta
        x = dom.solve(otf, y, reg_hat=reg, rhs_hat=rhs, x0=x, iters=cg_iters)
        beta, mu = 2 * beta, 2 * mu
    return x


def _estimate_kernel(dom: Domain, x, y, k0, gamma, iters):
    """Kernel step: masked gradient-domain least squares with Tikhonov ``gamma``, CG from ``k0``."""
    s, ks = dom.shape, k0.shape[-2:]
    xh, xv = gradients(x)
    Xh, Xv = rfft2(xh), rfft2(xv)
    yh, yv = gradients(dom.embed(y))
    if dom.mask is None:
        mh = mv = torch.ones((), device=y.device, dtype=y.dtype)
    else:
        m = dom.mask.to(y.dtype)
        mh, mv = m * m.roll(-1, -1), m * m.roll(-1, -2)
    yh, yv = yh * mh, yv * mv

    def fwd(k):
        K = psf2otf(k, s)
        return irfft2(Xh * K, s=s) * mh, irfft2(Xv * K, s=s) * mv

    def adj(rh, rv):
        return otf2psf(Xh.conj() * rfft2(rh * mh) + Xv.conj() * rfft2(rv * mv), s, ks).to(y.dtype)

    def normal(k):
        return adj(*fwd(k)) + gamma * k

    def dot(a, b):
        return (a * b).sum((-2, -1), keepdim=True)

    k = k0.clone()
    r = adj(yh, yv) - normal(k)
    p, rr = r, dot(r, r)
    tiny = torch.finfo(y.dtype).tiny
    for _ in range(iters):
        Ap = normal(p)
        pAp = dot(p, Ap)
        alpha = torch.where(pAp > tiny, rr / pAp.clamp_min(tiny), torch.zeros_like(pAp))
        k = k + alpha * p
        r = r - alpha * Ap
        rr_new = dot(r, r)
        p = r + torch.where(rr > tiny, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr)) * p
        rr = rr_new
    return k


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)


def estimate_kernel_l0(
    guide: torch.Tensor,
    *,
    kernel_size: int = 31,
    lambda_grad: float = 1.6e-2,
    lambda_pixel: float = 1.6e-2,
    lambda_decay: float = 1.1,
    lambda_min: float = 1e-4,
    gamma: float | None = None,
    gamma_scale: float = 5e5,
    iters_per_level: int = 5,
    final_iters: int = 15,
    mu_max: float = 1e3,
    threshold: float = 0.1,
    min_component_mass: float = 0.1,
    image_cg_iters: int = 2,
    kernel_cg_iters: int = 20,
    boundary: str = "valid",
) -> torch.Tensor:
    """Coarse-to-fine L0 kernel estimate (B, 1, kernel_size, kernel_size) from a grey image (B, 1, H, W).

    ``gamma=None`` sets the kernel Tikhonov weight of each level to ``gamma_scale * sigma_level^2``
    (noise level of that pyramid level, floor 2e-3): Gaussian-MAP weighting, so the kernel is
    regularised where the noise is and hardly at coarse (downsampled, cleaner) levels. The lambdas
    decay over *all* alternations (coarse to fine), so the finest level refines with small weights;
    it runs ``final_iters`` alternations instead of ``iters_per_level``.

    Images are processed one at a time: the hard thresholds make the iteration chaotic, and batching
    (which can change FFT rounding in the last bit) would make a batch differ from single calls.
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    opts = {k: v for k, v in locals().items() if k != "guide"}
    return torch.cat([_estimate_one(guide[i:i + 1], **opts) for i in range(guide.shape[0])])


def _estimate_one(guide, *, kernel_size, lambda_grad, lambda_pixel, lambda_decay, lambda_min, gamma, gamma_scale,
                  iters_per_level, final_iters, mu_max, threshold, min_component_mass, image_cg_iters,
                  kernel_cg_iters, boundary):
    B, _, H, W = guide.shape
    dtype, device = guide.dtype, guide.device
    k = None
    lp, lg = lambda_pixel, lambda_grad
    for ks in pyramid_kernel_sizes(kernel_size):
        r = ks / kernel_size
        h, w = max(ks + 2, round(H * r)), max(ks + 2, round(W * r))
        y = _resize(guide, (h, w))
        k = _delta(B, ks, device, dtype) if k is None else _normalise(_resize(k, (ks, ks)).clamp_min(0))
        dom = Domain((h, w), (ks, ks), boundary, device=device)
        g_level = gamma_scale * noise_sigma(y, None, floor=2e-3) ** 2 if gamma is None else gamma
        d_otfs = gradient_otfs(dom.shape, device, dtype)
        for _ in range(final_iters if ks == kernel_size else iters_per_level):
            x = _l0_image(dom, y, k, lp, lg, mu_max, image_cg_iters, d_otfs, dom.extend(y))
            k = _estimate_kernel(dom, x, y, k, g_level, kernel_cg_iters)
            k = clean_kernel(k, threshold, min_component_mass)
            lp = max(lp / lambda_decay, lambda_min) if lp > 0 else 0.0
            lg = max(lg / lambda_decay, lambda_min)
    return k


def blind_l0(
    blurred: torch.Tensor,
    *,
    kernel_size: int = 31,
    lambda_grad: float = 1.6e-2,
    lambda_pixel: float = 1.6e-2,
    lambda_decay: float = 1.1,
    gamma: float | None = None,
    gamma_scale: float = 5e5,
    iters_per_level: int = 5,
    final_iters: int = 15,
    threshold: float = 0.1,
    min_component_mass: float = 0.1,
    final_lam_scale: float = 0.3,
    sigma: float | None = None,
    boundary: str = "valid",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind deblurring of ``blurred`` (B, C, H, W); returns (image, kernel (B, 1, k, k)).

    Args:
        kernel_size: odd side of the estimated kernel (must cover the blur).
        lambda_grad, lambda_pixel: initial L0 weights of gradients and intensities (image step).
        lambda_decay: both lambdas are divided by it after every alternation (floor 1e-4).
        gamma: Tikhonov weight of the kernel step; ``None``: ``gamma_scale * sigma_level^2`` per level.
        gamma_scale: see ``gamma``.
        iters_per_level: image/kernel alternations per pyramid level below the finest.
        final_iters: alternations at the finest level.
        threshold: kernel entries below ``threshold`` x max are zeroed.
        min_component_mass: connected kernel components lighter than this (fraction of 1) are removed.
        final_lam_scale: ``lam_scale`` of the final hyper-Laplacian HQS deconvolution.
        sigma: noise level for the final deconvolution (estimated when ``None``).
        boundary: ``"valid"`` (default) or ``"circular"``.
    """
    k = estimate_kernel_l0(
        luminance(blurred),
        kernel_size=kernel_size,
        lambda_grad=lambda_grad,
        lambda_pixel=lambda_pixel,
        lambda_decay=lambda_decay,
        gamma=gamma,
        gamma_scale=gamma_scale,
        iters_per_level=iters_per_level,
        final_iters=final_iters,
        threshold=threshold,
        min_component_mass=min_component_mass,
        boundary=boundary,
    )
    x = hqs(blurred, k, prior="hl", lam_scale=final_lam_scale, sigma=sigma, boundary=boundary)
    return x, k
