"""Blind deblurring with L0 priors on gradients and intensities (after Pan, Hu, Su & Yang, CVPR 2014).

Model::

    min_{x,k} ||k (*) x - y||^2 + lambda_grad ||grad x||_0 + lambda_pixel ||x||_0 + gamma ||k||^2

The kernel is estimated on the luminance, coarse to fine over a pyramid whose kernel sizes grow by
~sqrt(2) from 5 px up to ``kernel_size``. At every level, ``iters_per_level`` alternations
(``final_iters`` at the finest) of

1. **latent image** (half-quadratic splitting, :func:`~unblur.physics.fourier_data_step` in closed
   form): auxiliaries ``g ~ grad x`` and ``u ~ x`` are hard-thresholded (``g = grad x`` where
   ``|grad x|^2 >= lambda_grad / mu``, ``u = x`` where ``x^2 >= lambda_pixel / beta``), and ``x`` solves
   the quadratic problem with weights ``mu`` and ``beta``; both start at twice their lambda and
   double up to ``mu_max``. The observation is the smooth periodic extension of ``y``
   (:meth:`~unblur.physics.Domain.extend`), so every step is one FFT division;
2. **salient edges** (Cho & Lee 2009): only gradients of ``x`` above a threshold enter the kernel step;
   the threshold is chosen at the first alternation of each level so that each of four orientation
   bins keeps at least ``edge_ratio x kernel size`` pixels, then divided by 1.1 at every alternation;
3. **kernel** (:func:`~unblur.physics.kernel_step`): gradient-domain least squares with Tikhonov
   ``gamma``, masked to the observed window (no boundary artefact enters), ``kernel_cg_iters`` CG
   steps from a flat kernel;
4. **projection** (:func:`~unblur.physics.project_kernel`): negatives clipped, taps below
   ``threshold`` x max zeroed, 8-connected components lighter than ``min_component_mass`` removed,
   normalised, re-centred on its centroid;
5. both lambdas divided by ``lambda_decay`` (floor ``lambda_min``), across levels.

Then ``refine_iters`` alternations at the finest level take the latent image from the natural-image
(hyper-Laplacian) deconvolution instead of the L0 one: its gradients are not cartoon-like, so the
kernel loses the blur that the L0 image's too-sharp edges put into it.

Large photos: the kernel is estimated on a *working image*: the luminance scaled so that its long side
is at most ``work_size`` (the kernel size is in working pixels, so it covers ``kernel_size / scale``
photo pixels), cropped to the ``region x region`` window with the most salient edges. The kernel
found there is resized to the photo's scale and the whole photo is deconvolved (hyper-Laplacian HQS,
in overlapping tiles of ``tile`` pixels so memory stays bounded).

Choices and the reasons are in ``docs/classical.md``; the defaults were tuned on synthetic blur of the
training photos (``benchmarks/blind_synthetic.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..physics.boundary import Domain, gradient_otfs, gradients
from ..physics.kernels import delta_kernel, project_kernel
from ..physics.solvers import fourier_data_step, kernel_step
from .hqs import hqs

_LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Grey-level guidance image (B, 1, H, W): Rec. 601 luma for RGB, channel mean otherwise."""
    if image.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        return (image * w).sum(1, keepdim=True)
    return image.mean(1, keepdim=True)


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


def salient_edges(gh: torch.Tensor, gv: torch.Tensor, count: int, threshold: float | None = None):
    """Mask (1, 1, H, W) of the gradients above ``threshold``; ``None`` picks the largest threshold
    that keeps at least ``count`` pixels in each of 4 orientation bins (Cho & Lee 2009). Returns
    (mask, threshold)."""
    mag = torch.sqrt(gh * gh + gv * gv)
    if threshold is None:
        angle = torch.atan2(gv, gh).remainder(math.pi)
        bins = (angle / (math.pi / 4)).long().clamp_max(3)
        levels = []
        for b in range(4):
            v = mag[bins == b]
            if v.numel():
                levels.append(v.topk(min(count, v.numel())).values[-1])
        threshold = float(torch.stack(levels).min()) if levels else 0.0
    return (mag >= threshold).to(gh.dtype), threshold


