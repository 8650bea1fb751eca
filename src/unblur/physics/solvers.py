"""The solver layer: one conjugate gradient, the Fourier data step and the kernel least-squares step.

Every quadratic sub-problem of the package (classical methods and unrolled networks) is solved here:

- :func:`conjugate_gradient`: batched, preconditioned CG for symmetric positive definite operators.
- :func:`fourier_data_step`: the image step
  ``min_x ||A x - y||^2 + sum_i w_i ||D_i x - v_i||^2 + beta ||x - u||^2``
  with ``A`` the blur (circular, or the masked ``valid`` observation of :class:`~unblur.physics.boundary.Domain`)
  and ``D_i`` convolution filters (e.g. the gradients). Circular: the closed form
  ``x = F^-1[(conj(K) Y + sum_i w_i conj(D_i) V_i + beta U) / (|K|^2 + sum_i w_i |D_i|^2 + beta)]``;
  valid: CG on the normal equations, preconditioned with that closed form.
- :func:`kernel_step`: ``min_k sum_d ||M_d (d(x) (*) k - d(y))||^2 + gamma ||k||^2`` for a kernel of a given
  size (``d`` the forward differences or the identity, ``M_d`` the observed-window mask).

All functions are plain torch code: batched over ``(B, C)``, CPU or CUDA, float32 or float64, and
differentiable (autograd flows through every iteration, so an unrolled network can train through them).
Equations and conventions: ``docs/physics.md``.

Example:
    >>> import torch
    >>> from unblur.physics import Domain, conv2d, fourier_data_step, gradient_otfs
    >>> k = torch.ones(5, 5) / 25
    >>> y = conv2d(torch.rand(1, 1, 36, 40), k, "valid")          # (1, 1, 32, 36)
    >>> d = Domain((32, 36), (5, 5))
    >>> x = fourier_data_step(y, d.otf(k), filter_otfs=gradient_otfs(d.shape), weights=(1e-3, 1e-3), domain=d)
    >>> d.crop(x).shape
    torch.Size([1, 1, 32, 36])
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .boundary import Domain, fft_size, gradients
from .fft import irfft2, otf2psf, psf2otf, rfft2

__all__ = ["FourierDataStep", "conjugate_gradient", "fourier_data_step", "kernel_step"]

KERNEL_METHODS = ("fft", "cg")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-(sample, channel) inner product over the last two dims, keepdim."""
    return (a * b).sum((-2, -1), keepdim=True)


def _safe_div(num: torch.Tensor, den: torch.Tensor, tiny: float) -> torch.Tensor:
    """``num / den`` where ``den > tiny``, else 0; finite gradients in both branches."""
    ok = den > tiny
    # A real factor (0 where den is too small) times num: the same for real and complex num, and no complex
    # where/zeros_like, which ONNX export has no lowering for.
    return num * torch.where(ok, 1 / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))


def conjugate_gradient(
    apply_A: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    iters: int = 20,
    precond: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tol: float = 0.0,
    dot: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = _dot,
) -> torch.Tensor:
    """Preconditioned conjugate gradients for ``A x = b``, ``A`` symmetric positive definite.

    Batched: ``b`` is ``(..., H, W)`` and every leading index is an independent system (dot products
    over the last two dims), so ``apply_A`` must not mix them. ``precond`` applies an SPD approximation
    of ``A^-1``. Runs ``iters`` iterations from ``x0`` (default zeros), or stops earlier once every
    residual satisfies ``||r|| <= tol ||b||`` (``tol > 0`` costs one host sync per iteration).
    Step sizes are set to 0 where a denominator vanishes (converged or zero right-hand side), so the
    result and its gradients stay finite. ``dot``: the inner product (real, keepdim over the last two
    dims); :func:`solve_fourier_normal` runs the iteration on half spectra with :func:`_spectral_dot`.
    """
    x = torch.zeros_like(b) if x0 is None else x0.to(b.dtype).expand_as(b)
    r = b if x0 is None else b - apply_A(x)
    z = precond(r) if precond is not None else r
    p = z
    rz = dot(r, z)
    tiny = torch.finfo(rz.dtype).tiny
    bb = dot(b, b) if tol > 0 else None
    for _ in range(int(iters)):
        if bb is not None and bool((dot(r, r) <= (tol * tol) * bb).all()):
            break
        Ap = apply_A(p)
        alpha = _safe_div(rz, dot(p, Ap), tiny)
        x = x + alpha * p
        r = r - alpha * Ap
        z = precond(r) if precond is not None else r
        rz_new = dot(r, z)
        p = z + _safe_div(rz_new, rz, tiny) * p
        rz = rz_new
    return x


