"""UPADNet: the amplitude/phase LMMSE data step against independent formulas and its statistical promise (lower
error than either the prior or the observation alone), the image-domain twin's step against the explicit complex
LMMSE, and the network's contract (physical kernels, twin parameter count, starting from GDUNet weights)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unblur.models as M
from unblur.errors import InputError
from unblur.physics import FourierDataStep, psf2otf, rfft2
from unblur.physics.polar import amplitude_phase_lmmse, complex_lmmse_beta, radial_frequency


def _complex(rng, shape, scale=1.0):
    return torch.from_numpy(scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2))


def test_amplitude_is_the_scalar_lmmse_and_phase_the_weighted_angle():
    """Against numpy with explicit angles: the amplitude exactly, the phase to second order in the phase gap."""
    rng = np.random.default_rng(0)
    shape = (2000,)
    U = _complex(rng, shape, 3.0)
    X = U * torch.exp(1j * torch.from_numpy(rng.uniform(-0.02, 0.02, shape)))  # the truth: close in phase
    K = _complex(rng, shape)
    Y = K * X + _complex(rng, shape, 0.1)
    va, vp, s2 = 0.7, 0.4, 0.01
    got = amplitude_phase_lmmse(Y, K, U, va, vp, s2).numpy()
    y, k, u = Y.numpy(), K.numpy(), U.numpy()
    b = np.sqrt(np.maximum(np.abs(y) ** 2 - s2, 0))
    ga = va * np.abs(u) ** 2 * np.abs(k) / (va * np.abs(u) ** 2 * np.abs(k) ** 2 + s2)
    amp = np.maximum(np.abs(u) + ga * (b - np.abs(k) * np.abs(u)), 0)
    np.testing.assert_allclose(np.abs(got), amp, rtol=1e-4, atol=1e-5)  # the floors under the square roots
    gp = vp * np.abs(k) ** 2 * amp ** 2 / (vp * np.abs(k) ** 2 * amp ** 2 + s2)
    gap = np.angle(y * np.conj(k) * np.conj(u))  # wrap(angle(Y conj K) - angle U)
    small = np.abs(gap) < 0.05
    assert small.mean() > 0.5
    ref = np.angle(u) + gp * gap
    err = np.angle(np.exp(1j * (np.angle(got) - ref)))
    assert np.abs(err[small]).max() < 1e-3


def test_limits_inverse_filter_without_noise_and_prior_under_noise():
    rng = np.random.default_rng(1)
    X, U, K = _complex(rng, (500,), 2.0), _complex(rng, (500,), 2.0), _complex(rng, (500,)) + 0.5
    Y = K * X
    torch.testing.assert_close(amplitude_phase_lmmse(Y, K, U, 1e8, 1e8, 1e-12), X, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(amplitude_phase_lmmse(Y, K, U, 1e-8, 1e-8, 1.0), U, rtol=1e-5, atol=1e-5)


def test_amplitude_estimate_beats_prior_and_observation_alone_under_its_model():
    """Monte Carlo under the stated model (X = U + E, E ~ CN(0, v|U|^2), N ~ CN(0, s2)): the LMMSE amplitude has a
    lower error than the prior's |U| and than the noise-debiased inverse filter, at low and high noise."""
    rng = np.random.default_rng(2)
    n = 20000
    U = _complex(rng, (n,), 1.0)
    K = _complex(rng, (n,)) * 0.8
    v = 0.3
    X = U + U.abs() * math.sqrt(v) * _complex(rng, (n,))
    for s2 in (0.01, 0.1):
        Y = K * X + math.sqrt(s2) * _complex(rng, (n,))
        est = amplitude_phase_lmmse(Y, K, U, v, v, s2)
        err = ((est.abs() - X.abs()) ** 2).mean()
        prior = ((U.abs() - X.abs()) ** 2).mean()
        inverse = ((torch.sqrt(torch.relu(Y.abs() ** 2 - s2)) / K.abs() - X.abs()) ** 2).mean()
        assert err < 0.8 * prior and err < 0.8 * inverse, (s2, float(err), float(prior), float(inverse))


