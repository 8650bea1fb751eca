"""Image and kernel quality metrics: PSNR, MAE, SSIM (two variants), kernel PSNR, error ratio.

Example:
    >>> import torch
    >>> from unblur.metrics import psnr, ssim
    >>> x = torch.rand(1, 3, 32, 32)
    >>> float(psnr(x, x.clamp(0, 0.9))[0]) > 10, float(ssim(x, x)[0])
    (True, 1.0)
"""
from .kernel import align_to_reference, error_ratio, kernel_psnr
from .psnr import best_shift, mae, moved_onto, mse, psnr, psnr_up_to_shift
from .ssim import SSIM_VARIANTS, gaussian_window, ssim

__all__ = [
    "psnr", "psnr_up_to_shift", "best_shift", "moved_onto", "mae", "mse", "ssim", "gaussian_window", "SSIM_VARIANTS", "kernel_psnr", "align_to_reference",
    "error_ratio",
]
