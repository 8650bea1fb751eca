"""The one 2-D convolution of unblur: true convolution (not correlation), batched, any device.

Convention everywhere in the package: ``blurred = kernel (*) sharp``, the kernel's centre is the
pixel ``(kh // 2, kw // 2)``, images are ``(B, C, H, W)`` and kernels are ``(kh, kw)`` or
``(B or 1, C or 1, kh, kw)`` (broadcast over batch and channels).

Boundary modes (``mode``):

- ``"valid"``: only pixels that see the whole kernel; output ``(H-kh+1, W-kw+1)``. This is how a
  real camera records a scene that extends beyond the frame.
- ``"full"``: zero-padded linear convolution; output ``(H+kh-1, W+kw-1)``. Adjoint of ``valid``.
- ``"circular"``: periodic image, same size. What the FFT diagonalises.
- ``"reflect"``, ``"replicate"``: image extended by mirror (edge excluded) or by its edge pixels,
  same size.
- ``"zeros"``: zero-padded, same size.

Each mode is a linear operator and :func:`conv2d_adjoint` is its exact adjoint.
``method="fft"`` and ``method="direct"`` give the same numbers to float32 rounding; ``"auto"``
picks FFT for large kernels.

Example:
    >>> import torch
    >>> from unblur.physics.conv import conv2d, conv2d_adjoint
    >>> x = torch.rand(2, 3, 32, 32)
    >>> k = torch.ones(5, 5) / 25
    >>> conv2d(x, k, mode="valid").shape
    torch.Size([2, 3, 28, 28])
    >>> y = torch.rand(2, 3, 28, 28)
    >>> lhs = (conv2d(x, k, "valid") * y).sum(); rhs = (x * conv2d_adjoint(y, k, "valid")).sum()
    >>> bool(torch.isclose(lhs, rhs, rtol=1e-4))
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .fft import irfft2, kernel_center, psf2otf, rfft2

MODES = ("valid", "full", "circular", "reflect", "replicate", "zeros")
SAME_SIZE_MODES = ("circular", "reflect", "replicate", "zeros")
_AUTO_FFT_MIN_TAPS = 81  # direct convolution wins below ~9x9 taps on CPU and GPU


def as_kernel4d(kernel: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``kernel`` as (Bk, Ck, kh, kw), checking it broadcasts against image ``x``."""
    if not torch.is_tensor(kernel):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.ndim == 2:
        kernel = kernel[None, None]
    elif kernel.ndim != 4:
        raise InputError(f"kernel must have shape (kh, kw) or (B, C, kh, kw), got {tuple(kernel.shape)}")
    if x is not None:
        if x.ndim != 4:
            raise InputError(f"image must have shape (B, C, H, W), got {tuple(x.shape)}")
        B, C = x.shape[:2]
        if kernel.shape[0] not in (1, B) or kernel.shape[1] not in (1, C):
            raise InputError(
                f"kernel of shape {tuple(kernel.shape)} does not broadcast against image {tuple(x.shape)}"
            )
        kernel = kernel.to(device=x.device, dtype=x.dtype if x.is_floating_point() else kernel.dtype)
    return kernel


def _pad_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source index of every padded position along an axis of length ``n``."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "circular":
        return i % n
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect":  # mirror without repeating the edge pixel, repeated as often as needed
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = i % period
        return torch.where(i < n, i, period - i)
    raise InputError(f"unknown padding mode {mode!r}")


