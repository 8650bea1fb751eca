"""Classical (non-learned) deblurring: Wiener, HQS with TV / hyper-Laplacian priors, Richardson–Lucy
and L0-prior blind deconvolution. Batched ``(B, C, H, W)`` torch code on any device.

Every method models a real photo: the observation is a ``valid`` convolution of a scene larger
than the frame, handled by :mod:`unblur.physics.boundary` (no border ringing). The output has the
size of the input.

Example:
    >>> import torch
    >>> from unblur.classical import deblur, METHODS
    >>> sorted(METHODS)
    ['blind-l0', 'hqs-hl', 'hqs-tv', 'richardson-lucy', 'wiener']
    >>> y = torch.rand(1, 3, 40, 40)
    >>> res = deblur(y, torch.ones(5, 5) / 25, method="wiener")
    >>> res.image.shape, res.kernel.shape
    (torch.Size([1, 3, 40, 40]), torch.Size([1, 1, 5, 5]))
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InputError
from ..physics.boundary import BOUNDARIES, Domain
from ..physics.kernels import as_kernel
from .blind_l0 import blind_l0
from .hqs import hqs_hl, hqs_tv
from .richardson_lucy import richardson_lucy
from .wiener import estimate_noise_sigma, wiener

__all__ = ["METHODS", "MethodInfo", "DeblurResult", "deblur", "estimate_noise_sigma", "Domain"]


@dataclass(frozen=True)
class MethodInfo:
    """One registered method: ``function(blurred, kernel, **options) -> image`` (non-blind) or
    ``function(blurred, **options) -> (image, kernel)`` (blind)."""

    name: str
    function: Callable
    blind: bool
    description: str

    @property
    def options(self) -> dict[str, object]:
        """Keyword options and their defaults."""
        params = list(inspect.signature(self.function).parameters.values())
        return {p.name: p.default for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY}


@dataclass
class DeblurResult:
    """``image`` (B, C, H, W) in [0, 1]; ``kernel`` (B, 1, kh, kw): the one used (given or estimated)."""

    image: torch.Tensor
    kernel: torch.Tensor


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("wiener", wiener, False, "Wiener/LMMSE filter, NSR from the estimated noise level and a 1/f^2 image spectrum"),
        MethodInfo("hqs-tv", hqs_tv, False, "half-quadratic splitting with an isotropic total-variation prior"),
        MethodInfo("hqs-hl", hqs_hl, False, "half-quadratic splitting with a hyper-Laplacian (alpha=2/3) gradient prior (Krishnan & Fergus 2009)"),
        MethodInfo("richardson-lucy", richardson_lucy, False, "Richardson-Lucy with a noise-scaled total-variation term (Dey et al. 2006)"),
        MethodInfo("blind-l0", blind_l0, True, "blind: L0 intensity+gradient prior, coarse-to-fine kernel estimate (Pan et al. 2014), then hqs-hl"),
    )
}


def _check_image(blurred) -> None:
    if not torch.is_tensor(blurred):
        raise InputError(f"blurred image must be a torch.Tensor, got {type(blurred).__name__}")
    if blurred.ndim != 4 or min(blurred.shape) < 1:
        raise InputError(f"blurred image must have shape (B, C, H, W), got {tuple(blurred.shape)}")
    if not blurred.is_floating_point():
        raise InputError(f"blurred image must be floating point in [0, 1], got dtype {blurred.dtype}")
    if blurred.shape[-1] < 2 or blurred.shape[-2] < 2:
        raise InputError(f"blurred image is too small: {tuple(blurred.shape)}")
    if not bool(torch.isfinite(blurred).all()):
        raise InputError("blurred image contains NaN or infinite values")


def _check_kernel(kernel, blurred: torch.Tensor) -> torch.Tensor:
    """Kernel as a normalised (B, 1|C, kh, kw) tensor on the image's device and dtype (:func:`as_kernel`)."""
    if not torch.is_tensor(kernel):
        raise InputError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    k = as_kernel(kernel, like=blurred, ndims=(2, 4))
    return k.expand(blurred.shape[0], *k.shape[1:])


def deblur(blurred: torch.Tensor, kernel: torch.Tensor | None = None, method: str = "hqs-hl", **options) -> DeblurResult:
    """Deblur ``blurred`` (B, C, H, W) in [0, 1] with a classical ``method`` (see :data:`METHODS`).

    Non-blind methods need ``kernel`` ((kh, kw) or (B|1, 1|C, kh, kw); normalised to sum 1 here);
    blind methods estimate it (``kernel_size`` option). ``options`` are the method's keyword
    options (``METHODS[name].options``). Bad inputs raise :class:`unblur.errors.InputError`.
    """
    if method not in METHODS:
        raise InputError(f"unknown classical method {method!r} (choose from {', '.join(METHODS)})")
    info = METHODS[method]
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)} for method {method!r} (valid: {', '.join(info.options)})")
    _check_image(blurred)
    if "boundary" in options and options["boundary"] not in BOUNDARIES:
        raise InputError(f"boundary must be one of {BOUNDARIES}, got {options['boundary']!r}")
    work_dtype = blurred.dtype if blurred.dtype in (torch.float32, torch.float64) else torch.float32
    y = blurred.to(work_dtype)
    if info.blind:
        if kernel is not None:
            raise InputError(f"method {method!r} is blind: it estimates the kernel, do not pass one")
        ks = options.get("kernel_size", info.options.get("kernel_size"))
        if ks is not None and (not isinstance(ks, int) or isinstance(ks, bool) or ks < 3 or ks % 2 == 0):
            raise InputError(f"kernel_size must be an odd integer >= 3, got {ks!r}")
        if ks is not None and ks > min(y.shape[-2:]):
            raise InputError(f"kernel_size {ks} is larger than the image {y.shape[-2]}x{y.shape[-1]}")
        try:
            image, k = info.function(y, **options)
        except (ValueError, TypeError) as err:
            raise InputError(f"{method}: {err}") from err
    else:
        if kernel is None:
            raise InputError(f"method {method!r} is non-blind: it needs a kernel")
        k = _check_kernel(kernel, y)
        try:
            image = info.function(y, k, **options)
        except (ValueError, TypeError) as err:
            raise InputError(f"{method}: {err}") from err
    return DeblurResult(image=image.clamp(0, 1).to(blurred.dtype), kernel=k.to(blurred.dtype))
