"""Contract tests over every kernel generator, operator, noise model, colour/degradation step and the pipeline."""
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unblur.errors import ConfigError, InputError
from unblur.physics import (
    MODES,
    Blur,
    DefocusBlurGenerator,
    DegradationPipeline,
    FileKernels,
    GaussianBlurGenerator,
    GaussianNoise,
    MixedBlurGenerator,
    MotionBlurGenerator,
    PoissonGaussianNoise,
    center_kernel,
    clip,
    conv2d,
    crop_valid,
    defocus_kernel,
    gaussian_kernel,
    get_kernel_generator,
    jpeg,
    linear_to_srgb,
    motion_kernel,
    normalize_kernel,
    pad_kernel,
    saturate,
    srgb_to_linear,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _file_kernels():
    g = torch.Generator().manual_seed(123)
    ks = [torch.rand(5, 7, generator=g), torch.rand(9, 9, generator=g) ** 4, torch.rand(4, 4, generator=g)]
    return FileKernels(ks, augment=True)


GENERATORS = {
    "motion": lambda: MotionBlurGenerator(15),
    "defocus": lambda: DefocusBlurGenerator(15, radius_range=(1.0, 6.0)),
    "gaussian": lambda: GaussianBlurGenerator(15, sigma_range=(0.5, 2.5)),
    "mixed": lambda: get_kernel_generator("mixed", 15),
    "file": _file_kernels,
}


def _seed(s):
    return torch.Generator().manual_seed(s)


def _centroid(k):
    kh, kw = k.shape[-2:]
    k = k.double()
    cy = (k.sum(-1) * torch.arange(kh, dtype=torch.float64)).sum(-1) / k.sum((-2, -1))
    cx = (k.sum(-2) * torch.arange(kw, dtype=torch.float64)).sum(-1) / k.sum((-2, -1))
    return cy, cx


# ---------------------------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_shape_normalisation(name):
    gen = GENERATORS[name]()
    k = gen(5, generator=_seed(0), dtype=torch.float64)
    size = gen.kernel_size
    assert k.shape == (5, 1, size, size) and size % 2 == 1
    assert k.dtype == torch.float64
    assert bool((k >= 0).all())
    assert torch.allclose(k.sum((-2, -1)), torch.ones(5, 1, dtype=torch.float64), atol=1e-12)
    assert gen(0, generator=_seed(0)).shape == (0, 1, size, size)
    assert gen(generator=_seed(0)).shape == (1, 1, size, size)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("device", DEVICES)
def test_generator_device_dtype_and_seed(name, device):
    gen = GENERATORS[name]()
    a = gen(4, generator=_seed(7), device=device, dtype=torch.float32)
    assert a.device.type == device and a.dtype == torch.float32
    b = gen(4, generator=_seed(7), device=device, dtype=torch.float32)
    assert torch.equal(a, b)
    c = gen(4, generator=_seed(8), device=device)
    assert not torch.equal(a, c)
    # same seed -> same kernels whatever the device / dtype asked for
    d = gen(4, generator=_seed(7), dtype=torch.float64)
    assert torch.allclose(a.cpu().double(), d, atol=1e-7)
    assert torch.allclose(a.sum((-2, -1)).cpu(), torch.ones(4, 1), atol=1e-5)


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_leaves_global_rng_alone(name):
    gen = GENERATORS[name]()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    gen(3, generator=_seed(1))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", ["motion", "defocus", "gaussian", "mixed"])
def test_generated_kernels_are_centred(name):
    k = GENERATORS[name]()(6, generator=_seed(3), dtype=torch.float64)[:, 0]
    cy, cx = _centroid(k)
    c = k.shape[-1] // 2
    assert torch.allclose(cy, torch.full_like(cy, c), atol=0.5) and torch.allclose(cx, torch.full_like(cx, c), atol=0.5)


def test_kernels_in_a_batch_differ():
    for name in ["motion", "defocus", "gaussian", "mixed"]:
        k = GENERATORS[name]()(4, generator=_seed(11))
        assert not any(torch.equal(k[0], k[i]) for i in range(1, 4)), name


# ---------------------------------------------------------------------------------------------- kernel models


def test_motion_kernel_trajectory_geometry():
    for seed in range(4):
        k = motion_kernel(31, generator=_seed(seed), length=12.0, dtype=torch.float64)
        cy, cx = _centroid(k)
        assert abs(cy.item() - 15) < 1e-6 and abs(cx.item() - 15) < 1e-6  # sub-pixel centred trajectory
        rows, cols = (k > 0).any(1).nonzero(), (k > 0).any(0).nonzero()
        side = max(rows.max() - rows.min(), cols.max() - cols.min()).item()
        assert 12 <= side <= 14  # bounding box of the path (+ the bilinear footprint)
        assert (k > 1e-4).sum() > 12  # a path, not a dot
    # a path too long for the support is shrunk to fit, still centred and normalised
    k = motion_kernel(9, generator=_seed(0), length=100.0, dtype=torch.float64)
    assert abs(k.sum().item() - 1) < 1e-12 and abs(_centroid(k)[0].item() - 4) < 1e-6


def test_motion_kernel_parameters_matter_and_validate():
    base = motion_kernel(21, generator=_seed(5))
    assert not torch.equal(base, motion_kernel(21, generator=_seed(5), exposure=0.0))
    assert not torch.equal(base, motion_kernel(21, generator=_seed(5), jerk_prob=0.2))
    assert torch.equal(motion_kernel(1, generator=_seed(0)), torch.ones(1, 1))
    with pytest.raises(InputError, match="inertia"):
        motion_kernel(21, inertia=1.0)
    with pytest.raises(InputError, match="size"):
        motion_kernel(0)


def test_defocus_kernel_matches_brute_force_coverage():
    r, size = 2.3, 7
    k = defocus_kernel(r, size, dtype=torch.float64).numpy()
    n = 200  # independent reference: 200x200 sub-samples per pixel
    t = (np.arange(size * n) + 0.5) / n - 0.5 - size // 2
    inside = (t[:, None] ** 2 + t[None, :] ** 2) <= r * r
    ref = inside.reshape(size, n, size, n).mean((1, 3))
    np.testing.assert_allclose(k, ref / ref.sum(), atol=2e-4)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1])


