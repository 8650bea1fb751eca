"""The tiler: exact for position-independent functions, seamless for conv nets, memory-based tile size."""
import pytest
import torch
import torch.nn as nn

from unblur.inference.tiling import (
    available_memory,
    choose_tile_size,
    probe_memory,
    tile_starts,
    tile_window,
    tiled_apply,
    window_starts,
)


def _net(radius_layers=3, seed=0, padding_mode="zeros"):
    torch.manual_seed(seed)
    layers = []
    ch = 3
    for i in range(radius_layers):
        out = 3 if i == radius_layers - 1 else 8
        layers.append(nn.Conv2d(ch, out, 3, padding=1, padding_mode=padding_mode))
        if i < radius_layers - 1:
            layers.append(nn.GELU())
        ch = out
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("shape", [(1, 3, 100, 70), (2, 1, 37, 129), (1, 3, 20, 20), (1, 3, 64, 64)])
@pytest.mark.parametrize("batch", [1, 3])
def test_identity_and_pointwise_are_exact(shape, batch):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tiled_apply(lambda t: t, x, tile=32, overlap=8, batch=batch), x)

    def f(t):
        return torch.relu(t * 3.0) - 0.5

    assert torch.equal(tiled_apply(f, x, tile=32, overlap=12, multiple=4, batch=batch), f(x))


def test_channel_change_and_small_image():
    x = torch.rand(2, 1, 10, 12)
    y = tiled_apply(lambda t: t.expand(-1, 3, -1, -1) * 2, x, tile=512)  # smaller than a tile: one call
    assert torch.equal(y, x.expand(-1, 3, -1, -1) * 2)
    y = tiled_apply(lambda t: t.repeat(1, 3, 1, 1), x, tile=8, overlap=4)
    assert y.shape == (2, 3, 10, 12) and torch.equal(y, x.repeat(1, 3, 1, 1))