def pad(x: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad the last two dims by (top, bottom, left, right) with ``circular``/``reflect``/``replicate``/``zeros``.

    Unlike ``torch.nn.functional.pad`` any pad width works (reflection repeats as needed) and the
    exact adjoint is :func:`pad_adjoint`.
    """
    top, bottom, left, right = pads
    if mode == "zeros":
        return F.pad(x, (left, right, top, bottom))
    H, W = x.shape[-2:]
    x = x.index_select(-2, _pad_index(H, top, bottom, mode, x.device))
    return x.index_select(-1, _pad_index(W, left, right, mode, x.device))


def pad_adjoint(y: torch.Tensor, pads: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Adjoint of :func:`pad`: every padded value is added back onto the pixel it was copied from."""
    top, bottom, left, right = pads
    Hp, Wp = y.shape[-2:]
    H, W = Hp - top - bottom, Wp - left - right
    if mode == "zeros":
        return y[..., top:top + H, left:left + W]
    out = y.new_zeros(*y.shape[:-1], W).index_add_(-1, _pad_index(W, left, right, mode, y.device), y)
    return out.new_zeros(*y.shape[:-2], H, W).index_add_(-2, _pad_index(H, top, bottom, mode, y.device), out)


def same_size_pads(kh: int, kw: int) -> tuple[int, int, int, int]:
    """Pads (top, bottom, left, right) after which a ``valid`` convolution keeps the size and centre."""
    ch, cw = kernel_center(kh, kw)
    return kh - 1 - ch, ch, kw - 1 - cw, cw


def _use_fft(kernel: torch.Tensor, method: str) -> bool:
    if method not in ("auto", "fft", "direct"):
        raise InputError(f"method must be 'auto', 'fft' or 'direct', got {method!r}")
    if method == "auto":
        return kernel.shape[-1] * kernel.shape[-2] >= _AUTO_FFT_MIN_TAPS
    return method == "fft"


def _full_direct(x: torch.Tensor, k: torch.Tensor, flip: bool) -> torch.Tensor:
    """Zero-padded full convolution (flip=True) or correlation (flip=False) with grouped conv2d."""
    B, C, H, W = x.shape
    kh, kw = k.shape[-2:]
    k = k.expand(B, C, kh, kw)
    if flip:  # F.conv2d correlates: flip the kernel to convolve
        k = k.flip(-2, -1)
    out = F.conv2d(x.reshape(1, B * C, H, W), k.reshape(B * C, 1, kh, kw), padding=(kh - 1, kw - 1), groups=B * C)
    return out.reshape(B, C, H + kh - 1, W + kw - 1)


def _full_fft(x: torch.Tensor, k: torch.Tensor, flip: bool) -> torch.Tensor:
    H, W = x.shape[-2:]
    kh, kw = k.shape[-2:]
    s = (H + kh - 1, W + kw - 1)
    K = rfft2(k if flip else k.flip(-2, -1), s=s)  # correlation = convolution with the flipped kernel
    return irfft2(rfft2(x, s=s) * K, s=s).to(x.dtype)


def _full(x: torch.Tensor, k: torch.Tensor, method: str, flip: bool = True) -> torch.Tensor:
    return _full_fft(x, k, flip) if _use_fft(k, method) else _full_direct(x, k, flip)


def _valid(x, k, method, flip=True):
    kh, kw = k.shape[-2:]
    H, W = x.shape[-2:]
    if kh > H or kw > W:
        raise InputError(f"'valid' convolution needs an image at least as large as the kernel: image {H}x{W}, kernel {kh}x{kw}")
    if not _use_fft(k, method):
        B, C = x.shape[:2]
        kk = k.expand(B, C, kh, kw)
        kk = kk.flip(-2, -1) if flip else kk
        out = F.conv2d(x.reshape(1, B * C, H, W), kk.reshape(B * C, 1, kh, kw), groups=B * C)
        return out.reshape(B, C, H - kh + 1, W - kw + 1)
    return _full(x, k, method, flip)[..., kh - 1:H, kw - 1:W]


def _circular_fft(x: torch.Tensor, k: torch.Tensor, adjoint: bool) -> torch.Tensor:
    H, W = x.shape[-2:]
    otf = psf2otf(k, (H, W))
    if adjoint:
        otf = otf.conj()
    return irfft2(rfft2(x) * otf, s=(H, W)).to(x.dtype)


def conv2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "valid", method: str = "auto") -> torch.Tensor:
    """True 2-D convolution ``kernel (*) x`` with the boundary ``mode`` (see the module doc)."""
    k = as_kernel4d(kernel, x)
    kh, kw = k.shape[-2:]
    if mode == "valid":
        return _valid(x, k, method)
    if mode == "full":
        return _full(x, k, method)
    if mode not in SAME_SIZE_MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "circular" and _use_fft(k, method) and kh <= x.shape[-2] and kw <= x.shape[-1]:
        return _circular_fft(x, k, adjoint=False)
    return _valid(pad(x, same_size_pads(kh, kw), mode), k, method)


def conv2d_adjoint(y: torch.Tensor, kernel: torch.Tensor, mode: str = "valid", method: str = "auto") -> torch.Tensor:
    """Exact adjoint of :func:`conv2d` with the same kernel and mode (correlation, boundary folded back)."""
    k = as_kernel4d(kernel, y)
    kh, kw = k.shape[-2:]
    if mode == "valid":  # adjoint of valid convolution is full correlation
        return _full(y, k, method, flip=False)
    if mode == "full":
        return _valid(y, k, method, flip=False)
    if mode not in SAME_SIZE_MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "circular" and _use_fft(k, method) and kh <= y.shape[-2] and kw <= y.shape[-1]:
        return _circular_fft(y, k, adjoint=True)
    pads = same_size_pads(kh, kw)
    return pad_adjoint(_full(y, k, method, flip=False), pads, mode)


def output_shape(in_hw: tuple[int, int], kernel_hw: tuple[int, int], mode: str) -> tuple[int, int]:
    """Spatial size of ``conv2d`` output for an input of size ``in_hw``."""
    (H, W), (kh, kw) = in_hw, kernel_hw
    if mode == "valid":
        return H - kh + 1, W - kw + 1
    if mode == "full":
        return H + kh - 1, W + kw - 1
    return H, W