def _half_spectrum_weights(width: int, n_cols: int, device, dtype) -> torch.Tensor:
    """Weights (n_cols,) of the columns of an ``rfft2`` half spectrum in a full-spectrum sum: 2 for the columns
    that stand for themselves and their mirror, 1 for column 0 (and column ``width / 2`` for an even width)."""
    w = torch.full((n_cols,), 2.0, device=device, dtype=dtype)
    w[0] = 1.0
    if width % 2 == 0:
        w[-1] = 1.0
    return w


def _spectral_dot(weights: torch.Tensor):
    """The real inner product of two real images given by their half spectra (Parseval, up to the common factor
    ``H W``, which cancels in CG's step sizes)."""
    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a.real * b.real + a.imag * b.imag) * weights).sum((-2, -1), keepdim=True)
    return dot


def _coef(w, like: torch.Tensor):
    """A weight as a float or a tensor broadcastable to (B, C, h, w): (B,) becomes (B, 1, 1, 1)."""
    if not torch.is_tensor(w):
        return float(w)
    w = w.to(device=like.device, dtype=like.dtype)
    return w.reshape(-1, 1, 1, 1) if w.ndim == 1 else w


def _is_zero(w) -> bool:
    return not torch.is_tensor(w) and w == 0.0


def solve_fourier_normal(otf, y, reg_hat=0.0, rhs_hat=None, *, domain: Domain | None = None, x0=None, iters: int = 10,
                         aty_hat=None, otf_power=None):
    """``(A^T A + R) x = A^T y + b`` with ``R`` circulant (half-spectrum multiplier ``reg_hat``, real and
    non-negative, the spectrum of a real symmetric filter such as ``sum_i w_i |D_i|^2 + beta``: the ``valid`` solve
    iterates on half spectra and relies on it) and ``b`` given by its half spectrum ``rhs_hat``: closed form for a circular domain
    (or none), ``iters`` CG steps preconditioned by ``(|K|^2 + R)^-1`` from ``x0`` (default
    ``domain.extend(y)``) for a ``valid`` domain. ``aty_hat``: ``conj(K) F(y)`` when the caller already
    has it (loops over the same observation), and ``otf_power`` ``|K|^2``. Returns the domain-size image in ``y``'s
    dtype."""
    s = tuple(domain.shape) if domain is not None else tuple(y.shape[-2:])
    mask = None if domain is None else domain.mask
    k2 = otf.real ** 2 + otf.imag ** 2 if otf_power is None else otf_power
    denom = (k2 + reg_hat).clamp_min(1e-12)
    rhs = _observation_hat(otf, y, domain) if aty_hat is None else aty_hat
    if rhs_hat is not None:
        rhs = rhs + rhs_hat
    if mask is None:
        return irfft2(rhs / denom, s=s).to(y.dtype)
    mask = mask.to(y.dtype)
    # CG on half spectra: the iterates, residuals and directions of the image-domain iteration, kept as their
    # spectra (the preconditioner and the circulant parts are products there), so that a step costs two FFTs (the
    # mask is applied in the image domain) instead of six
    otf_conj = otf.conj()

    def normal(V):
        return rfft2(irfft2(V * otf, s=s) * mask) * otf_conj + reg_hat * V

    x = (domain.extend(y) if x0 is None else x0).to(y.dtype)
    dot = _spectral_dot(_half_spectrum_weights(s[-1], rhs.shape[-1], rhs.device, rhs.real.dtype))
    X = conjugate_gradient(normal, rhs, x0=rfft2(x), iters=iters, precond=lambda R: R / denom, dot=dot)
    return irfft2(X, s=s).to(y.dtype)