def test_defocus_kernel_float_radius_and_limits():
    spread = [float((defocus_kernel(r, 15, dtype=torch.float64) * torch.arange(-7, 8.0).double() ** 2).sum()) for r in (1.0, 1.25, 1.5, 3.0)]
    assert spread == sorted(spread) and spread[0] < spread[1]  # varies continuously with a float radius
    d = defocus_kernel(0.0)
    assert d.shape == (1, 1) and d.item() == 1
    assert defocus_kernel(0.2, 5)[2, 2] == 1
    with pytest.raises(InputError, match="does not fit"):
        defocus_kernel(4.0, 7)
    with pytest.raises(InputError):
        defocus_kernel(-1.0)
    with pytest.raises(InputError, match="does not fit"):
        DefocusBlurGenerator(15, radius_range=(1, 9))


def test_gaussian_kernel_closed_form_and_rotation():
    k = gaussian_kernel(1.7, size=11, dtype=torch.float64)
    t = torch.arange(11, dtype=torch.float64) - 5
    ref = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.7 ** 2))
    assert torch.allclose(k, ref / ref.sum(), atol=1e-14)
    a = gaussian_kernel(3.0, 1.0, 0.0, size=15, dtype=torch.float64)
    b = gaussian_kernel(3.0, 1.0, math.pi / 2, size=15, dtype=torch.float64)
    assert torch.allclose(a.T, b, atol=1e-12)
    # second moments of a wide support = the covariance R diag(sx^2, sy^2) R^T (x = column, y = row)
    sx, sy, th = 3.0, 1.2, 0.6
    k = gaussian_kernel(sx, sy, th, size=41, dtype=torch.float64)
    t = torch.arange(41, dtype=torch.float64) - 20
    Y, X = torch.meshgrid(t, t, indexing="ij")
    R = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]], dtype=torch.float64)
    cov = R @ torch.diag(torch.tensor([sx ** 2, sy ** 2], dtype=torch.float64)) @ R.T
    got = torch.tensor([[(k * X * X).sum(), (k * X * Y).sum()], [(k * X * Y).sum(), (k * Y * Y).sum()]])
    assert torch.allclose(got, cov, rtol=1e-3, atol=1e-3)
    assert gaussian_kernel(1.0).shape == (7, 7)
    with pytest.raises(InputError):
        gaussian_kernel(0.0)


