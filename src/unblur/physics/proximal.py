"""Proximal maps of sparse gradient priors (the ``w``-step of half-quadratic splitting), pixel-wise.

- :func:`shrink_tv`: ``argmin_w |w|_2 + beta/2 |w - v|^2`` for 2-vectors (isotropic total variation);
- :func:`shrink_hyper_laplacian`: ``argmin_w |w|^alpha + beta/2 (w - v)^2``, 0 < alpha < 1 (Krishnan & Fergus 2009).

Both take float or tensor ``beta`` (a learned weight keeps its gradient).

Example:
    >>> import torch
    >>> shrink_hyper_laplacian(torch.tensor([0.01, 1.0]), beta=100.0, alpha=2 / 3)[0].item()  # small: to zero
    0.0
"""
from __future__ import annotations

import torch

__all__ = ["shrink_tv", "shrink_hyper_laplacian"]


def shrink_tv(vh: torch.Tensor, vv: torch.Tensor, beta) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_w |w|_2 + beta/2 |w - v|^2 for 2-vectors v = (vh, vv), pixel-wise."""
    norm = torch.sqrt(vh * vh + vv * vv).clamp_min(1e-12)
    scale = (1 - 1 / (beta * norm)).clamp_min(0)
    return vh * scale, vv * scale


def _newton_root(a, w, beta, w_c, *, alpha: float, steps: int) -> torch.Tensor:
    """The largest root of ``g(w) = alpha w^(alpha-1) + beta (w - a)`` by Newton from ``w = max(a, w_c)``."""
    top = w
    for _ in range(steps):
        p = w.pow(alpha - 1)  # w^(alpha-2) = p / w (w >= w_c > 0): one power per step
        g = alpha * p + beta * (w - a)
        dg = (alpha * (alpha - 1)) * p / w + beta
        w = torch.minimum(w - g / dg.clamp_min(1e-12), top)
        w = torch.maximum(w, w_c) if torch.is_tensor(w_c) else w.clamp_min(w_c)
    return w


def shrink_hyper_laplacian(v: torch.Tensor, beta, alpha: float, newton_steps: int = 8) -> torch.Tensor:
    """argmin_w |w|^alpha + beta/2 (w - v)^2, element-wise, 0 < alpha < 1.

    For a = |v| > 0 the non-zero candidate is the largest root of the convex, increasing-past-w_c
    derivative g(w) = alpha w^(alpha-1) + beta (w - a); Newton from w = a decreases monotonically
    onto it. It is kept where its energy beats w = 0 (exact for any alpha, no lookup table).
    """
    a = v.abs()
    w_c = (alpha * (1 - alpha) / beta) ** (1 / (2 - alpha))  # minimum of g
    differentiable = torch.is_grad_enabled() and (v.requires_grad or (torch.is_tensor(beta) and beta.requires_grad))
    # below the threshold tau (the |v| where the non-zero candidate starts to beat 0: the generalised shrinkage
    # threshold of Zuo et al. 2013 with lam = 1 / beta) the answer is 0 whatever w is, so Newton runs on the others
    # only (most gradients of a photo are small), with a margin for rounding
    t = 2 * (1 - alpha) / beta
    tau = t ** (1 / (2 - alpha)) + (alpha / beta) * t ** ((alpha - 1) / (2 - alpha))
    exporting = torch.compiler.is_exporting()  # a traced graph has no data-dependent shapes: all values iterate
    if not differentiable and not torch.is_tensor(beta) and not exporting:  # one weight, no gradient: candidates only
        flat = v.reshape(-1)
        idx = (a.reshape(-1) > 0.95 * tau).nonzero().squeeze(1)
        vs = flat.index_select(0, idx)
        av = vs.abs()
        w = _newton_root(av, av.clamp_min(w_c), beta, w_c, alpha=alpha, steps=newton_steps)
        keep = w.pow(alpha) + 0.5 * beta * (w - av) ** 2 < 0.5 * beta * av * av
        out = torch.zeros_like(flat).index_copy_(0, idx, torch.where(keep, w * vs.sign(), torch.zeros_like(w)))
        return out.view_as(v)
    with torch.no_grad():  # the iterations need no graph: the gradient comes from the fixed point below
        wc = w_c.detach() if torch.is_tensor(w_c) else w_c
        bt = beta.detach() if torch.is_tensor(beta) else beta
        w = torch.maximum(a, wc) if torch.is_tensor(wc) else a.clamp_min(wc)
        if exporting:
            w = _newton_root(a, w, bt, wc, alpha=alpha, steps=newton_steps)
        else:
            cand = a > 0.95 * (tau.detach() if torch.is_tensor(tau) else tau)
            sub = [z.expand_as(a)[cand] if torch.is_tensor(z) else z for z in (a, w, bt, wc)]
            sub[1] = _newton_root(*sub, alpha=alpha, steps=newton_steps)
            w = w.masked_scatter(cand, sub[1])
    if differentiable:
        # one differentiable Newton step at the root: its derivative is the implicit-function one, dw/da =
        # beta / g'(w), dw/dbeta = -(w - a) / g'(w), without back-propagating through every iteration
        g = alpha * w.pow(alpha - 1) + beta * (w - a)
        dg = alpha * (alpha - 1) * w.pow(alpha - 2) + beta
        w = w - g / dg.clamp_min(1e-12)
    keep = w.pow(alpha) + 0.5 * beta * (w - a) ** 2 < 0.5 * beta * a * a
    return torch.where(keep, w * v.sign(), torch.zeros_like(v))
