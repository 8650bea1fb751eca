"""unblur.metrics against scikit-image / SciPy references, closed forms and properties."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from unblur.errors import InputError
from unblur.metrics import align_to_reference, error_ratio, gaussian_window, kernel_psnr, mae, psnr, ssim


def _noisy(a: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a + sigma * rng.standard_normal(a.shape), 0, 1)


@pytest.fixture(scope="module")
def gray_pair():
    x = skdata.camera()[200:264, 180:260].astype(np.float64) / 255
    return x, _noisy(x, 0.05, 0)


@pytest.fixture(scope="module")
def rgb_pair():
    x = skdata.astronaut()[100:160, 150:222].astype(np.float64) / 255
    return x, _noisy(x, 0.08, 1)


def _t(a: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) numpy -> (1, C, H, W) tensor."""
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


# ------------------------------------------------------------------------------------------- PSNR / MAE

def test_psnr_closed_form_and_skimage(rgb_pair):
    x, y = rgb_pair
    expected = 10 * np.log10(1.0 / np.mean((x - y) ** 2))
    got = psnr(_t(x), _t(y))
    assert got.shape == (1,)
    assert float(got[0]) == pytest.approx(expected, abs=1e-10)
    assert float(got[0]) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-10)
    # uint8 scale
    xs, ys = np.round(x * 255), np.round(y * 255)
    got255 = psnr(_t(xs), _t(ys), data_range=255)
    assert float(got255[0]) == pytest.approx(peak_signal_noise_ratio(xs, ys, data_range=255), abs=1e-10)
    # border: same as cropping by hand
    b = 4
    ref = peak_signal_noise_ratio(x[b:-b, b:-b], y[b:-b, b:-b], data_range=1.0)
    assert float(psnr(_t(x), _t(y), border=b)[0]) == pytest.approx(ref, abs=1e-10)


def test_psnr_batch_shapes_and_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 10, 12, generator=g)
    y = torch.rand(3, 2, 10, 12, generator=g)
    per = psnr(x, y)
    assert per.shape == (3,)
    for i in range(3):
        assert float(psnr(x[i], y[i])[0]) == pytest.approx(float(per[i]), abs=1e-9)
    assert torch.isinf(psnr(x, x)).all()
    with pytest.raises(InputError):
        psnr(x, y[:, :1])
    with pytest.raises(InputError):
        psnr(x, y, border=5)


def test_mae_closed_form(rgb_pair):
    x, y = rgb_pair
    assert float(mae(_t(x), _t(y))[0]) == pytest.approx(np.abs(x - y).mean(), abs=1e-12)
    assert float(mae(_t(x), _t(y), border=3)[0]) == pytest.approx(np.abs(x - y)[3:-3, 3:-3].mean(), abs=1e-12)


# ------------------------------------------------------------------------------------------- SSIM

def _sk_ssim(x, y, data_range=1.0, channel_axis=None):
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=channel_axis)


def test_gaussian_window():
    w = gaussian_window(11, 1.5)
    assert w.shape == (11,) and float(w.sum()) == pytest.approx(1.0)
    assert torch.allclose(w, w.flip(0))
    t = np.arange(-5, 6)
    ref = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    np.testing.assert_allclose(w.numpy(), ref / ref.sum(), rtol=1e-12)


def test_ssim_gaussian_matches_skimage_gray(gray_pair):
    x, y = gray_pair
    got = float(ssim(_t(x), _t(y))[0])
    assert got == pytest.approx(_sk_ssim(x, y), abs=1e-4)
    assert got == pytest.approx(_sk_ssim(x, y), abs=1e-9)  # same algorithm, float64 both sides
    # (H, W) and (C, H, W) inputs, border
    assert float(ssim(torch.from_numpy(x), torch.from_numpy(y))[0]) == pytest.approx(got, abs=1e-12)
    b = 3
    assert float(ssim(_t(x), _t(y), border=b)[0]) == pytest.approx(_sk_ssim(x[b:-b, b:-b], y[b:-b, b:-b]), abs=1e-9)


