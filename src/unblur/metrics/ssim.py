"""Structural similarity (SSIM, Wang et al. 2004), in the two flavours papers report.

``variant="gaussian"`` (default): per channel, 11x11 Gaussian window with sigma 1.5, population
(co)variances, ``K1 = 0.01``, ``K2 = 0.03``, averaged over the *valid* region (the 5 px where the
window would leave the image are not used) and over channels. This is exactly
``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=..., channel_axis=...)`` (scikit-image truncates its
Gaussian at 3.5 sigma, giving the same 11 taps, and crops ``(11 - 1) // 2`` px on each side before
averaging), and BasicSR's ``calculate_ssim`` without its rounding to uint8.

``variant="matlab3d"``: what MATLAB's ``ssim(A, ref)`` returns for an ``H x W x 3`` array, which it
treats as a 3-D volume (the GoPro / HIDE evaluation scripts call it on the RGB images). Our reading
of MATLAB's documented behaviour: the local statistics use a 3-D Gaussian filter of size
``2 * ceil(3 * sigma) + 1 = 11`` in every direction with sigma 1.5 (``imgaussfilt3`` with
``'replicate'`` padding), so along the channel axis the 3 planes are extended by repeating the
first and last plane; the SSIM map has one value per voxel and the result is the mean over *all*
voxels (no border is dropped). NAFNet's Python ``ssim`` with ``ssim3d=True`` does the same
(replicate padding, 11x11x11 kernel, mean of the whole map). A single gray channel reduces to
MATLAB's 2-D ``ssim`` (replicate padding, mean over all pixels). Values differ from the per-channel
variant (channels are mixed and borders are counted), so always say which one a number uses.

``variant="skimage"``: ``skimage.metrics.structural_similarity(x, y, data_range=..., channel_axis=...)`` with its
defaults (the DPDD defocus protocol): per channel, a 7x7 *uniform* window, *sample* (co)variances (``49 / 48``),
``K1 = 0.01``, ``K2 = 0.03``, averaged over the valid region (3 px cropped on each side) and channels.

Every variant is invariant to a joint scaling of images and ``data_range``: uint8 images with
``data_range=255`` and the same images divided by 255 with ``data_range=1`` give the same SSIM.
"""
from __future__ import annotations

import torch

from ..errors import InputError
from ..physics.conv import pad
from .psnr import prepare_pair

__all__ = ["ssim", "gaussian_window", "SSIM_VARIANTS"]

SSIM_VARIANTS = ("gaussian", "matlab3d", "skimage")
SKIMAGE_WINDOW = 7  # scikit-image's default: a 7x7 uniform window, sample covariances
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """1-D Gaussian window of odd ``size`` centred on the middle tap, normalised to sum 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be odd and positive, got {size}")
    r = size // 2
    t = torch.arange(-r, r + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _filter_axis(z: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """'Valid' filtering along ``dim`` with the symmetric window ``w`` (pairs of taps share a multiply)."""
    k = w.numel()
    r = k // 2
    n = z.shape[dim] - k + 1
    out = z.narrow(dim, r, n) * w[r]
    for i in range(r):
        out.add_(z.narrow(dim, i, n) + z.narrow(dim, k - 1 - i, n), alpha=float(w[i]))
    return out


def _filter_hw(maps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of the last two dims of (..., H, W) with the symmetric window ``w``.

    Shifted sums rather than ``conv2d``: several times faster on CPU in float64 (no fast double
    convolution kernels there), one 2-D map at a time to stay within cache-friendly sizes.
    """
    lead, (H, W) = maps.shape[:-2], maps.shape[-2:]
    flat = maps.reshape(-1, H, W)
    k = w.numel()
    out = flat.new_empty(flat.shape[0], H - k + 1, W - k + 1)
    for i in range(flat.shape[0]):
        out[i] = _filter_axis(_filter_axis(flat[i], w, -1), w, -2)
    return out.reshape(*lead, H - k + 1, W - k + 1)


def _channel_matrix(C: int, w: torch.Tensor) -> torch.Tensor:
    """(C, C) matrix applying the window ``w`` along channels with replicate padding."""
    r = w.numel() // 2
    M = w.new_zeros(C, C)
    for c in range(C):
        for d in range(-r, r + 1):
            M[c, min(max(c + d, 0), C - 1)] += w[d + r]
    return M


def _ssim_map(mx, my, sxx, syy, sxy, data_range: float, cov_scale: float = 1.0) -> torch.Tensor:
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    vx = cov_scale * (sxx - mx * mx)
    vy = cov_scale * (syy - my * my)
    cov = cov_scale * (sxy - mx * my)
    num = (2 * mx * my + c1) * (2 * cov + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return num / den


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    border: int = 0,
    variant: str = "gaussian",
) -> torch.Tensor:
    """SSIM per image, shape (B,), for (B, C, H, W) / (C, H, W) / (H, W) inputs (see the module doc).

    ``border`` pixels are removed from each side first. The ``"gaussian"`` variant needs at least
    11x11 pixels after that.
    """
    if variant not in SSIM_VARIANTS:
        raise InputError(f"unknown SSIM variant {variant!r}; choose one of {', '.join(SSIM_VARIANTS)}")
    if data_range <= 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    x, y = prepare_pair(x, y, border)
    B, C, H, W = x.shape
    maps = torch.stack([x, y, x * x, y * y, x * y])  # (5, B, C, H, W)
    if variant == "skimage":
        n = SKIMAGE_WINDOW
        if H < n or W < n:
            raise InputError(f"SSIM needs images of at least {n}x{n} pixels, got {H}x{W}")
        stats = _filter_hw(maps, torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device))
        s = _ssim_map(*stats.unbind(0), data_range=float(data_range), cov_scale=n * n / (n * n - 1))
        return s.mean(dim=(1, 2, 3))
    w = gaussian_window(WINDOW, SIGMA, dtype=x.dtype, device=x.device)
    if variant == "gaussian":
        if H < WINDOW or W < WINDOW:
            raise InputError(f"SSIM needs images of at least {WINDOW}x{WINDOW} pixels, got {H}x{W}")
        stats = _filter_hw(maps, w)
    else:
        r = WINDOW // 2
        stats = _filter_hw(pad(maps.reshape(5 * B, C, H, W), (r, r, r, r), "replicate"), w)
        stats = stats.reshape(5, B, C, H, W)
        stats = torch.einsum("dc,nbchw->nbdhw", _channel_matrix(C, w), stats)
    s = _ssim_map(*stats.unbind(0), data_range=float(data_range))
    return s.mean(dim=(1, 2, 3))
