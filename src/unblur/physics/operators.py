"""Linear blur operator ``A x = kernel (*) x`` with its exact adjoint, for solvers and tests.

Example:
    >>> import torch
    >>> from unblur.physics.operators import Blur
    >>> A = Blur(torch.ones(3, 5) / 15, mode="valid")
    >>> A.output_shape((32, 32))
    (30, 28)
    >>> x, y = torch.rand(1, 1, 32, 32, dtype=torch.float64), torch.rand(1, 1, 30, 28, dtype=torch.float64)
    >>> bool(torch.isclose((A(x) * y).sum(), (x * A.A_adjoint(y)).sum()))
    True
"""
from __future__ import annotations

import torch

from .conv import MODES, as_kernel4d, conv2d, conv2d_adjoint, output_shape

__all__ = ["Blur"]

_METHODS = ("auto", "fft", "direct")


class Blur:
    """Convolution with ``kernel`` ((kh, kw) or (B|1, C|1, kh, kw)) and boundary ``mode`` (see ``conv.MODES``).

    The kernel is used as given (no normalisation) and follows the input's device and dtype.
    ``A(x)`` / ``A_adjoint(y)`` / ``AtA(x)`` work on ``(B, C, H, W)`` images.
    """

    def __init__(self, kernel: torch.Tensor, mode: str = "valid", method: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"Blur mode must be one of {MODES}, got {mode!r}")
        if method not in _METHODS:
            raise ValueError(f"Blur method must be one of {_METHODS}, got {method!r}")
        self.kernel = as_kernel4d(kernel)
        self.mode, self.method = mode, method

    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Forward operator: ``conv2d(x, kernel, mode)``."""
        return conv2d(x, self.kernel, self.mode, self.method)

    __call__ = A

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Exact adjoint: ``conv2d_adjoint(y, kernel, mode)`` (maps output size back to input size)."""
        return conv2d_adjoint(y, self.kernel, self.mode, self.method)

    def AtA(self, x: torch.Tensor) -> torch.Tensor:
        """Normal operator ``A^T A x`` (symmetric positive semi-definite)."""
        return self.A_adjoint(self.A(x))

    @property
    def kernel_size(self) -> tuple[int, int]:
        return tuple(self.kernel.shape[-2:])

    def output_shape(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of ``A(x)`` for an input of spatial size ``hw``."""
        return output_shape(tuple(hw), self.kernel_size, self.mode)

    def input_shape(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of ``A_adjoint(y)`` (the input size) for an output of spatial size ``hw``."""
        (H, W), (kh, kw) = hw, self.kernel_size
        if self.mode == "valid":
            return H + kh - 1, W + kw - 1
        if self.mode == "full":
            return H - kh + 1, W - kw + 1
        return H, W

    def __repr__(self) -> str:
        return f"Blur(kernel_size={self.kernel_size}, mode={self.mode!r}, method={self.method!r})"
