"""conv2d / conv2d_adjoint / pad / psf2otf against SciPy and NumPy references, plus exact adjointness."""
import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from unblur.physics import MODES, conv2d, conv2d_adjoint, otf2psf, pad, pad_adjoint, psf2otf, rfft2, irfft2

KERNEL_SHAPES = [(5, 5), (4, 6), (3, 2), (1, 1)]
METHODS = ["direct", "fft"]
# unblur padding mode -> scipy.ndimage mode with the same extension rule
NDIMAGE_MODE = {"circular": "wrap", "reflect": "mirror", "replicate": "nearest", "zeros": "constant"}
NUMPY_MODE = {"circular": "wrap", "reflect": "reflect", "replicate": "edge", "zeros": "constant"}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _reference(x: np.ndarray, k: np.ndarray, mode: str) -> np.ndarray:
    """Independent reference: SciPy convolution with the unblur centre (kh//2, kw//2)."""
    kh, kw = k.shape
    if mode in ("valid", "full"):
        return signal.convolve2d(x, k, mode=mode)
    # pad the kernel to odd sizes, keeping its centre, so ndimage's centre (size//2) is the same pixel
    K = np.zeros((2 * (kh // 2) + 1, 2 * (kw // 2) + 1))
    K[: kh, : kw] = k
    return ndimage.convolve(x, K, mode=NDIMAGE_MODE[mode], cval=0.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_conv2d_matches_scipy(mode, kshape, method):
    rng = _rng(1)
    x = rng.random((13, 17))
    k = rng.random(kshape)
    got = conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k), mode=mode, method=method)[0, 0].numpy()
    ref = _reference(x, k, mode)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_fft_and_direct_agree_in_float32(mode):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 20, 24, generator=g)
    k = torch.rand(2, 1, 7, 6, generator=g)
    a = conv2d(x, k, mode, method="fft")
    b = conv2d(x, k, mode, method="direct")
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-5)
    ya = torch.rand(a.shape, generator=g)
    assert torch.allclose(conv2d_adjoint(ya, k, mode, "fft"), conv2d_adjoint(ya, k, mode, "direct"), atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES + [(9, 9)])
