"""Metrics of blind deblurring: kernel PSNR up to a shift, alignment by shift search, Levin's error ratio.

Blind methods recover the kernel and the image only up to a translation (shifting the kernel one
way and the image the other gives the same blurred picture), so every comparison here searches
over shifts and keeps the best.

- :func:`kernel_psnr`: both kernels zero-padded to a common size (centres aligned) and normalised to
  sum 1; ``PSNR = 10 log10(peak^2 / MSE)`` with ``peak`` the maximum of the true kernel and
  ``MSE = SSE / (kh * kw)``: the sum of squared errors over the whole canvas divided by the number of
  pixels of the *true* kernel. (Dividing by the canvas size instead would let the value depend on
  how much zero border the estimate carries; with this choice zero-padding the estimate changes
  nothing.) With ``max_shift`` the estimate is moved by every integer shift up to ``max_shift`` px in
  each direction on a canvas large enough to lose nothing, and the best PSNR is returned.
- :func:`align_to_reference`: the protocol of Levin et al. 2009 / SelfDeblur 2020 evaluations: crop
  ``crop`` px from each side of the reference, move the estimate by sub-pixel shifts (``step`` px
  grid, bilinear interpolation, up to ``max_shift`` px) and keep the shift with the smallest sum of
  squared differences. The search is exhaustive over the grid; it is computed with one FFT
  correlation per fractional offset, so 0.25 px steps cost about as much as integer ones.
- :func:`error_ratio`: error of the estimate / error of the result obtained with the true kernel
  (same non-blind method), both aligned to the ground truth first. ``squared=True`` is Levin's
  original ratio of sums of squared errors; ``squared=False`` is the ratio of norms that SelfDeblur's
  tables use (the square root of the former).
"""
from __future__ import annotations

import math

import torch

from ..errors import InputError
from ..physics.conv import conv2d
from ..physics.fft import kernel_center
from ..physics.kernels import as_kernel

__all__ = ["kernel_psnr", "align_to_reference", "error_ratio"]


def _kernel2d(k, name: str) -> torch.Tensor:
    """One 2-D float64 CPU kernel scaled to sum 1 (negative taps of an estimate are kept)."""
    k = torch.as_tensor(k).detach().to("cpu", torch.float64)
    while k.ndim > 2 and k.shape[0] == 1:
        k = k[0]
    return as_kernel(k, name=name, ndims=(2,), negative_tolerance=None)[0, 0]


def _place(k: torch.Tensor, H: int, W: int, margin: int) -> torch.Tensor:
    """Zero canvas (H + 2 margin, W + 2 margin) with ``k``'s centre at the canvas centre."""
    out = k.new_zeros(H + 2 * margin, W + 2 * margin)
    kh, kw = k.shape
    ch, cw = kernel_center(kh, kw)
    top = margin + H // 2 - ch
    left = margin + W // 2 - cw
    out[top:top + kh, left:left + kw] = k
    return out


def kernel_psnr(k_est, k_true, max_shift: int | None = None, return_shift: bool = False):
    """PSNR (dB) between an estimated and the true kernel, maximised over integer shifts.

    Returns a float (``inf`` for identical kernels up to the allowed shift), or ``(psnr, (dy, dx))``
    with ``return_shift``: the estimate moved down by ``dy`` and right by ``dx`` matches best.
    """
    e = _kernel2d(k_est, "estimated kernel")
    t = _kernel2d(k_true, "true kernel")
    s = 0 if max_shift is None else int(max_shift)
    if s < 0:
        raise InputError(f"max_shift must be >= 0, got {max_shift}")
    H, W = max(e.shape[0], t.shape[0]), max(e.shape[1], t.shape[1])
    E = _place(e, H, W, 0)
    T = _place(t, H, W, s)
    # corr[p, q] = sum_i T[i + p, j + q] E[i, j]: T correlated with E = T convolved with flipped E
    corr = conv2d(T[None, None], E.flip(-2, -1), mode="valid", method="direct")[0, 0]
    sse = (E.square().sum() + T.square().sum() - 2 * corr).clamp_min(0)
    best = int(torch.argmin(sse))
    p, q = divmod(best, sse.shape[1])
    moved = torch.zeros_like(T)
    moved[p:p + H, q:q + W] = E  # the estimate shifted by (p - s, q - s); exact error, no cancellation
    err = float((moved - T).square().sum()) / t.numel()
    peak = float(t.max())
    value = math.inf if err == 0.0 else 10.0 * math.log10(peak * peak / err)
    if return_shift:
        return value, (p - s, q - s)
    return value


