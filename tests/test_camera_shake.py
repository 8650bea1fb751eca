"""Non-uniform camera shake (physics.camera_shake): geometry against independent references, seeding,
object motion, the camera pipeline's contract and its errors."""
import math

import numpy as np
import pytest
import torch

from unblur.errors import InputError
from unblur.physics.camera_shake import (CameraShakeGenerator, ShakePipeline, center_path_extent, max_travel,
                                         render_shake, shake_homographies)


def _seed(s):
    return torch.Generator().manual_seed(s)


def test_zero_trajectory_is_the_central_crop():
    img = torch.rand(1, 3, 40, 50, generator=_seed(0), dtype=torch.float64)
    out = render_shake(img, torch.zeros(1, 5, 3, dtype=torch.float64), focal=300.0, margin=6)
    assert torch.allclose(out, img[..., 6:34, 6:44], atol=1e-12)


def test_pure_yaw_at_long_focal_is_a_horizontal_box_blur():
    # a yaw of s/f moves the whole (far-from-the-edge) image by s px: the average of whole-pixel shifts
    f = 1e5
    img = torch.rand(1, 1, 60, 60, generator=_seed(1), dtype=torch.float64)
    a = torch.zeros(1, 9, 3, dtype=torch.float64)
    a[0, :, 0] = torch.linspace(-4, 4, 9) / f
    out = render_shake(img, a, focal=f, margin=8)
    ref = sum(img[..., 8:52, 8 + d:52 + d] for d in range(-4, 5)) / 9
    assert torch.allclose(out, ref, atol=1e-6)


def test_roll_blur_grows_with_the_distance_from_the_principal_point():
    # an in-plane rotation moves a point in proportion to its radius: no blur at the centre, most at the edge
    img = torch.rand(1, 1, 81, 81, generator=_seed(2), dtype=torch.float64)
    a = torch.zeros(1, 5, 3, dtype=torch.float64)
    a[0, :, 2] = torch.linspace(-0.05, 0.05, 5)
    out = render_shake(img, a, focal=80.0, margin=10)
    diff = (out - img[..., 10:71, 10:71]).abs()[0, 0]
    assert diff[30, 30] < 1e-9  # the principal point
    assert diff[:5].mean() > 5 * diff[25:36, 25:36].mean()


def test_homography_matches_a_numpy_rotation():
    ang = torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)
    Hm = shake_homographies(ang, 500.0, (20.0, 10.0)).numpy()
    y, p, r = ang.tolist()
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    K = np.array([[500.0, 0, 20], [0, 500, 10], [0, 0, 1]])
    assert np.allclose(Hm, K @ Rz @ Ry @ Rx @ np.linalg.inv(K))


def test_generator_extent_reference_pose_and_seed():
    gen = CameraShakeGenerator(extent=(10, 30), focal=400.0, knots=9)
    a = gen(16, generator=_seed(3), dtype=torch.float64)
    assert a.shape == (16, 9, 3)
    assert torch.all(a[:, 4] == 0)  # the middle of the exposure is the sharp target's pose
    travel = 400.0 * center_path_extent(a[..., :2])
    assert torch.all((travel > 10 - 1e-6) & (travel < 30 + 1e-6))
    assert travel.std() > 1  # drawn per trajectory
    assert torch.equal(a, gen(16, generator=_seed(3), dtype=torch.float64))
    assert not torch.equal(a, gen(16, generator=_seed(4), dtype=torch.float64))
    state = torch.random.get_rng_state()
    gen(2, generator=_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())


def test_object_motion_moves_only_the_foreground():
    img = torch.rand(1, 1, 60, 60, generator=_seed(6), dtype=torch.float64)
    fg = torch.rand(1, 1, 60, 60, generator=_seed(7), dtype=torch.float64)
    mask = torch.zeros(1, 1, 60, 60, dtype=torch.float64)
    mask[..., 25:35, 25:35] = 1
    motion = torch.zeros(1, 5, 2, dtype=torch.float64)
    motion[0, :, 0] = torch.linspace(-4, 4, 5)
    out = render_shake(img, torch.zeros(1, 5, 3, dtype=torch.float64), focal=200.0, margin=5,
                       foreground=fg, mask=mask, object_motion=motion)
    still = (img * (1 - mask) + fg * mask)[..., 5:55, 5:55]
    diff = (out - still).abs()[0, 0]
    assert diff[:10].max() < 1e-12 and diff[:, :10].max() < 1e-12  # the background stands still
    assert diff[18:32, 14:36].mean() > 0.05  # the object is smeared along x


