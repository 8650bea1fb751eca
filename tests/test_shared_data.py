"""Checks against the field's data in ../shared/data (skipped when it is absent)."""
from pathlib import Path

import pytest
import torch

from unblur.io import expand_inputs, read_image, read_kernel
from unblur.physics import conv2d

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
LEVIN = DATA / "levin"


@pytest.mark.skipif(not LEVIN.is_dir(), reason="../shared/data/levin not present")
@pytest.mark.parametrize("im, ker", [(2, 3), (4, 5)])  # asymmetric kernels: the rotation matters
def test_levin_captures_match_our_forward_model(im, ker):
    """The real captures are the sharp image convolved with the 180-degree rotated kernel (the authors'
    correlation), up to a small shift and a residual of a few grey levels: our convolution reproduces that."""
    sharp = read_image(LEVIN / "sharp" / f"im{im}.png").data[None]
    captured = read_image(LEVIN / "blurred" / f"im{im}_ker{ker}.png").data[None]
    kernel = read_kernel(LEVIN / "kernels" / f"k{ker}.npy")
    m = 20  # compare away from the frame, where the real blur saw the scene beyond it
    H, W = sharp.shape[-2:]
    target = captured[..., m:H - m, m:W - m]

    def best_rms(k):
        simulated = conv2d(sharp, k, mode="replicate")
        return min(
            (simulated[..., m + dy:H - m + dy, m + dx:W - m + dx] - target).pow(2).mean().sqrt().item()
            for dy in range(-6, 7) for dx in range(-6, 7)
        )

    rotated, as_is = best_rms(kernel.flip(-2, -1)), best_rms(kernel)
    assert rotated < 3.5 / 255, f"RMS residual {rotated * 255:.2f} grey levels"
    assert rotated < 0.8 * as_is  # the captures are a correlation with the kernel, not a convolution


@pytest.mark.skipif(not (DATA / "test" / "Kodak24").is_dir(), reason="../shared/data/test/Kodak24 not present")
def test_kodak24_reads_as_24_rgb_photos():
    paths, errors = expand_inputs([str(DATA / "test" / "Kodak24")])
    assert not errors and len(paths) == 24
    for p in paths[:3]:
        img = read_image(p)
        assert img.data.shape == (3, 500, 500) and img.bit_depth == 8
        assert 0.05 < float(img.data.mean()) < 0.95 and torch.isfinite(img.data).all()