def test_normalize_center_pad():
    k = normalize_kernel(torch.tensor([[[-1.0, 3.0], [1.0, 0.0]], [[2.0, 2.0], [0.0, 0.0]]]))
    assert torch.allclose(k, torch.tensor([[[0, 0.75], [0.25, 0]], [[0.5, 0.5], [0, 0]]]))
    with pytest.raises(InputError, match="all zero"):
        normalize_kernel(torch.tensor([[-1.0, 0.0], [0.0, 0.0]]))
    d = torch.zeros(2, 1, 7, 7)
    d[0, 0, 1, 5] = 1
    d[1, 0, 3, 3] = 1
    c = center_kernel(d)
    assert c[0, 0, 3, 3] == 1 and c[1, 0, 3, 3] == 1 and c.sum() == 2
    e = torch.zeros(4, 6)
    e[2, 3] = 1  # the centre of a 4x6 kernel
    p = pad_kernel(e, 7)
    assert p.shape == (7, 7) and p[3, 3] == 1


def test_file_kernels():
    ks = [torch.rand(5, 7), torch.rand(4, 4)]
    gen = FileKernels(ks)
    assert gen.kernel_size == 7 and len(gen) == 2
    bank = torch.stack([pad_kernel(normalize_kernel(k.double()), 7) for k in ks])
    draws = gen(10, generator=_seed(0), dtype=torch.float64)[:, 0]
    for d in draws:
        assert any(torch.allclose(d, b) for b in bank)
    assert FileKernels([torch.rand(1, 1, 6, 6)]).kernel_size == 7  # even -> next odd
    assert FileKernels(ks, kernel_size=11).kernel_size == 11
    with pytest.raises(InputError, match="smaller than the largest"):
        FileKernels(ks, kernel_size=5)
    with pytest.raises(InputError, match="kernel 1"):
        FileKernels([torch.rand(3, 3), torch.zeros(3, 3)])
    with pytest.raises(InputError):
        FileKernels([])


def test_mixed_generator_weights_and_padding():
    mix = MixedBlurGenerator([DefocusBlurGenerator(9, (1.0, 3.0)), MotionBlurGenerator(15)], weights=[1, 0])
    k = mix(6, generator=_seed(0), dtype=torch.float64)
    assert k.shape == (6, 1, 15, 15)
    assert torch.allclose(k, k.flip(-1)) and torch.allclose(k, k.flip(-2))  # only disks were drawn
    assert k[..., :3, :].abs().sum() == 0  # 9x9 disks padded into 15x15 around the centre
    with pytest.raises(InputError):
        MixedBlurGenerator([MotionBlurGenerator(9)], weights=[1, 2])


def test_get_kernel_generator():
    for kind in ("motion", "defocus", "gaussian", "mixed"):
        assert get_kernel_generator(kind, 13)(2, generator=_seed(0)).shape == (2, 1, 13, 13)
    with pytest.raises(ValueError, match="motion, defocus, gaussian, mixed") as info:
        get_kernel_generator("box")
    assert isinstance(info.value, ConfigError)


# ---------------------------------------------------------------------------------------------- operators

OPERATORS = [(mode, method, kshape) for mode in MODES for method in ("direct", "fft") for kshape in [(5, 5), (4, 7)]]


@pytest.mark.parametrize("mode,method,kshape", OPERATORS)
def test_blur_operator_adjoint_and_shapes(mode, method, kshape):
    g = _seed(4)
    A = Blur(torch.rand(2, 1, *kshape, generator=g, dtype=torch.float64), mode=mode, method=method)
    x = torch.rand(2, 3, 12, 13, generator=g, dtype=torch.float64)
    Ax = A(x)
    assert tuple(Ax.shape[-2:]) == A.output_shape((12, 13))
    assert torch.equal(Ax, A.A(x))
    y = torch.rand(Ax.shape, generator=g, dtype=torch.float64)
    ATy = A.A_adjoint(y)
    assert ATy.shape == x.shape and tuple(ATy.shape[-2:]) == A.input_shape(tuple(y.shape[-2:]))
    assert torch.isclose((Ax * y).sum(), (x * ATy).sum(), rtol=1e-12)
    z = torch.rand(x.shape, generator=g, dtype=torch.float64)
    assert torch.isclose((A.AtA(x) * z).sum(), (x * A.AtA(z)).sum(), rtol=1e-12)


