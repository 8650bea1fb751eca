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
