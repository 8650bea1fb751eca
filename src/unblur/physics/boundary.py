"""Boundary handling: the extended periodic domain every FFT-based solver runs on (classical methods and networks).

A photo is not periodic: the camera records ``y = valid(k (*) s)`` of a scene ``s`` that is larger
than the frame by the kernel support. FFT-based deconvolution that treats ``y`` as circular explains
the jump between opposite borders with huge high frequencies and rings over the whole image.

:class:`Domain` instead models the unknown sharp image ``x`` on an *extended periodic domain*
(observation size + kernel support - 1, rounded up to an FFT-friendly size with a small free margin).
The data term is *masked*: only the ``H x W`` window that was actually observed is compared with
``y``; pixels outside it (the part of the scene hidden by the frame, plus the margin) are unknowns
constrained by the observation through the kernel and by each method's prior. On this domain the
blur is an exact circular convolution, so every operator is an FFT multiply; the masked normal
equations ``(A^T A + R) x = A^T y + b`` (``R`` circulant: the prior's quadratic part) are solved by
conjugate gradients preconditioned with their circular approximation ``(|K|^2 + R)^-1`` (which is
exact up to the border, so a few iterations suffice). ``boundary="circular"`` keeps the textbook
periodic model (domain = frame, no mask, closed-form solves).

:meth:`Domain.extend` gives a smooth periodic extension of ``y`` (mirror near each edge, blended with
a raised-cosine ramp into the mirror of the opposite edge): the starting point of the iterations.

Example:
    >>> import torch
    >>> from unblur.physics import conv2d
    >>> k = torch.ones(5, 5) / 25
    >>> y = conv2d(torch.rand(1, 1, 36, 40), k, "valid")          # (1, 1, 32, 36)
    >>> d = Domain((32, 36), (5, 5))
    >>> x = d.solve(d.otf(k), y, reg_hat=1e-3, iters=5, x0=d.extend(y))
    >>> d.crop(x).shape
    torch.Size([1, 1, 32, 36])
"""
from __future__ import annotations

import math

import torch

from .conv import pad, same_size_pads
from .fft import irfft2, psf2otf, rfft2

BOUNDARIES = ("valid", "circular")


def fft_size(n: int) -> int:
    """Smallest integer >= ``n`` whose prime factors are 2, 3 and 5 (fast FFT lengths)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular forward differences ``(x[i, j+1] - x[i, j], x[i+1, j] - x[i, j])`` on the domain."""
    return x.roll(-1, -1) - x, x.roll(-1, -2) - x