def _observation_hat(otf, y, domain):
    return rfft2(y if domain is None else domain.embed(y)) * otf.conj()


class FourierDataStep:
    """:func:`fourier_data_step` for one observation, blur and filter set, called many times.

    What does not change between the calls of a splitting loop (the spectrum ``conj(K) F(y)`` and the
    filters' ``|D_i|^2``) is computed once, and all targets go through one batched FFT per call, so an
    HQS iteration costs two FFTs on a circular domain instead of one per term.

    Example:
        >>> import torch
        >>> from unblur.physics import gradient_otfs, psf2otf
        >>> y = torch.rand(1, 1, 16, 16)
        >>> step = FourierDataStep(y, psf2otf(torch.ones(3, 3) / 9, (16, 16)), gradient_otfs((16, 16)))
        >>> x = step(weights=(0.1, 0.1), targets=(torch.zeros_like(y), torch.zeros_like(y)))
        >>> x.shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, y: torch.Tensor, otf: torch.Tensor, filter_otfs: Sequence[torch.Tensor] = (),
                 domain: Domain | None = None):
        self.y, self.otf, self.domain = y, otf, domain
        self.filter_otfs = tuple(filter_otfs)
        self.filter_power = [D.real ** 2 + D.imag ** 2 for D in self.filter_otfs]
        self.filter_power_sum = sum(self.filter_power) if self.filter_otfs else None
        self.aty_hat = _observation_hat(otf, y, domain)
        self.otf_power = otf.real ** 2 + otf.imag ** 2

    def __call__(self, *, beta=0.0, u: torch.Tensor | None = None, weights: Sequence = (),
                 targets: Sequence[torch.Tensor | None] = (), x0: torch.Tensor | None = None,
                 cg_iters: int = 10, rhs: torch.Tensor | None = None) -> torch.Tensor:
        """One solve; ``rhs``: an extra right-hand side ``b`` on the domain, added as ``F(b)`` (a caller that forms
        ``sum_i w_i D_i^T v_i + beta u`` in the image domain passes it here: one FFT instead of one per target)."""
        y, Ds = self.y, self.filter_otfs
        weights = tuple(weights)
        targets = tuple(targets) if len(targets) else (None,) * len(Ds)
        if not (len(Ds) == len(weights) == len(targets)):
            raise ValueError(
                f"filter_otfs, weights and targets must have the same length, got {len(Ds)}, {len(weights)}, {len(targets)}"
            )
        beta = _coef(beta, y)
        use_u = u is not None and not _is_zero(beta)
        given = [i for i, v in enumerate(targets) if v is not None]
        spectra = [targets[i] for i in given] + ([u] if use_u else []) + ([rhs] if rhs is not None else [])
        if spectra and torch.compiler.is_exporting():  # ONNX has no lowering for unbinding a complex tensor
            spectra = [rfft2(v) for v in torch.broadcast_tensors(*spectra)]
        elif len(spectra) == 1:
            spectra = [rfft2(spectra[0])]
        elif spectra:  # one FFT call for every target (they share the domain shape)
            spectra = rfft2(torch.stack(torch.broadcast_tensors(*spectra))).unbind(0)
        shared = bool(Ds) and all(w is weights[0] for w in weights)  # one weight: factor it out
        reg, rhs_hat = 0.0, (spectra[-1] if rhs is not None else None)
        if shared:
            w = _coef(weights[0], y)
            reg = w * self.filter_power_sum
            terms = [Ds[i].conj() * V for i, V in zip(given, spectra)]
            if terms:
                rhs_hat = w * sum(terms) if rhs_hat is None else rhs_hat + w * sum(terms)
        else:
            for D, P, w in zip(Ds, self.filter_power, weights):
                reg = reg + _coef(w, y) * P
            for i, V in zip(given, spectra):
                term = _coef(weights[i], y) * (Ds[i].conj() * V)
                rhs_hat = term if rhs_hat is None else rhs_hat + term
        if not _is_zero(beta):
            reg = reg + beta
            if use_u:
                term = beta * spectra[len(given)]
                rhs_hat = term if rhs_hat is None else rhs_hat + term
        return solve_fourier_normal(self.otf, y, reg, rhs_hat, domain=self.domain, x0=x0, iters=cg_iters,
                                    aty_hat=self.aty_hat, otf_power=self.otf_power)


def fourier_data_step(
    y: torch.Tensor,
    otf: torch.Tensor,
    *,
    beta=0.0,
    u: torch.Tensor | None = None,
    filter_otfs: Sequence[torch.Tensor] = (),
    weights: Sequence = (),
    targets: Sequence[torch.Tensor | None] = (),
    domain: Domain | None = None,
    x0: torch.Tensor | None = None,
    cg_iters: int = 10,
) -> torch.Tensor:
    """``argmin_x ||A x - y||^2 + sum_i w_i ||D_i x - v_i||^2 + beta ||x - u||^2`` on the domain.

    Args:
        y: observation (B, C, H, W): the observed window for a ``valid`` domain, else the domain itself.
        otf: half-spectrum OTF of the blur on the domain shape (``psf2otf`` / ``Domain.otf``).
        beta, u: weight and centre of the proximal term (``u=None``: zero). Floats or per-sample
            tensors ((B,) or broadcastable (B, 1, 1, 1)).
        filter_otfs, weights, targets: the filters ``D_i`` (half-spectrum OTFs on the domain, e.g.
            ``gradient_otfs``), their weights ``w_i`` (like ``beta``) and targets ``v_i`` (domain-size
            images, ``None`` = zero; an empty sequence means all zero).
        domain: ``None`` or a circular :class:`Domain`: closed form
            ``x = F^-1[(conj(K) Y + sum_i w_i conj(D_i) V_i + beta U) / (|K|^2 + sum_i w_i |D_i|^2 + beta)]``.
            A ``valid`` domain: the data term is masked to the observed window and the normal equations
            are solved by ``cg_iters`` CG steps preconditioned with that closed form, from ``x0``
            (default ``domain.extend(y)``).

    Returns the domain-size image (crop it with ``domain.crop``); differentiable w.r.t. every tensor input.
    Loops that solve it many times for the same ``y`` and ``otf`` use :class:`FourierDataStep`.
    """
    return FourierDataStep(y, otf, filter_otfs, domain)(beta=beta, u=u, weights=weights, targets=targets, x0=x0,
                                                       cg_iters=cg_iters)


def _filtered(t: torch.Tensor, filters) -> tuple[torch.Tensor, ...]:
    if filters == "grad":
        return gradients(t)
    if filters is None:
        return (t,)
    raise ValueError(f"filters must be 'grad' or None, got {filters!r}")


def kernel_step(
    x: torch.Tensor,
    y: torch.Tensor,
    size,
    *,
    gamma,
    domain: Domain | None = None,
    method: str = "fft",
    k0: torch.Tensor | None = None,
    iters: int = 20,
    filters: str | None = "grad",
    x_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``argmin_k sum_d ||M_d (d(x) (*) k - d(y))||^2 + gamma ||k||^2`` for kernels of ``size``.

    Args:
        x: current image (B, C, P, Q) on the domain (the domain's shape; any shape when ``domain`` is
            ``None`` or circular).
        y: observation: the observed window (B, C, H, W) for a ``valid`` domain, else the shape of ``x``.
        size: kernel size, an int or (kh, kw).
        gamma: Tikhonov weight, a float or a per-sample tensor ((B,) or (B, 1, 1, 1)).
        domain: ``None``/circular (no mask) or a ``valid`` :class:`Domain` (``M_d``: pixels whose
            difference only involves observed pixels).
        method: ``"fft"``: the circular closed form
            ``k = crop(F^-1[sum_d conj(D X) D Y / (sum_d |D X|^2 + gamma)])``: it ignores the mask and the
            support constraint (the minimiser over kernels as large as the domain, cropped to ``size``),
            the classical fast approximation. With ``filters="grad"`` the kernel's sum (DC) is not seen
            by the data and comes out near 0: project (``project_kernel``) afterwards.
            ``"cg"``: the exact masked, support-constrained normal equations solved by ``iters`` CG
            steps from ``k0`` (default zeros).
        filters: ``"grad"`` (the forward differences of :func:`~unblur.physics.boundary.gradients`) or
            ``None`` (intensities).
        x_mask: optional weights on ``d(x)`` (broadcastable to ``x``): ``d(x)`` becomes ``x_mask * d(x)``,
            e.g. a salient-edge selection (Cho & Lee 2009) that keeps only strong edges of ``x``.

    Returns one kernel per sample, (B, 1, kh, kw) in ``x``'s dtype (channels are summed in the data
    term). Not projected (may be negative, does not sum to 1). Differentiable.
    """
    kh, kw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    s = tuple(x.shape[-2:])
    masked = domain is not None and domain.mask is not None
    if masked:
        if s != tuple(domain.shape):
            raise ValueError(f"x must live on the domain {tuple(domain.shape)}, got {s}")
        yd = domain.embed(y)
        m = domain.mask.to(x.dtype)
        masks = (m * m.roll(-1, -1), m * m.roll(-1, -2)) if filters == "grad" else (m,)
    else:
        yd = y
        masks = (None, None) if filters == "grad" else (None,)
    xs, ys = _filtered(x, filters), _filtered(yd, filters)
    if x_mask is not None:
        xs = tuple(t * x_mask for t in xs)
    Xs = [rfft2(t) for t in xs]
    g = _coef(gamma, x)
    if method == "fft":
        num = sum(X.conj() * rfft2(yt) for X, yt in zip(Xs, ys)).sum(1, keepdim=True)
        den = sum(X.real ** 2 + X.imag ** 2 for X in Xs).sum(1, keepdim=True) + g
        K = _safe_div(num, den, torch.finfo(den.dtype).tiny)
        return otf2psf(K, s, (kh, kw)).to(x.dtype)
    if method != "cg":
        raise ValueError(f"method must be one of {KERNEL_METHODS}, got {method!r}")
    ks = (kh, kw)
    if not masked and 2 * kh - 1 <= s[0] and 2 * kw - 1 <= s[1]:  # shift-invariant: CG on a small grid
        return _kernel_cg_circular(Xs, ys, s, ks, g, k0, iters, x)

    def fwd(k):
        K = psf2otf(k, s)
        return [irfft2(X * K, s=s) if mk is None else irfft2(X * K, s=s) * mk for X, mk in zip(Xs, masks)]

    def adj(rs):  # of masked residuals (the masks are 0/1: masking again would change nothing)
        R = sum(X.conj() * rfft2(r) for X, r in zip(Xs, rs))
        return otf2psf(R.sum(1, keepdim=True), s, ks).to(x.dtype)

    def normal(k):
        return adj(fwd(k)) + g * k

    b = adj([yt if mk is None else yt * mk for yt, mk in zip(ys, masks)])
    if k0 is None:
        k0 = torch.zeros(x.shape[0], 1, kh, kw, device=x.device, dtype=x.dtype)
    return conjugate_gradient(normal, b, x0=k0, iters=iters)


def _kernel_cg_circular(Xs, ys, s, ks, g, k0, iters, x):
    """The unmasked normal equations ``(R (*) k) + gamma k = b``: ``R``, the autocorrelation of the filtered
    ``x``, only matters within ``(2kh-1, 2kw-1)`` lags, so each CG step is a convolution on a grid just
    large enough for those lags (no wrap-around reaches the kernel's support)."""
    kh, kw = ks
    auto = sum(X.real ** 2 + X.imag ** 2 for X in Xs).sum(1, keepdim=True)
    b = otf2psf(sum(X.conj() * rfft2(yt) for X, yt in zip(Xs, ys)).sum(1, keepdim=True), s, ks).to(x.dtype)
    lags = (2 * kh - 1, 2 * kw - 1)
    grid = (fft_size(lags[0]), fft_size(lags[1]))
    R = psf2otf(otf2psf(auto, s, lags).to(x.dtype), grid)

    def normal(k):
        return otf2psf(psf2otf(k, grid) * R, grid, ks) + g * k

    if k0 is None:
        k0 = torch.zeros_like(b)
    return conjugate_gradient(normal, b, x0=k0, iters=iters)
