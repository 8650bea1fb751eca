"""The restore API: classical methods and networks through one code path, files in and out."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import unblur
from unblur.errors import InputError
from unblur.inference import tiling
from unblur.inference.restore import RestoreResult, restore, restore_file
from unblur.models.base import RestorationModel
from unblur.physics.conv import conv2d


def _scene(c=3, h=48, w=48, seed=0):
    """Smooth random scene with edges (blobs + a bar) in [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.zeros(c, h, w)
    for ch in range(c):
        for _ in range(4):
            cy, cx, s, a = torch.rand(4, generator=g)
            img[ch] += a * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 + 0.05 * s))
        img[ch] += 0.5 * ((xx > 0.3) & (xx < 0.6)).float()
    img = img - img.amin((1, 2), keepdim=True)
    return 0.1 + 0.8 * img / img.amax((1, 2), keepdim=True)


def _blurred(c=3, size=48, k=5, seed=0):
    sharp = _scene(c, size + k - 1, size + k - 1, seed)[None]
    kernel = torch.zeros(k, k)
    kernel[k // 2, :] = 1.0
    kernel[k // 2 - 1, k // 2] = 1.0
    kernel /= kernel.sum()
    blurred = conv2d(sharp, kernel, mode="valid")
    c0 = k // 2
    return blurred, sharp[..., c0:c0 + size, c0:c0 + size], kernel


class _TinyNet(RestorationModel):
    """A 3x3 conv net (receptive-field radius 2) with kernels, multiple of 4."""

    size_multiple = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        self.calls = []

    def _forward(self, x):
        self.calls.append(tuple(x.shape))
        return [(x + 0.1 * self.body(x), 1.0)]

    def estimate_kernels(self, x, size=65):
        return torch.full((x.shape[0], 2, size, size), 1.0 / size**2)


def test_exports():
    assert callable(unblur.restore) and callable(unblur.restore_file)
    assert callable(unblur.read_image) and callable(unblur.write_image)
    assert unblur.__version__
    assert unblur.RestoreResult is RestoreResult


@pytest.mark.parametrize("method", ["wiener", "hqs-tv", "hqs-hl", "richardson-lucy"])
def test_non_blind_methods_improve(method):
    blurred, sharp, kernel = _blurred()
    res = restore(blurred[0], method=method, kernel=kernel)  # (C, H, W) accepted
    assert res.image.shape == (1, 3, 48, 48) and res.image.dtype == torch.float32
    assert 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    err_in = (blurred - sharp)[..., 6:-6, 6:-6].abs().mean()
    err_out = (res.image - sharp)[..., 6:-6, 6:-6].abs().mean()
    assert err_out < err_in


def test_default_is_blind_l0_and_returns_kernel():
    blurred, _, _ = _blurred(c=1)
    res = restore(blurred, options={"kernel_size": 7})
    assert res.image.shape == blurred.shape
    assert res.kernel is not None and float(res.kernel.sum()) == pytest.approx(1.0, abs=1e-3)


def test_kernel_without_method_is_hqs_hl():
    blurred, _, kernel = _blurred()
    assert torch.equal(restore(blurred, kernel=kernel).image, restore(blurred, method="hqs-hl", kernel=kernel).image)


def test_argument_errors():
    blurred, _, kernel = _blurred()
    with pytest.raises(InputError):
        restore(blurred, method="wiener", model=_TinyNet(), kernel=kernel)
    with pytest.raises(InputError):
        restore(torch.rand(48, 48))  # 2-D image
    with pytest.raises(InputError):
        restore(blurred, method="wiener", kernel=torch.ones(3, 5, 5))  # wrong kernel shape
    with pytest.raises(InputError):
        restore(blurred, method="wiener", kernel=torch.ones(60, 60) / 3600)  # kernel larger than image
    with pytest.raises(InputError):
        restore(blurred, model=_TinyNet(), precision="fp8")
    with pytest.raises(InputError):
        restore(blurred, model=_TinyNet(), kernel=kernel)


def test_model_whole_and_tiled_agree_and_gray_is_replicated():
    net = _TinyNet()
    x = torch.rand(2, 3, 70, 90, generator=torch.Generator().manual_seed(1))
    whole = restore(x, model=net, tile=None)
    assert net.calls[-1] == (2, 3, 72, 92)  # padded to the multiple inside the model
    tiled = restore(x, model=net, tile=32)
    assert all(s[-2:] == (32, 32) for s in net.calls[-6:])
    # Equal up to the model's own bottom/right padding (reflect when whole, none in edge tiles).
    assert (whole.image - tiled.image)[..., :-2, :-2].abs().max() < 1e-5
    x = x[..., :68, :88]  # multiples of 4: no padding anywhere, equal everywhere
    assert (restore(x, model=net, tile=None).image - restore(x, model=net, tile=32).image).abs().max() < 1e-5
    assert whole.kernel.shape == (2, 2, 65, 65)
    # Grayscale: replicated to RGB, averaged back.
    g = x[:, :1]
    res = restore(g, model=net, tile=None, precision="bf16")  # bf16 is ignored on CPU
    ref = net(g.expand(-1, 3, -1, -1)).clamp(0, 1).mean(1, keepdim=True)
    assert res.image.shape == (2, 1, 68, 88) and res.image.dtype == torch.float32
    assert torch.allclose(res.image, ref, atol=1e-6)
    assert restore(x, model=net, estimate_kernel=False).kernel is None


def test_auto_tiles_when_memory_is_short(monkeypatch):
    net = _TinyNet()
    x = torch.rand(1, 3, 200, 160, generator=torch.Generator().manual_seed(2))
    whole = restore(x, model=net, tile=None).image
    monkeypatch.setattr(tiling, "available_memory", lambda device: 500_000)
    net.calls.clear()
    auto = restore(x, model=net, tile="auto").image
    assert len(net.calls) > 3 and max(s[-2] for s in net.calls[1:]) < 160  # probe + several tiles
    assert (auto - whole).abs().max() < 1e-5


def test_auto_falls_back_to_smaller_tiles_on_out_of_memory():
    class Picky(_TinyNet):
        def _forward(self, x):
            if x.shape[-1] * x.shape[-2] > 130 * 130:  # the 128x128 probe passes
                raise torch.cuda.OutOfMemoryError("pretend")
            return super()._forward(x)

    net = Picky()
    x = torch.rand(1, 3, 120, 200, generator=torch.Generator().manual_seed(4))
    out = restore(x, model=net, tile="auto").image  # whole image fits the budget but "runs out of memory"
    assert net.calls[0][-2:] == (128, 128) and max(s[-1] for s in net.calls[1:]) <= 100  # probe, then tiles
    assert (out - restore(x, model=_TinyNet(), tile=100).image).abs().max() < 1e-5
    with pytest.raises(torch.cuda.OutOfMemoryError):
        restore(x, model=net, tile=None)


def test_unknown_or_unshipped_model():
    with pytest.raises(InputError):
        restore(torch.rand(3, 32, 32), model="no-such-model")
    from unblur.models import list_models

    missing = [n for n in list_models() if n not in list_models(pretrained=True)]
    if missing:
        with pytest.raises(InputError, match="weights"):
            restore(torch.rand(3, 32, 32), model=missing[0])


def test_restore_file_outputs(tmp_path):
    blurred, _, kernel = _blurred()
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    Image.fromarray((blurred[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(src)
    np.save(tmp_path / "k.npy", kernel.numpy())
    out = tmp_path / "out"
    written = restore_file(src, out, method="wiener", kernel=tmp_path / "k.npy", save_kernel=True, side_by_side=True)
    assert written == [out / "photo.png", out / "photo_kernel.png", out / "photo_before_after.png"]
    assert Image.open(out / "photo.png").size == (48, 48)
    assert Image.open(out / "photo_before_after.png").size[0] > 2 * 48
    # Never over the input, even with overwrite.
    before = src.read_bytes()
    with pytest.raises(InputError):
        restore_file(src, src.parent, method="wiener", kernel=kernel, overwrite=True)
    assert src.read_bytes() == before
    # Existing outputs are kept unless overwrite.
    stamp = (out / "photo.png").read_bytes()
    with pytest.raises(InputError, match="exists"):
        restore_file(src, out, method="hqs-tv", kernel=kernel)
    assert (out / "photo.png").read_bytes() == stamp
    restore_file(src, out, method="richardson-lucy", kernel=kernel, overwrite=True)
    assert (out / "photo.png").read_bytes() != stamp


def test_five_line_example(tmp_path):
    blurred, _, _ = _blurred()
    Image.fromarray((blurred[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(tmp_path / "b.png")
    photo = unblur.read_image(tmp_path / "b.png")
    result = unblur.restore(photo.data, method="blind-l0", options={"kernel_size": 7})  # small kernel: fast test
    unblur.write_image(tmp_path / "sharp.png", result.image[0])
    assert (tmp_path / "sharp.png").is_file()


def test_the_default_is_a_classical_method_or_a_network(monkeypatch):
    """With neither method nor model, ``restore`` runs the default: a classical method, or a shipped network when
    the default names a weight set; with a kernel, the non-blind default."""
    import unblur.inference.restore as R

    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert R.default_choice(True) == (R.NON_BLIND_DEFAULT, None)
    monkeypatch.setattr(R, "DEFAULT_METHOD", "nafnet-tiny.motion")
    assert R.default_choice(False) == (None, "nafnet-tiny.motion")
    torch.testing.assert_close(R.restore(x).image, R.restore(x, model="nafnet-tiny.motion").image)
    monkeypatch.setattr(R, "DEFAULT_METHOD", "wiener")
    assert R.default_choice(False) == ("wiener", None)


@pytest.mark.parametrize("name,stats_window", [("deeprftv2-tiny", None), ("deeprftv2-tiny", 40),
                                               ("nafnet-tiny", None), ("nafnet-tiny", 40)])
def test_cpu_channels_last_path_gives_the_same_photo(name, stats_window):
    """restore's channels-last CPU path changes memory layout only: the photo is the same to float rounding.
    ``stats_window=40``: the photo is larger than the statistics window, so the local channel statistics (pooled
    means, the 1x1 convolution on the pooled map) and DeepRFTv2's per-window kernel estimator (windows stacked in
    channels-last, interleaved Fourier channels, the fusion as two convolutions) run too."""
    from unblur.models import create

    torch.manual_seed(0)
    net = create(name).eval()
    if stats_window is not None:
        net.stats_window = stats_window
    with torch.no_grad():  # random weights with non-zero residual scales, so every layer matters
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(1))
    net.cpu_channels_last = False
    plain = unblur.restore(x, model=net, tile=None).image
    net.cpu_channels_last = True
    fast = unblur.restore(x, model=net, tile=None).image
    assert (plain - x).abs().max() > 1e-3  # the network does something
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)


_FAULTS_SCRIPT = """
import resource, torch
from unblur.inference.cpu import reuse_freed_memory
applied = reuse_freed_memory()
import unblur
from unblur.models import create
net = create("nafnet-tiny").eval()
x = torch.rand(3, 512, 512)
def faults_of_one_photo():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    unblur.restore(x, model=net, tile=None)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_photo()  # the first photo grows the heap
print(applied, faults_of_one_photo())
"""


def test_reuse_freed_memory_keeps_large_blocks_mapped():
    """In a fresh process (as the command line calls it), after reuse_freed_memory a second photo reuses the first
    one's memory without page faults; with UNBLUR_SYSTEM_MALLOC=1 (glibc's defaults) its large feature maps are
    mapped afresh (about 50,000 page faults for a 512 px photo through nafnet-tiny)."""
    import os
    import platform
    import subprocess
    import sys

    def run(env_value: str) -> tuple[str, int]:
        env = {**os.environ, "UNBLUR_SYSTEM_MALLOC": env_value, "OMP_NUM_THREADS": "2"}
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True, env=env,
                             timeout=120, check=True).stdout.split()
        return out[0], int(out[1])

    applied, reused = run("0")
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        assert applied == "False"
        return
    applied_default, mapped = run("1")
    assert applied == "True" and applied_default == "False"
    # alone: 0 against about 50,000; a busy machine adds some faults of its own to both
    assert mapped > 20_000 and reused * 3 < mapped, (reused, mapped)