def test_ssim_gaussian_matches_skimage_rgb(rgb_pair):
    x, y = rgb_pair
    ref = _sk_ssim(x, y, channel_axis=-1)
    assert float(ssim(_t(x), _t(y))[0]) == pytest.approx(ref, abs=1e-4)
    # uint8-valued images with data_range 255, float32 inputs
    xs, ys = np.round(x * 255), np.round(y * 255)
    ref255 = _sk_ssim(xs, ys, data_range=255, channel_axis=-1)
    got = ssim(_t(xs).float(), _t(ys).float(), data_range=255)
    assert float(got[0]) == pytest.approx(ref255, abs=1e-4)
    # scale invariance
    assert float(ssim(_t(xs / 255), _t(ys / 255))[0]) == pytest.approx(float(got[0]), abs=1e-6)


def test_ssim_identity_and_batch(rgb_pair):
    x, y = rgb_pair
    X = torch.cat([_t(x), _t(y)])
    for variant in ("gaussian", "matlab3d"):
        s = ssim(X, X, variant=variant)
        assert s.shape == (2,)
        torch.testing.assert_close(s, torch.ones(2, dtype=s.dtype), atol=1e-12, rtol=0)
        both = ssim(X, X.flip(0), variant=variant)
        assert float(both[0]) == pytest.approx(float(ssim(_t(x), _t(y), variant=variant)[0]), abs=1e-12)
    with pytest.raises(InputError):
        ssim(X, X, variant="nope")
    with pytest.raises(InputError):
        ssim(X[..., :8, :8], X[..., :8, :8])  # smaller than the window


def _matlab3d_reference(x: np.ndarray, y: np.ndarray, L: float = 1.0) -> float:
    """SSIM of H x W x C volumes: 3-D Gaussian (sigma 1.5, 11 taps per axis), replicate edges, mean of all voxels."""
    def f(v):
        return ndimage.gaussian_filter(v, sigma=1.5, mode="nearest", radius=5)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(m.mean())


def test_ssim_matlab3d_matches_3d_gaussian_reference(rgb_pair, gray_pair):
    x, y = rgb_pair
    got = float(ssim(_t(x), _t(y), variant="matlab3d")[0])
    assert got == pytest.approx(_matlab3d_reference(x, y), abs=1e-9)
    # gray: 2-D Gaussian with replicate padding, all pixels
    gx, gy = gray_pair
    assert float(ssim(_t(gx), _t(gy), variant="matlab3d")[0]) == pytest.approx(_matlab3d_reference(gx, gy), abs=1e-9)
    # tiny images work (replicate padding)
    assert float(ssim(_t(x[:6, :5]), _t(y[:6, :5]), variant="matlab3d")[0]) == pytest.approx(
        _matlab3d_reference(x[:6, :5], y[:6, :5]), abs=1e-9)


def test_ssim_matlab3d_properties(rgb_pair):
    x, y = rgb_pair
    X, Y = _t(x), _t(y)
    a = float(ssim(X, Y, variant="matlab3d")[0])
    assert a == pytest.approx(float(ssim(Y, X, variant="matlab3d")[0]), abs=1e-12)
    assert -1 <= a <= 1
    assert abs(a - float(ssim(X, Y)[0])) > 1e-3  # channels mixed, borders counted: not the per-channel value
    # anti-correlated images give negative values, still within [-1, 1]
    n = float(ssim(X, 1 - X, variant="matlab3d")[0])
    assert -1 <= n < 0


# ------------------------------------------------------------------------------------------- kernels

