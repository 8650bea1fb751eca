"""FDIKP and defocus training data: the model's outputs and radius map, its parts (local spectra, inverse-kernel
bank, position-adaptive mixing) against direct computations, the defocus pipeline, and a training run whose
radius-map loss uses the true maps."""
from __future__ import annotations

import pytest
import torch

import unblur.models as M
from unblur.errors import ConfigError, InputError
from unblur.models.fdikp import InverseKernelBank, LocalSpectrum, PositionAdaptiveConv
from unblur.physics import DefocusPipeline, conv2d, defocus_kernel, rfft2


def _net(**kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return M.create("fdikp-tiny", **kw)


def test_outputs_every_scale_and_a_non_negative_radius_map_for_any_size():
    net = _net().eval()
    x = torch.rand(2, 3, 45, 38, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = net.forward_train(x)
    assert [s for _, s in out["outputs"]] == [0.25, 0.5, 1.0]
    assert out["outputs"][-1][0].shape == x.shape and out["outputs"][0][0].shape == (2, 3, 12, 10)
    assert out["radius_map"].shape == (2, 1, 45, 38) and bool((out["radius_map"] >= 0).all())
    assert net.estimate_radius_map(x).shape == (2, 1, 45, 38)
    assert M.create("nafnet-tiny").estimate_radius_map(x) is None


def test_local_spectrum_pools_window_spectra_in_radial_bands():
    spec = LocalSpectrum(2, 3, window=8, bands=4)
    with torch.no_grad():  # identity-like projection of the first band of channel 0
        spec.proj.weight.zero_()
        spec.proj.bias.zero_()
        spec.proj.weight[0, 0] = 1.0
    f = torch.rand(1, 2, 16, 24, generator=torch.Generator().manual_seed(2))
    out = spec(f)
    assert out.shape == (1, 3, 2, 3)
    window = f[0, 0, 8:16, 8:16]
    mag = torch.log1p(rfft2(window).abs()).flatten()
    band0 = spec.pool[:, 0] > 0
    torch.testing.assert_close(out[0, 0, 1, 1], mag[band0].mean())


def test_inverse_kernels_start_as_deltas_and_sum_to_one():
    bank = InverseKernelBank(8, 4, count=3, size=5)
    k = bank(torch.rand(2, 8, 16, 16), torch.rand(2, 4, 2, 2))
    assert k.shape == (2, 3, 5, 5)
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(2, 3))
    assert (k[:, :, 2, 2] > 0.95).all()


def test_position_adaptive_conv_applies_each_kernel_at_its_dilation():
    pac = PositionAdaptiveConv(2, 1, count=2)
    with torch.no_grad():  # weights: all on branch 2 (kernel 1 at dilation 2) everywhere
        pac.weights[-1].weight.zero_()
        pac.weights[-1].bias.copy_(torch.tensor([-30.0, -30.0, 30.0]))
    f = torch.rand(1, 2, 20, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float32)
    k = torch.rand(1, 2, 3, 3, generator=torch.Generator().manual_seed(4))
    got = pac(f, torch.zeros(1, 1, 20, 20), k)
    dilated = torch.zeros(5, 5)
    dilated[::2, ::2] = k[0, 1]
    want = conv2d(f, dilated.flip(-2, -1), "zeros")  # F.conv2d correlates: the flipped kernel convolves
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_defocus_pipeline_pairs_are_aligned_and_seeded():
    pipe = DefocusPipeline((1.0, 4.0), uniform_prob=1.0, margin=4)
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = pipe(x, generator=torch.Generator().manual_seed(6))
    r = out["radius"][:, 0, 0, 0]
    for i in range(3):  # uniform scenes: the pair is the sharp crop and its disk blur, aligned
        assert bool((out["radius"][i] == r[i]).all())
        k = defocus_kernel(float(r[i]), 9, dtype=torch.float64)
        want = conv2d(x[i:i + 1], k, "reflect")[..., 4:36, 4:36]
        torch.testing.assert_close(out["blurred"][i:i + 1], want.clamp(0, 1), atol=1e-9, rtol=0)
        torch.testing.assert_close(out["sharp"][i], x[i, :, 4:36, 4:36])
    again = pipe(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(out["blurred"], again["blurred"])
    varying = DefocusPipeline((1.0, 4.0), uniform_prob=0.0, noise=0.01)(x, generator=torch.Generator().manual_seed(7))
    assert bool((varying["radius"].flatten(1).std(1) > 0).all())
    with pytest.raises(InputError, match="too small"):
        pipe(torch.rand(1, 3, 8, 8))


def test_training_with_radius_maps(tmp_path):
    """A short run on spatially varying defocus: the dataset carries the maps, the loss uses them."""
    from test_training import _tiny_cfg  # noqa: E402  (shared helper)

    from unblur.training.trainer import Trainer

    cfg = _tiny_cfg(tmp_path, extra=["model.name=fdikp-tiny", "train.data.blur=defocus-map",
                                     "train.data.crop_size=32", "val.crop_size=32", "loss.map_weight=0.1",
                                     "train.steps=2", "val.every=2"])
    tr = Trainer(cfg)
    out = tr.fit()
    assert out["step"] == 2
    item = tr.train_ds[0]
    assert item["radius"].shape == (1, 32, 32) and float(item["radius"].max()) <= 4.0 + 1e-6
    no_maps = _tiny_cfg(tmp_path, "bad", extra=["model.name=fdikp-tiny", "loss.map_weight=0.1"])
    with pytest.raises(ConfigError, match="defocus-map"):
        Trainer(no_maps).fit()
    no_head = _tiny_cfg(tmp_path, "bad2", extra=["model.name=nafnet-tiny", "loss.map_weight=0.1",
                                                  "train.data.blur=defocus-map"])
    with pytest.raises(ConfigError, match="estimates no blur-radius map"):
        Trainer(no_head).fit()


def test_restore_writes_the_radius_map_from_the_same_pass_whole_or_tiled(tmp_path):
    from PIL import Image

    from unblur.inference.restore import RADIUS_MAP_SCALE, restore, restore_file
    from unblur.io import read_image

    net = _net().eval()
    x = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(9))
    whole = restore(x, model=net, tile=None)
    with torch.inference_mode():
        direct = net.forward_train(x[None])
    torch.testing.assert_close(whole.radius_map, direct["radius_map"])
    torch.testing.assert_close(whole.image, direct["outputs"][-1][0].clamp(0, 1))
    tiled = restore(x, model=net, tile=48)
    assert tiled.radius_map.shape == (1, 1, 70, 90) and tiled.kernel is None
    Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(tmp_path / "p.png")
    written = restore_file(tmp_path / "p.png", tmp_path / "out", model=net, save_kernel=True, tile=None)
    assert [p.name for p in written] == ["p.png", "p_defocus.png"]
    saved = read_image(tmp_path / "out" / "p_defocus.png")
    assert saved.bit_depth == 16
    want = (restore(read_image(tmp_path / "p.png").data, model=net, tile=None).radius_map[0] / RADIUS_MAP_SCALE)
    torch.testing.assert_close(saved.data[:1], want.clamp(0, 1), atol=1 / 65535, rtol=0)
