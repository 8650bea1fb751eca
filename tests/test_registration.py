"""Sub-pixel translation and the registration of blind results to their kernel's centroid (physics.registration)."""
import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.physics import (MotionBlurGenerator, conv2d, kernel_centroid, project_kernel, register_to_kernel,
                            translate)


def _photo(size: int) -> torch.Tensor:
    skimage = pytest.importorskip("skimage")
    from skimage import data, transform

    img = transform.resize(skimage.data.camera(), (size, size), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img)[None, None]


def _waves(h: int, w: int, dy: float = 0.0, dx: float = 0.0) -> torch.Tensor:
    """A smooth test image (a few low-frequency waves), sampled on the grid moved by (dy, dx): its exact translate."""
    yy = torch.arange(h, dtype=torch.float64)[:, None] - dy
    xx = torch.arange(w, dtype=torch.float64)[None] - dx
    img = 0.5 + 0.2 * torch.sin(0.21 * yy + 0.13 * xx + 0.4) + 0.15 * torch.cos(0.09 * yy - 0.27 * xx)
    return img[None, None]


@pytest.mark.parametrize("hw", [(40, 37), (41, 36), (2, 2), (3, 1), (1, 5)])
def test_whole_pixel_shifts_are_exact(hw):
    x = torch.rand(2, 3, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    moved = translate(x, (1.0, -1.0))
    torch.testing.assert_close(moved[..., 1:, :-1], x[..., :-1, 1:], rtol=0, atol=1e-12)


def test_per_image_shifts_and_identity():
    x = torch.rand(2, 1, 30, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    moved = translate(x, torch.tensor([[0.0, 2.0], [-3.0, 0.0]]))
    torch.testing.assert_close(moved[0, :, :, 2:], x[0, :, :, :-2], rtol=0, atol=1e-12)
    torch.testing.assert_close(moved[1, :, :-3], x[1, :, 3:], rtol=0, atol=1e-12)
    assert translate(x, (0.0, 0.0)) is x


def test_sub_pixel_shift_matches_the_moved_function():
    # independent reference: the smooth image evaluated on the moved grid; the Fourier shift of the periodic extension
    # matches it inside the frame (the mirror's kink at the border costs a little near the edge)
    for dy, dx in ((0.3, -0.45), (1.7, 0.5), (-0.25, 2.25)):
        err = (translate(_waves(64, 57), (dy, dx)) - _waves(64, 57, dy, dx)).abs()
        assert err[..., 4:-4, 4:-4].max() < 5e-3, (dy, dx)
        assert err[..., 16:-16, 16:-16].max() < 1e-3, (dy, dx)


def test_sub_pixel_round_trip_and_float32():
    x = _waves(50, 61)
    back = translate(translate(x, (0.4, -0.35)), (-0.4, 0.35))
    assert (back - x)[..., 16:-16, 16:-16].abs().max() < 3e-3
    x32 = x.float()
    y32 = translate(x32, (0.4, -0.35))
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), translate(x, (0.4, -0.35)), rtol=0, atol=1e-5)


def test_translate_is_differentiable_in_the_image():
    x = _waves(12, 11).requires_grad_()
    torch.autograd.gradcheck(lambda t: translate(t, (0.3, -0.6), pad=4), (x,), eps=1e-6, atol=1e-6)


def test_bad_shifts_are_input_errors():
    x = torch.rand(2, 1, 8, 8)
    for bad in ((1.0,), torch.zeros(3, 2), (float("nan"), 0.0)):
        with pytest.raises(InputError, match="shift"):
            translate(x, bad)
    with pytest.raises(InputError, match="B, C, H, W"):
        translate(torch.rand(8, 8), (0.5, 0.5))


def test_kernel_centroid_against_numpy():
    rng = np.random.default_rng(3)
    k = rng.random((2, 1, 7, 9)) - 0.2  # negative taps do not count
    p = np.clip(k, 0, None)[:, 0]
    yy, xx = np.mgrid[0:7, 0:9]
    ref = np.stack([(p * yy).sum((1, 2)) / p.sum((1, 2)) - 3, (p * xx).sum((1, 2)) / p.sum((1, 2)) - 4], 1)
    np.testing.assert_allclose(kernel_centroid(torch.from_numpy(k)).numpy(), ref, rtol=0, atol=1e-12)
    assert kernel_centroid(torch.zeros(5, 5)).tolist() == [[0.0, 0.0]]  # nothing positive: not moved
    # what whole-pixel centring leaves: at most half a pixel per axis
    centred = project_kernel(torch.rand(6, 1, 11, 11, generator=torch.Generator().manual_seed(0)) ** 8, center=True)
    assert kernel_centroid(centred).abs().max() <= 0.5 + 1e-6


