"""GDUNet: physical stage kernels, the physics it is built on (the tapered kernel least squares finds a true kernel
from a sharp image), kernel-size independence of its weights, and training with kernel targets."""
from __future__ import annotations

import pytest
import torch

import unblur.models as M
from unblur.metrics import kernel_psnr
from unblur.physics import Domain, conv2d, motion_kernel
from unblur.physics.kernels import pad_kernel


def _photo(size: int = 96) -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    img = torch.from_numpy(data.astronaut()[100:100 + size, 150:150 + size].copy()).permute(2, 0, 1).float() / 255
    return img[None]


def _net(**kw) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return M.create("gdunet-tiny", **kw).eval()


def test_every_stage_returns_a_physical_kernel():
    net = _net()
    with torch.inference_mode():
        out = net.forward_train(torch.rand(2, 3, 40, 52, generator=torch.Generator().manual_seed(1)))
    assert len(out["kernels"]) == net.stages and len(out["outputs"]) == net.stages + (0 if net.l0 else 1)
    for k in out["kernels"]:
        assert k.shape == (2, 1, 31, 31) and (k >= 0).all()
        torch.testing.assert_close(k.sum((-2, -1)), torch.ones(2, 1), atol=1e-5, rtol=0)


def test_kernel_size_is_an_option_with_the_same_weights():
    small, large = _net(kernel_size=15), _net(kernel_size=41)
    large.load_state_dict(small.state_dict())  # every kernel module is convolutional: same parameters
    with torch.inference_mode():
        k = large.estimate_kernels(torch.rand(1, 3, 64, 64))
    assert k.shape == (1, 1, 41, 41)
    with pytest.raises(ValueError, match="odd"):
        M.create("gdunet-tiny", kernel_size=30)