def test_blur_operator_validation():
    with pytest.raises(ValueError, match="mode"):
        Blur(torch.ones(3, 3), mode="same")
    with pytest.raises(ValueError, match="method"):
        Blur(torch.ones(3, 3), method="slow")
    with pytest.raises(ValueError, match="kernel must have shape"):
        Blur(torch.ones(1, 3, 3))


# ---------------------------------------------------------------------------------------------- noise

NOISES = {
    "gaussian": lambda: GaussianNoise(0.05),
    "gaussian-range": lambda: GaussianNoise((0.01, 0.1)),
    "poisson-gaussian": lambda: PoissonGaussianNoise(gain=0.01, sigma=0.02),
}


@pytest.mark.parametrize("name", NOISES)
@pytest.mark.parametrize("device", DEVICES)
def test_noise_determinism(name, device):
    noise = NOISES[name]()
    x = torch.rand(2, 3, 16, 16, generator=_seed(0)).to(device)
    a, b = noise(x, generator=_seed(1)), noise(x, generator=_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert not torch.equal(a, noise(x, generator=_seed(2)))
    assert torch.allclose(a.cpu(), noise(x.cpu(), generator=_seed(1)), atol=1e-6)  # device independent
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    noise(x, generator=_seed(1))
    assert torch.equal(torch.rand(2), expected)


def test_gaussian_noise_statistics():
    x = torch.full((3, 2, 64, 64), 0.5, dtype=torch.float64)
    y = GaussianNoise(0.05)(x, generator=_seed(0))
    assert abs((y - x).std().item() - 0.05) < 0.002 and abs((y - x).mean().item()) < 0.002
    sig = torch.tensor([0.01, 0.1, 0.0])
    d = (GaussianNoise(sig)(x, generator=_seed(0)) - x).std(dim=(1, 2, 3))
    assert torch.allclose(d.float(), sig, rtol=0.05, atol=1e-12)
    d = (GaussianNoise((0.02, 0.2))(x, generator=_seed(0)) - x).std(dim=(1, 2, 3))
    assert bool(((d > 0.019) & (d < 0.21)).all()) and d.unique().numel() == 3
    with pytest.raises(InputError):
        GaussianNoise(-0.1)
    with pytest.raises(InputError):
        GaussianNoise(0.1)(torch.rand(4, 4))


def test_poisson_gaussian_mean_and_variance():
    x = torch.full((1, 1, 256, 256), 0.3, dtype=torch.float64)
    gain, sigma = 0.01, 0.02
    y = PoissonGaussianNoise(gain, sigma)(x, generator=_seed(0))
    assert y.dtype == torch.float64
    assert abs(y.mean().item() - 0.3) < 0.002
    var = gain * 0.3 + sigma ** 2
    assert abs(y.var().item() / var - 1) < 0.05
    # the shot-noise part takes values on the photon grid gain * n
    shot = PoissonGaussianNoise(gain, 0.0)(x, generator=_seed(0))
    assert torch.allclose(shot / gain, (shot / gain).round(), atol=1e-9)
    # gain 0: pure Gaussian read noise; per-image gains
    assert abs((PoissonGaussianNoise(0.0, 0.05)(x, generator=_seed(0)) - x).std().item() - 0.05) < 0.002
    xb = x.expand(2, 1, 256, 256)
    yb = PoissonGaussianNoise(torch.tensor([0.001, 0.05]), 0.0)(xb, generator=_seed(0))
    v = yb.var(dim=(1, 2, 3))
    assert abs(v[0].item() / 0.0003 - 1) < 0.05 and abs(v[1].item() / 0.015 - 1) < 0.05


# ---------------------------------------------------------------------------------------------- colour, degradations


def test_srgb_linear_curves():
    skimage_color = pytest.importorskip("skimage.color")
    v = np.linspace(0, 1, 101)
    rgb = np.repeat(v[:, None, None], 3, axis=2).reshape(101, 1, 3)
    # grey sRGB -> XYZ: Y equals the linear value (the Y row of the sRGB matrix sums to 1)
    Y = skimage_color.rgb2xyz(rgb)[:, 0, 1]
    lin = srgb_to_linear(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(lin, Y, atol=2e-4)
    assert abs(srgb_to_linear(torch.tensor(0.5, dtype=torch.float64)).item() - 0.21404114048223255) < 1e-12
    assert abs(linear_to_srgb(torch.tensor(0.18, dtype=torch.float64)).item() - 0.4613561295004) < 1e-9
    x = torch.linspace(-0.1, 1.2, 10001, dtype=torch.float64)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert torch.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)
    joint = torch.tensor([0.04045 - 1e-9, 0.04045 + 1e-9], dtype=torch.float64)
    assert abs(float(srgb_to_linear(joint).diff())) < 1e-8  # continuous at the joint
    g = torch.tensor([-0.2, 0.0, 0.5, 1.3], requires_grad=True)
    linear_to_srgb(srgb_to_linear(g)).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_clip_and_saturate():
    x = torch.tensor([[-0.5, 0.25, 0.75, 1.5]])
    assert torch.equal(clip(x), torch.tensor([[0.0, 0.25, 0.75, 1.0]]))
    assert torch.equal(saturate(x, threshold=1.0, gain=2.0), torch.tensor([[-1.0, 0.5, 1.0, 1.0]]))
    xb = torch.full((2, 1, 2, 2), 0.4)
    s = saturate(xb, gain=torch.tensor([1.0, 3.0]))
    assert torch.allclose(s[0], torch.full((1, 2, 2), 0.4)) and torch.equal(s[1], torch.ones(1, 2, 2))


def _smooth_image(B=2, C=3, H=32, W=40, dtype=torch.float32):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(3 * xx + c + b) * torch.cos(2 * yy) for b in range(B) for c in range(C)])
    return base.reshape(B, C, H, W).to(dtype)


