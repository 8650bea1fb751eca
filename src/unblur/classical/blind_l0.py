"""Blind deblurring with L0 priors on gradients and intensities (after Pan, Hu, Su & Yang, CVPR 2014).

Model::

    min_{x,k} ||k (*) x - y||^2 + lambda_grad ||grad x||_0 + lambda_pixel ||x||_0 + gamma ||k||^2

The kernel is estimated on the luminance, coarse to fine over a pyramid whose kernel sizes grow by
~sqrt(2) from 5 px up to ``kernel_size``. At every level, ``iters_per_level`` alternations
(``final_iters`` at the finest) of

1. **latent image** (half-quadratic splitting, :class:`~unblur.physics.FourierDataStep` in closed
   form): auxiliaries ``g ~ grad x`` and ``u ~ x`` are hard-thresholded (``g = grad x`` where
   ``|grad x|^2 >= lambda_grad / mu``, ``u = x`` where ``x^2 >= lambda_pixel / beta``), and ``x`` solves
   the quadratic problem with weights ``mu`` and ``beta``; both start at twice their lambda and
   grow by 3 up to ``mu_max``. The observation is the smooth periodic extension of ``y``
   (:meth:`~unblur.physics.Domain.extend`), so every step is one FFT division;
2. **salient edges** (Cho & Lee 2009): only gradients of ``x`` above a threshold enter the kernel step;
   the threshold is chosen at the first alternation of each level so that each of four orientation
   bins keeps at least ``edge_ratio x kernel size`` pixels, then divided by 1.1 at every alternation;
3. **kernel** (:func:`~unblur.physics.kernel_step`): gradient-domain least squares with Tikhonov
   ``gamma``, masked to the observed window (no boundary artefact enters), ``kernel_cg_iters`` CG
   steps from a flat kernel at the first alternation of a level, then from the previous estimate;
4. **projection** (:func:`~unblur.physics.project_kernel`): negatives clipped, taps below
   ``threshold`` x max zeroed, 8-connected components lighter than ``min_component_mass`` removed,
   normalised, re-centred on its centroid;
5. both lambdas divided by ``lambda_decay`` (floor ``lambda_min``), across levels.

Then ``refine_iters`` alternations at the finest level take the latent image from a quick
natural-image (hyper-Laplacian) deconvolution instead of the L0 one: its gradients are not
cartoon-like, so the kernel loses the blur that the L0 image's too-sharp edges put into it.

Large photos: the kernel is estimated at full resolution on the ``region x region`` window with the
most salient edges (searched on a copy scaled to ``work_size``); the pyramid supplies the coarse
scales. (Estimating on a downscaled photo and upscaling the kernel was tried: on a 12 MP photo with a
45 px shake the upscaled kernel made the result worse than the input.) The default kernel size grows
with the photo (:func:`default_kernel_size`). The whole photo is then deconvolved (hyper-Laplacian HQS,
in overlapping tiles of ``tile`` pixels so that memory stays bounded).

Choices and the reasons are in ``docs/classical.md``; the defaults were tuned on synthetic blur of the
training photos (``benchmarks/blind_synthetic.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..physics.boundary import Domain, gradient_otfs, gradients, salient_edges
from ..physics.kernels import project_kernel, trim_kernel
from ..physics.solvers import FourierDataStep, kernel_step
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


def l0_latent(y_ext, otf, d_otfs, lambda_grad, lambda_pixel, mu_max, mu_rate=3.0):
    """Latent image of the L0 model on the periodic domain (HQS with joint continuation)."""
    x = y_ext
    step = FourierDataStep(y_ext, otf, d_otfs)
    mu = 2 * lambda_grad
    while mu < mu_max:
        gh, gv = gradients(x)
        keep = (gh * gh + gv * gv) >= lambda_grad / mu
        beta, u = 0.0, None
        if lambda_pixel > 0:
            beta = mu * lambda_pixel / lambda_grad
            u = torch.where(x * x >= lambda_pixel / beta, x, torch.zeros_like(x))
        x = step(beta=beta, u=u, weights=(mu, mu), targets=(gh * keep, gv * keep))
        mu *= mu_rate
    return x


def _kernel_update(dom, x, y, size, gamma, edges, iters, opts):
    gh, gv = gradients(x)
    mask, edges["threshold"] = salient_edges(gh, gv, edges["count"], edges["threshold"])
    edges["threshold"] /= 1.1
    k0 = edges.get("k")  # warm start from the previous alternation of this level
    if k0 is None:
        k0 = torch.full((1, 1, size, size), 1.0 / size ** 2, dtype=x.dtype, device=x.device)
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
        x = dom.extend(hqs(y, k, prior="hl", beta_rate=4.0, cg_iters=4))  # a quick natural image suffices
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


def default_kernel_size(height: int, width: int) -> int:
    """31 px up to a long side of 2048 px; beyond, scaled with the long side (the same shake covers
    more pixels on a larger sensor: 61 at 4000 px), odd, at most 95; never above the short side."""
    k = 31 if max(height, width) <= 2048 else min(95, round(31 * max(height, width) / 2048))
    k -= 1 - k % 2
    short = min(height, width)
    return max(3, min(k, short if short % 2 else short - 1))


def _region_in_photo(guide: torch.Tensor, size: tuple[int, int], work_size: int) -> tuple[int, int]:
    """Top-left corner of the most informative ``size`` window of ``guide`` (1, 1, H, W), searched on a
    copy scaled to at most ``work_size`` px (cheap on a 12 MP photo)."""
    H, W = guide.shape[-2:]
    scale = min(1.0, work_size / max(H, W))
    if scale < 1:
        small = _resize(guide, (max(1, round(H * scale)), max(1, round(W * scale))))
        top, left = informative_region(small, max(1, round(max(size) * scale)))
        return min(round(top / scale), H - size[0]), min(round(left / scale), W - size[1])
    return informative_region(guide, max(size))


def blind_l0(
    blurred: torch.Tensor,
    *,
    kernel_size: int | None = None,
    lambda_grad: float = 1e-2,
    lambda_pixel: float = 3e-3,
    lambda_decay: float = 1.1,
    gamma: float = 2.0,
    iters_per_level: int = 5,
    final_iters: int = 6,
    refine_iters: int = 2,
    edge_ratio: float = 30.0,
    threshold: float = 0.05,
    min_component_mass: float = 0.1,
    final_lam_scale: float = 0.3,
    sigma: float | None = None,
    work_size: int = 1024,
    region: int = 768,
    tile: int = 1024,
    boundary: str = "valid",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind deblurring of ``blurred`` (B, C, H, W); returns (image, kernel (B, 1, K, K)).

    Args:
        kernel_size: odd side of the estimated kernel in photo pixels (must cover the blur); ``None``:
            :func:`default_kernel_size` (31, scaled up for photos above 2048 px).
        lambda_grad, lambda_pixel: initial L0 weights of gradients and intensities (latent image).
        lambda_decay: both lambdas are divided by it after every alternation (floor 1e-4).
        gamma: Tikhonov weight of the kernel step.
        iters_per_level, final_iters: alternations per pyramid level, and at the finest level.
        refine_iters: alternations with the hyper-Laplacian latent image after the pyramid.
        edge_ratio: salient-edge selection keeps at least ``edge_ratio x size`` pixels per orientation.
        threshold, min_component_mass: kernel clean-up (relative tap threshold, smallest component kept).
        final_lam_scale: ``lam_scale`` of the final hyper-Laplacian HQS deconvolution.
        sigma: noise level for the final deconvolution (estimated when ``None``).
        region: side of the window of the photo (its most informative one, full resolution) the kernel
            is estimated on; the pyramid provides the coarse scales.
        work_size: the informative window is searched on a copy of the photo scaled to this long side.
        tile: the final deconvolution runs on overlapping tiles of this size (bounded memory).
        boundary: ``"valid"`` (default) or ``"circular"`` for the final deconvolution.
    """
    H, W = blurred.shape[-2:]
    if kernel_size is None:
        kernel_size = default_kernel_size(H, W)
    est = dict(kernel_size=kernel_size, lambda_grad=lambda_grad, lambda_pixel=lambda_pixel, lambda_decay=lambda_decay,
               gamma=gamma, iters_per_level=iters_per_level, final_iters=final_iters, refine_iters=refine_iters,
               edge_ratio=edge_ratio, threshold=threshold, min_component_mass=min_component_mass)
    guide = luminance(blurred)
    h, w = min(region, H), min(region, W)
    kernels = []
    for g in guide.split(1):
        top, left = _region_in_photo(g, (h, w), work_size)
        kernels.append(estimate_kernel_l0(g[..., top:top + h, left:left + w], **est))
    k = torch.cat(kernels)
    # the estimate's empty border only widens the unknown band of the deconvolution: trim it
    x = deconvolve_tiled(blurred, trim_kernel(k), tile, lam_scale=final_lam_scale, sigma=sigma, boundary=boundary)
    return x, k


