"""The one kernel validation (as_kernel) and projection (project_kernel) of unblur.physics.kernels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.physics import as_kernel, clean_kernel, delta_kernel, pad_kernel, project_kernel, trim_kernel
from unblur.physics.conv import conv2d


def test_as_kernel_shapes_normalisation_and_placement():
    k = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # even size is fine
    out = as_kernel(k)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0], k / 4)
    assert as_kernel(np.ones((3, 3), dtype=np.uint8)).dtype == torch.get_default_dtype()
    assert as_kernel(torch.ones(3, 5, 5)).shape == (1, 3, 5, 5)  # (C, kh, kw)
    b = torch.rand(2, 3, 5, 4) + 0.1
    torch.testing.assert_close(as_kernel(b).sum((-2, -1)), torch.ones(2, 3))
    like = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    out = as_kernel(torch.ones(1, 1, 5, 5), like=like)
    assert out.dtype == torch.float64 and out.device == like.device
    torch.testing.assert_close(out, torch.full((1, 1, 5, 5), 1 / 25, dtype=torch.float64))
    # float noise below the tolerance is clipped, not refused
    n = torch.ones(3, 3)
    n[0, 0] = -1e-6
    assert float(as_kernel(n).min()) == 0.0
    # negative taps kept on request (estimates in metrics): only the sum must be positive
    m = torch.tensor([[-1.0, 3.0]])
    torch.testing.assert_close(as_kernel(m, negative_tolerance=None)[0, 0], torch.tensor([[-0.5, 1.5]]))


@pytest.mark.parametrize(
    "kernel, kwargs, match",
    [
        ("text", {}, r"^kernel must be a tensor or an array, got str$"),
        (torch.ones(5), {}, r"^kernel must have shape \(kh, kw\) or \(C, kh, kw\) or \(B, C, kh, kw\), got \(5,\)$"),
        (torch.ones(1, 5, 5), {"ndims": (2, 4)}, r"^kernel must have shape \(kh, kw\) or \(B, C, kh, kw\), got \(1, 5, 5\)$"),
        (torch.ones(0, 3), {}, r"^kernel is empty \(shape \(0, 3\)\)$"),
        (torch.ones(3, 1, 5, 5), {"like": torch.zeros(2, 3, 16, 16)}, r"^kernel of shape \(3, 1, 5, 5\) does not match the image \(2, 3, 16, 16\)$"),
        (torch.ones(2, 5, 5), {"like": torch.zeros(1, 3, 16, 16)}, r"does not match the image"),
        (torch.ones(17, 5), {"like": torch.zeros(1, 1, 16, 16)}, r"^kernel of 17x5 is larger than the image \(16x16\)$"),
        (torch.tensor([[1.0, float("nan")]]), {}, r"^kernel contains NaN or infinite values$"),
        (torch.tensor([[1.0, float("inf")]]), {}, r"NaN or infinite"),
        (torch.tensor([[1.0, -0.5]]), {}, r"^kernel has negative values \(minimum -0\.5, maximum 1\)$"),
        (-torch.ones(3, 3) / 9, {}, r"^kernel has negative values"),
        (torch.zeros(3, 3), {}, r"^kernel is all zero$"),
        (torch.tensor([[1.0, -1.0]]), {"negative_tolerance": None}, r"^kernel does not have a positive sum$"),
        (torch.zeros(3, 3), {"name": "kernel file k.npy"}, r"^kernel file k\.npy is all zero$"),
    ],
)
def test_as_kernel_rejects_bad_kernels_with_one_line_messages(kernel, kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        as_kernel(kernel, **kwargs)
    assert "\n" not in str(err.value)


def test_project_kernel_normalises_and_falls_back_to_a_delta():
    k = torch.tensor([[[-1.0, 3.0], [1.0, 0.0]], [[-2.0, 0.0], [0.0, 0.0]]])
    p = project_kernel(k)
    torch.testing.assert_close(p[0], torch.tensor([[0.0, 0.75], [0.25, 0.0]]))
    torch.testing.assert_close(p[1], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))  # nothing positive: delta at (1, 1)
    torch.testing.assert_close(project_kernel(k, normalise=False), k.clamp_min(0))
    torch.testing.assert_close(project_kernel(k, nonneg=False, normalise=False), k)
    torch.testing.assert_close(delta_kernel(2, (3, 4)), project_kernel(torch.zeros(2, 1, 3, 4)))


def test_project_kernel_center_moves_a_shifted_kernel_back():
    k = torch.zeros(3, 1, 9, 9, dtype=torch.float64)
    k[0, 0, 1, 7] = 2.0                # shifted delta
    k[1, 0, 6, 2:5] = 1.0              # horizontal bar centred at (6, 3)
    k[2, 0, 4, 4] = 1.0                # already centred
    c = project_kernel(k, center=True)
    assert c[0, 0, 4, 4] == 1 and c[0].sum() == 1
    ref = torch.zeros(9, 9, dtype=torch.float64)
    ref[4, 3:6] = 1 / 3
    torch.testing.assert_close(c[1, 0], ref)
    torch.testing.assert_close(c[2], k[2])
    # even size: the centre is (kh//2, kw//2)
    e = torch.zeros(4, 6)
    e[0, 0] = 1
    assert project_kernel(e, center=True).nonzero().tolist() == [[2, 3]]


def test_project_kernel_clean_removes_a_small_separate_blob():
    k = torch.zeros(1, 1, 15, 15)
    k[0, 0, 5:10, 7] = 1.0           # main stroke, mass 5 (centred on (7, 7))
    k[0, 0, 1, 1] = 0.4              # light separate blob: 0.4 / 6.2 < 0.1 of the mass
    k[0, 0, 12, 12] = 0.8            # heavier blob: 0.8 / 6.2 > 0.1, kept
    k[0, 0, 5, 8] = 0.02             # tap below 5% of the max: thresholded
    out = project_kernel(k, clean=True)
    assert out[0, 0, 1, 1] == 0 and out[0, 0, 5, 8] == 0 and out[0, 0, 12, 12] > 0
    torch.testing.assert_close(out.sum(), torch.tensor(1.0))
    torch.testing.assert_close(out[0, 0, 5:10, 7], torch.full((5,), 1 / 5.8))
    torch.testing.assert_close(clean_kernel(k, recenter=False), out)
    strict = project_kernel(k, clean=True, min_component_mass=0.2)
    assert strict[0, 0, 12, 12] == 0 and torch.allclose(strict[0, 0, 5:10, 7], torch.full((5,), 0.2))


def test_project_kernel_differentiable_variant():
    k = (torch.rand(2, 1, 5, 5, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda k: project_kernel(k, differentiable=True), (k,))
    # negative taps have zero gradient (relu), positive taps keep theirs
    m = torch.tensor([[-1.0, 2.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    project_kernel(m, differentiable=True)[0, 1].backward()
    assert m.grad[0, 0] == 0 and m.grad[0, 1] != 0
    with pytest.raises(ValueError, match="differentiable"):
        project_kernel(k, clean=True, differentiable=True)
    with pytest.raises(ValueError, match="differentiable"):
        project_kernel(k, center=True, differentiable=True)


@pytest.mark.parametrize("shape, size", [((3, 5), 31), ((7, 7), 9), ((4, 6), 12), ((1, 1), 5)])
def test_trim_kernel_undoes_padding_and_keeps_the_blur(shape, size):
    g = torch.Generator().manual_seed(0)
    k = torch.rand(2, 1, *shape, generator=g) + 0.01  # no zero tap on the border: the support is the shape
    padded = pad_kernel(k, size)
    torch.testing.assert_close(trim_kernel(padded), k, atol=0, rtol=0)
    x = torch.rand(2, 1, 40, 40, generator=g)
    torch.testing.assert_close(conv2d(x, trim_kernel(padded), "circular"), conv2d(x, padded, "circular"))


def test_trim_kernel_keeps_the_union_of_a_batch_and_the_centre():
    k = torch.zeros(2, 1, 9, 9)
    k[0, 0, 4, 2] = 1.0  # 2 left of the centre
    k[1, 0, 5, 4] = 1.0  # 1 below
    t = trim_kernel(k)
    assert t.shape == (2, 1, 3, 5)
    assert t[0, 0, 1, 0] == 1 and t[1, 0, 2, 2] == 1
    assert trim_kernel(torch.zeros(1, 1, 7, 7)).shape == (1, 1, 1, 1)
