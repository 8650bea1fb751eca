"""Blur physics: convolution, kernels, noise and degradation pipelines."""
from .conv import conv2d, conv2d_adjoint, pad, pad_adjoint, MODES
from .fft import psf2otf, otf2psf, rfft2, irfft2, fft2, ifft2
from .kernels import (
    KERNEL_KINDS,
    DefocusBlurGenerator,
    FileKernels,
    GaussianBlurGenerator,
    MixedBlurGenerator,
    MotionBlurGenerator,
    center_kernel,
    defocus_kernel,
    gaussian_kernel,
    get_kernel_generator,
    motion_kernel,
    normalize_kernel,
    pad_kernel,
)
from .noise import GaussianNoise, PoissonGaussianNoise
from .color import linear_to_srgb, srgb_to_linear
from .degradations import clip, jpeg, saturate
from .operators import Blur
from .pipeline import DegradationPipeline, crop_valid