def test_max_travel_counts_the_roll_at_the_corners():
    a = CameraShakeGenerator(extent=(20, 20), focal=100.0, roll=(1.0, 1.0))(1, generator=_seed(8), dtype=torch.float64)
    no_roll = a.clone()
    no_roll[..., 2] = 0
    with_roll = max_travel(a[0], 100.0, (50.0, 50.0), (101, 101), 0)
    assert with_roll >= 20 - 1e-6  # at least the centre's travel
    assert with_roll > max_travel(no_roll[0], 100.0, (50.0, 50.0), (101, 101), 0) + 5  # the roll moves corners more


def test_pipeline_contract():
    pipe = ShakePipeline(margin=14, extent=(2, 12), object_prob=0.5, jpeg_prob=0.5)
    x = torch.rand(3, 3, 60, 70, generator=_seed(9))
    out = pipe(x, generator=_seed(10))
    assert out["blurred"].shape == out["sharp"].shape == (3, 3, 32, 42)
    assert out["blurred"].dtype == torch.float32
    assert 0 <= float(out["blurred"].min()) and float(out["blurred"].max()) <= 1
    again = pipe(x, generator=_seed(10))
    assert torch.equal(out["blurred"], again["blurred"]) and torch.equal(out["sharp"], again["sharp"])
    assert not torch.equal(out["blurred"], pipe(x, generator=_seed(11))["blurred"])


def test_pipeline_without_shake_or_effects_is_the_identity_on_the_crop():
    pipe = ShakePipeline(margin=3, extent=(0, 0), roll=(0, 0), object_prob=0, saturation=(1, 1), noise_gain=(0, 0),
                         noise_sigma=(0, 0), jpeg_prob=0)
    x = torch.rand(2, 3, 30, 30, generator=_seed(12))
    out = pipe(x, generator=_seed(13))
    assert torch.allclose(out["blurred"], x[..., 3:27, 3:27], atol=1e-5)
    assert torch.allclose(out["sharp"], x[..., 3:27, 3:27], atol=1e-5)


@pytest.mark.parametrize("kw, match", [
    ({"extent": (5, 40)}, "margin"),
    ({"object_prob": 1.5}, "object_prob"),
    ({"jpeg_prob": -0.1}, "jpeg_prob"),
    ({"extent": (9, 3)}, "extent"),
    ({"focal": (0, 1)}, "focal"),
    ({"roll": (0.5, 0.1)}, "roll"),
])
def test_pipeline_errors(kw, match):
    with pytest.raises(InputError, match=match):
        ShakePipeline(margin=20, **kw)


@pytest.mark.parametrize("kw, match", [
    ({"extent": (5, 2)}, "extent"), ({"roll": (-1, 0)}, "roll"), ({"focal": 0}, "focal"), ({"knots": 1}, "knots"),
    ({"inertia": 1.0}, "inertia"),
])
def test_generator_errors(kw, match):
    with pytest.raises(InputError, match=match):
        CameraShakeGenerator(**kw)


def test_render_errors():
    with pytest.raises(InputError, match="angles"):
        render_shake(torch.rand(1, 3, 20, 20), torch.zeros(2, 4, 3), focal=10.0, margin=2)
    with pytest.raises(InputError, match="margin"):
        render_shake(torch.rand(1, 3, 20, 20), torch.zeros(1, 4, 3), focal=10.0, margin=10)
    with pytest.raises(InputError, match="alpha mask"):
        render_shake(torch.rand(1, 3, 20, 20), torch.zeros(1, 4, 3), focal=10.0, margin=2,
                     foreground=torch.rand(1, 3, 20, 20))