def test_registration_puts_the_result_where_the_centred_kernel_would():
    # the reason for it: our kernels (and the generators') have their centroid on the centre pixel, an estimate only to
    # the nearest pixel. An estimate half a pixel off (the true shake averaged with itself moved by one pixel) puts the
    # deconvolved image half a pixel off: 24.6 dB against the truth; registered to its centroid, 31.1 (39.2 with the
    # true kernel)
    from unblur.classical import deblur

    sharp = _photo(142)
    k = MotionBlurGenerator(15)(1, generator=torch.Generator().manual_seed(4))
    assert kernel_centroid(k).abs().max() < 1e-4  # the generator's convention
    y = conv2d(sharp, k, "valid") + 0.002 * torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    ref = sharp[..., 7:-7, 7:-7]

    def psnr(x):
        return float(-10 * torch.log10(((x - ref)[..., 8:-8, 8:-8] ** 2).mean()))

    estimate = 0.5 * (k + k.roll(1, -1))
    torch.testing.assert_close(kernel_centroid(estimate), torch.tensor([[0.0, 0.5]]), rtol=0, atol=1e-5)
    plain = psnr(deblur(y, estimate, method="hqs-hl").image)
    registered = psnr(deblur(register_to_kernel(y, estimate), estimate, method="hqs-hl").image)
    assert registered > plain + 4, (plain, registered)
    delta = torch.zeros(1, 1, 3, 3)
    delta[..., 1, 1] = 1
    assert register_to_kernel(y, delta) is y  # a kernel centred exactly changes nothing


def test_blind_l0_registers_and_can_be_told_not_to():
    # a small shake the estimate finds with its centroid a third of a pixel off: registered, 31.4 dB against the
    # truth; as estimated, 27.9
    from unblur.classical import deblur

    sharp = _photo(96 + 8)
    k = MotionBlurGenerator(9)(1, generator=torch.Generator().manual_seed(1))
    y = conv2d(sharp, k, "valid")
    on = deblur(y, method="blind-l0", kernel_size=9)
    off = deblur(y, method="blind-l0", kernel_size=9, register=False)
    assert torch.equal(on.kernel, off.kernel)
    assert kernel_centroid(on.kernel).abs().max() > 0.2
    ref = sharp[..., 4:-4, 4:-4]

    def psnr(x):
        return float(-10 * torch.log10(((x - ref)[..., 8:-8, 8:-8] ** 2).mean()))

    assert psnr(on.image) > psnr(off.image) + 2


@pytest.mark.parametrize("name", ["gdunet-tiny", "upadnet-tiny"])
def test_kernel_networks_register_their_outputs(name):
    from unblur.models import create

    k = MotionBlurGenerator(31)(1, generator=torch.Generator().manual_seed(2))
    y = conv2d(_photo(64 + 30).repeat(1, 3, 1, 1), k, "valid")
    torch.manual_seed(0)
    on = create(name).eval()
    off = create(name, register=False).eval()
    off.load_state_dict(on.state_dict())
    with torch.no_grad():
        a, b = on.forward_train(y), off.forward_train(y)
    for k1, k2 in zip(a["kernels"], b["kernels"]):  # the stages work on the unmoved images
        assert torch.equal(k1, k2)
    k = a["kernels"][-1]
    assert kernel_centroid(k).abs().max() > 0.05  # the case registers something
    for (u, _), (v, _), k in zip(a["outputs"][:-1], b["outputs"][:-1], a["kernels"]):  # earlier stages: moved after
        torch.testing.assert_close(u, register_to_kernel(v, k), rtol=0, atol=1e-6)
    # the last stage deconvolved the registered photo instead (exactly: tests/test_gdunet.py, closed gates): near its
    # unregistered result moved (the splitting's shrinkage is not shift-invariant to the bit), not the same
    last, moved = a["outputs"][-1][0], register_to_kernel(b["outputs"][-1][0], k)
    assert (last - moved).abs().max() > 1e-4
    assert float(-10 * torch.log10((last - moved)[..., 8:-8, 8:-8].square().mean())) > 20


def test_registration_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = _waves(40, 33).float()
    torch.testing.assert_close(translate(x.cuda(), (0.3, -1.2)).cpu(), translate(x, (0.3, -1.2)), rtol=0, atol=1e-5)


def test_half_pixel_phase_is_consistent():
    # a shift by exactly half a pixel of a constant image is the constant (no Nyquist bin: the padded size is odd)
    x = torch.full((1, 1, 10, 12), 0.7, dtype=torch.float64)
    torch.testing.assert_close(translate(x, (0.5, -0.5)), x, rtol=0, atol=1e-12)