def test_jpeg_roundtrip():
    x = _smooth_image()
    y95 = jpeg(x, 95)
    assert y95.shape == x.shape and y95.dtype == x.dtype
    assert (y95 - x).abs().mean() < 0.01
    assert (jpeg(x, 5) - x).abs().mean() > (y95 - x).abs().mean()
    # same bytes as a direct Pillow round trip
    a = (x[1].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format="JPEG", quality=60)
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal((jpeg(x, 60)[1] * 255).round().byte().permute(1, 2, 0).numpy(), ref)
    g = _smooth_image(1, 1, dtype=torch.float64)
    assert jpeg(g, 80).shape == g.shape and jpeg(g, 80).dtype == torch.float64
    assert jpeg(x[0], 80).shape == x[0].shape
    for q in (0, 101, 50.5, True, "90"):
        with pytest.raises(InputError, match="quality"):
            jpeg(x, q)
    with pytest.raises(InputError, match="channels"):
        jpeg(torch.rand(1, 2, 8, 8), 90)


# ---------------------------------------------------------------------------------------------- pipeline


class _FixedKernel:
    """Kernel generator that always returns the same kernel (for alignment checks)."""

    def __init__(self, k):
        self.k = k
        self.kernel_size = k.shape[-1]

    def __call__(self, batch_size=1, *, generator=None, device=None, dtype=torch.float32):
        return self.k.to(device=device, dtype=dtype).expand(batch_size, 1, *self.k.shape).clone()


