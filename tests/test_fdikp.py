"""FDIKP and defocus training data: the model's outputs and radius map, its parts (local spectra, the disk inverse
bank, position-adaptive selection) against direct computations, the defocus pipeline, and a training run whose
radius-map loss uses the true maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import unblur.models as M
from unblur.errors import ConfigError, InputError
from unblur.models.fdikp import DiskWienerBank, LocalSpectrum, RadialSpectrum, hat_weights
from unblur.physics import DefocusPipeline, Domain, conv2d, defocus_kernel, estimate_noise_sigma, rfft2


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


def _wiener_reference(y: torch.Tensor, kernel: torch.Tensor, lam: float) -> np.ndarray:
    """The bank's formula written again in NumPy on the same periodic extension: the disk's transfer function from
    its centred, zero-padded taps, and |D|^2 of two first differences, 4 - 2 cos(wu) - 2 cos(wv)."""
    domain = Domain(y.shape[-2:], kernel.shape, "valid")
    ext = domain.extend(y.double()).numpy()
    P, Q = domain.shape
    padded = np.zeros((P, Q))
    c = kernel.shape[-1] // 2
    padded[:kernel.shape[0], :kernel.shape[1]] = kernel.double().numpy()
    K = np.fft.fft2(np.roll(padded, (-c, -c), (0, 1)))
    u, v = np.meshgrid(2 * np.pi * np.arange(P) / P, 2 * np.pi * np.arange(Q) / Q, indexing="ij")
    D2 = 4 - 2 * np.cos(u) - 2 * np.cos(v)
    x = np.fft.ifft2(np.conj(K) * np.fft.fft2(ext) / (np.abs(K) ** 2 + lam * D2)).real
    return x[..., domain.top:domain.top + y.shape[-2], domain.left:domain.left + y.shape[-1]]


def test_disk_bank_is_the_photo_and_its_disk_inverses():
    bank = DiskWienerBank(radii=(0, 1.5, 3))
    y = torch.rand(2, 3, 30, 26, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = bank(y)
    assert out.shape == (2, 3, 3, 30, 26)
    assert torch.equal(out[:, 0], y)
    sigma = estimate_noise_sigma(y.double()).flatten()
    for j, r in ((1, 1.5), (2, 3.0)):
        for b in range(2):
            lam = 150.0 * (float(sigma[b]) + 0.002) ** 2
            want = _wiener_reference(y[b:b + 1], defocus_kernel(r, bank.size, dtype=torch.float64), lam)
            np.testing.assert_allclose(out[b:b + 1, j].numpy(), want, atol=2e-4)


def test_the_right_disk_inverse_recovers_the_photo():
    """Noise-free disk blur of radius 3: the bank's radius-3 inverse is the sharpest of its entries, by far."""
    x = _photo()
    y = conv2d(x, defocus_kernel(3.0, 17), "reflect")
    with torch.no_grad():
        out = DiskWienerBank()(y)
    inner = (..., slice(12, -12), slice(12, -12))

    def psnr(a):
        return float(-10 * torch.log10(((a - x)[inner] ** 2).mean()))

    radii = DiskWienerBank().radii.tolist()
    scores = {r: psnr(out[:, j]) for j, r in enumerate(radii)}
    assert max(scores, key=scores.get) == 3.0
    assert scores[3.0] > scores[0.0] + 6 and scores[3.0] > scores[1.0] + 3 and scores[3.0] > scores[6.0] + 3


@pytest.mark.parametrize("radius", [2.0, 4.0, 6.0])
def test_radial_spectrum_finds_the_first_zero_ring_of_the_disk(radius):
    """A disk of radius r zeroes the spectrum at rho = 0.6098 / r cycles per pixel (J1's first zero / 2 pi r):
    the photo-wide profile of a disk-blurred noise image dips in that ring."""
    rs = RadialSpectrum()
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(11))
    y = conv2d(x, defocus_kernel(radius, 17), "circular")
    local, whole = rs(y)
    assert local.shape == (1, rs.bins, 7, 7) and whole.shape == (1, rs.bins, 1, 1)
    ring = 0.6098 / radius / (0.5 * 2 ** 0.5)  # in radial_frequency's units (1 = the spectrum's corner)
    want = int(ring / 0.5 * rs.bins)
    p = whole.flatten().tolist()
    # the first clear dip: a ring at least 0.5 (log power) below the mean of the rings two steps either side
    dips = [i for i in range(2, rs.bins - 2) if p[i] <= min(p[i - 1], p[i + 1]) and (p[i - 2] + p[i + 2]) / 2 - p[i] > 0.5]
    assert dips and abs(dips[0] - want) <= 1


def test_hat_weights_interpolate_between_two_neighbours():
    ladder = torch.tensor([0.0, 1.0, 1.5, 2.0, 4.0, 8.0])
    r = torch.tensor([-2.0, 0.0, 0.25, 1.2, 1.5, 3.0, 7.999, 8.0, 11.0]).view(1, 1, 1, -1)
    w = hat_weights(r, ladder)
    torch.testing.assert_close(w.sum(1), torch.ones(1, 1, 9))
    assert bool((w >= 0).all()) and int((w > 0).sum(1).max()) <= 2
    # the weighted ladder gives the radius back (clamped to the ladder's range)
    torch.testing.assert_close((w * ladder.view(1, -1, 1, 1)).sum(1), r.clamp(0, 8)[:, 0])
    assert torch.equal(w[0, :, 0, 5], torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.0]))


def test_selection_inverts_the_chosen_disk_and_reports_its_radius():
    net = _net().eval()
    j = net.bank.radii.tolist().index(3.0)
    with torch.no_grad():  # every pixel, every scale: all weight on the radius-3 inverse
        for conv in (net.select.spatial[-1], net.select.frequency[-1]):
            conv.weight.zero_()
            conv.bias.fill_(-30.0)
            conv.bias[j] = 30.0
        net.out.weight.zero_()
        net.out.bias.zero_()
    y = _photo()[..., :64, :64]
    out = net.forward_train(y)
    three = torch.full_like(out["radius_map"], 3.0)
    torch.testing.assert_close(out["radius_map"], three)
    # the coarse scales read the one-shot bank at that radius, the full scale deconvolves there (DiskHQS)
    torch.testing.assert_close(out["outputs"][-1][0], net.deconv(y, three), atol=1e-5, rtol=0)
    half = F.interpolate(net.bank(y)[:, j], scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(out["outputs"][-2][0], half, atol=1e-4, rtol=0)


def _photo() -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(data.astronaut()[100:228, 150:278].copy()).permute(2, 0, 1)[None].float() / 255
    return img


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


def test_random_lenses_are_seeded_and_change_only_when_asked():
    x = torch.rand(4, 3, 40, 40, generator=torch.Generator().manual_seed(9), dtype=torch.float64)

    def run(**kw):
        return DefocusPipeline((2.0, 4.0), uniform_prob=1.0, margin=4, **kw)(x, generator=torch.Generator().manual_seed(10))

    ideal, lenses, again = run(), run(aberration_prob=1.0), run(aberration_prob=1.0)
    assert torch.equal(lenses["blurred"], again["blurred"])
    torch.testing.assert_close(lenses["radius"], ideal["radius"])  # the same disks, through other lenses
    assert bool(((lenses["blurred"] - ideal["blurred"]).abs().flatten(1).amax(1) > 1e-3).all())
    assert torch.equal(run(aberration_prob=0.0)["blurred"], ideal["blurred"])
    with pytest.raises(InputError, match="aberration_prob"):
        DefocusPipeline((1.0, 4.0), aberration_prob=1.5)


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
