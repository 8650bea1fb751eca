"""Non-blind deconvolution of a blur that changes across the photo as a per-pixel mix of a few known kernels
(a defocus radius map read on a ladder of disks), by half-quadratic splitting with a hyper-Laplacian gradient
prior (Krishnan & Fergus 2009), the ``w``/``x`` alternation of :func:`unblur.classical.hqs` made local::

    w_t = shrink(grad x_{t-1}, beta_t)                                     physics.proximal
    x_t = sum_j m_j * argmin_x lam ||k_j (*) x - y||^2 + beta_t ||grad x - w_t||^2      per kernel, mixed per pixel

Each kernel's x-step is the closed form of :class:`unblur.physics.FourierDataStep` on the photo's smooth
periodic extension (:meth:`Domain.extend`, no CG: the mix is re-extended after every step, an approximation
that keeps one step at two FFTs per kernel). Only the kernels that some pixel uses are solved, so a uniform
blur read between two ladder entries costs two solves per step. Differentiable in ``y``, ``mix``, ``lam`` and
``betas`` (unrolled networks learn the schedule).

Example:
    >>> import torch
    >>> from unblur.physics import defocus_kernel
    >>> k = torch.stack([defocus_kernel(0.0, 9), defocus_kernel(3.0, 9)])
    >>> mix = torch.zeros(1, 2, 24, 24); mix[:, 1] = 1
    >>> mixture_hqs(torch.rand(1, 3, 24, 24), k, mix, lam=3000.0, betas=(1.0, 8.0)).shape
    torch.Size([1, 3, 24, 24])
"""
from __future__ import annotations

from typing import Sequence

import torch

from .boundary import Domain, gradient_otfs, gradients
from .proximal import shrink_hyper_laplacian
from .solvers import FourierDataStep

__all__ = ["mixture_hqs"]


def mixture_hqs(y: torch.Tensor, kernels: torch.Tensor, mix: torch.Tensor, *, lam, betas: Sequence,
                alpha: float = 2 / 3, shrink=None, cg_iters: int = 0) -> torch.Tensor:
    """Deconvolve ``y`` (B, C, H, W) blurred at each pixel by ``sum_j mix_j k_j``.

    Args:
        kernels: (J, kh, kw) kernels shared by the batch, or (B, J, kh, kw) per photo (a delta for "no blur"
            is a kernel like any other).
        mix: (B, J, H, W) non-negative per-pixel weights that sum to one (e.g. ``hat_weights`` of a radius map).
        lam: data weight, float or (B, 1, 1, 1) (MAP: about ``0.3 / sigma^2``).
        betas: the splitting weights, one step each (increasing, e.g. 1, 4, ..., 4096).
        alpha: hyper-Laplacian exponent.
        shrink: the ``w``-step, ``shrink(gh, gv, beta) -> (wh, wv)`` (a learned gradient prior); default the
            hyper-Laplacian shrinkage of each gradient.
        cg_iters: 0 solves each step in closed form on the photo's periodic extension; > 0 runs that many
            preconditioned CG steps of the ``valid`` observation model (the data term only on the observed
            window, as classical ``hqs``), warm-started from the previous step: exact at the borders, where a
            long kernel's unknown band makes the extension's guess costly, for about ``cg_iters`` times the FFTs
            (two a CG step).

    Returns the deconvolved image (B, C, H, W) in ``y``'s dtype (not clamped); FFTs in float32 or float64.
    """
    shared = kernels.ndim == 3
    if kernels.ndim not in (3, 4) or mix.ndim != 4 or mix.shape[1] != kernels.shape[-3] or not (
            shared or kernels.shape[0] in (1, mix.shape[0])):
        raise ValueError(f"mixture_hqs: kernels (J, kh, kw) or (B, J, kh, kw) and mix (B, J, H, W) must agree, got "
                         f"{tuple(kernels.shape)} and {tuple(mix.shape)}")
    if not len(betas):
        raise ValueError("mixture_hqs: give at least one splitting weight")
    work = y.dtype if y.dtype == torch.float64 else torch.float32  # FFTs never in half precision
    yw, mw = y.to(work), mix.to(work)
    used = (mw.detach().flatten(2).amax((0, 2)) > 0).nonzero().flatten()  # host sync: the kernels some pixel uses
    mw = mw[:, used, None]  # (B, J', 1, H, W)
    dom = Domain(y.shape[-2:], kernels.shape[-2:], "valid", device=y.device)
    ks = kernels[used][:, None] if shared else kernels[:, used].transpose(0, 1)  # (J', B or 1, kh, kw)
    otf = dom.otf(ks.to(work)[:, :, None])  # (J', B or 1, 1, P, Q // 2 + 1)
    x = dom.extend(yw)
    d_otfs = gradient_otfs(dom.shape, y.device, work)
    step = FourierDataStep(yw, otf, d_otfs, dom) if cg_iters > 0 else FourierDataStep(x, otf, d_otfs)
    mix_domain = dom.extend(mw[:, :, 0])[:, :, None] if cg_iters > 0 else None  # weights beyond the window
    out = yw
    for beta in betas:
        gh, gv = gradients(x)
        if shrink is None:
            wh, wv = shrink_hyper_laplacian(gh, beta, alpha), shrink_hyper_laplacian(gv, beta, alpha)
        else:
            wh, wv = shrink(gh, gv, beta)
        ratio = beta / lam
        if cg_iters > 0:  # the whole domain is solved: mix there and keep it as the next start
            solved = step(weights=(ratio, ratio), targets=(wh, wv), x0=x, cg_iters=cg_iters)  # (J', B, C, P, Q)
            x = (mix_domain * solved.transpose(0, 1)).sum(1)
            out = dom.crop(x)
            continue
        solved = dom.crop(step(weights=(ratio, ratio), targets=(wh, wv)))  # (J', B, C, H, W)
        out = (mw * solved.transpose(0, 1)).sum(1)
        x = dom.extend(out)
    return out.to(y.dtype)
