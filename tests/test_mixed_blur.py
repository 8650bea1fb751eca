"""physics.mixture_hqs: one step against a NumPy closed form, mixing consistency, the kernels no pixel uses,
a real gain on a defocused photo (uniform and half-and-half), gradients, bad shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from unblur.metrics import psnr
from unblur.physics import Domain, conv2d, defocus_kernel, mixture_hqs, shrink_hyper_laplacian

F64 = torch.float64


def _photo(size=96, dtype=torch.float32):
    img = torch.from_numpy(data.astronaut()[60:60 + size, 150:150 + size]).permute(2, 0, 1)[None]
    return (img.to(dtype) / 255)


def _otf_np(k: np.ndarray, P: int, Q: int) -> np.ndarray:
    """Full-spectrum OTF of a centred kernel on a P x Q grid, by placing it with its centre at (0, 0)."""
    kh, kw = k.shape
    pad = np.zeros((P, Q))
    pad[:kh, :kw] = k
    return np.fft.fft2(np.roll(pad, (-(kh // 2), -(kw // 2)), (0, 1)))


def test_one_step_matches_the_numpy_closed_form():
    y = _photo(40, F64)[:, :1]
    k = defocus_kernel(2.5, 7, dtype=F64)
    lam, beta = 400.0, 8.0
    got = mixture_hqs(y, k[None], torch.ones(1, 1, 40, 40, dtype=F64), lam=lam, betas=(beta,))
    # reference: on the smooth periodic extension, shrink the gradients, then the quadratic closed form in NumPy
    dom = Domain((40, 40), (7, 7), "valid")
    ye = dom.extend(y)[0, 0]
    e = ye.numpy()
    gh, gv = np.roll(e, -1, 1) - e, np.roll(e, -1, 0) - e
    wh = shrink_hyper_laplacian(torch.from_numpy(gh), beta, 2 / 3).numpy()
    wv = shrink_hyper_laplacian(torch.from_numpy(gv), beta, 2 / 3).numpy()
    P, Q = e.shape
    K = _otf_np(k.numpy(), P, Q)
    Dh = np.exp(2j * np.pi * np.arange(Q) / Q)[None, :] - 1
    Dv = np.exp(2j * np.pi * np.arange(P) / P)[:, None] - 1
    r = beta / lam
    num = np.conj(K) * np.fft.fft2(e) + r * (np.conj(Dh) * np.fft.fft2(wh) + np.conj(Dv) * np.fft.fft2(wv))
    den = np.abs(K) ** 2 + r * (np.abs(Dh) ** 2 + np.abs(Dv) ** 2)
    ref = np.real(np.fft.ifft2(num / den))[dom.top:dom.top + 40, dom.left:dom.left + 40]
    np.testing.assert_allclose(got[0, 0].numpy(), ref, atol=1e-9)


def test_a_split_mix_of_one_kernel_equals_that_kernel_and_unused_kernels_change_nothing():
    y = _photo(48)
    k = defocus_kernel(3.0, 9)
    other = defocus_kernel(1.0, 9)
    betas = (1.0, 16.0, 256.0)
    one = mixture_hqs(y, k[None], torch.ones(1, 1, 48, 48), lam=3000.0, betas=betas)
    half = torch.full((1, 2, 48, 48), 0.5)
    split = mixture_hqs(y, torch.stack([k, k]), half, lam=3000.0, betas=betas)
    padded = torch.cat([torch.zeros(1, 1, 48, 48), torch.ones(1, 1, 48, 48)], 1)
    unused = mixture_hqs(y, torch.stack([other, k]), padded, lam=3000.0, betas=betas)
    torch.testing.assert_close(split, one, atol=1e-5, rtol=0)
    torch.testing.assert_close(unused, one, atol=0, rtol=0)


def _blurred(x, radius, size=17, sigma=0.01, seed=0):
    y = conv2d(x, defocus_kernel(radius, size), mode="valid")
    return (y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def test_it_deblurs_a_uniform_disk_and_each_half_of_a_two_radius_photo():
    x = _photo(144)
    sharp = x[..., 8:-8, 8:-8]
    betas = [4.0 ** t for t in range(7)]
    y = _blurred(x, 4.0)
    out = mixture_hqs(y, torch.stack([defocus_kernel(0.0, 17), defocus_kernel(4.0, 17)]),
                      torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 128, 128), lam=0.3 / 0.01 ** 2,
                      betas=betas)
    assert float(psnr(out.clamp(0, 1), sharp)) > float(psnr(y, sharp)) + 2.0
    # left half sharp (radius 0), right half disk 4: each half is restored by its own kernel
    y2 = torch.cat([_blurred(x, 0.0)[..., :64], y[..., 64:]], -1)
    mix = torch.zeros(1, 2, 128, 128)
    mix[:, 0, :, :64], mix[:, 1, :, 64:] = 1, 1
    out2 = mixture_hqs(y2, torch.stack([defocus_kernel(0.0, 17), defocus_kernel(4.0, 17)]), mix, lam=3000.0,
                       betas=betas)
    right = (..., slice(None), slice(80, None))  # away from the seam
    left = (..., slice(None), slice(None, 48))
    assert float(psnr(out2[right].clamp(0, 1), sharp[right])) > float(psnr(y2[right], sharp[right])) + 2.0
    assert float(psnr(out2[left].clamp(0, 1), sharp[left])) > 33.0  # the sharp half stays sharp (noise 0.01)


def test_gradients_reach_the_mix_and_the_schedule():
    y = _blurred(_photo(64), 3.0)
    logits = torch.zeros(1, 2, 48, 48, requires_grad=True)
    betas = torch.tensor([1.0, 8.0, 64.0], requires_grad=True)
    lam = torch.tensor(3000.0, requires_grad=True)
    out = mixture_hqs(y, torch.stack([defocus_kernel(2.0, 17), defocus_kernel(3.0, 17)]), logits.softmax(1),
                      lam=lam, betas=betas.unbind())
    (out - _photo(64)[..., 8:-8, 8:-8]).abs().mean().backward()
    for g in (logits.grad, betas.grad, lam.grad):
        assert torch.isfinite(g).all() and float(g.abs().sum()) > 0


@pytest.mark.parametrize("kernels, mix", [((2, 9, 9), (1, 3, 16, 16)), ((9, 9), (1, 1, 16, 16)),
                                          ((3, 1, 9, 9), (2, 1, 16, 16)), ((1, 9, 9), (1, 16, 16))])
def test_mismatched_shapes_are_refused(kernels, mix):
    with pytest.raises(ValueError, match="mixture_hqs"):
        mixture_hqs(torch.rand(1, 3, 16, 16), torch.rand(kernels), torch.rand(mix), lam=1.0, betas=(1.0,))


def test_no_splitting_step_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        mixture_hqs(torch.rand(1, 1, 16, 16), torch.rand(1, 3, 3), torch.ones(1, 1, 16, 16), lam=1.0, betas=())


def test_per_photo_kernels_equal_one_call_per_photo():
    y = torch.cat([_blurred(_photo(64), 2.0), _blurred(_photo(64), 3.5, seed=1)])
    ks = torch.stack([defocus_kernel(2.0, 9), defocus_kernel(3.5, 9)])[:, None]  # (B, J=1, 9, 9)
    mix = torch.ones(2, 1, 48, 48)
    both = mixture_hqs(y, ks, mix, lam=3000.0, betas=(1.0, 16.0))
    for i in range(2):
        one = mixture_hqs(y[i:i + 1], ks[i], mix[i:i + 1], lam=3000.0, betas=(1.0, 16.0))
        torch.testing.assert_close(both[i:i + 1], one, atol=1e-5, rtol=0)


def test_a_custom_shrinkage_replaces_the_hyper_laplacian_one():
    y = _blurred(_photo(64), 3.0)
    k, mix = defocus_kernel(3.0, 17)[None], torch.ones(1, 1, 48, 48)
    calls = []

    def hl(gh, gv, beta):
        calls.append(beta)
        return shrink_hyper_laplacian(gh, beta, 2 / 3), shrink_hyper_laplacian(gv, beta, 2 / 3)

    same = mixture_hqs(y, k, mix, lam=3000.0, betas=(1.0, 8.0), shrink=hl)
    torch.testing.assert_close(same, mixture_hqs(y, k, mix, lam=3000.0, betas=(1.0, 8.0)), atol=0, rtol=0)
    assert calls == [1.0, 8.0]
    quadratic = mixture_hqs(y, k, mix, lam=3000.0, betas=(1.0, 8.0), shrink=lambda gh, gv, b: (0 * gh, 0 * gv))
    assert float((quadratic - same).abs().max()) > 1e-3  # the w-step is really the one given


def test_with_cg_steps_one_kernel_is_the_classical_valid_domain_hqs():
    """cg_iters > 0 solves the `valid` observation model like classical hqs (unblur.classical.hqs, its own loop):
    one kernel everywhere gives the same image."""
    from unblur.classical.hqs import hqs

    y = _blurred(_photo(72), 3.0, size=9)
    k = defocus_kernel(3.0, 9)
    sigma = 0.01
    ours = mixture_hqs(y, k[None], torch.ones(1, 1, *y.shape[-2:]), lam=0.3 / sigma ** 2,
                       betas=[2.0 ** t for t in range(13)], cg_iters=8)
    theirs = hqs(y, k, prior="hl", sigma=sigma, cg_iters=8)
    torch.testing.assert_close(ours, theirs, atol=2e-4, rtol=0)
    closed = mixture_hqs(y, k[None], torch.ones(1, 1, *y.shape[-2:]), lam=0.3 / sigma ** 2,
                         betas=[2.0 ** t for t in range(13)])
    assert float((closed - theirs).abs().max()) > 1e-2  # the periodic extension is a different border model


def test_the_l0_refit_image_is_classical_hqs():
    """physics.natural_latent (the image of the L0 estimate's refits, for blind-l0 and GDUNet) is classical hqs with
    beta from 1 by 4 and 4 CG steps: blind-l0's refits kept their image when its own copy was removed."""
    from unblur.classical.hqs import hqs
    from unblur.physics.l0_kernel import natural_latent

    y = _blurred(_photo(72), 3.0, size=9)  # noise 0.01: the estimated sigma sets lam in both
    k = defocus_kernel(3.0, 9)
    torch.testing.assert_close(natural_latent(y, k[None, None]), hqs(y, k, prior="hl", beta_rate=4.0, cg_iters=4),
                               atol=2e-4, rtol=0)