def gradients_adjoint(gh: torch.Tensor, gv: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`gradients`: ``D_h^T gh + D_v^T gv`` (a negative divergence), so that
    ``<gradients(x), (gh, gv)> = <x, gradients_adjoint(gh, gv)>``; in Fourier terms ``conj(D_h) F(gh) + conj(D_v) F(gv)``."""
    return gh.roll(1, -1) - gh + gv.roll(1, -2) - gv


def salient_threshold(gh: torch.Tensor, gv: torch.Tensor, count: int) -> torch.Tensor:
    """The largest gradient magnitude that keeps at least ``count`` pixels in each of 4 orientation bins
    (Cho & Lee 2009; a bin with fewer pixels keeps all of them, an empty bin is ignored, 0 when all are empty),
    as a 0-dim tensor. One ``topk`` per bin over the whole map with the other bins masked out: no shape depends on
    the data, so the selection traces into a static graph (ONNX export)."""
    mag = torch.sqrt(gh * gh + gv * gv).flatten()
    bins = (torch.atan2(gv, gh).remainder(math.pi).flatten() / (math.pi / 4)).long().clamp_max(3)
    # While exporting the size is symbolic: maps are then always larger than count (kernel fits on padded photos).
    k = count if torch.compiler.is_exporting() else min(count, mag.numel())
    levels = []
    for b in range(4):
        inside = bins == b
        kth = torch.where(inside, mag, -1.0).topk(k).values[-1]  # -1 (magnitudes are >= 0): fewer than k pixels
        smallest = torch.where(inside, mag, math.inf).min()  # a small bin keeps all its pixels; inf: empty bin
        levels.append(torch.where(kth >= 0, kth, smallest))
    level = torch.stack(levels).min()
    return torch.where(torch.isinf(level), torch.zeros_like(level), level)


def salient_edges(gh: torch.Tensor, gv: torch.Tensor, count: int, threshold=None):
    """Mask (shaped like ``gh``) of the gradients above ``threshold`` (a float or a 0-dim tensor); ``None`` picks
    :func:`salient_threshold`, returned as a float. Returns (mask, threshold)."""
    mag = torch.sqrt(gh * gh + gv * gv)
    if threshold is None:
        threshold = float(salient_threshold(gh, gv, count))
    return (mag >= threshold).to(gh.dtype), threshold


def salient_edge_mask(x: torch.Tensor, count: int) -> torch.Tensor:
    """:func:`salient_edges` per sample of ``x`` (B, C, H, W), on its channel mean: a (B, 1, H, W) mask of the
    strongest gradients (at least ``count`` per orientation bin), a constant for autograd."""
    with torch.no_grad():
        gh, gv = gradients(x.mean(1, keepdim=True).float())
        # the threshold stays a tensor: no host synchronisation, traceable
        masks = [salient_edges(gh[b, 0], gv[b, 0], count, salient_threshold(gh[b, 0], gv[b, 0], count))[0]
                 for b in range(x.shape[0])]
    return torch.stack(masks)[:, None].to(x.dtype)


def gradient_otfs(shape: tuple[int, int], device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """OTFs (half spectrum) of :func:`gradients` on an (H, W) domain."""
    dh = torch.tensor([[1.0, -1.0]], device=device, dtype=dtype)  # centre (0, 1): x[j+1] - x[j]
    return psf2otf(dh, shape), psf2otf(dh.t().contiguous(), shape)


def _raised_cosine(n: int, device, dtype) -> torch.Tensor:
    t = (torch.arange(n, device=device, dtype=dtype) + 0.5) / max(n, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def taper_window(shape: tuple[int, int], width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W) window: 1 inside, raised-cosine ramps from 0 over ``width`` px at every border.

    Multiplying an image and its blurred observation by it hides the seam that a circular FFT solve
    would otherwise see between opposite borders (an edge taper); the window varies slowly, so it
    commutes with a blur of support ``<= width`` up to a small error near the border.
    """
    def ramp(n: int) -> torch.Tensor:
        w = torch.ones(n, device=device, dtype=dtype)
        r = min(int(width), n // 2)
        if r > 0:
            up = _raised_cosine(r, device, dtype)
            w[:r], w[n - r:] = up, up.flip(0)
        return w

    H, W = (int(v) for v in shape)
    return ramp(H)[:, None] * ramp(W)[None, :]


def _periodic_extend_last(x: torch.Tensor, total: int, dim: int) -> torch.Tensor:
    """Extend ``x`` along ``dim`` (-1 or -2) to length ``total`` so that it is smooth and periodic."""
    n = x.shape[dim]
    L = total - n
    if L <= 0:
        return x
    pads_after = (0, L, 0, 0) if dim == -2 else (0, 0, 0, L)
    pads_before = (L, 0, 0, 0) if dim == -2 else (0, 0, L, 0)
    mode = "reflect" if n > 1 else "replicate"
    after = pad(x, pads_after, mode).narrow(dim, n, L)     # mirror of the far edge, going away from it
    before = pad(x, pads_before, mode).narrow(dim, 0, L)   # mirror of the near edge, arriving at it
    w = _raised_cosine(L, x.device, x.dtype)
    w = w.view(-1, 1) if dim == -2 else w.view(1, -1)
    return torch.cat([x, (1 - w) * after + w * before], dim=dim)


class Domain:
    """Extended periodic domain of one observation size and kernel size (see the module doc).

    Args:
        image_hw: observed size (H, W).
        kernel_hw: kernel size (kh, kw).
        boundary: ``"valid"`` (unknown scene beyond the frame, masked data term; default) or
            ``"circular"`` (periodic observation).
        device: device of the mask.
    """

    def __init__(self, image_hw, kernel_hw, boundary: str = "valid", device=None):
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.H, self.W = (int(v) for v in image_hw)
        self.kh, self.kw = (int(v) for v in kernel_hw)
        self.boundary = boundary
        if boundary == "circular":
            self.P, self.Q, self.top, self.left = self.H, self.W, 0, 0
            self.mask = None
        else:
            self.top, _, self.left, _ = same_size_pads(self.kh, self.kw)
            # free margin so that the hidden strips on opposite sides do not touch through the wrap
            self.P = fft_size(self.H + self.kh - 1 + max(4, self.kh // 2))
            self.Q = fft_size(self.W + self.kw - 1 + max(4, self.kw // 2))
            mask = torch.zeros(self.P, self.Q, device=device)
            mask[self.top:self.top + self.H, self.left:self.left + self.W] = 1
            self.mask = mask
        self.shape = (self.P, self.Q)

    # -- placement -----------------------------------------------------------------------------
    def embed(self, y: torch.Tensor) -> torch.Tensor:
        """Observation (..., H, W) placed in the domain, zeros elsewhere."""
        if self.mask is None:
            return y
        out = y.new_zeros(*y.shape[:-2], self.P, self.Q)
        out[..., self.top:self.top + self.H, self.left:self.left + self.W] = y
        return out

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The observed window (..., H, W) of a domain image: the output of every method."""
        return x[..., self.top:self.top + self.H, self.left:self.left + self.W]

    def extend(self, y: torch.Tensor) -> torch.Tensor:
        """Smooth periodic extension of ``y`` to the domain (mirror + raised-cosine blend)."""
        if self.mask is None:
            return y
        x = _periodic_extend_last(y, self.P, -2)
        x = _periodic_extend_last(x, self.Q, -1)
        return x.roll((self.top, self.left), (-2, -1))

    # -- operators -----------------------------------------------------------------------------
    def otf(self, kernel: torch.Tensor) -> torch.Tensor:
        """Half-spectrum OTF of a (..., kh, kw) kernel on the domain."""
        return psf2otf(kernel, self.shape)

    def _masked(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.mask is None else z * self.mask.to(z.dtype)

    def forward(self, x: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
        """Observation model ``A x``: blur on the domain, then the observed window (B, C, H, W)."""
        return self.crop(irfft2(rfft2(x) * otf, s=self.shape).to(x.dtype))

    def adjoint(self, r: torch.Tensor, otf: torch.Tensor) -> torch.Tensor:
        """``A^T r`` for a residual ``r`` on the observed window."""
        return irfft2(rfft2(self.embed(r)) * otf.conj(), s=self.shape).to(r.dtype)

    def solve(self, otf, y, reg_hat=0.0, rhs_hat=None, x0=None, iters: int = 10) -> torch.Tensor:
        """Solve ``(A^T A + R) x = A^T y + b`` on the domain (returns the domain-size image).

        ``R`` is circulant with the real, non-negative half-spectrum multiplier ``reg_hat`` and ``b``
        is given by its half spectrum ``rhs_hat`` (or ``None``). Circular boundary: closed form.
        Valid boundary: ``iters`` preconditioned CG steps from ``x0`` (default :meth:`extend` of y).
        The structured form of this solve is :func:`unblur.physics.solvers.fourier_data_step`.
        """
        from .solvers import solve_fourier_normal  # solvers imports this module

        return solve_fourier_normal(otf, y, reg_hat, rhs_hat, domain=self, x0=x0, iters=iters)
