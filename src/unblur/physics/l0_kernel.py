"""Coarse-to-fine kernel estimation with L0 priors on gradients and intensities (after Pan, Hu, Su & Yang,
CVPR 2014): the kernel half of the classical ``blind-l0`` (:mod:`unblur.classical.blind_l0`, whose doc tells the
iteration), here so that networks start from it too (GDUNet's kernel initialisation) without importing
``classical``.

Model::

    min_{x,k} ||k (*) x - y||^2 + lambda_grad ||grad x||_0 + lambda_pixel ||x||_0 + gamma ||k||^2

on the luminance, over a pyramid whose kernel sizes grow by ~sqrt(2) from 5 px: alternations of the L0 latent
image (:func:`l0_latent`, half-quadratic splitting in closed form), salient edges (Cho & Lee 2009), the
gradient-domain kernel least squares (:func:`~unblur.physics.kernel_step`, CG on the observed window) and
:func:`~unblur.physics.project_kernel`; then ``refine_iters`` refits on a natural (hyper-Laplacian) latent image.
:func:`informative_region` / :func:`region_in_photo` choose the window of a large photo to estimate on, and
:func:`default_kernel_size` the kernel size for a photo size.

Example:
    >>> import torch
    >>> from unblur.physics import conv2d, motion_kernel
    >>> k = motion_kernel(9, generator=torch.Generator().manual_seed(0))
    >>> y = conv2d(torch.rand(1, 1, 60, 60, generator=torch.Generator().manual_seed(1)), k, mode="valid")
    >>> est = estimate_kernel_l0(y, kernel_size=9, iters_per_level=2, final_iters=2, refine_iters=1)
    >>> est.shape, round(float(est.sum()), 4), bool((est >= 0).all())
    (torch.Size([1, 1, 9, 9]), 1.0, True)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .color import luminance
from .boundary import Domain, gradient_otfs, gradients, gradients_adjoint, salient_edges
from .kernels import project_kernel
from .mixed_blur import mixture_hqs
from .noise import estimate_noise_sigma
from .solvers import FourierDataStep, kernel_step

__all__ = ["KERNEL_ERROR_SIGMA", "estimate_kernel_l0", "estimate_photo_kernel", "l0_latent", "natural_latent", "noise_floor",
           "pyramid_kernel_sizes", "informative_region", "region_in_photo", "default_kernel_size"]


SPARSITY_TUNED_SIZE = 31  # the kernel box ``kernel_sparsity`` was tuned in (benchmarks/blind_synthetic.py)
# Lowest noise level an image step with an *estimated* kernel assumes: a blind estimate is never exact, and on a clean
# photo what it cannot explain (its error times the image) is amplified like noise would be. Chosen for blind-l0's final
# deconvolution on the training-photo sets of benchmarks/blind_synthetic.md (docs/classical.md); GDUNet's stage HQS
# steps (UPADNet's too; its LMMSE refinements keep their own noise estimate) use it as well.
KERNEL_ERROR_SIGMA = 0.004


def noise_floor(sigma: float, scale: float, weight: float) -> float:
    """Lowest L0 gradient weight at a pyramid level of ``scale`` (level size / full size) for a guide of noise level
    ``sigma``: ``weight * (sigma * scale)^2``. Antialiased downscaling by ``scale`` averages about ``1 / scale^2``
    pixels, so the noise left at the level is about ``sigma * scale``; with the weight above a multiple of its
    variance, a noise gradient costs more than it explains and the latent image keeps it flat instead of
    passing it to the kernel step as an edge."""
    return weight * (sigma * scale) ** 2


def pyramid_kernel_sizes(kernel_size: int, coarsest: int = 5) -> list[int]:
    """Odd kernel sizes from the coarsest level (about ``coarsest``) to ``kernel_size``, ratio ~sqrt(2)."""
    sizes = [kernel_size]
    while sizes[-1] > coarsest:
        s = math.ceil(sizes[-1] / math.sqrt(2))
        s += 1 - s % 2
        if s < coarsest:
            break
        sizes.append(s)
    return sizes[::-1]


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)


def l0_latent(y_ext, otf, d_otfs, lambda_grad, lambda_pixel, mu_max, mu_rate=3.0):
    """Latent image of the L0 model on the periodic domain (HQS with joint continuation)."""
    x = y_ext
    step = FourierDataStep(y_ext, otf, d_otfs)
    mu = 2 * lambda_grad
    while mu < mu_max:
        gh, gv = gradients(x)
        keep = (gh * gh + gv * gv) >= lambda_grad / mu
        # the right-hand side mu D^T g + beta u is formed in the image domain: one map to transform a step, not three
        rhs = mu * gradients_adjoint(gh * keep, gv * keep)
        beta = 0.0
        if lambda_pixel > 0:
            beta = mu * lambda_pixel / lambda_grad
            rhs = rhs + beta * torch.where(x * x >= lambda_pixel / beta, x, torch.zeros_like(x))
        x = step(beta=beta, weights=(mu, mu), rhs=rhs)
        mu *= mu_rate
    return x


def _kernel_update(dom, x, y, size, gamma, edges, iters, opts, k_ref):
    gh, gv = gradients(x)
    mask, edges["threshold"] = salient_edges(gh, gv, edges["count"], edges["threshold"])
    edges["threshold"] /= 1.1
    k0 = edges.get("k")  # warm start from the previous alternation of this level
    if k0 is None:
        k0 = torch.full((1, 1, size, size), 1.0 / size ** 2, dtype=x.dtype, device=x.device)
    if opts["kernel_sparsity"] > 0:
        # reweighted L1 on the taps (IRLS around the current kernel k_ref): spare taps pay more than the path's;
        # below the clean-up threshold a tap is zeroed anyway, so its weight stops growing there
        floor = opts["threshold"] * k_ref.abs().amax()
        gamma = gamma + opts["kernel_sparsity"] / k_ref.abs().clamp_min(floor)
    k = kernel_step(x, y, size, gamma=gamma, domain=dom, method="cg", k0=k0, iters=iters, x_mask=mask)
    k = project_kernel(k, center=True, clean=True, threshold=opts["threshold"],
                       min_component_mass=opts["min_component_mass"])
    edges["k"] = k
    return k


def estimate_kernel_l0(
    guide: torch.Tensor,
    *,
    kernel_size: int = 31,
    lambda_grad: float = 1e-2,
    lambda_pixel: float = 3e-3,
    lambda_decay: float = 1.1,
    lambda_min: float = 1e-4,
    gamma: float = 2.0,
    iters_per_level: int = 5,
    final_iters: int = 6,
    refine_iters: int = 2,
    edge_ratio: float = 30.0,
    mu_max: float = 1e5,
    threshold: float = 0.05,
    min_component_mass: float = 0.1,
    kernel_cg_iters: int = 10,
    kernel_sparsity: float = 0.05,
    noise_lambda: float = 32.0,
) -> torch.Tensor:
    """Coarse-to-fine L0 kernel estimate (B, 1, kernel_size, kernel_size) from grey images (B, 1, H, W).

    The ``refine_iters`` final refits take their natural image from :func:`natural_latent`.
    ``kernel_sparsity``: weight of a reweighted L1 penalty on the taps (per-tap Tikhonov weights
    ``kernel_sparsity / max(|k'|, threshold * max|k'|)`` around the current kernel ``k'``; 0 turns it off), scaled by
    ``31 / kernel_size`` in boxes larger than 31 px (``SPARSITY_TUNED_SIZE``, the box it was tuned in).
    ``noise_lambda``: the L0 weights never fall below :func:`noise_floor` of the guide's noise level
    (:func:`~unblur.physics.estimate_noise_sigma`) at each level, so a noisy photo's finest levels do not fit
    its noise (0 turns the floor off; a clean guide's floor is below ``lambda_min`` anyway).

    Images are processed one at a time: the hard thresholds make the iteration chaotic, and batching
    (which can change FFT rounding in the last bit) would make a batch differ from single calls.
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    opts = {k: v for k, v in locals().items() if k != "guide"}
    return torch.cat([_estimate_one(guide[i:i + 1], **opts) for i in range(guide.shape[0])])


def _estimate_one(guide, *, kernel_size, lambda_grad, lambda_pixel, lambda_decay, lambda_min, gamma,
                  iters_per_level, final_iters, refine_iters, edge_ratio, mu_max, threshold,
                  min_component_mass, kernel_cg_iters, kernel_sparsity, noise_lambda):
    H, W = guide.shape[-2:]
    sigma = float(estimate_noise_sigma(guide).clamp_min(1e-3)) if noise_lambda > 0 else 0.0
    # the sparsity's IRLS weights push every tap on the path with about the same force, while the data's pull on a
    # tap shrinks with the tap (a longer shake spreads its mass over more, smaller taps): in a box larger than the
    # one it was tuned in, the weight is scaled down with the box (never up), so a long shake keeps its faint tail
    sparsity = kernel_sparsity * min(1.0, SPARSITY_TUNED_SIZE / kernel_size)
    opts = {"threshold": threshold, "min_component_mass": min_component_mass, "kernel_sparsity": sparsity}
    k, lg, lp = None, lambda_grad, lambda_pixel
    for size in pyramid_kernel_sizes(kernel_size):
        r = size / kernel_size
        y = _resize(guide, (max(size + 2, round(H * r)), max(size + 2, round(W * r))))
        if k is None:  # a short horizontal stroke: a symmetric start that breaks the delta's stability
            k = torch.zeros(1, 1, size, size, dtype=y.dtype, device=y.device)
            k[..., size // 2, size // 2 - 1:size // 2 + 1] = 0.5
        else:
            k = project_kernel(_resize(k, (size, size)))
        dom = Domain(y.shape[-2:], (size, size), "valid", device=y.device)
        y_ext = dom.extend(y)
        d_otfs = gradient_otfs(dom.shape, y.device, y.dtype)
        edges = {"count": int(edge_ratio * size), "threshold": None}
        for _ in range(final_iters if size == kernel_size else iters_per_level):
            x = l0_latent(y_ext, dom.otf(k), d_otfs, lg, lp, mu_max)
            k = _kernel_update(dom, x, y, size, gamma, edges, kernel_cg_iters, opts, k)
            lg = max(lg / lambda_decay, lambda_min, noise_floor(sigma, r, noise_lambda))
            lp = lambda_pixel * lg / lambda_grad  # the two weights keep their ratio
    edges = {"count": int(edge_ratio * kernel_size), "threshold": None}
    for _ in range(refine_iters):
        x = dom.extend(natural_latent(y, k))
        edges["threshold"] = None
        k = _kernel_update(dom, x, y, kernel_size, gamma, edges, kernel_cg_iters, opts, k)
    return k


def natural_latent(y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The natural image of the kernel refits: hyper-Laplacian HQS (:func:`~unblur.physics.mixture_hqs` with one
    kernel, ``beta`` 1 to 4096 by 4, ``lam = 0.3 / sigma^2``), each x-step 4 CG steps on the ``valid``
    observation model (classical ``hqs``'s boundary handling: no seam of a periodic extension enters the refit)."""
    sigma = estimate_noise_sigma(y).clamp_min(1e-3)
    mix = torch.ones(y.shape[0], 1, *y.shape[-2:], dtype=y.dtype, device=y.device)
    return mixture_hqs(y, k.reshape(1, *k.shape[-2:]), mix, lam=0.3 / sigma ** 2, betas=[4.0 ** t for t in range(7)],
                       cg_iters=4)


def informative_region(guide: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size x size`` window of ``guide`` (1, 1, H, W) with the most salient
    edge pixels (the top 2% gradient magnitudes, saturated pixels excluded)."""
    H, W = guide.shape[-2:]
    if H <= size and W <= size:
        return 0, 0
    gh, gv = gradients(guide)
    mag = torch.sqrt(gh * gh + gv * gv)
    # saturated highlights break the linear blur model: no edge there counts
    sat = F.max_pool2d((guide > 0.98).to(guide.dtype), 5, stride=1, padding=2) > 0
    mag = torch.where(sat, torch.zeros_like(mag), mag)
    mag[..., -1, :] = 0
    mag[..., :, -1] = 0  # the circular differences wrap around the last row/column
    level = torch.quantile(mag.flatten()[:: max(1, mag.numel() // 1_000_000)], 0.98)
    strong = (mag >= level).to(guide.dtype)
    h, w = min(size, H), min(size, W)
    step = max(1, size // 8)
    counts = F.avg_pool2d(strong, (h, w), stride=step)
    idx = int(counts.flatten().argmax())
    cols = counts.shape[-1]
    return min((idx // cols) * step, H - h), min((idx % cols) * step, W - w)


def default_kernel_size(height: int, width: int) -> int:
    """31 px up to a long side of 2048 px; beyond, scaled with the long side (the same shake covers
    more pixels on a larger sensor: 61 at 4000 px), odd, at most 95; never above the short side."""
    k = 31 if max(height, width) <= 2048 else min(95, round(31 * max(height, width) / 2048))
    k -= 1 - k % 2
    short = min(height, width)
    return max(3, min(k, short if short % 2 else short - 1))


def region_in_photo(guide: torch.Tensor, size: tuple[int, int], work_size: int) -> tuple[int, int]:
    """Top-left corner of the most informative ``size`` window of ``guide`` (1, 1, H, W), searched on a
    copy scaled to at most ``work_size`` px (cheap on a 12 MP photo)."""
    H, W = guide.shape[-2:]
    scale = min(1.0, work_size / max(H, W))
    if scale < 1:
        small = _resize(guide, (max(1, round(H * scale)), max(1, round(W * scale))))
        top, left = informative_region(small, max(1, round(max(size) * scale)))
        return min(round(top / scale), H - size[0]), min(round(left / scale), W - size[1])
    return informative_region(guide, max(size))


def estimate_photo_kernel(image: torch.Tensor, *, kernel_size: int, region: int = 768, work_size: int = 1024,
                          **options) -> torch.Tensor:
    """:func:`estimate_kernel_l0` of photos (B, C, H, W): on the luminance of each photo's most informative
    ``region`` px window (:func:`region_in_photo`, searched at ``work_size`` px; the pyramid supplies the coarse
    scales). ``options``: those of :func:`estimate_kernel_l0`. Returns (B, 1, kernel_size, kernel_size)."""
    H, W = image.shape[-2:]
    h, w = min(region, H), min(region, W)
    kernels = []
    for g in luminance(image).split(1):
        top, left = region_in_photo(g, (h, w), work_size)
        kernels.append(estimate_kernel_l0(g[..., top:top + h, left:left + w], kernel_size=kernel_size, **options))
    return torch.cat(kernels)