def deconvolve_tiled(blurred, kernel, tile: int, **hqs_options) -> torch.Tensor:
    """Hyper-Laplacian HQS of a whole photo; a photo larger than ``tile`` is deconvolved tile by tile
    and channel by channel (memory bounded by one tile) with a shorter continuation (``beta`` 1 to 256
    by 2*sqrt(2), Krishnan & Fergus' schedule, 4 CG steps: about 3x faster, -0.3 to -0.5 dB with
    the true kernel on Levin's captures). Every tile has the ``valid`` boundary model, so its borders
    are handled like the photo's; an overlap of two kernel sizes hides them. The noise level is
    estimated once on the whole photo."""
    from ..inference.tiling import tiled_apply
    from .wiener import noise_sigma

    H, W = blurred.shape[-2:]
    if max(H, W) <= tile:
        return hqs(blurred, kernel, prior="hl", **hqs_options)
    for name, value in (("beta_rate", 2 * math.sqrt(2)), ("beta_max", 256.0), ("cg_iters", 4)):
        hqs_options.setdefault(name, value)
    sigma = hqs_options.pop("sigma", None)
    if sigma is None:
        sigma = noise_sigma(blurred, None).flatten()
    overlap = min(2 * max(kernel.shape[-2:]), tile // 4)
    out = torch.empty_like(blurred)
    for i in range(blurred.shape[0]):
        s = sigma[i:i + 1] if torch.is_tensor(sigma) else sigma
        for c in range(blurred.shape[1]):
            out[i:i + 1, c:c + 1] = tiled_apply(lambda t: hqs(t, kernel[i:i + 1], prior="hl", sigma=s, **hqs_options),
                                                blurred[i:i + 1, c:c + 1], tile=tile, overlap=overlap)
    return out