def test_twin_step_is_the_complex_lmmse_through_the_core_closed_form_step():
    g = torch.Generator().manual_seed(3)
    y, u = torch.rand(2, 3, 24, 20, generator=g), torch.rand(2, 3, 24, 20, generator=g)
    k = torch.rand(2, 1, 5, 5, generator=g)
    k = k / k.sum((-2, -1), keepdim=True)
    K, U, Y = psf2otf(k, (24, 20)), rfft2(u), rfft2(y)
    v, s2 = torch.linspace(0.2, 2.0, 11), 0.5
    beta = complex_lmmse_beta(U, v, s2, 0.0)
    got = rfft2(FourierDataStep(y, K)(beta=beta, u=u))
    prior = v * U.abs() ** 2
    want = U + prior * K.conj() * (Y - K * U) / (prior * K.abs() ** 2 + s2)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-4, atol=1e-4)


def test_radial_frequency_spans_zero_to_one():
    r = radial_frequency((16, 15))
    assert r.shape == (16, 8) and r[0, 0] == 0 and 0.9 < float(r.max()) <= 1.0 + 1e-6


def _net(**kw):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return M.create("upadnet-tiny", **kw).eval()


@pytest.mark.parametrize("decomposition", ["amplitude-phase", "image"])
def test_both_decompositions_return_physical_kernels_and_finite_images(decomposition):
    net = _net(decomposition=decomposition)
    x = torch.rand(2, 3, 41, 37, generator=torch.Generator().manual_seed(4)) * 0.8 + 0.1
    with torch.inference_mode():
        out = net.forward_train(x)
    assert len(out["outputs"]) == net.stages + (0 if net.l0 else 1) and len(out["kernels"]) == net.stages
    assert out["outputs"][-1][0].shape == x.shape and torch.isfinite(out["outputs"][-1][0]).all()
    for k in out["kernels"]:
        assert (k >= 0).all()
        torch.testing.assert_close(k.sum((-2, -1)), torch.ones(2, 1), atol=1e-5, rtol=0)


def test_twin_has_one_profile_less_per_stage_and_gradients_reach_every_parameter():
    ap, im = _net(), _net(decomposition="image")
    count = lambda n: sum(p.numel() for p in n.parameters())  # noqa: E731
    assert count(ap) - count(im) == ap.stages * ap.log_phase_var.shape[1]
    net = ap.train()
    out = net.forward_train(torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(5)))
    (sum(o.mean() for o, _ in out["outputs"]) + out["kernels"][-1].square().sum()).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()] == []


def test_starts_from_gdunet_weights_and_refuses_bad_arguments():
    net = _net(init_from="gdunet-tiny.motion")
    ref = M.create("gdunet-tiny.motion", pretrained=True).state_dict()
    mine = net.state_dict()
    # the L0-initialised design shares every GDUNet module; only the LMMSE steps are its own
    assert sorted(set(mine) - set(ref)) == ["lmmse_gates", "log_amp_var", "log_noise", "log_phase_var"]
    for key in ref:
        assert torch.equal(mine[key], ref[key]), key
    # the earlier blind-start design: what has the same name and shape is carried over
    old = _net(init_from="gdunet-tiny.motion", kernel_init="start")
    assert not old.l0 and "start.intro.weight" in old.state_dict()
    shared = [k for k in ref if k in old.state_dict() and old.state_dict()[k].shape == ref[k].shape]
    assert "proxes.2.ending.weight" in shared and "kernel_proxes.0.inp.weight" in shared
    with pytest.raises(InputError, match="decomposition"):
        M.create("upadnet-tiny", decomposition="polar")
    with pytest.raises(InputError, match="profile_bins"):
        M.create("upadnet-tiny", profile_bins=1)


