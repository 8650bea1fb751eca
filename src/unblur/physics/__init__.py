"""Blur physics: convolution, kernels, noise and degradation pipelines."""
from .conv import conv2d, conv2d_adjoint, pad, pad_adjoint, MODES
from .fft import psf2otf, otf2psf, rfft2, irfft2, fft2, ifft2
