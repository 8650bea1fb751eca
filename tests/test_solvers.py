"""The solver layer (unblur.physics.solvers) against independent references: SciPy's CG on explicit SPD
matrices, dense NumPy solves of the explicit matrices of the data step and of the kernel least squares
(built here by index arithmetic, not with the package's FFTs), gradcheck, batching, float32/float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import cg as scipy_cg

from unblur.physics import (Domain, FourierDataStep, conjugate_gradient, fourier_data_step, gradient_otfs, gradients,
                            gradients_adjoint, irfft2, kernel_step, psf2otf, rfft2)

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# explicit matrices (independent of the FFT code)


def _conv_matrix(k: np.ndarray, P: int, Q: int) -> np.ndarray:
    """Circular true convolution on a P x Q grid, kernel centre at (kh//2, kw//2): y[i,j] = sum k[a,b] x[i+ch-a, j+cw-b]."""
    kh, kw = k.shape
    ch, cw = kh // 2, kw // 2
    M = np.zeros((P * Q, P * Q))
    for i in range(P):
        for j in range(Q):
            for a in range(kh):
                for b in range(kw):
                    M[i * Q + j, ((i + ch - a) % P) * Q + (j + cw - b) % Q] += k[a, b]
    return M


def _diff_matrices(P: int, Q: int) -> tuple[np.ndarray, np.ndarray]:
    """Circular forward differences x[i, j+1] - x[i, j] and x[i+1, j] - x[i, j]."""
    n = P * Q
    Dh, Dv = -np.eye(n), -np.eye(n)
    for i in range(P):
        for j in range(Q):
            Dh[i * Q + j, i * Q + (j + 1) % Q] += 1
            Dv[i * Q + j, ((i + 1) % P) * Q + j] += 1
    return Dh, Dv


def _crop_matrix(dom: Domain) -> np.ndarray:
    """Rows of the observed window of the domain."""
    rows = [(dom.top + i) * dom.Q + dom.left + j for i in range(dom.H) for j in range(dom.W)]
    return np.eye(dom.P * dom.Q)[rows]


def _np(t):
    return t.detach().to(F64).numpy()


# ---------------------------------------------------------------------------------------------
# conjugate gradient


def _spd(n, seed, cond=30.0):
    rng = np.random.default_rng(seed)
    Qm, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Qm @ np.diag(np.linspace(1.0, cond, n)) @ Qm.T


def _apply(A):  # vectors live as (B, 1, 4, 5)
    At = torch.from_numpy(A)

    def f(v):
        return (v.reshape(v.shape[0], -1) @ At.T.to(v.dtype)).reshape(v.shape)

    return f


@pytest.mark.parametrize("iters", [1, 4, 9])
@pytest.mark.parametrize("jacobi", [False, True])
def test_cg_matches_scipy_iterate_by_iterate(iters, jacobi):
    A = _spd(20, 0)
    A[np.diag_indices(20)] *= np.linspace(1, 5, 20)  # make Jacobi matter
    rng = np.random.default_rng(1)
    b = rng.standard_normal((3, 20))
    x0 = rng.standard_normal((3, 20))
    dinv = 1 / np.diag(A)
    prec = (lambda v: v * torch.from_numpy(dinv).reshape(1, 1, 4, 5)) if jacobi else None
    got = conjugate_gradient(_apply(A), torch.from_numpy(b).reshape(3, 1, 4, 5), x0=torch.from_numpy(x0).reshape(3, 1, 4, 5),
                             iters=iters, precond=prec)
    for s in range(3):
        ref, _ = scipy_cg(A, b[s], x0=x0[s], rtol=0.0, atol=0.0, maxiter=iters, M=np.diag(dinv) if jacobi else None)
        np.testing.assert_allclose(got[s].flatten().numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    # and the converged answer is the dense solve
    full = conjugate_gradient(_apply(A), torch.from_numpy(b).reshape(3, 1, 4, 5), iters=60, precond=prec)
    np.testing.assert_allclose(full.reshape(3, 20).numpy(), np.linalg.solve(A, b.T).T, rtol=0, atol=1e-9)


def test_cg_zero_rhs_converged_and_tol_stay_finite():
    A = _spd(20, 2)
    b = torch.zeros(2, 1, 4, 5, dtype=F64)
    b[1] = torch.from_numpy(np.random.default_rng(3).standard_normal(20)).reshape(1, 4, 5)
    b.requires_grad_(True)
    x = conjugate_gradient(_apply(A), b, iters=50)  # sample 0: zero rhs; sample 1: converges long before 50
    assert torch.isfinite(x).all() and bool((x[0] == 0).all())
    x.sum().backward()
    assert torch.isfinite(b.grad).all()
    np.testing.assert_allclose(x[1].detach().flatten().numpy(), np.linalg.solve(A, b[1].detach().flatten().numpy()), atol=1e-10)
    # tol: stops early, still within the tolerance
    calls = []
    f = _apply(A)
    x = conjugate_gradient(lambda v: calls.append(1) or f(v), b.detach(), iters=50, tol=1e-6)
    assert len(calls) < 50
    r = b.detach() - f(x)
    assert float(r[1].norm()) <= 1e-6 * float(b.detach()[1].norm()) * 1.0001


# ---------------------------------------------------------------------------------------------
# Fourier data step


def _data_problem(boundary, B=2, H=6, W=7, ks=3, seed=0, dtype=F64):
    g = _gen(seed)
    k = torch.rand(ks, ks, generator=g, dtype=F64) + 0.1
    k[0, -1] = 0
    k /= k.sum()
    dom = Domain((H, W), (ks, ks), boundary)
    y = torch.rand(B, 1, H, W, generator=g, dtype=F64)
    u = torch.rand(B, 1, *dom.shape, generator=g, dtype=F64)
    vh, vv = (torch.randn(B, 1, *dom.shape, generator=g, dtype=F64) * 0.1 for _ in range(2))
    return k.to(dtype), dom, y.to(dtype), u.to(dtype), vh.to(dtype), vv.to(dtype)


def _dense_data_step(k, dom, y, beta, u, wh, wv, vh, vv):
    """Dense normal equations of ||A x - y||^2 + wh ||Dh x - vh||^2 + wv ||Dv x - vv||^2 + beta ||x - u||^2."""
    P, Q = dom.shape
    K = _conv_matrix(_np(k), P, Q)
    A = K if dom.mask is None else _crop_matrix(dom) @ K
    Dh, Dv = _diff_matrices(P, Q)
    lhs = A.T @ A + wh * Dh.T @ Dh + wv * Dv.T @ Dv + beta * np.eye(P * Q)
    rhs = A.T @ _np(y).ravel() + wh * Dh.T @ _np(vh).ravel() + wv * Dv.T @ _np(vv).ravel() + beta * _np(u).ravel()
    return np.linalg.solve(lhs, rhs).reshape(P, Q)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_data_step_matches_dense_normal_equations(boundary):
    k, dom, y, u, vh, vv = _data_problem(boundary)
    # the explicit blur matrix is the package's forward model (sanity of the reference itself)
    P, Q = dom.shape
    e = torch.eye(P * Q, dtype=F64).reshape(P * Q, 1, P, Q)
    fwd = dom.forward(e, dom.otf(k)).reshape(P * Q, -1).T.numpy()
    K = _conv_matrix(_np(k), P, Q)
    np.testing.assert_allclose(fwd, K if dom.mask is None else _crop_matrix(dom) @ K, atol=1e-12)

    beta = torch.tensor([0.05, 0.2], dtype=F64)  # per sample
    wh, wv = torch.tensor([0.3, 0.01], dtype=F64).view(2, 1, 1, 1), 0.1
    oh, ov = gradient_otfs(dom.shape, dtype=F64)
    x = fourier_data_step(y, dom.otf(k), beta=beta, u=u, filter_otfs=(oh, ov), weights=(wh, wv), targets=(vh, vv),
                          domain=dom, cg_iters=300)
    assert x.shape == (2, 1, P, Q)
    for s in range(2):
        ref = _dense_data_step(k, dom, y[s, 0], float(beta[s]), u[s, 0], float(wh[s]), wv, vh[s, 0], vv[s, 0])
        np.testing.assert_allclose(x[s, 0].numpy(), ref, rtol=0, atol=1e-8)
    # domain=None is the circular closed form
    if dom.mask is None:
        torch.testing.assert_close(
            fourier_data_step(y, dom.otf(k), beta=beta, u=u, filter_otfs=(oh, ov), weights=(wh, wv), targets=(vh, vv)), x,
            atol=1e-12, rtol=0)


def test_data_step_defaults_zero_targets_and_prox():
    k, dom, y, u, vh, vv = _data_problem("valid", seed=3)
    oh, ov = gradient_otfs(dom.shape, dtype=F64)
    x = fourier_data_step(y, dom.otf(k), filter_otfs=(oh, ov), weights=(0.02, 0.02), domain=dom, cg_iters=300)
    zero = torch.zeros_like(u[0, 0])
    ref = _dense_data_step(k, dom, y[1, 0], 0.0, zero, 0.02, 0.02, zero, zero)
    np.testing.assert_allclose(x[1, 0].numpy(), ref, atol=1e-8)
    with pytest.raises(ValueError, match="same length"):
        fourier_data_step(y, dom.otf(k), filter_otfs=(oh, ov), weights=(0.1,), domain=dom)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_data_step_float32_batched_equals_loop(boundary):
    k, dom, y, u, vh, vv = _data_problem(boundary, B=3, H=20, W=23, ks=5, seed=4)
    beta = torch.tensor([0.05, 0.2, 0.01], dtype=F64)

    def run(dt, sl=slice(None)):
        o = gradient_otfs(dom.shape, dtype=dt)
        return fourier_data_step(y[sl].to(dt), dom.otf(k.to(dt)), beta=beta[sl].to(dt), u=u[sl].to(dt), filter_otfs=o,
                                 weights=(0.1, 0.1), targets=(vh[sl].to(dt), vv[sl].to(dt)), domain=dom, cg_iters=15)

    x64, x32 = run(F64), run(torch.float32)
    assert x32.dtype == torch.float32 and x64.dtype == F64
    torch.testing.assert_close(x32.double(), x64, atol=2e-5, rtol=0)
    loop = torch.cat([run(F64, slice(i, i + 1)) for i in range(3)])
    torch.testing.assert_close(loop, x64, atol=1e-12, rtol=0)


def test_gradients_adjoint_is_the_adjoint_and_the_fourier_form():
    g = _gen(11)
    x, gh, gv = (torch.rand(2, 1, 7, 9, generator=g, dtype=F64) for _ in range(3))
    dh, dv = gradients(x)
    assert float((dh * gh + dv * gv).sum()) == pytest.approx(float((x * gradients_adjoint(gh, gv)).sum()), abs=1e-12)
    # and the matrices of the dense reference: Dh^T gh + Dv^T gv
    Dh, Dv = _diff_matrices(7, 9)
    ref = Dh.T @ _np(gh[0, 0]).ravel() + Dv.T @ _np(gv[0, 0]).ravel()
    np.testing.assert_allclose(_np(gradients_adjoint(gh, gv)[0, 0]).ravel(), ref, atol=1e-12)
    oh, ov = gradient_otfs((7, 9), dtype=F64)
    fourier = irfft2(oh.conj() * rfft2(gh) + ov.conj() * rfft2(gv), s=(7, 9))
    torch.testing.assert_close(gradients_adjoint(gh, gv), fourier, atol=1e-12, rtol=0)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_data_step_image_domain_rhs_equals_targets(boundary):
    """``rhs = w D^T v + beta u`` given in the image domain is the same solve as the targets and the prox centre."""
    k, dom, y, u, vh, vv = _data_problem(boundary, seed=12)
    oh, ov = gradient_otfs(dom.shape, dtype=F64)
    step = FourierDataStep(y, dom.otf(k), (oh, ov), dom)
    ref = step(beta=0.3, u=u, weights=(0.2, 0.2), targets=(vh, vv), cg_iters=7)
    got = step(beta=0.3, weights=(0.2, 0.2), rhs=0.2 * gradients_adjoint(vh, vv) + 0.3 * u, cg_iters=7)
    torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
    # rhs adds to what the targets and the prox centre give: half of u through rhs, half as u
    mixed = step(beta=0.3, u=0.5 * u, weights=(0.2, 0.2), targets=(vh, vv), rhs=0.15 * u, cg_iters=7)
    torch.testing.assert_close(mixed, ref, atol=1e-10, rtol=0)
    assert (step(beta=0.3, u=0.5 * u, weights=(0.2, 0.2), targets=(vh, vv), cg_iters=7) - ref).abs().max() > 1e-3


def test_masked_solve_runs_the_image_domain_pcg_iterates():
    """The masked solve iterates on half spectra: after any number of steps it is the image-domain preconditioned CG
    (same iterates, not only the same limit), in float64, and float32 stays close to it."""
    k, dom, y, u, vh, vv = _data_problem("valid", seed=13)
    otf = dom.otf(k)
    oh, ov = gradient_otfs(dom.shape, dtype=F64)
    reg = 0.05 * (oh.abs() ** 2 + ov.abs() ** 2) + 0.01
    s, mask = dom.shape, dom.mask.to(F64)
    denom = otf.abs() ** 2 + reg

    def normal(v):
        V = rfft2(v)
        return irfft2(rfft2(irfft2(V * otf, s=s) * mask) * otf.conj() + reg * V, s=s)

    b = irfft2(rfft2(dom.embed(y)) * otf.conj(), s=s)
    for iters in (1, 3, 8):
        ref = conjugate_gradient(normal, b, x0=dom.extend(y), iters=iters, precond=lambda v: irfft2(rfft2(v) / denom, s=s))
        got = dom.solve(otf, y, reg_hat=reg, iters=iters)
        torch.testing.assert_close(got, ref, atol=1e-10, rtol=0)
        got32 = dom.solve(dom.otf(k.float()), y.float(), reg_hat=reg.float(), iters=iters)
        torch.testing.assert_close(got32.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_data_step_gradcheck(boundary):
    k, dom, y, u, vh, vv = _data_problem(boundary, B=2, H=5, W=6, ks=3, seed=5)
    oh, ov = gradient_otfs(dom.shape, dtype=F64)
    otf = dom.otf(k)
    beta = torch.tensor([0.1, 0.3], dtype=F64, requires_grad=True)
    w = torch.tensor([0.2, 0.05], dtype=F64, requires_grad=True)
    y, u, vh = (t.clone().requires_grad_(True) for t in (y, u, vh))

    def f(y, beta, w, u, vh):
        return fourier_data_step(y, otf, beta=beta, u=u, filter_otfs=(oh, ov), weights=(w, 0.1), targets=(vh, vv),
                                 domain=dom, cg_iters=4)

    assert torch.autograd.gradcheck(f, (y, beta, w, u, vh), eps=1e-6, atol=1e-7)
    # through the OTF (the kernel) as well
    kk = k.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda kk: fourier_data_step(y.detach(), dom.otf(kk), beta=0.1, domain=dom, cg_iters=3), (kk,), eps=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# kernel step


def _kernel_map(x: np.ndarray, size, dom: Domain | None, filters, x_mask=None):
    """Explicit matrices k (kh*kw) -> M_d ((S d(x)) (*) k) for each d, and the masked d(y) they are compared with."""
    P, Q = x.shape
    kh, kw = size
    ch, cw = kh // 2, kw // 2
    S = np.ones((P, Q)) if x_mask is None else x_mask
    ops = [np.eye(P * Q)] if filters is None else list(_diff_matrices(P, Q))
    Gs = []
    for D in ops:
        dx = (D @ x.ravel()).reshape(P, Q) * S
        # (dx (*) e_ab)[i, j] = dx[i + ch - a, j + cw - b]
        Gs.append(np.stack([np.roll(dx, (a - ch, b - cw), (0, 1)).ravel() for a in range(kh) for b in range(kw)], 1))
    if dom is None or dom.mask is None:
        masks = [np.ones(P * Q)] * len(ops)
    else:
        m = dom.mask.double().numpy()
        masks = [(m * np.roll(m, -1, 1)).ravel(), (m * np.roll(m, -1, 0)).ravel()] if filters else [m.ravel()]
    return [mk[:, None] * G for G, mk in zip(Gs, masks)], [mk[:, None] * D for D, mk in zip(ops, masks)]


def _dense_kernel(x, y_dom, size, dom, filters, gamma, x_mask=None):
    maps, dmaps = _kernel_map(x, size, dom, filters, x_mask)
    lhs = sum(Mg.T @ Mg for Mg in maps) + np.diag(np.broadcast_to(gamma, size).ravel())
    rhs = sum(Mg.T @ (Md @ y_dom.ravel()) for Mg, Md in zip(maps, dmaps))
    return np.linalg.solve(lhs, rhs).reshape(size)


def _kernel_problem(boundary, B=2, H=9, W=10, ks=3, seed=0):
    g = _gen(seed)
    dom = Domain((H, W), (ks, ks), boundary)
    x = torch.rand(B, 1, *dom.shape, generator=g, dtype=F64)
    k = torch.rand(B, 1, ks, ks, generator=g, dtype=F64)
    blurred = torch.fft.irfft2(torch.fft.rfft2(x) * psf2otf(k, dom.shape), s=dom.shape)
    y = dom.crop(blurred) + 0.01 * torch.randn(B, 1, H, W, generator=g, dtype=F64)
    return dom, x, y


@pytest.mark.parametrize("filters", ["grad", None])
@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_kernel_step_cg_matches_dense_least_squares(boundary, filters):
    dom, x, y = _kernel_problem(boundary, seed=1)
    gamma = torch.tensor([0.05, 0.5], dtype=F64)
    k = kernel_step(x, y, (3, 5), gamma=gamma, domain=dom, method="cg", iters=200, filters=filters)
    assert k.shape == (2, 1, 3, 5)
    for s in range(2):
        ref = _dense_kernel(_np(x[s, 0]), _np(dom.embed(y[s, 0])), (3, 5), dom, filters, float(gamma[s]))
        np.testing.assert_allclose(k[s, 0].numpy(), ref, rtol=0, atol=1e-9)
    # the masked reference differs from the unmasked one: the mask matters (negative control)
    if boundary == "valid":
        ref_nomask = _dense_kernel(_np(x[0, 0]), _np(dom.embed(y[0, 0])), (3, 5), None, filters, 0.05)
        assert np.abs(ref_nomask - k[0, 0].numpy()).max() > 1e-3


@pytest.mark.parametrize("boundary", ["circular", "valid"])
def test_kernel_step_cg_takes_a_weight_per_tap(boundary):
    # gamma of shape (kh, kw): a diagonal (reweighted) penalty, as blind-l0's kernel sparsity uses it
    dom, x, y = _kernel_problem(boundary, seed=3)
    gamma = 0.01 + torch.rand(1, 1, 3, 5, generator=_gen(4), dtype=F64)
    k = kernel_step(x[:1], y[:1], (3, 5), gamma=gamma, domain=dom, method="cg", iters=200)
    ref = _dense_kernel(_np(x[0, 0]), _np(dom.embed(y[0, 0])), (3, 5), dom, "grad", gamma[0, 0].numpy())
    np.testing.assert_allclose(k[0, 0].numpy(), ref, rtol=0, atol=1e-9)
    flat = _dense_kernel(_np(x[0, 0]), _np(dom.embed(y[0, 0])), (3, 5), dom, "grad", float(gamma.mean()))
    assert np.abs(flat - ref).max() > 1e-3  # the per-tap weights matter (negative control)


@pytest.mark.parametrize("filters", ["grad", None])
def test_kernel_step_fft_is_the_circular_full_support_solution(filters):
    g = _gen(2)
    x = torch.rand(2, 1, 8, 9, generator=g, dtype=F64)
    y = torch.rand(2, 1, 8, 9, generator=g, dtype=F64)
    full = kernel_step(x, y, (8, 9), gamma=0.1, method="fft", filters=filters)
    for s in range(2):
        ref = _dense_kernel(_np(x[s, 0]), _np(y[s, 0]), (8, 9), None, filters, 0.1)
        np.testing.assert_allclose(full[s, 0].numpy(), ref, rtol=0, atol=1e-10)
    # smaller sizes are the centred crop of that solution (the documented circular approximation)
    small = kernel_step(x, y, 5, gamma=0.1, method="fft", filters=filters, domain=Domain((8, 9), (5, 5), "circular"))
    torch.testing.assert_close(small, full[..., 4 - 2:4 + 3, 4 - 2:4 + 3], atol=1e-12, rtol=0)


def test_kernel_step_recovers_the_blur_and_batches():
    g = _gen(3)
    dom = Domain((40, 44), (7, 7), "valid")
    x = torch.rand(3, 1, *dom.shape, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    k = torch.rand(3, 1, 7, 7, generator=g)
    k /= k.sum((-2, -1), keepdim=True)
    y = dom.forward(x, dom.otf(k))
    est = kernel_step(x, y, 7, gamma=1e-7, domain=dom, method="cg", iters=300)
    torch.testing.assert_close(est, k, atol=2e-4, rtol=0)
    # batched == one by one; float32 ~ float64; channels are summed into one kernel per sample
    one = torch.cat([kernel_step(x[i:i + 1], y[i:i + 1], 7, gamma=1e-3, domain=dom, method="cg", iters=30) for i in range(3)])
    torch.testing.assert_close(kernel_step(x, y, 7, gamma=1e-3, domain=dom, method="cg", iters=30), one, atol=1e-6, rtol=0)
    e64 = kernel_step(x.double(), y.double(), 7, gamma=1e-3, domain=dom, method="cg", iters=30)
    torch.testing.assert_close(one.double(), e64, atol=1e-4, rtol=0)
    x3, y3 = x.expand(3, 3, -1, -1), y.expand(3, 3, -1, -1)
    torch.testing.assert_close(kernel_step(x3, y3, 7, gamma=3e-3, domain=dom, method="cg", iters=30), one, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="method"):
        kernel_step(x, y, 7, gamma=1.0, domain=dom, method="lsqr")
    with pytest.raises(ValueError, match="filters"):
        kernel_step(x, y, 7, gamma=1.0, domain=dom, filters="sobel")


@pytest.mark.parametrize("method, boundary", [("fft", "circular"), ("cg", "valid"), ("cg", "circular")])
def test_kernel_step_gradcheck(method, boundary):
    dom, x, y = _kernel_problem(boundary, B=2, H=5, W=6, seed=4)
    x, y = x.requires_grad_(True), y.requires_grad_(True)
    gamma = torch.tensor([0.2, 0.1], dtype=F64, requires_grad=True)

    def f(x, y, gamma):
        return kernel_step(x, y, 3, gamma=gamma, domain=dom, method=method, iters=4)

    assert torch.autograd.gradcheck(f, (x, y, gamma), eps=1e-6, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_solvers_on_cuda_match_cpu():
    k, dom, y, u, vh, vv = _data_problem("valid", B=2, H=20, W=23, ks=5, seed=6, dtype=torch.float32)
    oh, ov = gradient_otfs(dom.shape)
    cpu = fourier_data_step(y, dom.otf(k), beta=0.05, u=u, filter_otfs=(oh, ov), weights=(0.1, 0.1), targets=(vh, vv),
                            domain=dom, cg_iters=10)
    d = Domain((20, 23), (5, 5), "valid", device="cuda")
    oc = [t.cuda() for t in (oh, ov)]
    gpu = fourier_data_step(y.cuda(), d.otf(k.cuda()), beta=0.05, u=u.cuda(), filter_otfs=oc, weights=(0.1, 0.1),
                            targets=(vh.cuda(), vv.cuda()), domain=d, cg_iters=10)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)
    kc = kernel_step(cpu, y, 5, gamma=1e-2, domain=dom, method="cg", iters=10)
    kg = kernel_step(gpu, y.cuda(), 5, gamma=1e-2, domain=d, method="cg", iters=10)
    torch.testing.assert_close(kg.cpu(), kc, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method, boundary", [("fft", "circular"), ("cg", "valid"), ("cg", "circular")])
def test_kernel_step_x_mask_selects_the_image_gradients(method, boundary):
    dom, x, y = _kernel_problem(boundary, seed=7)
    S = (torch.rand(1, 1, *dom.shape, generator=_gen(8), dtype=F64) > 0.4).to(F64)
    size = (3, 5) if method == "cg" else dom.shape
    k = kernel_step(x, y, size, gamma=0.05, domain=dom, method=method, iters=300, x_mask=S)
    for s in range(2):
        ref = _dense_kernel(_np(x[s, 0]), _np(dom.embed(y[s, 0])), tuple(size), dom, "grad", 0.05, _np(S[0, 0]))
        np.testing.assert_allclose(k[s, 0].numpy(), ref, rtol=0, atol=1e-9)
    ones = torch.ones_like(S)
    torch.testing.assert_close(kernel_step(x, y, 3, gamma=0.05, domain=dom, method=method, iters=5, x_mask=ones),
                               kernel_step(x, y, 3, gamma=0.05, domain=dom, method=method, iters=5), atol=1e-12, rtol=0)


def _salient_reference(gh, gv, count):
    """Cho & Lee's selection written the direct way: per orientation bin, the count-th largest magnitude."""
    mag = np.hypot(gh, gv).ravel()
    bins = np.minimum((np.mod(np.arctan2(gv, gh), np.pi) / (np.pi / 4)).astype(int).ravel(), 3)
    levels = [np.sort(mag[bins == b])[::-1][min(count, (bins == b).sum()) - 1] for b in range(4) if (bins == b).any()]
    return min(levels) if levels else 0.0


@pytest.mark.parametrize("case", ["random", "small bin", "empty bins", "count above size"])
def test_salient_threshold_matches_the_per_bin_selection(case):
    from unblur.physics.boundary import salient_edges, salient_threshold

    rng = np.random.default_rng(3)
    gh, gv = rng.normal(size=(2, 40, 50)).astype(np.float32)
    count = 60
    if case == "small bin":  # bin 0 (angles below 45 degrees) keeps only 5 pixels
        angle = np.mod(np.arctan2(gv, gh), np.pi)
        small = np.flatnonzero(angle.ravel() < np.pi / 4)[5:]
        gh.ravel()[small], gv.ravel()[small] = 0.0, 1.0  # moved to 90 degrees
    if case == "empty bins":  # only horizontal gradients: bins 1-3 are empty
        gv = np.zeros_like(gv)
    if case == "count above size":
        count = 5000
    want = _salient_reference(gh, gv, count)
    got = salient_threshold(torch.from_numpy(gh), torch.from_numpy(gv), count)
    assert got.ndim == 0 and float(got) == pytest.approx(want, rel=1e-6)
    mask, level = salient_edges(torch.from_numpy(gh), torch.from_numpy(gv), count)
    assert level == pytest.approx(want, rel=1e-6)
    assert int(mask.sum()) == int((np.hypot(gh, gv) >= float(got)).sum())