@pytest.mark.parametrize("decomposition", ["amplitude-phase", "image"])
def test_closed_lmmse_gates_give_gdunet_exactly_and_an_opened_gate_refines_the_hqs_image(decomposition):
    """The L0-initialised design is GDUNet's stages with an LMMSE refinement ``v + g (x^ - v)`` of each HQS image:
    with the gates at 0 the output is ``gdunet-tiny.motion``'s to the bit, an opened gate changes it, and the
    refinement is the LMMSE estimate computed on the periodic extension with the prior centred on the HQS image."""
    from unblur.physics import Domain

    gd = M.create("gdunet-tiny.motion", pretrained=True).eval()
    net = _net(init_from="gdunet-tiny.motion", decomposition=decomposition)
    x = torch.rand(1, 3, 48, 44, generator=torch.Generator().manual_seed(6)) * 0.8 + 0.1
    with torch.inference_mode():
        ref, closed = gd(x), net(x)
    assert torch.equal(ref, closed)
    with torch.no_grad():
        net.lmmse_gates.fill_(0.1 / 10)  # GATE_SCALE: an effective gate of 0.1
    with torch.inference_mode():
        opened = net(x)
    assert (opened - ref).abs().max() > 1e-4
    # one stage by hand: HQS image v, LMMSE x^ of the extended observation around v, then v + 0.1 (x^ - v)
    k = torch.zeros(1, 1, 31, 31)
    k[..., 15, 12:19] = 1 / 7
    sigma = torch.full((1, 1, 1, 1), 0.01)
    with torch.inference_mode():
        shared = net._l0_step_inputs(x, sigma)
        got = net._l0_image_step(0, x, k, sigma, shared)
        v = net._hqs_step(0, x, k, sigma)
        dom = Domain(x.shape[-2:], (31, 31))
        xe = net._image_step(0, dom.extend(v), dom.extend(x), dom.otf(k), None, shared)
    torch.testing.assert_close(got, v + 0.1 * (dom.crop(xe) - v), atol=1e-6, rtol=0)


def test_proximal_fit_trains_only_the_last_stage_net_and_opens_its_gate_alone():
    """scripts/upadnet_fit.py's fit_prox (how the shipped weights' last proximal net was trained): the last stage's
    net learns (its training loss falls), its gate is opened to 1 and every other parameter is left as it was."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "upadnet_fit", Path(__file__).resolve().parents[1] / "scripts" / "upadnet_fit.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    g = torch.Generator().manual_seed(0)
    n, size = 4, 40
    sharp = torch.rand(n, 3, size, size, generator=g)
    blurred = (sharp + 0.05 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    delta = torch.zeros(n, 3, 1, 31, 31)
    delta[..., 15, 15] = 1.0
    pairs = {"blurred": blurred, "sharp": sharp, "v": blurred[:, None].expand(-1, 3, -1, -1, -1).clone(),
             "k": delta, "photo": torch.arange(n)}
    torch.manual_seed(0)
    net = M.create("upadnet-tiny").eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit.fit_prox(net, pairs, None, steps=30, lr=3e-3, batch=4, seed=0)
    after = {k: v.clone() for k, v in net.state_dict().items()}
    T = net.stages - 1
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(f"proxes.{T}.") or k == "prox_gates" for k in changed)
    assert net.prox_gates.tolist()[:T] == before["prox_gates"].tolist()[:T]
    assert net.prox_gates[T].item() * M.gdunet.GATE_SCALE == pytest.approx(1.0)

    def loss(prox_state):
        net.proxes[T].load_state_dict(prox_state)
        with torch.no_grad():
            out, _ = net._apply_prox(net.proxes[T], blurred, 1.0)
        return (out - sharp)[..., 8:-8, 8:-8].abs().mean().item()

    trained = {k[len(f"proxes.{T}."):]: v for k, v in after.items() if k.startswith(f"proxes.{T}.")}
    untrained = {k[len(f"proxes.{T}."):]: v for k, v in before.items() if k.startswith(f"proxes.{T}.")}
    assert loss(trained) < loss(untrained)
