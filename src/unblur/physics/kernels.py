"""Blur kernels (PSFs): closed-form models and seeded batch generators.

Every kernel returned here is non-negative, sums to 1 and has its centre at pixel ``(k // 2, k // 2)``
(the convention of :func:`unblur.physics.conv2d`). Coordinates: ``x`` is the column (to the right),
``y`` the row (downwards).

Kernel functions return one ``(size, size)`` kernel:

- :func:`motion_kernel`: camera shake, a random 2-D trajectory with inertia, jerks and a
  non-uniform exposure along the path, rasterised with sub-pixel accuracy.
- :func:`defocus_kernel`: an anti-aliased uniform disk of any (float) radius.
- :func:`gaussian_kernel`: an anisotropic, rotated Gaussian.

Generators share one call shape (deepinv style)::

    gen(batch_size=1, *, generator=None, device=None, dtype=torch.float32) -> Tensor (B, 1, k, k)

Randomness: all draws are taken from the given ``torch.Generator`` (on its own device) and every
computation runs on the CPU in float64, so one seed gives the same kernels whatever ``device`` and
(up to the final cast) ``dtype`` are asked for. Without a generator the global torch RNG is used.
The model parameters and their defaults are documented in ``docs/physics.md``.

Example:
    >>> import torch
    >>> from unblur.physics.kernels import MotionBlurGenerator, defocus_kernel
    >>> gen = MotionBlurGenerator(kernel_size=21)
    >>> k = gen(4, generator=torch.Generator().manual_seed(0))
    >>> k.shape, bool((k >= 0).all()), bool(torch.allclose(k.sum((-2, -1)), torch.ones(4, 1)))
    (torch.Size([4, 1, 21, 21]), True, True)
    >>> defocus_kernel(2.5).shape
    torch.Size([7, 7])
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError

__all__ = [
    "as_kernel",
    "project_kernel",
    "delta_kernel",
    "clean_kernel",
    "NEGATIVE_TOLERANCE",
    "normalize_kernel",
    "center_kernel",
    "kernel_centroid",
    "pad_kernel",
    "motion_kernel",
    "defocus_kernel",
    "gaussian_kernel",
    "MotionBlurGenerator",
    "DefocusBlurGenerator",
    "GaussianBlurGenerator",
    "MixedBlurGenerator",
    "FileKernels",
    "get_kernel_generator",
    "KERNEL_KINDS",
]

KERNEL_KINDS = ("motion", "defocus", "gaussian", "mixed")

_F64 = torch.float64
_CPU = torch.device("cpu")

# Motion trajectory discretisation (see docs/physics.md): velocity steps, and samples splatted per step.
_MOTION_STEPS = 256
_MOTION_SUBSAMPLES = 8
# Defocus anti-aliasing: sub-columns per pixel (rows are integrated exactly).
_DEFOCUS_SUBSAMPLES = 32


# ----------------------------------------------------------------------------------------------
# random draws: always from the given generator, on its device, then moved to the CPU in float64


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else _CPU


def _rand(shape, generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=_gen_device(generator), dtype=_F64).to(_CPU)


def _randn(shape, generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=_gen_device(generator), dtype=_F64).to(_CPU)


def _randint(high: int, shape, generator) -> torch.Tensor:
    return torch.randint(high, shape, generator=generator, device=_gen_device(generator)).to(_CPU)


def _uniform(lo: float, hi: float, n: int, generator) -> torch.Tensor:
    return lo + (hi - lo) * _rand((n,), generator)


def _check_batch(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise InputError(f"batch_size must be a non-negative int, got {batch_size!r}")
    return batch_size


def _check_size(size, what: str = "kernel size") -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"{what} must be a positive int, got {size!r}")
    return size


def _check_range(rng, what: str, low: float = 0.0) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a pair (low, high), got {rng!r}") from None
    if not (low <= lo <= hi) or not math.isfinite(hi):
        raise InputError(f"{what} must satisfy {low} <= low <= high, got {rng!r}")
    return lo, hi


def _finish(k: torch.Tensor, device, dtype) -> torch.Tensor:
    return k.to(device=device if device is not None else _CPU, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# kernel utilities: the one validation (as_kernel) and the one projection (project_kernel)

NEGATIVE_TOLERANCE = 1e-4  # negative taps down to -NEGATIVE_TOLERANCE * max are float noise, set to 0
_SHAPES = {2: "(kh, kw)", 3: "(C, kh, kw)", 4: "(B, C, kh, kw)"}


def as_kernel(
    kernel,
    *,
    like: torch.Tensor | None = None,
    name: str = "kernel",
    ndims: Sequence[int] = (2, 3, 4),
    negative_tolerance: float | None = NEGATIVE_TOLERANCE,
) -> torch.Tensor:
    """Validate a user kernel and return it as (B|1, 1|C, kh, kw) floats, each kernel summing to 1.

    ``kernel``: a tensor, NumPy array or nested sequence of shape (kh, kw), (1|C, kh, kw) or
    (B|1, 1|C, kh, kw) (``ndims`` restricts the accepted ranks). It must be finite, non-negative (taps
    down to ``-negative_tolerance * max`` are float noise and set to 0; ``negative_tolerance=None``
    keeps negative taps and only asks for a positive sum) and have a positive sum.
    With ``like`` (an image (B, C, H, W)) the kernel must match its batch and channels and not be
    larger than it, and is returned on its device and dtype; otherwise on the kernel's device, in its
    floating dtype (the default dtype for integer input). Odd and even sizes are accepted.

    Bad input raises :class:`unblur.errors.InputError` with a one-line message starting with ``name``.

    >>> as_kernel(torch.tensor([[0.0, 1.0], [2.0, 1.0]])).tolist()
    [[[[0.0, 0.25], [0.5, 0.25]]]]
    """
    if not torch.is_tensor(kernel):
        try:
            kernel = torch.as_tensor(kernel)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"{name} must be a tensor or an array, got {type(kernel).__name__}") from None
    k = kernel
    if k.ndim not in ndims:
        shapes = " or ".join(_SHAPES.get(n, f"{n}-D") for n in ndims)
        raise InputError(f"{name} must have shape {shapes}, got {tuple(k.shape)}")
    if k.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(k.shape)})")
    shape = tuple(k.shape)
    if not k.is_floating_point():
        k = k.to(torch.get_default_dtype())
    k = k.reshape((1,) * (4 - k.ndim) + shape)
    kb, kc, kh, kw = k.shape
    if like is not None:
        if like.ndim == 4 and (kb not in (1, like.shape[0]) or kc not in (1, like.shape[1])):
            raise InputError(f"{name} of shape {shape} does not match the image {tuple(like.shape)}")
        H, W = like.shape[-2:]
        if kh > H or kw > W:
            raise InputError(f"{name} of {kh}x{kw} is larger than the image ({H}x{W})")
    if not bool(torch.isfinite(k).all()):
        raise InputError(f"{name} contains NaN or infinite values")
    if negative_tolerance is not None:
        low, top = k.amin((-2, -1)), k.amax((-2, -1))
        bad = low < -negative_tolerance * top.clamp_min(0)
        if bool(bad.any()):
            i = int(bad.flatten().nonzero()[0])
            raise InputError(
                f"{name} has negative values (minimum {float(low.flatten()[i]):.3g}, maximum {float(top.flatten()[i]):.3g})"
            )
        k = k.clamp_min(0)
    if like is not None:
        k = k.to(device=like.device, dtype=like.dtype)
    total = k.sum((-2, -1), keepdim=True)
    if bool((total <= 0).any()):
        raise InputError(f"{name} is all zero" if negative_tolerance is not None else f"{name} does not have a positive sum")
    return k / total


def delta_kernel(batch: int, size, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Identity kernels (B, 1, kh, kw): 1 at the centre ``(kh//2, kw//2)``; ``size`` an int or (kh, kw)."""
    kh, kw = (size, size) if isinstance(size, int) else size
    k = torch.zeros(batch, 1, kh, kw, device=device, dtype=dtype)
    k[..., kh // 2, kw // 2] = 1
    return k


def _normalise(k: torch.Tensor) -> torch.Tensor:
    """Each kernel (..., h, w) divided by its sum; a centred delta where the sum is not positive."""
    s = k.sum((-2, -1), keepdim=True)
    h, w = k.shape[-2:]
    delta = torch.zeros_like(k)
    delta[..., h // 2, w // 2] = 1
    return torch.where(s > 0, k / s.clamp_min(1e-30), delta)


def _components(support: torch.Tensor) -> torch.Tensor:
    """8-connected component labels (B, 1, h, w) of a boolean map (0 = background), by max-propagation."""
    B, _, h, w = support.shape
    idx = torch.arange(1, h * w + 1, device=support.device, dtype=torch.float32).view(1, 1, h, w)
    lab = torch.where(support, idx.expand(B, 1, h, w), torch.zeros((), device=support.device))
    for _ in range(h * w):
        new = torch.where(support, F.max_pool2d(lab, 3, stride=1, padding=1), lab)
        if torch.equal(new, lab):
            break
        lab = new
    return lab


def _shift(k: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Shift each kernel (B, 1, h, w) by whole pixels (dy, dx) (B,), zero fill."""
    out = []
    h, w = k.shape[-2:]
    for kb, sy, sx in zip(k, dy.tolist(), dx.tolist()):
        p = F.pad(kb, (w, w, h, h))
        out.append(p[..., h - sy:2 * h - sy, w - sx:2 * w - sx])
    return torch.stack(out)


def _clean(k: torch.Tensor, threshold: float, min_component_mass: float) -> torch.Tensor:
    """Zero taps below ``threshold`` x max, normalise, drop 8-connected components lighter than ``min_component_mass``."""
    kmax = k.amax((-2, -1), keepdim=True)
    k = torch.where(k >= threshold * kmax, k, torch.zeros_like(k))
    k = _normalise(k)
    B, _, h, w = k.shape
    lab = _components(k > 0).view(B, h * w)
    same = lab[:, :, None] == lab[:, None, :]  # (B, n, n)
    mass = (same.to(k.dtype) * k.view(B, 1, h * w)).sum(-1)  # mass of each pixel's component
    return torch.where((mass >= min_component_mass) & (lab > 0), k.view(B, h * w), torch.zeros_like(mass)).view(B, 1, h, w)


def _centroid(k: torch.Tensor, normalised: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid (row, column; (B,) each, in pixels from the top-left tap) of the non-negative part of kernels
    (B, 1, h, w), and that part's mass (B,). ``normalised``: the kernels sum to 1 (no division)."""
    B, _, h, w = k.shape
    yy = torch.arange(h, device=k.device, dtype=k.dtype).view(1, 1, h, 1)
    xx = torch.arange(w, device=k.device, dtype=k.dtype).view(1, 1, 1, w)
    p = k.detach().clamp_min(0)
    cy, cx = (p * yy).sum((1, 2, 3)), (p * xx).sum((1, 2, 3))
    mass = p.sum((1, 2, 3))
    if not normalised:
        cy, cx = cy / mass.clamp_min(1e-30), cx / mass.clamp_min(1e-30)
    return cy, cx, mass


def kernel_centroid(k: torch.Tensor) -> torch.Tensor:
    """Offset (B, 2) of each kernel's centroid (of its non-negative part) from its centre pixel ``(kh//2, kw//2)``,
    in pixels (rows down, columns right); 0 for a kernel with no positive mass. Kernels (kh, kw) or (..., kh, kw).

    After :func:`project_kernel` with ``center=True`` each offset is at most half a pixel per axis: what whole-pixel
    shifts cannot remove (:func:`unblur.physics.registration.register_to_kernel` removes it from an image).

    >>> k = torch.zeros(5, 5); k[2, 2] = k[2, 3] = 0.5
    >>> kernel_centroid(k).tolist()
    [[0.0, 0.5]]
    """
    if not torch.is_tensor(k) or k.ndim < 2:
        raise InputError(f"kernel must be a tensor with at least 2 dims (kh, kw), got {getattr(k, 'shape', type(k))}")
    h, w = k.shape[-2:]
    kk = k.reshape(-1, 1, h, w)
    if not kk.is_floating_point():
        kk = kk.to(torch.get_default_dtype())
    cy, cx, mass = _centroid(kk, normalised=False)
    off = torch.stack([cy - h // 2, cx - w // 2], dim=1)
    return torch.where((mass > 0)[:, None], off, torch.zeros_like(off))


def _center(k: torch.Tensor, normalised: bool) -> torch.Tensor:
    """Move each kernel (B, 1, h, w) by whole pixels so its centroid (of the non-negative part) is the centre."""
    B, _, h, w = k.shape
    cy, cx, mass = _centroid(k, normalised)
    dy = torch.where(mass > 0, (h // 2 - cy).round(), torch.zeros_like(cy)).long()
    dx = torch.where(mass > 0, (w // 2 - cx).round(), torch.zeros_like(cx)).long()
    return _shift(k, dy, dx)


def project_kernel(
    k: torch.Tensor,
    nonneg: bool = True,
    normalise: bool = True,
    center: bool = False,
    clean: bool = False,
    *,
    threshold: float = 0.05,
    min_component_mass: float = 0.1,
    differentiable: bool = False,
) -> torch.Tensor:
    """Project kernels (..., kh, kw) onto valid PSFs, in this order:

    1. ``nonneg``: negative taps set to 0 (``relu``);
    2. ``clean``: taps below ``threshold`` x max zeroed, the kernel normalised, 8-connected components
       holding less than ``min_component_mass`` of the mass removed;
    3. ``normalise``: each kernel scaled to sum 1 (a centred delta where nothing positive is left);
    4. ``center``: shifted by whole pixels (zero fill) so the centroid of its non-negative part lands on
       the centre pixel ``(kh//2, kw//2)``, then normalised again (if ``normalise``). Kernels with no
       positive mass are not moved.

    ``differentiable=True`` is the variant for training graphs: only the relu and the division by the
    sum (both differentiable almost everywhere, no host synchronisation, no data-dependent loops);
    ``clean`` and ``center`` (hard thresholds, component labelling, integer shifts) are refused there
    (``ValueError``). The default variant is also autograd-compatible where it is smooth (the
    thresholds and shifts are treated as constants) but synchronises with the host.

    >>> k = torch.zeros(5, 5); k[0, 4] = 2
    >>> project_kernel(k, center=True).nonzero().tolist()
    [[2, 2]]
    """
    if not torch.is_tensor(k) or k.ndim < 2:
        raise InputError(f"kernel must be a tensor with at least 2 dims (kh, kw), got {getattr(k, 'shape', type(k))}")
    if differentiable and (clean or center):
        raise ValueError("project_kernel(differentiable=True) does not support clean or center (not differentiable)")
    if not k.is_floating_point():
        k = k.to(torch.get_default_dtype())
    if nonneg:
        k = k.clamp_min(0)
    if not (clean or center):
        return _normalise(k) if normalise else k
    shape = k.shape
    k = k.reshape(-1, 1, *shape[-2:])
    if clean:
        k = _clean(k, threshold, min_component_mass)
    if normalise:
        k = _normalise(k)
    if center:
        k = _center(k, normalised=normalise and nonneg)
        if normalise:
            k = _normalise(k)
    return k.reshape(shape)


def clean_kernel(k: torch.Tensor, threshold: float = 0.05, min_component_mass: float = 0.1, recenter: bool = True) -> torch.Tensor:
    """Clip, threshold, keep the main connected component(s), renormalise and re-centre kernels:
    ``project_kernel(k, center=recenter, clean=True, ...)``."""
    return project_kernel(k, center=recenter, clean=True, threshold=threshold, min_component_mass=min_component_mass)


def normalize_kernel(k: torch.Tensor) -> torch.Tensor:
    """Clip negative taps to 0 and scale every kernel (last two dims) to sum to 1 (:func:`project_kernel`).

    Raises :class:`unblur.errors.InputError` if a kernel has no positive (finite) mass.

    >>> normalize_kernel(torch.tensor([[-1.0, 1.0], [2.0, 1.0]]))
    tensor([[0.0000, 0.2500],
            [0.5000, 0.2500]])
    """
    if not torch.is_tensor(k) or k.ndim < 2:
        raise InputError(f"kernel must be a tensor with at least 2 dims (kh, kw), got {getattr(k, 'shape', type(k))}")
    s = k.clamp(min=0).sum(dim=(-2, -1))
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise InputError(
            f"cannot normalise kernel of shape {tuple(k.shape)}: it is all zero after clipping negatives, or not finite"
        )
    return project_kernel(k)


def center_kernel(k: torch.Tensor) -> torch.Tensor:
    """Shift each kernel by whole pixels so its centroid lands on the centre pixel ``(kh//2, kw//2)``.

    ``project_kernel(k, nonneg=False, normalise=False, center=True)``: the shift is the rounded
    difference between the centre and the centroid of the non-negative part of the kernel; the support
    is filled with zeros, so mass pushed off the support is dropped (normalise afterwards if that can
    happen). Kernels with no positive mass are returned unchanged.

    >>> k = torch.zeros(5, 5); k[0, 4] = 1
    >>> center_kernel(k).nonzero().tolist()
    [[2, 2]]
    """
    return project_kernel(k, nonneg=False, normalise=False, center=True)


def pad_kernel(k: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Zero-pad kernels (..., kh, kw) to ``size`` keeping the centre pixel at the new centre ``size//2``."""
    H, W = (size, size) if isinstance(size, int) else size
    kh, kw = k.shape[-2:]
    if kh > H or kw > W:
        raise InputError(f"cannot pad a {kh}x{kw} kernel to the smaller size {H}x{W}")
    top, left = H // 2 - kh // 2, W // 2 - kw // 2
    out = k.new_zeros(*k.shape[:-2], H, W)
    out[..., top:top + kh, left:left + kw] = k
    return out


def trim_kernel(k: torch.Tensor) -> torch.Tensor:
    """Crop kernels (..., kh, kw) to the smallest support, centred like ``k`` (the centre pixel stays
    the centre), that holds every non-zero tap of every kernel of the batch; it undoes
    :func:`pad_kernel` when the two sizes have the same parity. A deconvolution with the trimmed kernel is the same model on a smaller domain.

    >>> k = pad_kernel(torch.ones(3, 5) / 15, 31)
    >>> trim_kernel(k).shape
    torch.Size([3, 5])
    """
    kh, kw = k.shape[-2:]
    nz = (k != 0).reshape(-1, kh, kw).any(0).nonzero()
    if nz.numel() == 0:
        return k[..., kh // 2:kh // 2 + 1, kw // 2:kw // 2 + 1]
    return k[..., _support(nz[:, 0], kh), _support(nz[:, 1], kw)]


def _support(idx: torch.Tensor, n: int) -> slice:
    """Smallest window of the parity of ``n`` around its centre ``n // 2`` that holds ``idx``: an odd
    one has ``r`` taps on each side, an even one ``h`` before the centre and ``h - 1`` after."""
    before, after = int(n // 2 - idx.min()), int(idx.max() - n // 2)
    if n % 2:
        r = max(before, after)
        return slice(n // 2 - r, n // 2 + r + 1)
    h = max(before, after + 1)
    return slice(n // 2 - h, n // 2 + h)


# ----------------------------------------------------------------------------------------------
# camera-shake motion


def _splat(pos: torch.Tensor, w: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear splatting of weighted points ``pos`` (B, N, 2) as (x, y) into (B, size, size) images.

    Each sample spreads its weight over its 4 neighbouring pixels, which keeps the weighted centroid
    of the samples exactly (first moments are preserved).
    """
    B, N, _ = pos.shape
    out = torch.zeros(B, size * size, dtype=_F64)
    if size == 1:
        return w.sum(-1, keepdim=True).reshape(B, 1, 1)
    p = pos.clamp(0, size - 1)
    i0 = p.floor().clamp(max=size - 2)
    f = p - i0
    i0 = i0.to(torch.int64)
    x0, y0, fx, fy = i0[..., 0], i0[..., 1], f[..., 0], f[..., 1]
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            out.scatter_add_(1, (y0 + dy) * size + (x0 + dx), w * wy * wx)
    return out.reshape(B, size, size)


def _motion_batch(
    n: int,
    size: int,
    generator,
    length_range: tuple[float, float] | None,
    inertia: float,
    jerk_prob: float,
    jerk_strength: float,
    exposure: float,
) -> torch.Tensor:
    """(n, size, size) float64 CPU camera-shake kernels; see :func:`motion_kernel` for the model."""
    T, S = _MOTION_STEPS, _MOTION_SUBSAMPLES
    # every draw has a fixed shape so the generator advances identically whatever the parameters
    v0 = _randn((n, 2), generator)
    eps = _randn((n, T, 2), generator)
    jerk_u = _rand((n, T), generator)
    jerk_dir = _randn((n, T, 2), generator)
    expo = _randn((n, T), generator)
    len_u = _rand((n,), generator)

    a = float(inertia)
    impulse = math.sqrt(1.0 - a * a) * eps + (jerk_u < jerk_prob).to(_F64)[..., None] * jerk_strength * jerk_dir
    vel = torch.empty(n, T, 2, dtype=_F64)
    v = v0
    for t in range(T):  # velocity persistence: an AR(1) (discrete Ornstein-Uhlenbeck) process plus jerks
        v = a * v + impulse[:, t]
        vel[:, t] = v
    knots = torch.cat([torch.zeros(n, 1, 2, dtype=_F64), vel.cumsum(1)], 1)  # (n, T+1, 2) positions

    # exposure: log-normal weights following a Brownian curve in time (slow flicker / shutter ramp)
    z = torch.cat([torch.zeros(n, 1, dtype=_F64), expo.cumsum(1)], 1)
    z = (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True).clamp_min(1e-12)
    wk = torch.exp(exposure * z)

    # dense samples, uniform in time, linearly interpolated between knots
    f = (torch.arange(S, dtype=_F64) + 0.5) / S
    pos = (knots[:, :-1, None] + f[:, None] * (knots[:, 1:, None] - knots[:, :-1, None])).reshape(n, T * S, 2)
    w = (wk[:, :-1, None] + f * (wk[:, 1:, None] - wk[:, :-1, None])).reshape(n, T * S)

    # scale to the requested extent, centroid on the centre pixel, fitting inside the support
    centroid = (pos * w[..., None]).sum(1) / w.sum(1)[:, None]
    d = pos - centroid[:, None]
    dmax, dmin = d.amax(1), d.amin(1)  # (n, 2)
    extent = (dmax - dmin).amax(1)
    if length_range is None:
        length_range = (0.25 * (size - 1), float(size - 1))
    lo, hi = length_range
    length = lo + (hi - lo) * len_u
    c = size // 2
    room_pos, room_neg = size - 1 - c, c
    eps_ = 1e-12
    fit = torch.minimum(room_pos / dmax.clamp_min(eps_), room_neg / (-dmin).clamp_min(eps_)).amin(1)
    scale = torch.minimum(length / extent.clamp_min(eps_), fit * (1 - 1e-9))
    pos = c + scale[:, None, None] * d
    k = _splat(pos, w, size)
    return k / k.sum(dim=(-2, -1), keepdim=True)


def _check_motion_params(inertia, jerk_prob, jerk_strength, exposure):
    if not 0.0 <= inertia < 1.0:
        raise InputError(f"motion inertia must be in [0, 1), got {inertia!r}")
    if not 0.0 <= jerk_prob <= 1.0:
        raise InputError(f"motion jerk_prob must be in [0, 1], got {jerk_prob!r}")
    if jerk_strength < 0 or exposure < 0:
        raise InputError(f"motion jerk_strength and exposure must be >= 0, got {jerk_strength!r}, {exposure!r}")


def motion_kernel(
    size: int = 31,
    *,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    length: float | None = None,
    inertia: float = 0.97,
    jerk_prob: float = 0.01,
    jerk_strength: float = 2.0,
    exposure: float = 0.5,
) -> torch.Tensor:
    """One random camera-shake kernel ``(size, size)``.

    Trajectory model (``_MOTION_STEPS = 256`` time steps, uniform in time over the exposure):

    - velocity ``v[t] = inertia * v[t-1] + sqrt(1 - inertia**2) * e[t] + J[t]`` with ``e ~ N(0, I)``:
      an AR(1) process whose direction persists for about ``1 / (1 - inertia)`` steps (hand inertia);
    - jerks ``J[t] = jerk_strength * N(0, I)`` with probability ``jerk_prob`` per step (abrupt changes
      of direction and speed; ``jerk_strength`` is relative to the stationary speed 1);
    - position = cumulative sum of velocities; the camera dwells longer where it moves slowly;
    - exposure weights ``exp(exposure * z(t))``, ``z`` a standardised Brownian curve: non-uniform
      light collection along the path (``exposure=0`` gives a uniform exposure);
    - 8 samples per step (linear interpolation) are splatted bilinearly (sub-pixel); the path is scaled
      so its bounding box side is ``length`` pixels (default: uniform in ``[0.25, 1] * (size - 1)``),
      shrunk if needed so that it fits the support with its weighted centroid on the centre pixel.

    >>> k = motion_kernel(15, generator=torch.Generator().manual_seed(1))
    >>> k.shape, round(float(k.sum()), 6)
    (torch.Size([15, 15]), 1.0)
    """
    size = _check_size(size)
    _check_motion_params(inertia, jerk_prob, jerk_strength, exposure)
    rng = None
    if length is not None:
        if not length >= 0:
            raise InputError(f"motion length must be >= 0 pixels, got {length!r}")
        rng = (float(length), float(length))
    k = _motion_batch(1, size, generator, rng, inertia, jerk_prob, jerk_strength, exposure)[0]
    return _finish(k, device, dtype)


# ----------------------------------------------------------------------------------------------
# defocus


def _max_radius(size: int) -> float:
    c = size // 2
    return min(c, size - 1 - c) + 0.5


def _defocus_batch(radii: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coverage of centred disks (n,) -> (n, size, size), float64 CPU, not normalised.

    Exact along rows (chord length of the disk inside the pixel's row span), midpoint rule with
    ``_DEFOCUS_SUBSAMPLES`` sub-columns along x, then symmetrised (averaged with its transpose).
    """
    S = _DEFOCUS_SUBSAMPLES
    c = size // 2
    xs = (torch.arange(size * S, dtype=_F64) + 0.5) / S - 0.5 - c  # sub-column centres, relative to the centre
    r = radii.to(_F64)[:, None]
    h = (r * r - xs[None] ** 2).clamp(min=0).sqrt()  # (n, size*S) disk half-height at each sub-column
    y0 = torch.arange(size, dtype=_F64) - c - 0.5  # pixel row spans [y0, y0 + 1]
    cover = (torch.minimum(h[:, None, :], y0[None, :, None] + 1) - torch.maximum(-h[:, None, :], y0[None, :, None])).clamp(min=0)
    k = cover.reshape(len(radii), size, size, S).mean(-1)
    k = 0.5 * (k + k.transpose(-2, -1))  # the disk is symmetric: average out the x/y asymmetry of the rule
    # radii below the sub-sample spacing may miss every sub-column: those are a delta
    empty = k.sum(dim=(-2, -1)) <= 0
    if bool(empty.any()):
        k[empty, c, c] = 1.0
    return k


def defocus_kernel(
    radius: float, size: int | None = None, *, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Anti-aliased uniform disk (out-of-focus PSF) of radius ``radius`` pixels, ``(size, size)``.

    Each tap is the area of the pixel covered by the disk centred on the centre pixel (the disk
    integrated over the pixel footprint), so the kernel varies smoothly with a float radius.
    Default ``size`` is ``2 * ceil(radius) + 1``; the disk must fit (``radius <= size / 2`` for odd
    sizes). ``radius`` below ~0.5 gives (almost) a delta.

    >>> k = defocus_kernel(1.5)
    >>> k.shape, bool(torch.allclose(k, k.flip(0))), round(float(k.sum()), 6)
    (torch.Size([5, 5]), True, 1.0)
    """
    radius = float(radius)
    if not (radius >= 0 and math.isfinite(radius)):
        raise InputError(f"defocus radius must be a finite number >= 0, got {radius!r}")
    if size is None:
        size = 2 * math.ceil(radius) + 1
    size = _check_size(size)
    if radius > _max_radius(size) + 1e-9:
        raise InputError(f"defocus radius {radius} does not fit a {size}x{size} kernel (max {_max_radius(size)})")
    k = _defocus_batch(torch.tensor([radius], dtype=_F64), size)[0]
    return _finish(k / k.sum(), device, dtype)


# ----------------------------------------------------------------------------------------------
# Gaussian


def _gaussian_batch(sx: torch.Tensor, sy: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    c = size // 2
    t = torch.arange(size, dtype=_F64) - c
    Y, X = torch.meshgrid(t, t, indexing="ij")
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    u = cos * X + sin * Y
    v = -sin * X + cos * Y
    k = torch.exp(-0.5 * ((u / sx[:, None, None]) ** 2 + (v / sy[:, None, None]) ** 2))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def gaussian_kernel(
    sigma_x: float,
    sigma_y: float | None = None,
    theta: float = 0.0,
    size: int | None = None,
    *,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Anisotropic, rotated Gaussian sampled at the pixel centres, truncated to ``size`` and normalised.

    ``sigma_x`` is the standard deviation along the axis at angle ``theta`` (radians) from the +x
    (column) axis towards +y (row, downwards: clockwise on screen), ``sigma_y`` along the
    perpendicular axis (default ``sigma_x``). Default ``size`` is ``2 * ceil(3 * max(sigma)) + 1``.

    >>> k = gaussian_kernel(2.0, 0.5, theta=0.0)
    >>> k.shape, bool(k[6].sum() > k[:, 6].sum())  # elongated along x: centre row beats centre column
    (torch.Size([13, 13]), True)
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    sx, sy, theta = float(sigma_x), float(sigma_y), float(theta)
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        raise InputError(f"Gaussian sigmas must be finite and > 0, got {sigma_x!r}, {sigma_y!r}")
    if size is None:
        size = 2 * math.ceil(3 * max(sx, sy)) + 1
    size = _check_size(size)
    t = lambda v: torch.tensor([v], dtype=_F64)  # noqa: E731
    return _finish(_gaussian_batch(t(sx), t(sy), t(theta), size)[0], device, dtype)


# ----------------------------------------------------------------------------------------------
# generators


class _KernelGenerator:
    """Base of the seeded kernel generators: subclasses implement ``_sample(n, generator)``."""

    kernel_size: int

    def __call__(
        self,
        batch_size: int = 1,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        n = _check_batch(batch_size)
        k = self._sample(n, generator) if n else torch.zeros(0, self.kernel_size, self.kernel_size, dtype=_F64)
        return _finish(k[:, None], device, dtype)

    def _sample(self, n: int, generator) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class MotionBlurGenerator(_KernelGenerator):
    """Random camera-shake kernels (see :func:`motion_kernel` for the trajectory model).

    ``length_range``: (low, high) bounding-box side of the path in pixels, drawn uniformly per kernel;
    default ``(0.25 * (k - 1), k - 1)``.
    """

    def __init__(
        self,
        kernel_size: int = 31,
        *,
        length_range: tuple[float, float] | None = None,
        inertia: float = 0.97,
        jerk_prob: float = 0.01,
        jerk_strength: float = 2.0,
        exposure: float = 0.5,
    ):
        self.kernel_size = _check_size(kernel_size)
        _check_motion_params(inertia, jerk_prob, jerk_strength, exposure)
        self.length_range = None if length_range is None else _check_range(length_range, "motion length_range")
        self.inertia, self.jerk_prob, self.jerk_strength, self.exposure = inertia, jerk_prob, jerk_strength, exposure

    def _sample(self, n, generator):
        return _motion_batch(
            n, self.kernel_size, generator, self.length_range, self.inertia, self.jerk_prob, self.jerk_strength, self.exposure
        )


class DefocusBlurGenerator(_KernelGenerator):
    """Anti-aliased disks (:func:`defocus_kernel`) with radius uniform in ``radius_range`` pixels."""

    def __init__(self, kernel_size: int = 31, radius_range: tuple[float, float] = (1.0, 8.0)):
        self.kernel_size = _check_size(kernel_size)
        self.radius_range = _check_range(radius_range, "defocus radius_range")
        if self.radius_range[1] > _max_radius(self.kernel_size):
            raise InputError(
                f"defocus radius_range {radius_range} does not fit kernel_size {kernel_size} "
                f"(max radius {_max_radius(self.kernel_size)})"
            )

    def _sample(self, n, generator):
        r = _uniform(*self.radius_range, n, generator)
        k = _defocus_batch(r, self.kernel_size)
        return k / k.sum(dim=(-2, -1), keepdim=True)


class GaussianBlurGenerator(_KernelGenerator):
    """Gaussian kernels (:func:`gaussian_kernel`) with sigmas uniform in ``sigma_range``.

    With ``anisotropic=True`` ``sigma_x`` and ``sigma_y`` are drawn independently and ``theta``
    uniformly in ``[0, pi)``; otherwise the kernel is isotropic.
    """

    def __init__(self, kernel_size: int = 31, sigma_range: tuple[float, float] = (0.5, 4.0), anisotropic: bool = True):
        self.kernel_size = _check_size(kernel_size)
        self.sigma_range = _check_range(sigma_range, "Gaussian sigma_range")
        if self.sigma_range[0] <= 0:
            raise InputError(f"Gaussian sigma_range must be > 0, got {sigma_range!r}")
        self.anisotropic = bool(anisotropic)

    def _sample(self, n, generator):
        lo, hi = self.sigma_range
        u = _rand((n, 3), generator)  # always 3 draws per kernel
        sx = lo + (hi - lo) * u[:, 0]
        if self.anisotropic:
            sy, theta = lo + (hi - lo) * u[:, 1], math.pi * u[:, 2]
        else:
            sy, theta = sx, torch.zeros_like(sx)
        return _gaussian_batch(sx, sy, theta, self.kernel_size)


class MixedBlurGenerator(_KernelGenerator):
    """Draws each kernel from one of ``generators`` chosen with probabilities ``weights`` (default uniform).

    Kernels of smaller generators are zero-padded (centre kept) to the largest ``kernel_size``.
    """

    def __init__(self, generators: Sequence, weights: Sequence[float] | None = None):
        self.generators = list(generators)
        if not self.generators:
            raise InputError("MixedBlurGenerator needs at least one generator")
        w = [1.0] * len(self.generators) if weights is None else [float(v) for v in weights]
        if len(w) != len(self.generators) or any(v < 0 or not math.isfinite(v) for v in w) or sum(w) <= 0:
            raise InputError(f"MixedBlurGenerator weights must be {len(self.generators)} non-negative numbers, got {weights!r}")
        self.weights = w
        self.kernel_size = max(int(g.kernel_size) for g in self.generators)

    def _sample(self, n, generator):
        w = torch.tensor(self.weights, dtype=_F64, device=_gen_device(generator))
        choice = torch.multinomial(w, n, replacement=True, generator=generator).to(_CPU)
        out = torch.zeros(n, self.kernel_size, self.kernel_size, dtype=_F64)
        for j, g in enumerate(self.generators):
            idx = (choice == j).nonzero().flatten()
            if len(idx):
                k = g(len(idx), generator=generator, device=_CPU, dtype=_F64)[:, 0]
                out[idx] = pad_kernel(k, self.kernel_size)
        return out


class FileKernels(_KernelGenerator):
    """Draws (uniformly, with replacement) from a fixed list of kernels, e.g. loaded from files.

    Each kernel (2-D, or 4-D with singleton leading dims) is normalised (:func:`normalize_kernel`) and
    zero-padded, centre kept, to a common odd size: ``kernel_size`` if given, else the largest kernel
    dimension (plus one if even). ``center=True`` also moves each centroid to the centre pixel (this
    breaks the alignment with images that were blurred by the file kernels, so it is off by default).
    ``augment=True`` applies a random rotation by a multiple of 90 degrees and a random flip.
    """

    def __init__(self, kernels: Sequence[torch.Tensor], kernel_size: int | None = None, *, center: bool = False, augment: bool = False):
        ks = []
        for i, k in enumerate(kernels):
            k = torch.as_tensor(k).detach()
            while k.ndim > 2 and k.shape[0] == 1:
                k = k[0]
            if k.ndim != 2:
                raise InputError(f"FileKernels: kernel {i} must be 2-D (kh, kw), got shape {tuple(k.shape)}")
            try:
                ks.append(normalize_kernel(k.to(device=_CPU, dtype=_F64)))
            except InputError as e:
                raise InputError(f"FileKernels: kernel {i}: {e}") from None
        if not ks:
            raise InputError("FileKernels needs at least one kernel")
        biggest = max(max(k.shape) for k in ks)
        if kernel_size is None:
            size = biggest
        else:
            size = _check_size(kernel_size, "FileKernels kernel_size")
            if size < biggest:
                raise InputError(f"FileKernels: kernel_size {size} is smaller than the largest kernel ({biggest})")
        size += 1 - size % 2
        self.kernel_size = size
        self.center, self.augment = bool(center), bool(augment)
        bank = torch.stack([pad_kernel(k, size) for k in ks])
        self._bank = normalize_kernel(center_kernel(bank)) if self.center else bank

    def __len__(self) -> int:
        return len(self._bank)

    def _sample(self, n, generator):
        k = self._bank[_randint(len(self._bank), (n,), generator)]
        if self.augment:
            rot = _randint(4, (n,), generator).tolist()
            flip = _randint(2, (n,), generator).tolist()
            k = torch.stack([(ki.flip(-1) if f else ki).rot90(r, (-2, -1)) for ki, r, f in zip(k, rot, flip)])
        return k.clone()


def get_kernel_generator(kind: str, kernel_size: int = 31) -> _KernelGenerator:
    """Default generator for ``kind`` in ``KERNEL_KINDS``: "motion", "defocus", "gaussian" or "mixed".

    Ranges are the class defaults, narrowed when ``kernel_size`` is too small for them (defocus radius
    at most ``kernel_size / 2``, Gaussian sigma at most a sixth of the kernel size). "mixed" draws
    motion / defocus / Gaussian with probabilities 0.6 / 0.2 / 0.2.

    >>> get_kernel_generator("defocus", 15).radius_range
    (1.0, 7.5)
    """
    if kind not in KERNEL_KINDS:
        raise ConfigError(f"unknown kernel kind {kind!r}; valid kinds: {', '.join(KERNEL_KINDS)}")
    size = _check_size(kernel_size)
    r_hi = min(8.0, _max_radius(size))
    s_hi = min(4.0, max(size // 2, 1) / 3.0)
    if kind == "motion":
        return MotionBlurGenerator(size)
    if kind == "defocus":
        return DefocusBlurGenerator(size, radius_range=(min(1.0, r_hi), r_hi))
    if kind == "gaussian":
        return GaussianBlurGenerator(size, sigma_range=(min(0.5, s_hi), s_hi))
    return MixedBlurGenerator(
        [get_kernel_generator(k, size) for k in ("motion", "defocus", "gaussian")], weights=(0.6, 0.2, 0.2)
    )
