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
   ``gamma`` plus a reweighted L1 penalty ``kernel_sparsity * sum_i |k_i| / max(|k'_i|, threshold * max|k'|)``
   around the current kernel ``k'`` (one IRLS step per alternation: the taps off the shake's path pay
   up to 20 times more than those on it, so a box much larger than the shake gathers fewer spurious
   tails; in a box above 31 px, the size it was tuned in, the weight is scaled by ``31 / kernel_size``:
   a long shake's taps are small and would lose their faint tail), masked to the observed window (no
   boundary artefact enters), ``kernel_cg_iters`` CG
   steps from a flat kernel at the first alternation of a level, then from the previous estimate;
4. **projection** (:func:`~unblur.physics.project_kernel`): negatives clipped, taps below
   ``threshold`` x max zeroed, 8-connected components lighter than ``min_component_mass`` removed,
   normalised, re-centred on its centroid;
5. both lambdas divided by ``lambda_decay`` (floor ``lambda_min``, and ``noise_lambda`` times the variance of
   the noise left at the level: :func:`~unblur.physics.l0_kernel.noise_floor`), across levels.

Then ``refine_iters`` alternations at the finest level take the latent image from a short
natural-image (hyper-Laplacian, CG on the ``valid`` model) deconvolution, :func:`~unblur.physics.l0_kernel.natural_latent`,
instead of the L0 one: its gradients are not
cartoon-like, so the kernel loses the blur that the L0 image's too-sharp edges put into it.

Large photos: the kernel is estimated at full resolution on the ``region x region`` window with the
most salient edges (searched on a copy scaled to ``work_size``); the pyramid supplies the coarse
scales. (Estimating on a downscaled photo and upscaling the kernel was tried: on a 12 MP photo with a
45 px shake the upscaled kernel made the result worse than the input.) The default kernel size grows
with the photo (:func:`default_kernel_size`). The whole photo is then deconvolved (hyper-Laplacian HQS,
in overlapping tiles of ``tile`` pixels so that memory stays bounded), with a noise level of at least
``kernel_error``: the estimate is not exact, and on a clean photo its error would be amplified like noise.
Before that the photo is moved by the kernel's sub-pixel centroid offset (``register``), so the result sits where the
kernel centred exactly on its centroid puts it, not up to half a pixel off (whole-pixel centring cannot do better).

Choices and the reasons are in ``docs/classical.md``; the defaults were tuned on synthetic blur of the
training photos (``benchmarks/blind_synthetic.py``).
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError
from ..physics.color import luminance  # noqa: F401  (re-exported: callers find it here)
from ..physics.kernels import trim_kernel
from ..physics.l0_kernel import (  # noqa: F401  (the kernel estimation lives in physics; re-exported)
    KERNEL_ERROR_SIGMA, default_kernel_size, estimate_kernel_l0, estimate_photo_kernel, informative_region, l0_latent,
    pyramid_kernel_sizes, region_in_photo)
from ..physics.registration import register_to_kernel
from .hqs import hqs


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
    kernel_sparsity: float = 0.05,
    noise_lambda: float = 32.0,
    final_lam_scale: float = 0.3,
    kernel_error: float = KERNEL_ERROR_SIGMA,
    sigma: float | None = None,
    work_size: int = 1024,
    region: int = 768,
    tile: int = 1024,
    boundary: str = "valid",
    register: bool = True,
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
        kernel_sparsity: weight of the reweighted-L1 penalty on the kernel taps (0: Tikhonov ``gamma`` only).
        noise_lambda: the L0 weights stay above this multiple of the noise variance at each pyramid level
            (0: no noise floor).
        final_lam_scale: ``lam_scale`` of the final hyper-Laplacian HQS deconvolution.
        kernel_error: the final deconvolution assumes a noise level of at least this: a blind kernel is never
            exact, and on a clean photo what the data term cannot explain with it (the kernel's error times the
            image) is amplified like noise would be; on noisier photos the photo's own noise dominates (0: the
            photo's noise only, floor 1e-3).
        sigma: noise level of the photo(s) for the final deconvolution (a number or one per photo; estimated when
            ``None``; raised to ``kernel_error`` if below). The kernel estimate always estimates its own.
        region: side of the window of the photo (its most informative one, full resolution) the kernel
            is estimated on; the pyramid provides the coarse scales.
        work_size: the informative window is searched on a copy of the photo scaled to this long side.
        tile: the final deconvolution runs on overlapping tiles of this size (bounded memory).
        boundary: ``"valid"`` (default) or ``"circular"`` for the final deconvolution.
        register: deconvolve the photo moved by the kernel's sub-pixel centroid offset
            (:func:`~unblur.physics.register_to_kernel`), so the result sits where the kernel centred exactly on its
            centroid would put it (the convention of our kernels), not up to half a pixel off; ``False``: as estimated.
    """
    # bad values fail here, not after the slow kernel estimate
    sigmas = _per_photo(sigma, blurred.shape[0])
    if not (math.isfinite(kernel_error) and kernel_error >= 0):
        raise InputError(f"kernel_error must be a finite number >= 0, got {kernel_error}")
    H, W = blurred.shape[-2:]
    if kernel_size is None:
        kernel_size = default_kernel_size(H, W)
    est = dict(kernel_size=kernel_size, lambda_grad=lambda_grad, lambda_pixel=lambda_pixel, lambda_decay=lambda_decay,
               gamma=gamma, iters_per_level=iters_per_level, final_iters=final_iters, refine_iters=refine_iters,
               edge_ratio=edge_ratio, threshold=threshold, min_component_mass=min_component_mass,
               kernel_sparsity=kernel_sparsity, noise_lambda=noise_lambda)
    k = estimate_photo_kernel(blurred, region=region, work_size=work_size, **est)
    # the estimate's empty border only widens the unknown band of the deconvolution: trim it, photo by photo
    # (a batch's common support would make one photo's result depend on the others' kernels)
    # whole-pixel centring leaves the kernel's centroid up to half a pixel off: deconvolving the photo moved by that
    # offset puts the result where the exactly centred kernel would (about 1 dB on the synthetic tuning sets)
    x = torch.cat([deconvolve_tiled(register_to_kernel(blurred[i:i + 1], k[i:i + 1]) if register else blurred[i:i + 1],
                                    trim_kernel(k[i:i + 1]), tile, lam_scale=final_lam_scale,
                                    sigma=effective_sigma(blurred[i:i + 1], sigmas[i], kernel_error),
                                    boundary=boundary)
                   for i in range(blurred.shape[0])])
    return x, k


def effective_sigma(blurred: torch.Tensor, sigma, kernel_error: float) -> torch.Tensor:
    """Noise level (1, 1, 1, 1) of the final deconvolution of one photo: its noise (``sigma``, estimated when
    ``None``), at least ``kernel_error``."""
    from .wiener import noise_sigma

    s = noise_sigma(blurred, sigma)
    return s.clamp_min(kernel_error)


def _per_photo(sigma, batch: int) -> list:
    """One noise level (``None``: estimate it) per photo of a batch of ``batch`` from ``sigma`` (None, a number, or one
    value per photo)."""
    if sigma is None:
        return [None] * batch
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if s.numel() not in (1, batch):
        raise InputError(f"sigma must be one value or one per photo ({batch}), got {s.numel()} values")
    return [float(v) for v in s.expand(batch)]


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