def _delta(size, at=None):
    d = torch.zeros(size, size)
    d[at if at is not None else (size // 2, size // 2)] = 1
    return d


def test_pipeline_determinism_and_shapes():
    pipe = DegradationPipeline.from_name("mixed", kernel_size=11, noise_sigma=(0.0, 0.03), jpeg_quality=(60, 95), saturation=(1.0, 1.5), linear=True)
    x = torch.rand(3, 3, 24, 24, generator=_seed(0))
    a, b = pipe(x, generator=_seed(5)), pipe(x, generator=_seed(5))
    for key in ("blurred", "sharp", "kernel"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["blurred"], pipe(x, generator=_seed(6))["blurred"])
    assert a["blurred"].shape == a["sharp"].shape == (3, 3, 14, 14) and a["kernel"].shape == (3, 1, 11, 11)
    assert a["blurred"].min() >= 0 and a["blurred"].max() <= 1
    same = DegradationPipeline.from_name("gaussian", kernel_size=7, mode="reflect")(x, generator=_seed(0))
    assert same["blurred"].shape == x.shape and torch.equal(same["sharp"], x)


def test_pipeline_alignment_with_conv2d_valid():
    x = torch.rand(2, 3, 30, 27, generator=_seed(1), dtype=torch.float64)
    out = DegradationPipeline(MotionBlurGenerator(9))(x, generator=_seed(2))
    assert torch.allclose(out["blurred"], conv2d(x, out["kernel"], "valid"), atol=1e-12)
    assert torch.equal(out["sharp"], crop_valid(x, (9, 9)))
    for size in (5, 4):  # odd and even kernels: a centred delta reproduces the cropped sharp image
        d = DegradationPipeline(_FixedKernel(_delta(size)))(x, generator=_seed(0))
        assert d["blurred"].shape[-2:] == (30 - size + 1, 27 - size + 1)
        assert torch.equal(d["blurred"], d["sharp"])
    # an off-centre delta shifts the image, so the check above is not vacuous
    d = DegradationPipeline(_FixedKernel(_delta(5, (0, 0))))(x, generator=_seed(0))
    assert not torch.allclose(d["blurred"], d["sharp"])


def test_pipeline_batch_independence():
    pipe = DegradationPipeline(get_kernel_generator("motion", 9), noise=0.02)
    x = torch.rand(3, 1, 20, 20, generator=_seed(3))
    out = pipe(x, generator=_seed(4))
    k = out["kernel"]
    assert not torch.equal(k[0], k[1]) and not torch.equal(k[1], k[2])
    x2 = x.clone()
    x2[1] = torch.rand(1, 20, 20, generator=_seed(9))
    out2 = pipe(x2, generator=_seed(4))
    assert torch.equal(out2["kernel"], k)
    assert torch.equal(out2["blurred"][[0, 2]], out["blurred"][[0, 2]])  # image 1 does not leak into the others
    assert not torch.equal(out2["blurred"][1], out["blurred"][1])
    clean = DegradationPipeline(get_kernel_generator("motion", 9))(x, generator=_seed(4))
    for i in range(3):
        assert torch.allclose(clean["blurred"][i:i + 1], conv2d(x[i:i + 1], clean["kernel"][i:i + 1], "valid"), atol=1e-6)


def test_pipeline_linear_and_saturation():
    x = torch.rand(2, 3, 16, 16, generator=_seed(5), dtype=torch.float64)
    box = torch.full((3, 3), 1 / 9)
    lin = DegradationPipeline(_FixedKernel(box), linear=True)(x)
    expected = linear_to_srgb(conv2d(srgb_to_linear(x), box.double(), "valid"))
    assert torch.allclose(lin["blurred"], expected, atol=1e-12)
    assert not torch.allclose(lin["blurred"], conv2d(x, box.double(), "valid"), atol=1e-3)
    sat = DegradationPipeline(_FixedKernel(_delta(3)), saturation=2.0)(x)
    assert torch.allclose(sat["blurred"], crop_valid((2 * x).clamp(max=1), (3, 3)))
    assert torch.allclose(sat["sharp"], sat["blurred"])
    satb = DegradationPipeline(_FixedKernel(box), saturation=3.0)(x)
    assert torch.allclose(satb["blurred"], conv2d(3 * x, box.double(), "valid").clamp(max=1))
    with pytest.raises(InputError, match="saturation"):
        DegradationPipeline(_FixedKernel(box), saturation=0.5)


def test_pipeline_errors():
    gen = get_kernel_generator("gaussian", 9)
    with pytest.raises(InputError, match="mode"):
        DegradationPipeline(gen, mode="full")
    with pytest.raises(InputError, match="smaller than"):
        DegradationPipeline(gen)(torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="quality"):
        DegradationPipeline(gen, jpeg_quality=0)
    with pytest.raises(InputError):
        DegradationPipeline(gen)(torch.rand(3, 16, 16))