@pytest.mark.parametrize("edge_ratio", [0.0, 10.0])
def test_kernel_stage_recovers_the_true_kernel_from_the_sharp_image(edge_ratio):
    """With the sharp scene as the image estimate (and the learned kernel modules at their identity start),
    the tapered closed-form least squares of a stage finds the blur, on all gradients or on the salient edges
    only (fewer data, a less exact fit on this ideal input): kernel PSNR up to 2 px shift far above that of a
    centred delta (measured 38.9 and 31.4 dB vs 13.0)."""
    net = _net(edge_ratio=edge_ratio, kernel_init="start", start_width=12, start_blocks=(1, 1, 1, 2))
    K = net.kernel_size
    sharp = _photo(96 + K - 1)
    k_true = pad_kernel(motion_kernel(17, generator=torch.Generator().manual_seed(3)), K)
    y = conv2d(sharp, k_true, "valid")
    dom = Domain(y.shape[-2:], (K, K))
    u = torch.zeros(1, 3, *dom.shape)
    u[..., dom.top - K // 2:dom.top - K // 2 + sharp.shape[-2], dom.left - K // 2:dom.left - K // 2 + sharp.shape[-1]] = sharp
    feat = net.start.residual(torch.zeros(1, 3, 32, 32))[1]
    with torch.inference_mode():
        k = net._kernel(0, dom.crop(u), y, feat)
    delta = torch.zeros(K, K)
    delta[K // 2, K // 2] = 1
    got, base = kernel_psnr(k, k_true, max_shift=2), kernel_psnr(delta, k_true, max_shift=2)
    assert got > (35 if edge_ratio == 0 else 28) and base < 15, (got, base)


def test_the_first_stage_kernel_is_the_l0_estimate_and_later_stages_fuse_the_previous_one():
    """kernel_init="l0": stage 1 deconvolves with physics.estimate_photo_kernel's kernel (the classical estimate,
    far closer to the blur than a delta), and a later stage with its fusion weights only on the previous kernel
    keeps it exactly."""
    from unblur.physics import estimate_photo_kernel

    net = _net()
    K = net.kernel_size
    sharp = _photo(112 + K - 1)
    k_true = pad_kernel(motion_kernel(17, generator=torch.Generator().manual_seed(3)), K)
    y = conv2d(sharp, k_true, "valid")
    with torch.no_grad():
        for fusion in net.fusions:
            fusion.conv.weight.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 4, 1, 1))
        out = net.forward_train(y)
    first = estimate_photo_kernel(y, kernel_size=K, iters_per_level=5, final_iters=6, refine_iters=2,
                                  kernel_sparsity=net.init_sparsity)
    torch.testing.assert_close(out["kernels"][0], first)
    for k in out["kernels"][1:]:
        torch.testing.assert_close(k, first, atol=1e-5, rtol=0)
    delta = torch.zeros(K, K)
    delta[K // 2, K // 2] = 1
    assert kernel_psnr(first, k_true, max_shift=2) > kernel_psnr(delta, k_true, max_shift=2) + 8


def test_untrained_gates_make_every_stage_the_classical_hqs_step():
    """With its gates at 0 (their initial value) a stage of the L0 design returns exactly the hyper-Laplacian HQS
    of physics.mixture_hqs with that stage's kernel and the classical weights, registered to that kernel's centroid
    (physics.register_to_kernel: the last stage's photo, the earlier stages' images); opening a gate changes it."""
    import math

    from unblur.physics import estimate_noise_sigma, mixture_hqs, register_to_kernel
    from unblur.physics.l0_kernel import KERNEL_ERROR_SIGMA

    net = _net()
    y = conv2d(_photo(80 + 30), pad_kernel(motion_kernel(9, generator=torch.Generator().manual_seed(2)), 31), "valid")
    with torch.no_grad():
        net.log_lam.fill_(math.log(0.3))
        out = net.forward_train(y)
        # a noise-free photo: the stages assume the estimated kernel's error as their noise level
        sigma = estimate_noise_sigma(y).clamp_min(KERNEL_ERROR_SIGMA)
        assert float(estimate_noise_sigma(y)) < KERNEL_ERROR_SIGMA
        mix = torch.ones(1, 1, *y.shape[-2:])
        classical = torch.tensor([2.0 ** i for i in range(net.hqs_iters)])
        for t, ((u, _), k) in enumerate(zip(out["outputs"], out["kernels"])):
            # the initial weights are the classical schedule (beta = 1, 2, 4, ...; lam = 0.3 / sigma^2), passed
            # as the model holds them: the shrinkage's jump makes the result sensitive to their last bit
            betas, lam = net.log_betas[t].exp(), net.log_lam[t].exp()
            torch.testing.assert_close(betas, classical, rtol=1e-5, atol=0)
            last = t == net.stages - 1  # the last stage deconvolves the registered photo, the others are moved after
            ref = mixture_hqs(register_to_kernel(y, k) if last else y, k.reshape(1, 31, 31), mix, lam=lam / sigma ** 2,
                              betas=betas.unbind(), alpha=2 / 3, cg_iters=net.hqs_cg)
            torch.testing.assert_close(u, ref if last else register_to_kernel(ref, k), atol=1e-5, rtol=0)
        net.prox_gates.fill_(0.05)
        opened = net.forward_train(y)["outputs"][0][0]
    assert (opened - out["outputs"][0][0]).abs().max() > 1e-3


def test_kernel_init_and_start_from_are_checked():
    with pytest.raises(ValueError, match="kernel_init"):
        M.create("gdunet-tiny", kernel_init="zeros")
    with pytest.raises(ValueError, match="start_from"):
        M.create("gdunet-tiny", start_from="nafnet-tiny.motion")


def test_training_step_uses_kernel_targets_and_reblur():
    from unblur.training.losses import MultiScaleLoss, TrainingLoss

    net = _net().train()
    sharp = _photo(64 + 30)
    k_true = motion_kernel(31, generator=torch.Generator().manual_seed(4))
    y = conv2d(sharp, k_true, "valid")
    loss_fn = TrainingLoss(MultiScaleLoss(), kernel_weight=0.01, reblur_weight=1.0)
    out = net.forward_train(y)
    target = sharp[..., 15:-15, 15:-15]
    total, parts = loss_fn(out, target, blurred=y, kernel=k_true)
    total.backward()
    assert {"pixel", "kernel", "reblur"} <= set(parts)
    assert net.log_gamma.grad is not None and net.fusions[0].conv.weight.grad.abs().sum() > 0


def test_restore_takes_the_kernel_from_the_same_pass(monkeypatch):
    """The restored image and the reported kernel come from one forward pass (no second run to estimate it)."""
    from unblur.inference.restore import KERNEL_SIZE, restore

    net = _net()
    calls = []
    forward_train = net.forward_train
    monkeypatch.setattr(net, "forward_train", lambda *a, **k: calls.append(1) or forward_train(*a, **k))
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(5))
    res = restore(x, model=net, tile=None)
    assert len(calls) == 1 and res.kernel.shape == (1, 1, KERNEL_SIZE, KERNEL_SIZE)
    torch.testing.assert_close(res.kernel, net.estimate_kernels(x, size=KERNEL_SIZE))
    torch.testing.assert_close(res.image, net(x).clamp(0, 1))