def _rand_kernel(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(n, n, generator=g, dtype=torch.float64) ** 4
    return k / k.sum()


def _shift(k: torch.Tensor, dy: int, dx: int, margin: int) -> torch.Tensor:
    """Kernel on a canvas larger by ``margin`` per side, moved by (dy, dx) without wrap-around."""
    out = torch.nn.functional.pad(k, (margin,) * 4)
    return torch.roll(out, (dy, dx), (0, 1))


def test_kernel_psnr_closed_form():
    t = _rand_kernel(9, 0)
    e = _rand_kernel(7, 1)
    pe = np.pad(e.numpy(), 1)  # common size 9x9, centres aligned
    te = t.numpy()
    expected = 10 * np.log10(te.max() ** 2 / np.mean((pe - te) ** 2))  # canvas = true kernel size here
    # a larger estimate: the error counts all its mass, the MSE is per pixel of the true kernel
    big = _rand_kernel(13, 5)
    tb = np.pad(te, 2)
    expected_big = 10 * np.log10(te.max() ** 2 / (((big.numpy() - tb) ** 2).sum() / te.size))
    assert kernel_psnr(big, t) == pytest.approx(expected_big, abs=1e-9)
    assert kernel_psnr(e, t) == pytest.approx(expected, abs=1e-9)
    assert kernel_psnr(e, t, max_shift=0) == pytest.approx(expected, abs=1e-9)
    assert kernel_psnr(t, t) == math.inf
    # scale of the estimate does not matter (normalised)
    assert kernel_psnr(3 * e, t) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, -3), (-4, 4), (4, 1)])
def test_kernel_psnr_shift_invariance(dy, dx):
    t = _rand_kernel(11, 2)
    g = torch.Generator().manual_seed(3)
    e = (t + 0.002 * torch.rand(11, 11, generator=g, dtype=torch.float64))
    base = kernel_psnr(e, t, max_shift=4)
    assert kernel_psnr(e, t) == pytest.approx(base)  # the unshifted estimate is best at shift 0
    moved = _shift(e, dy, dx, 4)
    value, shift = kernel_psnr(moved, t, max_shift=4, return_shift=True)
    assert value == pytest.approx(base, abs=1e-9)
    assert shift == (-dy, -dx)
    assert kernel_psnr(_shift(t, dy, dx, 4), t, max_shift=4) > 250  # exact up to float rounding
    if (dy, dx) != (0, 0):
        assert kernel_psnr(moved, t, max_shift=0) < base - 1


def _smooth_image(h, w, seed, c=1):
    rng = np.random.default_rng(seed)
    return np.stack([ndimage.gaussian_filter(rng.random((h, w)), 2.0) for _ in range(c)])


def test_align_to_reference_integer_shift():
    g = _smooth_image(40, 44, 0, c=2)
    est = np.roll(g, (2, -3), (1, 2))
    aligned, shift = align_to_reference(torch.from_numpy(est), torch.from_numpy(g), max_shift=4, step=1.0)
    assert shift == (2, -3)
    np.testing.assert_allclose(aligned.numpy(), g[:, 4:-4, 4:-4], atol=1e-12)


def test_align_to_reference_matches_brute_force():
    g = _smooth_image(30, 34, 1)[0]
    yy, xx = np.mgrid[0:30, 0:34].astype(float)
    est = ndimage.map_coordinates(g, [yy - 0.75, xx + 1.25], order=1, mode="nearest")
    est = est + 0.01 * np.random.default_rng(2).standard_normal(est.shape)
    crop, s, step = 3, 2.0, 0.25
    h, w = 30 - 2 * crop, 34 - 2 * crop
    ii, jj = np.mgrid[0:h, 0:w].astype(float)
    best = None
    for dy in np.arange(-s, s + 1e-9, step):
        for dx in np.arange(-s, s + 1e-9, step):
            cand = ndimage.map_coordinates(est, [crop + dy + ii, crop + dx + jj], order=1)
            ssd = ((cand - g[crop:-crop, crop:-crop]) ** 2).sum()
            if best is None or ssd < best[0]:
                best = (ssd, dy, dx, cand)
    aligned, shift = align_to_reference(torch.from_numpy(est), torch.from_numpy(g), max_shift=s, step=step, crop=crop)
    assert shift == pytest.approx((best[1], best[2]))
    assert shift == pytest.approx((0.75, -1.25), abs=0.26)
    np.testing.assert_allclose(aligned[0].numpy(), best[3], atol=1e-10)


