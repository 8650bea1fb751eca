"""FFT helpers shared by the whole package.

Every FFT in unblur goes through these wrappers: they run in float32 (complex64) even under
autocast, because cuFFT in half precision only handles power-of-two sizes and loses accuracy.
The result is cast back to the caller's floating dtype where that is meaningful.
"""
from __future__ import annotations

import contextlib

import torch

from ..errors import InputError


def _no_autocast(t: torch.Tensor):
    if t.device.type in ("cuda", "cpu") and torch.is_autocast_enabled(t.device.type):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def _as_f32(x: torch.Tensor) -> torch.Tensor:
    if x.is_complex():
        return x.to(torch.complex64) if x.dtype != torch.complex128 else x
    return x.float() if x.dtype != torch.float64 else x


def rfft2(x: torch.Tensor, s=None) -> torch.Tensor:
    """Real 2-D FFT over the last two dims, computed in float32 (or float64 when given)."""
    with _no_autocast(x):
        return torch.fft.rfft2(_as_f32(x), s=s, dim=(-2, -1))


def irfft2(X: torch.Tensor, s) -> torch.Tensor:
    """Inverse of :func:`rfft2`; ``s`` is the spatial size (H, W) to recover."""
    with _no_autocast(X):
        return torch.fft.irfft2(_as_f32(X), s=s, dim=(-2, -1))


def fft2(x: torch.Tensor, s=None) -> torch.Tensor:
    with _no_autocast(x):
        return torch.fft.fft2(_as_f32(x), s=s, dim=(-2, -1))


def ifft2(X: torch.Tensor, s=None) -> torch.Tensor:
    with _no_autocast(X):
        return torch.fft.ifft2(_as_f32(X), s=s, dim=(-2, -1))


def kernel_center(kh: int, kw: int) -> tuple[int, int]:
    """Index of a kernel's centre: the pixel that does not shift the image (``k//2``)."""
    return kh // 2, kw // 2


def psf2otf(psf: torch.Tensor, shape: tuple[int, int], real: bool = True) -> torch.Tensor:
    """Optical transfer function of ``psf`` (..., kh, kw) for images of ``shape`` (H, W).

    The PSF is zero-padded to ``shape`` and rolled so that its centre (``kernel_center``) sits at
    the origin; circular convolution is then ``irfft2(rfft2(x) * otf)``. With ``real=True`` the
    half spectrum of :func:`rfft2` is returned, otherwise the full :func:`fft2` spectrum.
    """
    kh, kw = psf.shape[-2:]
    H, W = shape
    if kh > H or kw > W:
        raise InputError(f"psf2otf: kernel {kh}x{kw} is larger than the image {H}x{W}")
    ch, cw = kernel_center(kh, kw)
    if not real or torch.compiler.is_exporting():  # (ONNX has no lowering for writing into a complex tensor)
        padded = psf.new_zeros(*psf.shape[:-2], H, W)
        padded[..., :kh, :kw] = psf
        padded = torch.roll(padded, shifts=(-ch, -cw), dims=(-2, -1))
        return rfft2(padded) if real else fft2(padded)
    # rfft2 is a real FFT of every row, then an FFT of every column: only the kernel's kh rows are non-zero, so
    # the row transforms run on those alone and are placed in the (wrapped) rows the roll would give them
    with _no_autocast(psf):
        rows = _as_f32(psf).new_zeros(*psf.shape[:-2], kh, W)
        rows[..., :kw] = _as_f32(psf)
        spec = torch.fft.rfft(torch.roll(rows, shifts=-cw, dims=-1), dim=-1)
        full = spec.new_zeros(*psf.shape[:-2], H, W // 2 + 1)
        full[..., _wrapped(ch, kh, H, psf.device), :] = spec
        return torch.fft.fft(full, dim=-2)


def _wrapped(center: int, size: int, n: int, device) -> torch.Tensor:
    """Indices on a circular axis of length ``n`` of a kernel's ``size`` taps once its ``center`` is at 0."""
    return torch.arange(-center, size - center, device=device) % n


def otf2psf(otf: torch.Tensor, shape: tuple[int, int], psf_size: tuple[int, int], real: bool = True) -> torch.Tensor:
    """Inverse of :func:`psf2otf`: spatial PSF of size ``psf_size`` centred as unblur kernels are.

    ``shape`` is the (H, W) of the image grid the OTF lives on. Works for any transfer function
    (e.g. a learned one), in which case the result is the centred crop of its impulse response.
    """
    H, W = shape
    kh, kw = psf_size
    ch, cw = kernel_center(kh, kw)
    if not real or torch.compiler.is_exporting():
        psf = irfft2(otf, s=(H, W)) if real else ifft2(otf).real
        return torch.roll(psf, shifts=(ch, cw), dims=(-2, -1))[..., :kh, :kw]
    # irfft2 is an inverse FFT of every column, then a real inverse FFT of every row: only the kh rows of the
    # crop go through the second
    with _no_autocast(otf):
        cols = torch.fft.ifft(_as_f32(otf), dim=-2)[..., _wrapped(ch, kh, H, otf.device), :]
        return torch.fft.irfft(cols, n=W, dim=-1)[..., _wrapped(cw, kw, W, otf.device)]