def l0_latent(y_ext, otf, d_otfs, lambda_grad, lambda_pixel, mu_max):
    """Latent image of the L0 model on the periodic domain (HQS with joint continuation)."""
    x = y_ext
    mu = 2 * lambda_grad
    while mu < mu_max:
        gh, gv = gradients(x)
        keep = (gh * gh + gv * gv) >= lambda_grad / mu
        beta, u = 0.0, None
        if lambda_pixel > 0:
            beta = mu * lambda_pixel / lambda_grad
            u = torch.where(x * x >= lambda_pixel / beta, x, torch.zeros_like(x))
        x = fourier_data_step(y_ext, otf, beta=beta, u=u, filter_otfs=d_otfs, weights=(mu, mu),
                              targets=(gh * keep, gv * keep))
        mu *= 2
    return x


def _kernel_update(dom, x, y, size, gamma, edges, iters, opts):
    gh, gv = gradients(x)
    mask, edges["threshold"] = salient_edges(gh, gv, edges["count"], edges["threshold"])
    edges["threshold"] /= 1.1
    flat = torch.full((1, 1, size, size), 1.0 / size ** 2, dtype=x.dtype, device=x.device)
    k = kernel_step(x, y, size, gamma=gamma, domain=dom, method="cg", k0=flat, iters=iters, x_mask=mask)
    return project_kernel(k, center=True, clean=True, threshold=opts["threshold"],
                          min_component_mass=opts["min_component_mass"])


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
    final_iters: int = 10,
    refine_iters: int = 2,
    edge_ratio: float = 30.0,
    mu_max: float = 1e5,
    threshold: float = 0.05,
    min_component_mass: float = 0.1,
    kernel_cg_iters: int = 20,
) -> torch.Tensor:
    """Coarse-to-fine L0 kernel estimate (B, 1, kernel_size, kernel_size) from grey images (B, 1, H, W).

    Images are processed one at a time: the hard thresholds make the iteration chaotic, and batching
    (which can change FFT rounding in the last bit) would make a batch differ from single calls.
    """
    if kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
    opts = {k: v for k, v in locals().items() if k != "guide"}
    return torch.cat([_estimate_one(guide[i:i + 1], **opts) for i in range(guide.shape[0])])


def _estimate_one(guide, *, kernel_size, lambda_grad, lambda_pixel, lambda_decay, lambda_min, gamma,
                  iters_per_level, final_iters, refine_iters, edge_ratio, mu_max, threshold,
                  min_component_mass, kernel_cg_iters):
    H, W = guide.shape[-2:]
    opts = {"threshold": threshold, "min_component_mass": min_component_mass}
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
            k = _kernel_update(dom, x, y, size, gamma, edges, kernel_cg_iters, opts)
            lg = max(lg / lambda_decay, lambda_min)
            lp = lambda_pixel * lg / lambda_grad  # the two weights keep their ratio
    edges = {"count": int(edge_ratio * kernel_size), "threshold": None}
    for _ in range(refine_iters):
        x = dom.extend(hqs(y, k, prior="hl"))
        edges["threshold"] = None
        k = _kernel_update(dom, x, y, kernel_size, gamma, edges, kernel_cg_iters, opts)
    return k


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


