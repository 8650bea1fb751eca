"""DeepRFTv2 pieces: chunked selective scan, reversible columns, Fourier Kernel Estimator, windows, model."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import unblur.models as M
from unblur.models.blocks import NAFBlock
from unblur.inference.tiling import window_starts, windowed_apply
from unblur.models.deeprftv2 import (
    FourierKernelEstimator,
    NAFEVSBlock,
    _orient,
    _unorient,
)
from unblur.models.reversible import ReversibleColumn, clamp_alpha
from unblur.models.selective_scan import linear_recurrence, selective_scan, selective_scan_reference


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _scan_inputs(b=2, d=5, n=4, L=37, groups=None, dtype=torch.float32, seed=0):
    g = _gen(seed)
    shape_bc = (b, n, L) if groups is None else (b, groups, n, L)
    t = dict(
        u=torch.randn(b, d, L, generator=g),
        delta=torch.randn(b, d, L, generator=g) * 0.5,
        A=-torch.rand(d, n, generator=g) * 3 - 0.1,
        B=torch.randn(*shape_bc, generator=g),
        C=torch.randn(*shape_bc, generator=g),
        D=torch.randn(d, generator=g),
        z=torch.randn(b, d, L, generator=g),
        delta_bias=torch.randn(d, generator=g) * 0.5,
    )
    return {k: v.to(dtype) for k, v in t.items()}


# ------------------------------------------------------------------------------------------------ selective scan


@pytest.mark.parametrize("chunk", [2, 3, 4, 16, 64])
@pytest.mark.parametrize("L", [1, 37, 64, 130])
def test_chunked_scan_matches_sequential_reference(chunk, L):
    t = _scan_inputs(L=L)
    y = selective_scan(**t, delta_softplus=True, chunk_size=chunk)
    ref = selective_scan_reference(**t, delta_softplus=True)
    torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunk", [4, 7])
def test_chunked_scan_groups_no_d_no_z_last_state(chunk):
    t = _scan_inputs(d=6, L=50, groups=3)
    for k in ("D", "z", "delta_bias"):
        t.pop(k)
    y, h = selective_scan(**t, chunk_size=chunk, return_last_state=True)
    ry, rh = selective_scan_reference(**t, return_last_state=True)
    torch.testing.assert_close(y, ry, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h, rh, atol=1e-4, rtol=1e-4)
    assert h.shape == (2, 6, 4)


@pytest.mark.parametrize("groups", [None, 1, 3])
@pytest.mark.parametrize("L", [1, 16, 50])
def test_inference_scan_equals_the_differentiable_path(groups, L, monkeypatch):
    """Without gradients the scan takes its inference layout (positions in chunk first, in-place updates); with
    gradients the general one: same outputs and last states, whatever the grouping and padding."""
    import unblur.models.selective_scan as S

    calls = []
    inference = S._scan_no_grad
    monkeypatch.setattr(S, "_scan_no_grad", lambda *a: calls.append(1) or inference(*a))
    t = _scan_inputs(d=6, L=L, groups=groups)
    with torch.no_grad():
        y0, h0 = selective_scan(**t, delta_softplus=True, chunk_size=4, return_last_state=True)
    t["u"].requires_grad_()
    y1, h1 = selective_scan(**t, delta_softplus=True, chunk_size=4, return_last_state=True)
    assert calls == [1]  # the inference path ran once, the differentiable one the second time
    ry, rh = selective_scan_reference(**t, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(y0, y1.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h0, h1.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y0, ry.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h0, rh.detach(), atol=1e-4, rtol=1e-4)


def test_chunked_scan_strong_decay_is_finite_and_exact():
    # log-decays of -500 per step: a naive exp(-cumsum) formulation would overflow.
    t = _scan_inputs(L=70)
    t["A"] = t["A"] * 100
    t["delta"] = t["delta"].abs() + 1
    t.pop("delta_bias")
    y = selective_scan(**t, chunk_size=16)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, selective_scan_reference(**t), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunk", [2, 5, 16])
def test_chunked_scan_gradients_match_reference(chunk):
    def run(fn, **kw):
        t = {k: v.requires_grad_() for k, v in _scan_inputs(L=29, dtype=torch.float64).items()}
        y = fn(**t, delta_softplus=True, **kw)
        w = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
        (y * w).sum().backward()
        return {k: v.grad for k, v in t.items()}

    got, ref = run(selective_scan, chunk_size=chunk), run(selective_scan_reference)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-9, rtol=1e-7, msg=k)


def test_chunked_scan_gradients_float32():
    def run(fn, **kw):
        t = {k: v.requires_grad_() for k, v in _scan_inputs(L=45).items()}
        fn(**t, delta_softplus=True, **kw).square().mean().backward()
        return {k: v.grad for k, v in t.items()}

    got, ref = run(selective_scan, chunk_size=4), run(selective_scan_reference)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-4, rtol=1e-4, msg=k)


def test_linear_recurrence_gradcheck():
    g = _gen(3)
    la = (-torch.rand(3, 23, generator=g, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(3, 23, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, c: linear_recurrence(a, c, 4), (la, b))


def test_scan_cuda_kernel_only_on_request_where_available():
    t = _scan_inputs(L=8)
    selective_scan(**t)  # CPU: always the pure-PyTorch scan, whether or not mamba_ssm is installed
    with pytest.raises(RuntimeError, match="CUDA"):
        selective_scan(**t, use_cuda_kernel=True)


# ------------------------------------------------------------------------------------------------ reversible


class _ToyLevel(nn.Module):
    def __init__(self, src, c=4, p=0.2):
        super().__init__()
        self.src = src
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.drop = nn.Dropout(p)

    def forward(self, cur, prev):
        x = sum(cur[i] for i in self.src) + sum(prev)
        return self.drop(torch.tanh(self.conv(x)))


def _run_toy(reversible: bool):
    torch.manual_seed(0)
    cols = nn.ModuleList(
        ReversibleColumn(
            [_ToyLevel([0]), _ToyLevel([1]), _ToyLevel([1, 2]), _ToyLevel([0, 3])],
            [4, 4, 4, 4],
            has_prev=t > 0,
            reversible=reversible,
        )
        for t in range(3)
    )
    with torch.no_grad():
        for c in cols[1:]:
            for a in c.alphas:  # |alpha| in [0.3, 0.9], both signs (reconstruction divides by alpha)
                a.uniform_(0.3, 0.9).mul_(torch.randint(0, 2, a.shape).mul(2).sub(1))
    x = torch.randn(2, 4, 8, 8, generator=_gen(1)).requires_grad_()
    torch.manual_seed(5)  # dropout masks
    prev = None
    outs = []
    for c in cols:
        prev = c([x], prev)
        outs += prev
    loss = sum((o * torch.sin(torch.arange(o.numel(), dtype=o.dtype)).view_as(o)).sum() for o in outs)
    loss.backward()
    return outs, [p.grad for p in cols.parameters()], x.grad


def test_reversible_column_matches_stored_activations():
    o1, g1, x1 = _run_toy(True)
    o2, g2, x2 = _run_toy(False)
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x1, x2, atol=1e-4, rtol=1e-4)


def test_clamp_alpha():
    a = torch.tensor([0.5, -0.5, 1e-4, -1e-4, 0.0, 2e-3], requires_grad=True)
    c = clamp_alpha(a)
    torch.testing.assert_close(c.detach(), torch.tensor([0.5, -0.5, 1e-3, -1e-3, 1e-3, 2e-3]))
    c.sum().backward()
    torch.testing.assert_close(a.grad, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0]))


def _saved_bytes(fn) -> int:
    """Bytes of distinct storages that autograd keeps for backward while ``fn`` runs."""
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(storages.values()), out


def test_deeprftv2_reversible_equals_stored_and_saves_memory():
    torch.manual_seed(0)
    rev = M.create("deeprftv2-tiny", reversible=True).train()
    plain = M.create("deeprftv2-tiny", reversible=False).train()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for p in rev.parameters():  # wake up zero-initialised scales so that every path carries gradient
            if not p.any():
                p.normal_(0, 0.1)
    plain.load_state_dict(rev.state_dict())
    x = torch.rand(1, 3, 32, 24, generator=_gen(2))

    def loss(model):
        return sum(img.square().mean() for img, _ in model.forward_train(x)["outputs"])

    bytes_rev, l_rev = _saved_bytes(lambda: loss(rev))
    bytes_plain, l_plain = _saved_bytes(lambda: loss(plain))
    torch.testing.assert_close(l_rev, l_plain, atol=1e-6, rtol=1e-6)
    l_rev.backward()
    l_plain.backward()
    for (n, a), b in zip(rev.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-4, msg=n)
    assert bytes_rev < 0.5 * bytes_plain, (bytes_rev, bytes_plain)


def test_reversible_under_autocast_bf16():
    torch.manual_seed(0)
    model = M.create("deeprftv2-tiny").train()
    x = torch.rand(1, 3, 16, 16, generator=_gen(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(img.float().mean() for img, _ in model.forward_train(x)["outputs"])
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------------ blocks and FKE


@pytest.mark.parametrize("direction", range(4))
def test_scan_orientations_are_inverted(direction):
    x = torch.randn(1, 2, 5, 7)
    assert torch.equal(_unorient(_orient(x, direction), direction), x)


def test_nafevs_block_starts_as_nafblock():
    torch.manual_seed(0)
    evs = NAFEVSBlock(8, d_state=2, direction=1)
    naf = NAFBlock(8)
    naf.load_state_dict(evs.state_dict(), strict=False)
    with torch.no_grad():
        evs.beta.normal_()
        naf.beta.copy_(evs.beta)
        x = torch.randn(2, 8, 9, 11)
        torch.testing.assert_close(evs(x), naf(x))  # l_global = 0: the scan branch is off
        evs.l_global.fill_(0.5)
        assert not torch.allclose(evs(x), naf(x))


def test_fke_identity_otf_is_identity_filter():
    torch.manual_seed(0)
    fke = FourierKernelEstimator(6, levels=2, d_state=2).eval()  # head initialised to OTF = 1
    d = torch.randn(2, 6, 13, 10)
    with torch.no_grad():
        expected = fke.fuse(torch.cat([fke.conv_y(d), d], 1))
        torch.testing.assert_close(fke(d), expected, atol=1e-5, rtol=1e-5)
        fke.head.bias[:6].fill_(2.5)  # OTF = 2.5: f = 2.5 y
        expected = fke.fuse(torch.cat([2.5 * fke.conv_y(d), d], 1))
        torch.testing.assert_close(fke(d), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train", [True, False])
def test_fke_window_at_least_image_equals_whole_image(train):
    torch.manual_seed(0)
    fke = FourierKernelEstimator(4, levels=1, d_state=2, window_size=None).train(train)
    with torch.no_grad():
        for p in fke.parameters():
            p.add_(0.05 * torch.randn_like(p))
        d = torch.randn(1, 4, 24, 20)
        whole = fke(d)
        fke.window_size, fke.overlap = 24, 8
        torch.testing.assert_close(fke(d), whole)


def test_fke_training_windows_are_independent():
    torch.manual_seed(0)
    fke = FourierKernelEstimator(4, levels=1, d_state=2, window_size=8, overlap=4).train()
    with torch.no_grad():
        fke.head.weight.normal_(0, 0.1)
        d = torch.randn(1, 4, 16, 24)
        out = fke(d)
        for y0 in (0, 8):
            for x0 in (0, 8, 16):
                crop = d[..., y0 : y0 + 8, x0 : x0 + 8]
                torch.testing.assert_close(out[..., y0 : y0 + 8, x0 : x0 + 8], _fke_per_window(fke, crop),
                                           atol=1e-5, rtol=1e-5)


def _fke_per_window(fke, d):
    """The FKE of one map as the paper writes it: x, y, the filtered f and the fusion all on that map."""
    x, y = fke.conv_x(d), fke.conv_y(d)
    f = torch.fft.irfft2(torch.fft.rfft2(y) * fke.transfer_function(x), s=d.shape[-2:])
    return fke.fuse(torch.cat([f, d], dim=1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_fke_convolutions_outside_the_windows_equal_the_per_window_fke(channels_last):
    """conv_x / conv_y before the windows and the fusion after the blend: the per-window estimator, blended."""
    torch.manual_seed(1)
    fke = FourierKernelEstimator(4, levels=1, d_state=2, window_size=16, overlap=6).eval()
    with torch.no_grad():
        for p in fke.parameters():
            p.add_(0.05 * torch.randn_like(p))
        d = torch.randn(2, 4, 30, 41)
        ref = windowed_apply(lambda t: _fke_per_window(fke, t), d, 16, 6)
        if channels_last:
            fke, d = fke.to(memory_format=torch.channels_last), d.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fke(d), ref, atol=2e-5, rtol=1e-5)


def test_window_starts_cover_and_align():
    assert window_starts(10, 16) == [0]
    assert window_starts(32, 8) == [0, 8, 16, 24]
    assert window_starts(30, 8) == [0, 8, 16, 22]
    assert window_starts(30, 8, 3) == [0, 5, 10, 15, 20, 22]
    for n, w, o in [(37, 10, 0), (37, 10, 4), (64, 16, 15)]:
        s = window_starts(n, w, o)
        covered = torch.zeros(n, dtype=torch.bool)
        for a in s:
            covered[a : a + w] = True
        assert covered.all() and s[-1] == n - w


@pytest.mark.parametrize("overlap", [0, 3, 6])
def test_overlapping_blending_exact_for_position_independent_fn(overlap):
    conv = nn.Conv2d(3, 5, 1)
    x = torch.randn(2, 3, 45, 37)

    def fn(t):
        return torch.sin(conv(t)) * 2

    with torch.no_grad():
        torch.testing.assert_close(windowed_apply(fn, x, 16, overlap), fn(x), atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ model


def test_deeprftv2_tiny_odd_sizes_and_outputs():
    torch.manual_seed(0)
    model = M.create("deeprftv2-tiny").eval()
    x = torch.rand(1, 3, 23, 31, generator=_gen(4))
    with torch.no_grad():
        outs = model.forward_train(x)["outputs"]
        y = model(x)
    assert [s for _, s in outs] == [0.5] * 4 + [1.0] * 4
    assert all(img.shape == ((1, 3, 12, 16) if s == 0.5 else x.shape) for img, s in outs)
    assert torch.equal(outs[-1][0], y) and torch.isfinite(y).all()


def test_estimate_filters_windows_and_identity_init(monkeypatch):
    """The FKE's feature filters are reported by estimate_filters; DeepRFTv2 has no physical kernel."""
    torch.manual_seed(0)
    model = M.create("deeprftv2-tiny", windows=(32, 16), overlaps=(8, 4)).eval()
    x = torch.rand(2, 3, 48, 40, generator=_gen(5))
    assert model.estimate_kernels(x) is None and not model.physical_kernels
    with torch.no_grad():
        k = model.estimate_filters(x, size=9)
    # 48 x 40 -> windows at rows (0, 16) x cols (0, 8): 4 per image.
    assert k.shape == (2, 4, 9, 9)
    # A freshly built FKE has OTF = 1 (identity filter): its PSF is the centred delta.
    delta = torch.zeros(9, 9)
    delta[4, 4] = 1
    torch.testing.assert_close(k, delta.expand_as(k), atol=1e-5, rtol=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        k = model.estimate_filters(x[:1], size=65)  # larger than the 32 x 32 windows: zero-padded
    assert k.shape == (1, 4, 65, 65) and (k >= 0).all()
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(1, 4), atol=1e-4, rtol=0)
    assert k[..., :16, :].abs().sum() == 0  # beyond the window's 32 x 32 support
    # windows run in groups at inference (FourierKernelEstimator.eval_group): per image and window, the filters are
    # those of one call with every window
    from unblur.models.deeprftv2 import FourierKernelEstimator

    assert FourierKernelEstimator.eval_group is not None and FourierKernelEstimator.eval_group < 4
    with torch.no_grad():
        grouped = model.estimate_filters(x, size=9)
        monkeypatch.setattr(FourierKernelEstimator, "eval_group", None)
        whole = model.estimate_filters(x, size=9)
    assert (whole[0] - whole[1]).abs().max() > 1e-3  # two different images: an order mix-up would show
    torch.testing.assert_close(grouped, whole, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------ fused blocks


def _layernorm2d_reference(x, w, b, eps):
    """The unfused formula LayerNorm2d used before its hand-written backward."""
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w[:, None, None] + b[:, None, None]


def test_layernorm2d_fused_matches_formula_values_and_gradients():
    from unblur.models.blocks import LayerNorm2d

    g = _gen(3)
    ln = LayerNorm2d(5).double()
    with torch.no_grad():
        ln.weight.copy_(torch.randn(5, generator=g, dtype=torch.float64))
        ln.bias.copy_(torch.randn(5, generator=g, dtype=torch.float64))
    x = (torch.randn(2, 5, 7, 6, generator=g, dtype=torch.float64) * 3 + 1).requires_grad_()
    cot = torch.randn(2, 5, 7, 6, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((ln(x) * cot).sum(), [x, ln.weight, ln.bias])
    ref_y = _layernorm2d_reference(x, ln.weight, ln.bias, ln.eps)
    ref = torch.autograd.grad((ref_y * cot).sum(), [x, ln.weight, ln.bias])
    assert torch.allclose(ln(x), ref_y, atol=1e-12)
    for a, r in zip(got, ref):
        assert torch.allclose(a, r, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: ln(t), (x[:1, :, :3, :3].detach().clone().requires_grad_(),))


def test_norm_conv1x1_folding_equals_conv_of_norm():
    from unblur.models.blocks import norm_conv1x1

    torch.manual_seed(0)
    blk = NAFBlock(6).double()
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    params = [x, blk.norm1.weight, blk.norm1.bias, blk.conv1.weight, blk.conv1.bias]
    got_y = norm_conv1x1(blk.norm1, blk.conv1, x)
    ref_y = blk.conv1(_layernorm2d_reference(x, blk.norm1.weight, blk.norm1.bias, blk.norm1.eps))
    assert torch.allclose(got_y, ref_y, atol=1e-12)
    cot = torch.randn_like(ref_y)
    for a, r in zip(torch.autograd.grad((got_y * cot).sum(), params), torch.autograd.grad((ref_y * cot).sum(), params)):
        assert torch.allclose(a, r, atol=1e-10)


@pytest.mark.parametrize("chunk", [2, 16])
def test_linear_recurrence_long_multilevel_matches_loop(chunk):
    g = _gen(5)
    la = -torch.rand(3, 1000, generator=g, dtype=torch.float64) * 0.05
    b = torch.randn(3, 1000, generator=g, dtype=torch.float64)
    h, ref = torch.zeros(3, dtype=torch.float64), []
    for t in range(1000):
        h = torch.exp(la[:, t]) * h + b[:, t]
        ref.append(h)
    assert torch.allclose(linear_recurrence(la, b, chunk_size=chunk), torch.stack(ref, -1), atol=1e-10)


@pytest.mark.parametrize("length", [1, 7, 16, 17, 300, 4099])
def test_fixed_depth_recurrence_for_export_gives_the_same_states(length):
    """While exporting, the chunked recurrence recurses a fixed depth (no branch on the length): same states."""
    from unblur.models.selective_scan import EXPORT_DEPTH, _recurrence_forward

    g = torch.Generator().manual_seed(length)
    la = -torch.rand(3, length, generator=g, dtype=torch.float64)
    bb = torch.randn(3, length, generator=g, dtype=torch.float64)
    want = _recurrence_forward(la, bb, 16)
    for depth in (EXPORT_DEPTH, 2):  # 2 levels: the last one loops over what is left, still exact
        torch.testing.assert_close(_recurrence_forward(la, bb, 16, depth=depth), want, rtol=1e-12, atol=1e-12)
