"""GDUNet (Guo et al., "Gradient domain model-driven algorithm unfolding network for blind image deblurring",
Neural Networks 190, 2025): the sparse-gradient blind deconvolution that ``blind-l0`` solves classically,
unrolled into ``T`` stages that alternate a kernel update and an image update, with learned modules.

One forward pass of the shipped sizes (``kernel_init="l0"``; every solve is one of ``unblur.physics``; design
choices where the paper is silent: ``docs/models/gdunet.md``)::

    k_0 = L0 coarse-to-fine kernel estimate of y             physics.estimate_photo_kernel (no gradient)
    for t = 1 .. T:
        k_t  = k_0 for t = 1, else the kernel update below on u_{t-1}, fused with k_{t-1} too
        x^   = HQS_t(y, k_t): 13 hyper-Laplacian splitting steps (8 CG steps each on the valid observation
               model), learned lam_t and beta_{t,i}; the last w-step moves the shrunk gradients w
               to w + c_t (G_t(w) - w), G_t the learned gradient prior                physics.mixture_hqs
        u_t  = x^ + a_t P_t(x^)                              image proximal module (NAFNet)
    return u_T and the stage kernels k_1 .. k_T (k_T is the kernel that made the returned image)

``a_t`` and ``c_t`` are learned gates that start at 0: an untrained stage is the classical HQS step with its
kernel, and training lets the learned modules in only as far as they help.

The earlier blind-start design (``kernel_init="start"``, also UPADNet's earlier design; ``ext``: the smooth periodic
extension of :class:`~unblur.physics.Domain`)::

    u_0 = ext(y) + P_0(ext(y))                               blind start: a NAFNet sharpens the photo
    for t = 1 .. T:
        k^   = kernel least squares (grad u_{t-1}, grad y)   physics.kernel_step, closed form, tapered window
        h_p  = k^ + KP_t(k^)                                 kernel proximal module (learned soft threshold)
        h_b  = BPAM_t(bottleneck features of P_{t-1})        blur-pattern attention, a kernel-sized map
        k_t  = normalise(relu(conv1x1[h_p, k^, h_b]))        kernel fusion: a physical PSF (>= 0, sum 1)
        x^   = argmin |k_t * x - y|^2 + b_t |x - u_{t-1}|^2 + w_t |grad x - G_t(grad u_{t-1})|^2
                                                             physics.FourierDataStep (closed form)
        u_t  = x^ + P_t(x^)                                  image proximal module (NAFNet)
    return crop(u_T) and the stage kernels k_1 .. k_T (k_T is the kernel that made the returned image)

``G_t`` is the learned gradient prior (a small network that shrinks the gradients of ``u``, the learned
half-quadratic penalty of the paper), ``b_t, w_t`` and the kernel step's Tikhonov weight are learned
per stage. Every stage's image is an output (deep supervision) and every stage's kernel is returned.

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("gdunet-tiny").eval()
    >>> out = net.forward_train(torch.rand(1, 3, 48, 40))
    >>> out["outputs"][-1][0].shape, out["kernels"][-1].shape
    (torch.Size([1, 3, 48, 40]), torch.Size([1, 1, 31, 31]))
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..physics.boundary import Domain, fft_size, gradient_otfs, gradients, salient_edge_mask, taper_window
from ..physics.fft import psf2otf
from ..physics.kernels import project_kernel
from ..physics.l0_kernel import KERNEL_ERROR_SIGMA, estimate_photo_kernel
from ..physics.mixed_blur import mixture_hqs
from ..physics.noise import estimate_noise_sigma
from ..physics.proximal import shrink_hyper_laplacian
from ..physics.registration import register_to_kernel
from ..physics.solvers import FourierDataStep, kernel_step
from .base import RestorationModel, pad_to_multiple
from .blocks import NAFBlock
from .nafnet import NAFNet
from .registry import register_model, register_weights

__all__ = ["GDUNet"]

KERNEL_INITS = ("start", "l0")
# Adam moves a parameter by about the learning rate per step: the gates are stored divided by this, so that they
# can travel from 0 to 1 within a few hundred steps of a fine-tune.
GATE_SCALE = 10.0


def _near_zero(conv: nn.Conv2d) -> None:
    """A residual branch's last layer starts (almost) silent: tiny weights, not zeros, so the layers before it
    receive gradients from the first step."""
    nn.init.normal_(conv.weight, std=1e-4)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class GradientPrior(nn.Module):
    """``G``: the targets of the gradient penalty, ``g + net(g)`` for the stacked gradients ``g = (gx, gy)``
    (a learned shrinkage of sparse gradients; starts as the identity)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), NAFBlock(width),
                                 nn.Conv2d(width, 2 * channels, 3, padding=1))
        _near_zero(self.net[-1])

    def forward(self, gx: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.cat([gx, gy], 1)
        return (g + self.net(g)).chunk(2, 1)


class KernelProx(nn.Module):
    """``h_p = k + conv(soft_theta(conv(k)))``: the kernel proximal module (a learned soft threshold of kernel
    features; starts as the identity). Convolutions only, so any kernel size works."""

    def __init__(self, width: int = 8, theta: float = 2e-4):
        super().__init__()
        self.inp = nn.Conv2d(1, width, 3, padding=1)
        self.mix = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, 1, 3, padding=1, bias=False)  # no offset: a kernel is zero off its support
        self.theta = nn.Parameter(torch.full((1, width, 1, 1), float(theta)))
        _near_zero(self.out)

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        z = self.inp(k)
        z = torch.sign(z) * F.relu(z.abs() - self.theta.abs())  # soft threshold
        return k + self.out(F.relu(self.mix(z)))