def blind_l0(
    blurred: torch.Tensor,
    *,
    kernel_size: int = 31,
    lambda_grad: float = 1e-2,
    lambda_pixel: float = 3e-3,
    lambda_decay: float = 1.1,
    gamma: float = 2.0,
    iters_per_level: int = 5,
    final_iters: int = 10,
    refine_iters: int = 2,
    edge_ratio: float = 30.0,
    threshold: float = 0.05,
    min_component_mass: float = 0.1,
    final_lam_scale: float = 0.3,
    sigma: float | None = None,
    work_size: int = 1024,
    region: int = 512,
    tile: int = 1024,
    boundary: str = "valid",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind deblurring of ``blurred`` (B, C, H, W); returns (image, kernel (B, 1, K, K)).

    Args:
        kernel_size: odd side of the estimated kernel in working-image pixels (must cover the blur).
        lambda_grad, lambda_pixel: initial L0 weights of gradients and intensities (latent image).
        lambda_decay: both lambdas are divided by it after every alternation (floor 1e-4).
        gamma: Tikhonov weight of the kernel step.
        iters_per_level, final_iters: alternations per pyramid level, and at the finest level.
        refine_iters: alternations with the hyper-Laplacian latent image after the pyramid.
        edge_ratio: salient-edge selection keeps at least ``edge_ratio x size`` pixels per orientation.
        threshold, min_component_mass: kernel clean-up (relative tap threshold, smallest component kept).
        final_lam_scale: ``lam_scale`` of the final hyper-Laplacian HQS deconvolution.
        sigma: noise level for the final deconvolution (estimated when ``None``).
        work_size: long side of the working image the kernel is estimated on (larger photos are scaled
            down; the returned kernel is at the photo's scale, ``K = kernel_size / scale`` rounded to odd).
        region: side of the most informative window of the working image used for the estimate.
        tile: the final deconvolution runs on overlapping tiles of this size (bounded memory).
        boundary: ``"valid"`` (default) or ``"circular"`` for the final deconvolution.
    """
    est = dict(kernel_size=kernel_size, lambda_grad=lambda_grad, lambda_pixel=lambda_pixel, lambda_decay=lambda_decay,
               gamma=gamma, iters_per_level=iters_per_level, final_iters=final_iters, refine_iters=refine_iters,
               edge_ratio=edge_ratio, threshold=threshold, min_component_mass=min_component_mass)
    guide = luminance(blurred)
    H, W = guide.shape[-2:]
    scale = min(1.0, work_size / max(H, W))
    if scale < 1:
        guide = _resize(guide, (max(kernel_size + 2, round(H * scale)), max(kernel_size + 2, round(W * scale))))
    kernels = []
    for g in guide.split(1):
        top, left = informative_region(g, region)
        kernels.append(estimate_kernel_l0(g[..., top:top + region, left:left + region], **est))
    k = torch.cat(kernels)
    if scale < 1:
        size = 2 * round(kernel_size / scale / 2) + 1
        k = project_kernel(_resize(k, (size, size)).clamp_min(0), center=True)
    x = deconvolve_tiled(blurred, k, tile, lam_scale=final_lam_scale, sigma=sigma, boundary=boundary)
    return x, k


def deconvolve_tiled(blurred, kernel, tile: int, **hqs_options) -> torch.Tensor:
    """Hyper-Laplacian HQS of a whole photo, tile by tile when it is larger than ``tile`` (the overlap,
    four kernel sizes, hides the tiles' borders); the noise level is estimated once on the whole photo."""
    from ..inference.tiling import tiled_apply
    from .wiener import noise_sigma

    H, W = blurred.shape[-2:]
    if max(H, W) <= tile:
        return hqs(blurred, kernel, prior="hl", **hqs_options)
    if hqs_options.get("sigma") is None:
        hqs_options["sigma"] = noise_sigma(blurred, None).flatten()
    overlap = min(4 * kernel.shape[-1], tile // 2)
    outs = []
    for i in range(blurred.shape[0]):
        opts = dict(hqs_options, sigma=hqs_options["sigma"][i:i + 1] if torch.is_tensor(hqs_options["sigma"]) else hqs_options["sigma"])
        outs.append(tiled_apply(lambda t: hqs(t, kernel[i:i + 1], prior="hl", **opts), blurred[i:i + 1], tile=tile, overlap=overlap))
    return torch.cat(outs)