def test_tile_cover_and_windows():
    for n, t, o in [(100, 32, 8), (33, 32, 8), (500, 64, 16), (64, 64, 16), (10, 32, 8)]:
        starts = tile_starts(n, t, o)
        assert starts[0] == 0 and starts[-1] + min(t, n) == n
        assert all(b - a <= t - o for a, b in zip(starts, starts[1:]))  # overlap at least o
    w = tile_window(32, 16, lead=True, trail=True)
    assert w.min() == 0 and w.max() == 1 and torch.equal(w, w.flip(0))
    assert torch.all(w[:4] == 0) and torch.all(w[4:16] > 0) and torch.all(torch.diff(w[:16]) >= 0)
    assert torch.equal(tile_window(32, 16, lead=False, trail=False), torch.ones(32))
    # Two neighbours overlapping by exactly `overlap`: every pixel has positive total weight.
    a, b = tile_window(32, 16, False, True), tile_window(32, 16, True, False)
    total = torch.zeros(48)
    total[:32] += a
    total[16:] += b
    assert total.min() > 0


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_small_conv_net_matches_whole_image(padding_mode):
    # Receptive-field radius 3 <= overlap // 4: the tiled result equals the whole-image one everywhere.
    net = _net(3, padding_mode=padding_mode)
    x = torch.rand(2, 3, 90, 77, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = net(x)
        tiled = tiled_apply(net, x, tile=32, overlap=16, batch=4)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5


def test_no_seams_for_large_receptive_field():
    # A position-dependent fn (adds its tile's mean): blending must cross-fade, never step, at seams.
    x = torch.linspace(0, 1, 200).repeat(1, 1, 8, 1)  # smooth horizontal ramp (1, 1, 8, 200)

    def fn(t):
        return t + 0.2 * t.mean(dim=(-2, -1), keepdim=True)

    y = tiled_apply(fn, x, tile=64, overlap=32)
    grad = torch.diff(y[0, 0, 4])
    ref = torch.diff(x[0, 0, 4])
    # Tile means differ by ~0.1 between neighbours: the jump is spread over >= 16 pixels.
    assert grad.abs().max() < 0.2 * 0.2 / 8 + ref.abs().max() * 1.3
    # Deep conv net (receptive field larger than the overlap): whole vs tiled stay close everywhere,
    # and the horizontal gradient of the difference has no step at the seams.
    net = _net(12)
    xi = torch.rand(1, 3, 40, 150, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole, tiled = net(xi), tiled_apply(net, xi, tile=48, overlap=24)
    diff = tiled - whole
    assert diff.abs().max() < 0.05 * whole.abs().max()
    assert torch.diff(diff, dim=-1).abs().max() < 0.02 * whole.abs().max()


def test_fn_must_keep_size():
    with pytest.raises(ValueError):
        tiled_apply(lambda t: t[..., :-1, :], torch.rand(1, 1, 50, 50), tile=32, overlap=8)


def test_probe_and_choose_tile_size():
    net = _net(3)
    net.size_multiple = 8
    x = torch.rand(1, 3, 300, 500)
    with torch.no_grad():
        peak = probe_memory(net, torch.rand(1, 3, 64, 64))
    assert peak >= 64 * 64 * 8 * 4  # at least one 8-channel float32 activation
    assert available_memory("cpu") > 0
    assert choose_tile_size(net, x, "cpu", budget_bytes=1 << 40) == 504  # whole image fits: covers it
    small = choose_tile_size(net, x, "cpu", budget_bytes=4 << 20)
    assert small % 8 == 0 and 64 <= small < 500
    bigger = choose_tile_size(net, x, "cpu", budget_bytes=16 << 20)
    assert small < bigger <= 504
    # Roughly twice the side for four times the memory.
    assert 1.5 < bigger / small < 2.5
    assert choose_tile_size(net, x, "cpu", budget_bytes=1) == 64  # floor


# --------------------------------------------------------------------------- window mode (inside models)


def _frozen_windowed_apply(fn, x, window, overlap=0, group=None):
    """The window tiler as it stood inside ``models/deeprftv2.py`` before it moved to the one tiler (frozen copy:
    the reference that the moved implementation must reproduce; all windows in one call, whatever ``group``)."""

    def starts(n, w, o):
        w = min(w, n)
        if w >= n:
            return [0]
        s = list(range(0, n - w + 1, w - o))
        if s[-1] != n - w:
            s.append(n - w)
        return s

    def ramp_weights(start, length, n, o, device, dtype):
        w = torch.ones(length, device=device, dtype=dtype)
        if o > 0:
            r = torch.arange(1, o + 1, device=device, dtype=dtype) / (o + 1)
            if start > 0:
                w[:o] = torch.minimum(w[:o], r)
            if start + length < n:
                w[-o:] = torch.minimum(w[-o:], r.flip(0))
        return w

    B, C, H, W = x.shape
    if window is None or (H <= window and W <= window):
        return fn(x)
    wh, ww = min(window, H), min(window, W)
    oy, ox = min(overlap, wh - 1), min(overlap, ww - 1)
    boxes = [(y0, x0) for y0 in starts(H, wh, oy) for x0 in starts(W, ww, ox)]
    patches = torch.stack([x[..., y0:y0 + wh, x0:x0 + ww] for y0, x0 in boxes], 1)
    out = fn(patches.reshape(B * len(boxes), C, wh, ww))
    out = out.reshape(B, len(boxes), *out.shape[1:])
    acc = out.new_zeros(B, out.shape[2], H, W)
    wsum = out.new_zeros(H, W)
    for k, (y0, x0) in enumerate(boxes):
        wk = ramp_weights(y0, wh, H, oy, out.device, out.dtype)[:, None] * ramp_weights(
            x0, ww, W, ox, out.device, out.dtype)[None, :]
        acc[..., y0:y0 + wh, x0:x0 + ww] += out[:, k] * wk
        wsum[y0:y0 + wh, x0:x0 + ww] += wk
    return acc / wsum


def test_window_mode_matches_the_frozen_model_tiler_on_shipped_deeprftv2(monkeypatch):
    """DeepRFTv2's per-window FKE now runs through ``unblur.inference.tiling.windowed_apply``: with the shipped
    weights and windows small enough to be used (4+ overlapping windows per FKE), the model output equals the one
    computed with the frozen copy of the former in-model tiler, to 1e-6."""
    import unblur.models as M
    import unblur.models.deeprftv2 as D
    from unblur.inference.tiling import windowed_apply

    names = [n for n in M.list_models(pretrained=True) if n.startswith("deeprftv2-tiny")]
    if not names:
        pytest.skip("deeprftv2-tiny weights are not shipped")
    assert D.windowed_apply is windowed_apply  # the model uses the one tiler, no copy of its own
    model = M.create(names[0], pretrained=True, windows=(32, 16), overlaps=(8, 4))
    x = torch.rand(1, 3, 72, 56, generator=torch.Generator().manual_seed(3))
    calls = []

    def counting(fn, t, window, overlap=0, group=None):
        calls.append((tuple(t.shape[-2:]), window, group))
        return windowed_apply(fn, t, window, overlap, group=group)

    monkeypatch.setattr(D, "windowed_apply", counting)
    with torch.inference_mode():
        new = model(x)
    assert any(max(hw) > w for hw, w, _ in calls)  # windowing was active, not the whole-image shortcut
    assert {g for _, _, g in calls} == {D.FourierKernelEstimator.eval_group}  # in groups at inference
    monkeypatch.setattr(D, "windowed_apply", _frozen_windowed_apply)
    with torch.inference_mode():
        old = model(x)
    torch.testing.assert_close(new, old, atol=1e-6, rtol=0)
    # Negative control: another overlap changes the output by far more than the tolerance.
    monkeypatch.setattr(D, "windowed_apply",
                        lambda fn, t, window, overlap=0, group=None: _frozen_windowed_apply(fn, t, window, 0))
    with torch.inference_mode():
        other = model(x)
    assert (other - old).abs().max() > 1e-4


def test_local_mean_matches_a_brute_force_window_mean():
    from unblur.models.blocks import local_mean

    x = torch.rand(2, 3, 11, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = local_mean(x, (4, 7))
    ref = torch.empty_like(x)
    for i in range(11):
        i0 = min(max(i - 2, 0), 11 - 4)  # window of 4 around i, shifted to stay inside
        for j in range(17):
            j0 = min(max(j - 3, 0), 17 - 7)
            ref[..., i, j] = x[..., i0:i0 + 4, j0:j0 + 7].mean((-2, -1))
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(local_mean(x, (50, 50)), x.mean((-2, -1), keepdim=True).expand_as(x))
    # large windows: computed on a pooled map; on a smooth map within a small fraction of the local variation
    yy, xx = torch.meshgrid(torch.linspace(0, 3, 200), torch.linspace(0, 5, 260), indexing="ij")
    smooth = (torch.sin(yy) * torch.cos(xx))[None, None].double()
    exact = local_mean(smooth, (64, 96), cells=10 ** 9)
    assert (local_mean(smooth, (64, 96)) - exact).abs().max() < 0.05 * (exact.max() - exact.min())


@pytest.mark.parametrize("window", [(4, 7), (40, 60), (50, 50)])
def test_local_mean_applies_a_linear_map_on_the_means_before_spreading_them(window):
    """``transform`` (a 1x1 convolution) runs on the small map of means and gives what it gives on the full
    map, for the three paths (step 1, pooled and interpolated, global); the result keeps x's memory format."""
    from unblur.models.blocks import local_mean

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 45, 50, generator=g)
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        ref = conv(local_mean(x, window))
        got = local_mean(x, window, transform=conv)
        torch.testing.assert_close(got.expand_as(ref), ref, atol=1e-6, rtol=0)
        xc = x.contiguous(memory_format=torch.channels_last)
        got_cl = local_mean(xc, window, transform=conv)
    torch.testing.assert_close(got_cl.expand_as(ref), ref, atol=1e-6, rtol=0)
    if window == (40, 60):  # the interpolated map comes out in the input's layout
        assert got_cl.is_contiguous(memory_format=torch.channels_last) and not got_cl.is_contiguous()


def test_windowed_apply_keeps_channels_last_and_its_values():
    from unblur.inference.tiling import windowed_apply

    x = torch.rand(2, 4, 30, 41, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.Conv2d(4, 5, 3, padding=1)
    with torch.no_grad():
        ref = _frozen_windowed_apply(conv, x, 16, 4)
        got = windowed_apply(conv, x.contiguous(memory_format=torch.channels_last), 16, 4)
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("group", [1, 2, 5])
def test_windowed_apply_in_groups_gives_the_same_result_with_at_most_group_windows_per_call(group):
    from unblur.inference.tiling import windowed_apply

    x = torch.rand(2, 4, 30, 41, generator=torch.Generator().manual_seed(1))
    conv = torch.nn.Conv2d(4, 5, 3, padding=1)
    sizes = []

    def fn(t):
        sizes.append(t.shape[0])
        return conv(t)

    with torch.no_grad():
        ref = _frozen_windowed_apply(conv, x, 16, 4)
        got = windowed_apply(fn, x, 16, 4, group=group)
    n_windows = len(window_starts(30, 16, 4)) * len(window_starts(41, 16, 4))
    assert sum(sizes) == 2 * n_windows and max(sizes) == 2 * min(group, n_windows)  # batch 2: 2 entries a window
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="group"):
        windowed_apply(conv, x, 16, 4, group=0)


def _astronaut(size: int) -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.astronaut()[:size, :size].copy()).permute(2, 0, 1).float()[None] / 255


def test_local_statistics_only_in_eval_on_inputs_larger_than_the_window():
    import unblur.models as M

    net = M.create("nafnet-tiny").eval()
    net.stats_window = 32
    seen = []
    net.encoders[0][0].sca.register_forward_pre_hook(lambda m, a: seen.append(m.local_fraction))
    with torch.inference_mode():
        net(torch.rand(1, 3, 64, 128))
        net(torch.rand(1, 3, 32, 32))
    net.train()
    net(torch.rand(1, 3, 64, 128))
    assert seen == [(0.5, 0.25), None, None]
    assert net.encoders[0][0].sca.local_fraction is None  # reset after the call


def test_tiled_shipped_deeprftv2_agrees_with_the_whole_image_with_local_statistics():
    """DeepRFTv2's global pieces (one Fourier kernel estimate per map, channel attention over the whole map) make
    tiles differ from the whole photo; with local statistics (TLC: windows smaller than the tiles) they agree
    better. On a 480 px photo, 256 px tiles (overlap 32), window 128: 31.1 dB -> 35.7 dB
    (benchmarks/tiling_agreement.md)."""
    import unblur.models as M
    from unblur.metrics import psnr

    name = "deeprftv2-tiny.motion"
    if name not in M.list_models(pretrained=True):
        pytest.skip("weights not shipped")
    net = M.create(name, pretrained=True)
    img = _astronaut(480)
    agreement = {}
    for window in (None, 128):
        net.stats_window = window
        with torch.inference_mode():
            whole = net(img).clamp(0, 1)
            tiled = tiled_apply(net, img, tile=256, overlap=32, multiple=net.size_multiple).clamp(0, 1)
        agreement[window] = psnr(tiled, whole).item()
    assert agreement[128] > 35 and agreement[128] > agreement[None] + 3, agreement


def test_tile_progress_reports_every_tile_inside_its_block_only(monkeypatch):
    import tqdm

    from unblur.inference.tiling import tile_progress

    bars = []

    class Bar:
        def __init__(self, total, desc, **kw):
            self.total, self.desc, self.done = total, desc, 0
            bars.append(self)

        def update(self, n):
            self.done += n

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    x = torch.rand(1, 1, 100, 70)
    tiled_apply(lambda t: t, x, tile=40, overlap=8)
    assert bars == []  # no bar outside a tile_progress block
    with tile_progress("photo.png"):
        tiled_apply(lambda t: t, x, tile=40, overlap=8, batch=2)
        tiled_apply(lambda t: t, x, tile=128, overlap=8)  # one tile: nothing to report
    with tile_progress("quiet.png", enabled=False):
        tiled_apply(lambda t: t, x, tile=40, overlap=8)
    n = len(tile_starts(100, 40, 8)) * len(tile_starts(70, 40, 8))
    assert [(b.desc, b.total, b.done) for b in bars] == [("photo.png", n, n)]


def test_cpu_activation_budget_is_capped(monkeypatch):
    from unblur.inference import tiling

    monkeypatch.setattr(tiling, "CPU_ACTIVATION_LIMIT", 1 << 20)
    assert available_memory("cpu") <= 1 << 20


def test_tile_progress_callback_counts_every_tile():
    from unblur.inference.tiling import tile_progress

    seen = []
    x = torch.rand(1, 3, 70, 90)
    with tile_progress("t", enabled=False, callback=lambda done, total: seen.append((done, total))):
        out = tiled_apply(lambda t: t * 2, x, tile=32, overlap=8)
    torch.testing.assert_close(out, x * 2)
    total = seen[-1][1]
    assert total > 1 and [d for d, _ in seen] == list(range(1, total + 1)) and {t for _, t in seen} == {total}
    tiled_apply(lambda t: t, x, tile=32, overlap=8)  # outside the block: no calls
    assert len(seen) == total