class BlurPatternAttention(nn.Module):
    """BPAM: image features -> a kernel-sized distribution ``h_b`` (PixelShuffle(2), squeeze-excitation channel
    attention, convolutions down to one map, pooled to the kernel size, softmax). Starts uniform."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        c = channels // 4
        hidden = max(c // reduction, 4)
        self.shuffle = nn.PixelShuffle(2)
        # SiLU rather than the usual ReLU: with so few hidden units, ReLUs that all die would freeze the module
        self.squeeze = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, c, 1), nn.Sigmoid())
        # no bias on the last layer: the softmax ignores a constant
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1, bias=False))
        _near_zero(self.head[-1])

    def forward(self, feat: torch.Tensor, size: int) -> torch.Tensor:
        z = self.shuffle(feat)
        z = z * self.squeeze(F.adaptive_avg_pool2d(z, 1))
        logits = F.adaptive_avg_pool2d(self.head(z), size)
        return torch.softmax(logits.flatten(1), 1).view(-1, 1, size, size)


class KernelFusion(nn.Module):
    """``k = normalise(relu(conv1x1[h_p, k^, h_b]))``: a non-negative kernel summing to 1. It starts as ``k^``
    (``h_p = k^`` then) with a trace of ``h_b``, so that every branch receives gradients from the first step.
    ``with_previous``: the previous stage's kernel is a fourth input, and the fusion starts mostly on it (the
    L0 initialisation is a good kernel; a refit on a still imperfect image must earn its weight)."""

    def __init__(self, with_previous: bool = False):
        super().__init__()
        start = [0.25, 0.25, 0.01, 0.5] if with_previous else [0.5, 0.5, 0.01]
        self.conv = nn.Conv2d(len(start), 1, 1, bias=False)  # an offset would only add a flat floor under the kernel
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(start).view(1, -1, 1, 1))

    def forward(self, h_p: torch.Tensor, k_hat: torch.Tensor, h_b: torch.Tensor, previous=None) -> torch.Tensor:
        parts = [h_p, k_hat, h_b] + ([] if previous is None else [previous])
        k = F.relu(self.conv(torch.cat(parts, 1))) + 1e-8
        return k / k.sum((-2, -1), keepdim=True)


def _prox(width: int, enc_blocks, middle_blocks: int, channels: int) -> NAFNet:
    enc_blocks = tuple(enc_blocks)
    return NAFNet(width=width, enc_blocks=enc_blocks, middle_blocks=middle_blocks, dec_blocks=(1,) * len(enc_blocks),
                  in_channels=channels)


SIZES = {
    # CPU-trainable (docs/models/gdunet.md): 3 stages from the L0 kernel estimate, 2-level stage proxes.
    # (kernel_init="start" with start_width=12, start_blocks=(1, 1, 1, 2) is the earlier blind-start design.)
    "tiny": dict(stages=3, kernel_size=31, width=8, levels=2, blocks=1, prior_width=4, edge_ratio=10.0,
                 kernel_init="l0"),
    "small": dict(stages=3, kernel_size=31, width=24, levels=3, blocks=2, prior_width=16, edge_ratio=10.0,
                  kernel_init="l0"),
    # the reference configuration: 3 stages, width 32, 31x31 kernels (its blind start is our L0 estimate)
    "paper": dict(stages=3, kernel_size=31, width=32, levels=4, blocks=2, prior_width=32, edge_ratio=10.0,
                  kernel_init="l0"),
}


@register_model("gdunet", SIZES)
class GDUNet(RestorationModel):
    """Gradient-domain unfolding network (see the module doc).

    Args:
        stages: unrolled stages ``T`` (kernel update + image update each).
        kernel_size: size of the estimated kernels (odd); a model trained at one size runs at another
            (every kernel module is convolutional), e.g. ``create("gdunet-tiny.motion", kernel_size=61)``.
        start_width, start_blocks: the blind-start NAFNet ``P_0`` (NAFBlocks per encoder level).
        start_from: a shipped NAFNet weight set of the same shape to start ``P_0`` from (training only, e.g.
            ``"nafnet-tiny.motion"``: a network that already sharpens motion blur).
        width, levels, blocks: the stage proximal NAFNets ``P_t``.
        prior_width: width of the gradient priors ``G_t``.
        beta, weight, gamma: initial data-step weights ``b_t``, ``w_t`` and the kernel step's Tikhonov weight
            (relative to the gradient energy of the image), all learned per stage.
        in_channels: image channels.
        edge_ratio: > 0 fits the kernels on salient edges only (Cho & Lee, as ``blind-l0``): the strongest
            gradients of ``u``, at least ``edge_ratio x kernel_size`` per orientation; 0 uses all of them.
        kernel_init: ``"start"`` (a NAFNet ``P_0`` sharpens the photo, every stage fits a kernel to its image,
            then a quadratic image step) or ``"l0"`` (the first kernel is the coarse-to-fine L0 estimate of
            ``physics.estimate_photo_kernel``, no gradient through it; every stage is a hyper-Laplacian HQS
            deconvolution with that stage's kernel and learned gradient prior, then its proximal net; the stages
            after the first refit the kernel on the previous stage's image and fuse it with the previous kernel).
        hqs_iters, hqs_cg, hqs_rate: splitting steps of each ``"l0"`` image step, CG steps per splitting step on
            the ``valid`` observation model (0: closed form on the periodic extension), and the initial schedule
            ``beta_i = hqs_rate^i`` (learned after). ``hqs_cg=8`` is classical ``hqs``'s count: with 2 (the
            default until 2026-12-07) the network scored 0.2 dB lower on Levin (``docs/models/gdunet.md``).
        init_iters, train_init_iters: the L0 estimate's (iterations per level, at the finest level, refits) at
            inference and during training (cheaper: it runs on every training crop).
        init_sparsity: the L0 estimate's ``kernel_sparsity`` (reweighted L1 on the taps, as ``blind-l0``).
        register: every stage's output image sits where its kernel centred exactly on its centroid (the convention
            of our kernels) puts it, as ``blind-l0``'s result does (:func:`~unblur.physics.register_to_kernel`,
            sub-pixel): the last stage deconvolves the photo moved by its kernel's centroid offset, the earlier
            stages' outputs are moved by theirs (the kernel refits work on the unmoved images). ``False``: as
            deconvolved. (The ``"start"`` design, not shipped, does not register: its ONNX graph cannot hold a
            shift that depends on the data.)
    """

    physical_kernels = True
    # Unfolded stages make a long graph: exported for fixed 384 px tiles (see DeepRFTv2); the salient-edge selection
    # is a threshold tensor (physics.boundary.salient_threshold), so it traces.
    onnx_tile, onnx_optimize = True, False

    def __init__(self, stages: int = 3, kernel_size: int = 31, start_width: int = 12, start_blocks=(1, 1, 1, 2),
                 width: int = 8, levels: int = 2, blocks: int = 1, prior_width: int = 4, beta: float = 0.02,
                 weight: float = 0.02, gamma: float = 0.01, in_channels: int = 3, start_from: str | None = None,
                 edge_ratio: float = 0.0, kernel_init: str = "start", hqs_iters: int = 13, hqs_cg: int = 8,
                 hqs_rate: float = 2.0,
                 init_iters=(5, 6, 2), train_init_iters=(2, 3, 0), init_sparsity: float = 0.05,
                 register: bool = True):
        super().__init__()
        if int(kernel_size) < 3 or int(kernel_size) % 2 == 0:
            raise ValueError(f"GDUNet: kernel_size must be odd and >= 3, got {kernel_size}")
        if kernel_init not in KERNEL_INITS:
            raise ValueError(f"GDUNet: kernel_init must be one of {', '.join(KERNEL_INITS)}, got {kernel_init!r}")
        self.stages, self.kernel_size, self.edge_ratio = int(stages), int(kernel_size), float(edge_ratio)
        self.l0 = kernel_init == "l0"
        if self.l0:
            self.onnx_unsupported = ("GDUNet's L0 kernel initialisation (coarse-to-fine loops with data-dependent "
                                     "thresholds) has no ONNX graph; use the PyTorch backend")
        self.hqs_iters, self.hqs_cg, self.hqs_rate = int(hqs_iters), int(hqs_cg), float(hqs_rate)
        self.init_iters, self.train_init_iters = tuple(init_iters), tuple(train_init_iters)
        self.init_sparsity = float(init_sparsity)
        self.register = bool(register)
        if self.l0 and start_from:
            raise ValueError("GDUNet: start_from sets the blind start P_0, which kernel_init='l0' does not have")
        if not self.l0:
            self.start = _prox(start_width, start_blocks, 1, in_channels)
        if start_from:
            from .registry import create

            self.start.load_state_dict(create(start_from, pretrained=True).state_dict())
        self.proxes = nn.ModuleList(_prox(width, (blocks,) * levels, blocks, in_channels) for _ in range(self.stages))
        self._build_image_steps(in_channels, prior_width, beta, weight)
        # "start": every stage fits a kernel; "l0": the stages after the first (the first has the L0 estimate)
        updates = self.stages - 1 if self.l0 else self.stages
        self.kernel_proxes = nn.ModuleList(KernelProx() for _ in range(updates))
        # a kernel update reads the bottleneck of the proximal net that made the image it fits: P_0 for the
        # first stage of "start", the stage proximal nets after
        bottlenecks = [width * 2 ** levels] * updates
        if not self.l0:
            bottlenecks[0] = start_width * 2 ** len(start_blocks)
        self.attentions = nn.ModuleList(BlurPatternAttention(c) for c in bottlenecks)
        self.fusions = nn.ModuleList(KernelFusion(with_previous=self.l0) for _ in range(updates))
        self.log_gamma = nn.Parameter(torch.full((updates,), math.log(gamma)))

    @staticmethod
    def _apply_prox(net: NAFNet, x: torch.Tensor, gate=None) -> tuple[torch.Tensor, torch.Tensor]:
        xp, (h, w) = pad_to_multiple(x, 2 ** len(net.encoders))
        correction, feat = net.residual(xp)
        correction = correction[..., :h, :w]
        return x + (correction if gate is None else gate * correction), feat

    def _kernel(self, t: int, u: torch.Tensor, y: torch.Tensor, feat: torch.Tensor, previous=None) -> torch.Tensor:
        """Kernel update ``t`` from the image ``u`` on the observed window (B, C, H, W)."""
        K = self.kernel_size
        # Closed-form least squares on the observed window; the taper hides the window's circular seam.
        # Zero margins of K px keep the circular solve from wrapping (and fit kernels larger than small photos).
        H, W = y.shape[-2:]
        win = taper_window((H, W), K, device=y.device, dtype=y.dtype)
        margins = (0, fft_size(W + K) - W, 0, fft_size(H + K) - H)
        uc, yc = F.pad(u * win, margins), F.pad(y * win, margins)
        # Cho & Lee: only the strongest edges of u enter the fit (weak ones are still blurred or hallucinated).
        mask = salient_edge_mask(uc, int(self.edge_ratio * K)) if self.edge_ratio > 0 else None
        # Parseval: the gradient energy is the mean of sum_d |D X|^2 over frequencies, so gamma is relative to it.
        energy = sum((g if mask is None else g * mask).square().sum((1, 2, 3)) for g in gradients(uc))
        gamma = self.log_gamma[t].exp() * energy.detach()
        k_hat = project_kernel(kernel_step(uc, yc, K, gamma=gamma, method="fft", x_mask=mask), differentiable=True)
        h_p = self.kernel_proxes[t](k_hat)
        h_b = self.attentions[t](feat, K)
        return self.fusions[t](h_p, k_hat, h_b, previous)

    def _build_image_steps(self, channels: int, prior_width: int, beta: float, weight: float) -> None:
        """The learned parts of the image steps: gradient priors ``G_t`` and the weights ``b_t, w_t`` ("start"),
        or the HQS data weight ``lam_t = exp(a_t) / sigma^2`` and splitting weights ``beta_{t,i}`` ("l0",
        starting at the classical 0.3 and 1, r, r^2, ..., r^(iters - 1) with r = ``hqs_rate``)."""
        self.priors = nn.ModuleList(GradientPrior(channels, prior_width) for _ in range(self.stages))
        if self.l0:
            self.log_lam = nn.Parameter(torch.full((self.stages,), math.log(0.3)))
            steps = torch.arange(self.hqs_iters, dtype=torch.float32) * math.log(self.hqs_rate)
            self.log_betas = nn.Parameter(steps.repeat(self.stages, 1))
            # gates of the learned prior and of the proximal nets: 0 = the classical step
            self.prior_gates = nn.Parameter(torch.zeros(self.stages))
            self.prox_gates = nn.Parameter(torch.zeros(self.stages))
            return
        self.log_beta = nn.Parameter(torch.full((self.stages,), math.log(beta)))
        self.log_weight = nn.Parameter(torch.full((self.stages,), math.log(weight)))

    def _image_step_inputs(self, y_ext: torch.Tensor) -> dict:
        """What every stage's image step needs from the observation alone, computed once per forward pass."""
        return {}

    def _image_step(self, t: int, u: torch.Tensor, y_ext: torch.Tensor, otf: torch.Tensor, otfs_grad,
                    shared: dict) -> torch.Tensor:
        """Stage ``t``'s data step on the extended domain: the closed-form gradient-domain half-quadratic step."""
        step = FourierDataStep(y_ext, otf, otfs_grad)
        tx, ty = self.priors[t](*gradients(u))
        w = self.log_weight[t].exp()
        return step(beta=self.log_beta[t].exp(), u=u, weights=(w, w), targets=(tx, ty))

    def _hqs_step(self, t: int, y: torch.Tensor, k: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Stage ``t``'s "l0" image step: hyper-Laplacian HQS with kernel ``k`` (B, 1, K, K); the ``w``-step of
        the last splitting step moves the shrunk gradients towards the learned gradient prior ``G_t`` by its gate
        (once per stage rather than at every step, which keeps the CPU training step short)."""
        prior, gate, step = self.priors[t], self.prior_gates[t] * GATE_SCALE, [0]

        def shrink(gh, gv, beta):
            step[0] += 1
            wh, wv = shrink_hyper_laplacian(gh, beta, 2 / 3), shrink_hyper_laplacian(gv, beta, 2 / 3)
            if step[0] != self.hqs_iters:
                return wh, wv
            ph, pv = prior(wh, wv)
            return wh + gate * (ph - wh), wv + gate * (pv - wv)

        mix = torch.ones(y.shape[0], 1, *y.shape[-2:], device=y.device, dtype=torch.float32)
        lam = self.log_lam[t].float().exp() / sigma ** 2
        return mixture_hqs(y, k, mix, lam=lam, betas=self.log_betas[t].float().exp().unbind(), shrink=shrink,
                           cg_iters=self.hqs_cg)

    def _l0_step_inputs(self, y: torch.Tensor, sigma: torch.Tensor) -> dict:
        """What every ``"l0"`` image step needs from the observation alone, computed once per forward pass."""
        return {}

    def _l0_image_step(self, t: int, y: torch.Tensor, k: torch.Tensor, sigma: torch.Tensor, shared: dict):
        """Stage ``t``'s image before its proximal net (``"l0"``): the HQS step (UPADNet refines it)."""
        return self._hqs_step(t, y, k, sigma)

    def _registered(self, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """A stage's output: its image ``u`` moved by its kernel's sub-pixel centroid offset (``register``); the
        stage keeps working with the unmoved ``u``."""
        return register_to_kernel(u, k) if self.register else u

    def _forward_l0(self, y: torch.Tensor) -> dict:
        iters = self.train_init_iters if self.training else self.init_iters
        with torch.no_grad():  # hard thresholds and loops: a starting point, not a learned part
            k = estimate_photo_kernel(y.detach().float(), kernel_size=self.kernel_size, iters_per_level=iters[0],
                                      final_iters=iters[1], refine_iters=iters[2],
                                      kernel_sparsity=self.init_sparsity)
        # the stages deconvolve with estimated kernels: at least the kernel-error noise level (as blind-l0's final step)
        sigma = estimate_noise_sigma(y.detach().float()).clamp_min(KERNEL_ERROR_SIGMA)
        shared = self._l0_step_inputs(y, sigma)
        outputs, kernels, u, feat = [], [], None, None
        for t in range(self.stages):
            if t:
                k = self._kernel(t - 1, u, y, feat, previous=k)
            yt, st, moved = y, shared, False
            if self.register and t == self.stages - 1:
                # the last stage deconvolves the registered photo (as blind-l0 does), so the returned image is not
                # interpolated (on the tuning crops a little better than moving it: docs/models/gdunet.md)
                yt = register_to_kernel(y, k)
                moved = yt is not y
                st = self._l0_step_inputs(yt, sigma) if moved else shared
            u, feat = self._apply_prox(self.proxes[t], self._l0_image_step(t, yt, k, sigma, st),
                                       self.prox_gates[t] * GATE_SCALE)
            outputs.append((u if moved else self._registered(u, k), 1.0))
            kernels.append(k)
        return {"outputs": outputs, "kernels": kernels}

    def _forward(self, y: torch.Tensor) -> dict:
        if self.l0:
            return self._forward_l0(y)
        K = self.kernel_size
        dom = Domain(y.shape[-2:], (K, K), device=y.device)
        y_ext = dom.extend(y)
        otfs_grad = gradient_otfs(dom.shape, device=y.device, dtype=y.dtype)
        u, feat = self._apply_prox(self.start, y_ext)
        shared = self._image_step_inputs(y_ext)
        outputs, kernels = [(dom.crop(u), 1.0)], []
        for t in range(self.stages):
            k = self._kernel(t, dom.crop(u), y, feat)
            x = self._image_step(t, u, y_ext, psf2otf(k.to(y.dtype), dom.shape), otfs_grad, shared)
            u, feat = self._apply_prox(self.proxes[t], x)
            outputs.append((dom.crop(u), 1.0))  # not registered: this design's ONNX graph has no data-dependent shift
            kernels.append(k)
        return {"outputs": outputs, "kernels": kernels}


# Shipped weight sets (docs/weights.md tells how each was trained).
register_weights(
    "gdunet-tiny", "motion", blind=True, blur=("motion",),
    data="synthetic motion blur on CBSD432 (31 px kernels, noise 0-0.03) with kernel targets, "
         "configs/gdunet-tiny-motion.yaml",
    steps="the blind-start design's 2400 + 1100, whose stage modules then started the L0-initialised design "
          "for 500 more (2-core CPU, crops 128, batch 4; docs/weights.md); image-module gates at 0 (untrained)",
    scores="see benchmarks/motion_kodak24.md and benchmarks/levin.md",
)