def test_error_ratio():
    g = _smooth_image(48, 48, 3)[0]
    rng = np.random.default_rng(4)
    n = rng.standard_normal(g.shape)
    gt = torch.from_numpy(g)
    true_result = torch.from_numpy(g + 0.01 * n)
    assert error_ratio(true_result, true_result, gt, crop=6, max_shift=3) == 1.0
    assert error_ratio(gt, gt, gt, crop=6, max_shift=3) == 1.0
    worse = torch.from_numpy(g + 0.02 * n)
    r2 = error_ratio(worse, true_result, gt, crop=6, max_shift=0)
    assert r2 == pytest.approx(4.0, rel=1e-9)  # squared errors: (2 sigma)^2 / sigma^2
    assert error_ratio(worse, true_result, gt, crop=6, max_shift=0, squared=False) == pytest.approx(2.0, rel=1e-9)
    # a shifted estimate is measured after alignment: same ratio as the unshifted one
    shifted = torch.from_numpy(np.roll(g + 0.02 * n, (1, -2), (0, 1)))
    a = error_ratio(shifted, true_result, gt, crop=6, max_shift=3, step=1.0)
    b = error_ratio(worse, true_result, gt, crop=6, max_shift=3, step=1.0)
    assert a == pytest.approx(b, rel=1e-9)
    with pytest.raises(InputError):
        align_to_reference(gt, gt, max_shift=5, crop=2)


def test_psnr_up_to_shift_finds_the_translation():
    from unblur.metrics import psnr, psnr_up_to_shift

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 40, 44, generator=g)
    moved = torch.roll(ref, shifts=(2, -3), dims=(-2, -1)) + 0.01 * torch.randn(2, 3, 40, 44, generator=g)
    best = psnr_up_to_shift(moved, ref, max_shift=4)
    assert (best > 38).all()  # noise of 0.01 -> ~40 dB once aligned
    assert (psnr(moved, ref) < 15).all()  # unaligned it is far worse
    assert (psnr_up_to_shift(moved, ref, max_shift=1) < 15).all()  # outside the search range: not found


def test_best_shift_is_the_translation_and_moves_the_reference_onto_the_estimate():
    from unblur.metrics import best_shift, moved_onto, psnr, psnr_up_to_shift

    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 40, 44, generator=g)
    moved = torch.stack([torch.roll(ref[0], (2, -3), (-2, -1)), torch.roll(ref[1], (-1, 4), (-2, -1))])
    moved = moved + 0.01 * torch.randn(2, 3, 40, 44, generator=g)
    s = best_shift(moved, ref, max_shift=4)
    assert s.tolist() == [[2, -3], [-1, 4]]
    aligned = torch.stack([r.roll(tuple(d.tolist()), (-2, -1)) for r, d in zip(ref, s)])
    inner = (..., slice(4, -4), slice(4, -4))
    assert (psnr(moved[inner], aligned[inner]) > 38).all()  # the noise of 0.01 only, as psnr_up_to_shift finds
    assert (psnr_up_to_shift(moved, ref, max_shift=4) > 38).all()
    torch.testing.assert_close(moved_onto(ref, moved, max_shift=4), aligned)  # the same move, in one call


def test_ssim_skimage_variant_is_scikit_image_with_its_defaults(gray_pair, rgb_pair):
    """The DPDD protocol's SSIM: scikit-image's defaults (7x7 uniform window, sample covariances)."""
    x, y = gray_pair
    assert float(ssim(_t(x), _t(y), variant="skimage")[0]) == pytest.approx(
        structural_similarity(x, y, data_range=1.0), abs=1e-9)
    x, y = rgb_pair
    got = float(ssim(_t(x), _t(y), variant="skimage")[0])
    assert got == pytest.approx(structural_similarity(x, y, data_range=1.0, channel_axis=-1), abs=1e-9)
    assert abs(got - float(ssim(_t(x), _t(y))[0])) > 1e-3  # a different number from the Gaussian variant
