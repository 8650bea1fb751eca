"""Spatially varying defocus: the thin lens against its closed form, the layered renderer against the uniform disk
blur, no bands on smooth ramps, occlusion at sharp depth edges, aberrated PSFs, seeded random scenes."""
from __future__ import annotations

import math

import pytest
import torch

from unblur.errors import InputError
from unblur.physics import conv2d, defocus_kernel
from unblur.physics.defocus_map import (
    DefocusMapGenerator,
    LensAberration,
    aberrated_disk,
    random_depth_maps,
    render_defocus,
    thin_lens_radius,
)


def _texture(h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g, dtype=torch.float64)


def test_thin_lens_matches_the_textbook_numbers():
    # 50 mm f/2 focused at 2 m, a point at 1 m: c = (25 mm)(50 mm)(1 m) / (1 m x 1.95 m) = 0.641 mm diameter
    r = thin_lens_radius(torch.tensor([1.0, 2.0, 4.0]), 2.0, focal_length_mm=50, f_number=2, pixel_pitch_mm=0.01)
    assert r[0].item() == pytest.approx(0.025 * 0.05 * 1.0 / (1.0 * 1.95) / 2 / 1e-5, rel=1e-6)
    assert r[1].item() == 0 and r[2].item() < 0  # on the focus plane: sharp; behind it: negative
    with pytest.raises(InputError, match="focal length"):
        thin_lens_radius(torch.tensor([0.01]), 2.0)


@pytest.mark.parametrize("radius", [0.0, 2.3, -4.0])
def test_a_constant_map_is_the_uniform_disk_blur(radius):
    x = _texture()
    got = render_defocus(x, torch.full((64, 64), radius, dtype=torch.float64))
    k = defocus_kernel(abs(radius), 2 * math.ceil(abs(radius)) + 1, dtype=torch.float64)
    torch.testing.assert_close(got, conv2d(x, k, "reflect"), rtol=0, atol=1e-10)


def _ramp_profile(render):
    """A smooth radius ramp across a horizontally linear image: the rendered rows must stay linear."""
    H, W = 48, 160
    x = torch.linspace(0.2, 0.8, W, dtype=torch.float64).expand(1, 3, H, W).clone()
    s = torch.linspace(-6, 6, W, dtype=torch.float64).expand(1, 1, H, W)
    return x, render(x, s)


def test_a_smooth_ramp_shows_no_bands():
    x, out = _ramp_profile(render_defocus)
    inner = (slice(None), slice(None), slice(10, -10), slice(10, -10))
    err = (out - x)[inner].abs().max().item()
    # a blur of a linear image is the image; what remains (measured 0.003, 0.5 % of the ramp's range) is the blend
    # of two neighbouring disks standing in for the disk between them; seams or bands would be ~10 x larger
    assert err < 4e-3, err
    diffs = out[0, 0, 24, 10:-10].diff()
    assert bool((diffs > 0).all())  # monotone: no dark or bright band


def test_unnormalised_layer_compositing_would_band():
    """The same renderer without the coverage normalisation darkens where a pixel is split between two layers:
    the check above is able to fail."""
    def naive(x, s):
        grid = torch.arange(-6, 6.5, 0.5, dtype=torch.float64)
        pos = (s + 6) / 0.5
        acc = torch.zeros_like(x)
        for i, r in enumerate(grid.tolist()):
            w = torch.relu(1 - (pos - i).abs())
            k = defocus_kernel(abs(r), 13, dtype=torch.float64)
            cover = conv2d(w, k, "reflect").clamp(0, 1)
            acc = acc * (1 - cover) + conv2d(x * w, k, "reflect")
        return acc

    x, out = _ramp_profile(naive)
    assert (out - x)[..., 10:-10, 10:-10].abs().max().item() > 0.05


def test_a_blurred_foreground_occludes_a_sharp_background():
    H = W = 64
    x = _texture(H, W)
    s = torch.zeros(1, 1, H, W, dtype=torch.float64)
    s[..., :, 32:] = 5.0  # the right half is a near object, strongly defocused
    x[..., :, 32:] = 0.5  # a flat grey object
    out = render_defocus(x, s)
    torch.testing.assert_close(out[..., :, :26], x[..., :, :26], rtol=0, atol=1e-10)  # background beyond its reach
    torch.testing.assert_close(out[..., 8:-8, 38:], x[..., 8:-8, 38:], rtol=0, atol=1e-9)  # the object's inside
    # the object's blur spreads over the background (it is in front): grey leaks left of the edge ...
    leak = (out[..., :, 28:32] - x[..., :, 28:32]).abs().mean()
    assert leak > 0.02
    # ... while the sharp background never leaks into the object (it is hidden behind it)
    far = torch.zeros_like(s)
    far[..., :, 32:] = -5.0  # the same object behind the focus plane, behind nothing: the background is in front
    out_far = render_defocus(x, far)
    assert (out_far[..., :, 28:32] - x[..., :, 28:32]).abs().mean() < 0.5 * leak


def test_aberrated_disks_are_normalised_elongated_and_default_to_the_disk():
    torch.testing.assert_close(aberrated_disk(3.0, 9), defocus_kernel(3.0, 9, dtype=torch.float64))
    k = aberrated_disk(4.0, 15, LensAberration(astigmatism=0.3))
    assert k.sum().item() == pytest.approx(1.0) and (k >= 0).all()
    assert (k[7] > 0).sum() > (k[:, 7] > 0).sum()  # long axis along x (angle 0)
    g = aberrated_disk(2.0, 15, LensAberration(gaussian_sigma=1.0))
    assert g[7, 7 + 4].item() > 0 and defocus_kernel(2.0, 15)[7, 7 + 4].item() == 0  # the Gaussian widens it
    with pytest.raises(InputError, match="astigmatism"):
        LensAberration(astigmatism=0.7)
    out = render_defocus(_texture(), torch.full((64, 64), 3.0), aberration=LensAberration(0.5, 0.2, 0.3))
    assert torch.isfinite(out).all()


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(InputError, match="radius map must be"):
        render_defocus(_texture(), torch.zeros(1, 1, 10, 10))
    with pytest.raises(InputError, match="NaN"):
        render_defocus(_texture(), torch.full((64, 64), float("nan")))
    with pytest.raises(InputError, match="near < far"):
        random_depth_maps(1, (8, 8), near=2, far=1)


def test_random_scenes_are_seeded_batched_and_have_sharp_occluding_edges():
    gen = DefocusMapGenerator((3.0, 6.0), max_objects=3)
    a = gen(4, (48, 64), generator=torch.Generator().manual_seed(7))
    b = gen(4, (48, 64), generator=torch.Generator().manual_seed(7))
    c = gen(4, (48, 64), generator=torch.Generator().manual_seed(8))
    assert a["depth"].shape == a["radius"].shape == (4, 1, 48, 64)
    assert torch.equal(a["radius"], b["radius"]) and not torch.equal(a["radius"], c["radius"])
    peak = a["radius"].abs().amax((1, 2, 3))
    assert bool(((peak >= 3.0 - 1e-5) & (peak <= 6.0 + 1e-5)).all())
    d = random_depth_maps(16, (64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert bool(((d >= 0.5) & (d <= 20.0)).all())
    inv = 1 / d
    jumps = (inv.diff(dim=-1).abs() > 0.05 * (1 / 0.5 - 1 / 20)).flatten(1).any(1)
    assert jumps.sum() >= 4  # occluding objects: depth discontinuities in many scenes
    # a rendered training pair: finite, and identical for the same seed
    x = torch.rand(4, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(render_defocus(x, a["radius"]), render_defocus(x, b["radius"]))