@pytest.mark.parametrize("method", METHODS + ["auto"])
def test_adjointness_float64(mode, kshape, method):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 2, 11, 14, generator=g, dtype=torch.float64)
    k = torch.rand(2, 1, *kshape, generator=g, dtype=torch.float64)
    Ax = conv2d(x, k, mode, method)
    y = torch.rand(Ax.shape, generator=g, dtype=torch.float64)
    ATy = conv2d_adjoint(y, k, mode, method)
    assert ATy.shape == x.shape
    lhs, rhs = (Ax * y).sum(), (x * ATy).sum()
    assert torch.isclose(lhs, rhs, rtol=1e-12, atol=0), (lhs.item(), rhs.item())


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate"])
def test_kernel_larger_than_image_same_size_modes(mode):
    """Same-size modes accept kernels larger than the image (the extension repeats as needed)."""
    rng = _rng(3)
    x, k = rng.random((4, 5)), rng.random((9, 11))
    top, left = 9 - 1 - 9 // 2, 11 - 1 - 11 // 2
    xp = np.pad(x, ((top, 9 // 2), (left, 11 // 2)), mode=NUMPY_MODE[mode])
    ref = signal.convolve2d(xp, k, mode="valid")
    got = conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k), mode)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-10)
    xt = torch.from_numpy(x)[None, None]
    y = torch.from_numpy(rng.random((1, 1, 4, 5)))
    assert torch.isclose((conv2d(xt, torch.from_numpy(k), mode) * y).sum(),
                         (xt * conv2d_adjoint(y, torch.from_numpy(k), mode)).sum(), rtol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate", "zeros"])
def test_pad_matches_numpy_and_adjoint(mode):
    rng = _rng(4)
    x = rng.random((3, 4))
    pads = (7, 2, 1, 9)  # wider than the image: reflection must repeat
    got = pad(torch.from_numpy(x), pads, mode).numpy()
    np.testing.assert_array_equal(got, np.pad(x, ((pads[0], pads[1]), (pads[2], pads[3])), mode=NUMPY_MODE[mode]))
    y = torch.from_numpy(rng.random(got.shape))
    xt = torch.from_numpy(x)
    assert torch.isclose((pad(xt, pads, mode) * y).sum(), (xt * pad_adjoint(y, pads, mode)).sum(), rtol=1e-12)


def test_batch_and_channel_broadcasting():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    for kshape in [(2, 1, 5, 5), (1, 3, 5, 5), (2, 3, 5, 5), (1, 1, 5, 5), (5, 5)]:
        k = torch.rand(kshape, generator=g, dtype=torch.float64)
        k4 = k.reshape(*([1, 1] if k.ndim == 2 else []), *k.shape).expand(2, 3, 5, 5)
        out = conv2d(x, k, "reflect")
        for b in range(2):
            for c in range(3):
                ref = conv2d(x[b:b + 1, c:c + 1], k4[b, c], "reflect")
                assert torch.allclose(out[b:b + 1, c:c + 1], ref, atol=1e-12)
    with pytest.raises(ValueError, match="broadcast"):
        conv2d(x, torch.rand(3, 1, 5, 5, dtype=torch.float64), "valid")


@pytest.mark.parametrize("psf_shape", [(5, 5), (4, 7), (1, 1)])
@pytest.mark.parametrize("real", [True, False])
def test_psf2otf_roundtrip_and_circular_conv(psf_shape, real):
    g = torch.Generator().manual_seed(6)
    psf = torch.rand(2, 1, *psf_shape, generator=g, dtype=torch.float64)
    shape = (16, 15)
    otf = psf2otf(psf, shape, real=real)
    assert otf.shape[-2:] == ((16, 8) if real else (16, 15))
    back = otf2psf(otf, shape, psf_shape, real=real)
    assert torch.allclose(back, psf, atol=1e-12)
    # multiplying spectra is circular convolution with the unblur centre
    x = torch.rand(2, 1, *shape, generator=g, dtype=torch.float64)
    via_otf = irfft2(rfft2(x) * psf2otf(psf, shape), s=shape)
    assert torch.allclose(via_otf, conv2d(x, psf, "circular", method="direct"), atol=1e-12)


@pytest.mark.parametrize("psf_shape, shape", [((31, 31), (40, 36)), ((4, 7), (9, 10)), ((5, 3), (5, 3)), ((2, 6), (7, 8))])
def test_psf2otf_is_the_fft_of_the_rolled_padded_psf(psf_shape, shape):
    """The row-pruned transforms (only the kernel's rows take the row FFT) against the definition, batch dims included."""
    g = torch.Generator().manual_seed(8)
    psf = torch.rand(2, 3, *psf_shape, generator=g, dtype=torch.float64)
    padded = torch.zeros(2, 3, *shape, dtype=torch.float64)
    padded[..., :psf_shape[0], :psf_shape[1]] = psf
    padded = torch.roll(padded, shifts=(-(psf_shape[0] // 2), -(psf_shape[1] // 2)), dims=(-2, -1))
    ref = torch.from_numpy(np.fft.rfft2(padded.numpy()))
    torch.testing.assert_close(psf2otf(psf, shape), ref, atol=1e-12, rtol=0)
    spectrum = torch.from_numpy(np.fft.rfft2(np.random.default_rng(0).standard_normal((2, 3, *shape))))
    crop = np.roll(np.fft.irfft2(spectrum.numpy(), s=shape), (psf_shape[0] // 2, psf_shape[1] // 2), axis=(-2, -1))
    torch.testing.assert_close(otf2psf(spectrum, shape, psf_shape), torch.from_numpy(crop[..., :psf_shape[0], :psf_shape[1]]),
                               atol=1e-12, rtol=0)


def test_psf2otf_of_centred_delta_is_one():
    d = torch.zeros(5, 4)
    d[2, 2] = 1
    otf = psf2otf(d, (8, 8))
    assert torch.allclose(otf, torch.ones_like(otf))


def test_fft_stays_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 3, 24, 20, generator=g)
    k = torch.rand(1, 1, 11, 11, generator=g)
    k = k / k.sum()
    ref = conv2d(x.double(), k.double(), "circular", method="fft")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        X = rfft2(x.bfloat16())
        otf = psf2otf(k, (24, 20))
        out = conv2d(x, k, "circular", method="fft")
        out_valid = conv2d(x, k, "valid", method="fft")
    assert X.dtype == torch.complex64 and otf.dtype == torch.complex64
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5)  # a bf16 FFT would be off by ~1e-2
    assert torch.allclose(out_valid.double(), conv2d(x.double(), k.double(), "valid"), atol=1e-5)


def test_clear_errors():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"kernel must have shape"):
        conv2d(x, torch.rand(1, 3, 3))
    with pytest.raises(ValueError, match=r"at least as large as the kernel.*8x8.*9x9"):
        conv2d(x, torch.rand(9, 9), "valid")
    with pytest.raises(ValueError, match=r"mode must be one of"):
        conv2d(x, torch.rand(3, 3), "same")
    with pytest.raises(ValueError, match=r"method must be"):
        conv2d(x, torch.rand(3, 3), "valid", method="winograd")
    with pytest.raises(ValueError, match=r"image must have shape"):
        conv2d(torch.rand(8, 8), torch.rand(3, 3))
    with pytest.raises(ValueError, match=r"larger than the image"):
        psf2otf(torch.rand(9, 9), (8, 8))