def _as_chw(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach()
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise InputError(f"{name}: one image at a time, got a batch of {x.shape[0]}")
        x = x[0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError(f"{name} must have shape (C, H, W) or (H, W), got {tuple(x.shape)}")
    return x.to("cpu", torch.float64)


def _shift_grid(max_shift: float, step: float) -> list[float]:
    n = int(math.floor(max_shift / step + 1e-9))
    return [i * step for i in range(-n, n + 1)]


def _frac_shift(E: torch.Tensor, fy: float, fx: float) -> torch.Tensor:
    """Bilinear resampling of (C, H, W) at (i + fy, j + fx), 0 <= f < 1; drops the last row/col if needed."""
    if fy:
        E = (1 - fy) * E[:, :-1] + fy * E[:, 1:]
    if fx:
        E = (1 - fx) * E[..., :-1] + fx * E[..., 1:]
    return E


def _window_sums(A: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sums of A (R, S) over every h x w window, shape (R - h + 1, S - w + 1)."""
    I = torch.nn.functional.pad(A.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return I[h:, w:] - I[:-h, w:] - I[h:, :-w] + I[:-h, :-w]


def _sample(E: torch.Tensor, dy: float, dx: float, crop: int, h: int, w: int) -> torch.Tensor:
    """E (C, H, W) resampled at rows crop + dy + i and columns crop + dx + j (bilinear), (C, h, w)."""
    iy, ix = math.floor(dy), math.floor(dx)
    Ef = _frac_shift(E, dy - iy, dx - ix)
    return Ef[:, crop + iy:crop + iy + h, crop + ix:crop + ix + w]


def align_to_reference(est, ref, max_shift: float = 10, step: float = 0.25, crop: int | None = None):
    """Shift ``est`` to best match ``ref`` (sub-pixel, bilinear), Levin / SelfDeblur style.

    ``est`` and ``ref`` are (C, H, W), (1, C, H, W) or (H, W) of the same shape. The reference is
    cropped by ``crop`` px on each side (default ``ceil(max_shift)``; it must be at least that so the
    shifted window stays inside the estimate). Every shift ``(dy, dx)`` on the grid of ``step`` px
    with ``|dy|, |dx| <= max_shift`` is tried; the one minimising the sum of squared differences wins.

    Returns ``(aligned, (dy, dx))``: ``aligned`` is ``est`` sampled at ``(crop + dy + i, crop + dx + j)``,
    shape (C, H - 2 crop, W - 2 crop), float64 on the CPU, to be compared with
    ``ref[..., crop:H - crop, crop:W - crop]``.
    """
    E, R = _as_chw(est, "estimate"), _as_chw(ref, "reference")
    if E.shape != R.shape:
        raise InputError(f"estimate {tuple(E.shape)} and reference {tuple(R.shape)} differ in shape")
    if max_shift < 0 or not (0 < step <= 1):
        raise InputError(f"need max_shift >= 0 and 0 < step <= 1, got max_shift={max_shift}, step={step}")
    crop = int(math.ceil(max_shift)) if crop is None else int(crop)
    if crop < math.ceil(max_shift):
        raise InputError(f"crop ({crop}) must be at least max_shift ({max_shift})")
    C, H, W = E.shape
    h, w = H - 2 * crop, W - 2 * crop
    if h < 1 or w < 1:
        raise InputError(f"crop {crop} leaves no pixels of a {H}x{W} image")
    Rc = R[:, crop:crop + h, crop:crop + w]
    ref_energy = Rc.square().sum()
    shifts = _shift_grid(float(max_shift), float(step))
    by_frac: dict[float, list[tuple[int, float]]] = {}
    for d in shifts:
        i = math.floor(d)
        by_frac.setdefault(round(d - i, 12), []).append((i, d))
    candidates = []  # (ssd, dy, dx)
    for fy, rows in by_frac.items():
        for fx, cols in by_frac.items():
            Ef = _frac_shift(E, fy, fx)
            r0, r1 = min(i for i, _ in rows), max(i for i, _ in rows)
            c0, c1 = min(i for i, _ in cols), max(i for i, _ in cols)
            sub = Ef[:, crop + r0:crop + r1 + h, crop + c0:crop + c1 + w]
            corr = conv2d(sub[None], Rc.flip(-2, -1)[None], mode="valid")[0].sum(0)
            energy = _window_sums(sub.square().sum(0), h, w)
            ssd = (energy - 2 * corr + ref_energy).tolist()
            candidates += [(ssd[i - r0][j - c0], dy, dx) for i, dy in rows for j, dx in cols]
    lowest = min(c[0] for c in candidates)
    # differences below the float64 rounding of the correlations are ties: take the smallest shift
    tol = 1e-10 * (float(ref_energy) + 1.0)
    _, dy, dx = min((c for c in candidates if c[0] <= lowest + tol), key=lambda c: (c[1] ** 2 + c[2] ** 2, c[0]))
    return _sample(E, dy, dx, crop, h, w), (dy, dx)


def error_ratio(
    est,
    est_with_true_kernel,
    gt,
    crop: int = 15,
    max_shift: float = 10,
    squared: bool = True,
    step: float = 0.25,
) -> float:
    """Levin's error ratio: error of ``est`` / error of ``est_with_true_kernel``, both against ``gt``.

    Each estimate is first aligned to ``gt`` by :func:`align_to_reference` (``crop`` px removed from
    each side of ``gt``, shifts up to ``max_shift`` px on a ``step`` grid). ``squared=True``: ratio
    of sums of squared errors (Levin et al. 2009); ``squared=False``: ratio of norms (SelfDeblur).
    Returns 1.0 when both errors are zero and ``inf`` when only the true-kernel error is.
    """
    G = _as_chw(gt, "ground truth")
    C, H, W = G.shape
    Gc = G[:, crop:H - crop, crop:W - crop]

    def ssd(x) -> float:
        aligned, _ = align_to_reference(x, G, max_shift=max_shift, step=step, crop=crop)
        return float((aligned - Gc).square().sum())

    num, den = ssd(est), ssd(est_with_true_kernel)
    if den == 0.0:
        return 1.0 if num == 0.0 else math.inf
    r = num / den
    return r if squared else math.sqrt(r)
