"""FDIKP (Zhang, Tang, Li, Chen, Wu, "Frequency-Driven Inverse Kernel Prediction for Single Image Defocus
Deblurring", 2025): defocus deblurring by predicting a few inverse (deblurring) kernels from spatial *and*
frequency features, applying them per pixel, and refining coarse to fine in both domains.

Only the abstract is known; the design below follows its three stated parts (choices: ``docs/models/fdikp.md``).
The inverse kernels are physical: regularised inverses of defocus disks on a ladder of radii, applied to the
photo in the Fourier domain once (the DIKP bank); the network predicts, per pixel, which radius to invert::

    bank = DiskWienerBank(y)          x_j = F^-1[conj(K_j) Y / (|K_j|^2 + lam_j(sigma) |D|^2)], r_j = 0 .. 10 px
    prof = RadialSpectrum(y)          ring-averaged log power of 64 px windows and of the whole photo
    for each scale s = 1/4, 1/2, 1 (shared weights, scale-recurrent; the bank downscaled):
        f    = encoder([y_s, x_{s-1} up, bank_s], hidden_{s-1} up)              features (NAFBlocks, 2 levels)
        spec = LocalSpectrum(f)        log-amplitude spectra of 16 px windows in radial bands: the blur's
                                       frequency signature (a disk's spectrum has radius-dependent zero rings)
        r    = PAC(f, ringing evidence of the bank; spec, prof)   per-pixel radius: the expectation of
                                       softmax weights over the ladder (spatial branch + frequency branch),
                                       gated with its own mean over 24 px (local_mean)
        m    = bank_s interpolated at r (two neighbouring inverses); at full scale instead
               DiskHQS(y, r): 7 learned hyper-Laplacian HQS steps for the disk r at each pixel
        g    = DSRM(f + conv m)        spatial + Fourier (FFT-ReLU) refinement; hidden_s = g
        x_s  = m + conv(g)
    radius map = r at full resolution (pixels)

Returns every scale's image (deep supervision) and ``"radius_map"`` (``RestorationModel.estimate_radius_map``).

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("fdikp-tiny").eval()
    >>> out = net.forward_train(torch.rand(1, 3, 50, 44))
    >>> out["outputs"][-1][0].shape, out["radius_map"].shape
    (torch.Size([1, 3, 50, 44]), torch.Size([1, 1, 50, 44]))
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..physics import (Domain, defocus_kernel, estimate_noise_sigma, fourier_data_step, gradient_otfs, gradients,
                       mixture_hqs)
from ..physics.fft import rfft2
from ..physics.polar import radial_frequency
from .base import RestorationModel, downscale
from .blocks import Downsample, NAFBlock, ResFFTReLUBlock, Upsample, local_mean
from .registry import register_model, register_weights

__all__ = ["FDIKP"]


class LocalSpectrum(nn.Module):
    """Frequency descriptors of the features: log-amplitude spectra of non-overlapping ``window`` px windows,
    averaged in ``bands`` radial bands, projected to ``out`` channels: (B, out, ceil(H / w), ceil(W / w))."""

    frequency_domain = True  # pools spectra, not places (no TLC windowing inside)

    def __init__(self, channels: int, out: int, window: int = 16, bands: int = 6):
        super().__init__()
        self.window, self.bands = int(window), int(bands)
        r = radial_frequency((self.window, self.window))
        band = (r * self.bands).floor().clamp(max=self.bands - 1).long().flatten()
        onehot = F.one_hot(band, self.bands).float()
        self.register_buffer("pool", onehot / onehot.sum(0, keepdim=True), persistent=False)
        self.proj = nn.Conv2d(channels * self.bands, out, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        B, C, H, W = f.shape
        w = self.window
        # always pad (maybe by 0): no branch on the size, so an exported graph keeps it free
        f = F.pad(f, (0, (-W) % w, 0, (-H) % w), mode="replicate")
        nh, nw = f.shape[-2] // w, f.shape[-1] // w
        patches = f.reshape(B, C, nh, w, nw, w).permute(0, 1, 2, 4, 3, 5)
        spec = torch.log1p(rfft2(patches).abs())  # (B, C, nh, nw, w, w // 2 + 1), float32
        bands = spec.flatten(-2) @ self.pool  # (B, C, nh, nw, bands)
        bands = bands.permute(0, 1, 4, 2, 3).reshape(B, C * self.bands, nh, nw)
        return self.proj(bands.to(self.proj.weight.dtype))


class DiskWienerBank(nn.Module):
    """DIKP's inverse kernels, made physical: for each radius ``r_j`` of a fixed ladder, the regularised inverse
    of the anti-aliased disk of that radius, applied to the photo in the Fourier domain::

        x_j = F^-1[ conj(K_j) F(y) / (|K_j|^2 + lam_j |D|^2) ]        D: the two gradient filters

    (``physics.fourier_data_step`` on ``physics.Domain``'s smooth periodic extension, so the frame's edges do not
    ring). ``lam_j = exp(a_j) (sigma + 0.002)^b`` follows the photo's noise level ``sigma``
    (``physics.estimate_noise_sigma``); ``a_j`` and ``b`` are learned, starting at ``lam = 150 sigma^2`` (a starting
    point from a quick sweep on a few Kodak crops, not kept as a benchmark). Radius 0 is the photo itself.
    Returns (B, J, C, H, W)."""

    frequency_domain = True  # whole-image deconvolutions, not local statistics

    def __init__(self, radii=(0, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10)):
        super().__init__()
        radii = sorted(float(r) for r in radii)
        if radii[0] != 0:
            raise ValueError(f"DiskWienerBank: the ladder must start at radius 0 (the photo), got {radii}")
        self.size = 2 * math.ceil(radii[-1]) + 1
        with torch.device("cpu"):  # the taps are computed on the host (also when built on the meta device)
            kernels = torch.stack([defocus_kernel(r, self.size) for r in radii[1:]])
        self.register_buffer("kernels", kernels, persistent=False)
        self.register_buffer("radii", torch.tensor(radii), persistent=False)
        self.log_scale = nn.Parameter(torch.full((len(radii) - 1,), math.log(150.0)))
        self.noise_power = nn.Parameter(torch.tensor(2.0))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        B, C, H, W = y.shape
        yf = y.float()  # FFTs in float32, also under autocast
        domain = Domain((H, W), (self.size, self.size), "valid")
        otf = domain.otf(self.kernels.float()[:, None, None])  # (J-1, 1, 1, P, Q // 2 + 1); no complex unsqueeze
        sigma = estimate_noise_sigma(yf).float() + 0.002  # (B, 1, 1, 1)
        lam = self.log_scale.float().exp().view(-1, 1, 1, 1, 1) * sigma[None] ** self.noise_power.float()
        x = fourier_data_step(domain.extend(yf), otf, filter_otfs=gradient_otfs(domain.shape, y.device),
                              weights=(lam, lam))  # (J-1, B, C, P, Q)
        x = domain.crop(x).transpose(0, 1).to(y.dtype)
        return torch.cat([y[:, None], x], 1)


class RadialSpectrum(nn.Module):
    """The photo's own frequency signature of defocus, at a scale that resolves it: log power spectra of
    ``window`` px windows (Hann-tapered, grey, mean removed; every ``window // 2`` px) averaged in ``bins`` rings
    up to 0.35 cycles per pixel (the higher frequencies in the last ring).
    A disk of radius r multiplies the spectrum by |J1(2 pi r rho) / (pi r rho)|^2, whose zero rings sit at
    rho = 0.61 / r, 1.12 / r, ... cycles per pixel: 16 px windows cannot resolve them for r above 4 px, 64 px ones
    can. Returns the per-window profiles (B, bins, nh, nw) and their mean over the photo (B, bins, 1, 1): one
    uniform defocus is one radius everywhere, and the photo-wide profile is far less noisy."""

    frequency_domain = True

    def __init__(self, window: int = 64, bins: int = 24):
        super().__init__()
        self.window, self.bins = int(window), int(bins)
        r = radial_frequency((self.window, self.window))  # 0 .. ~0.71 (cycles per pixel, scaled)
        band = (r.clamp(max=0.5) / 0.5 * self.bins).floor().clamp(max=self.bins - 1).long().flatten()
        onehot = F.one_hot(band, self.bins).float()
        self.register_buffer("pool", onehot / onehot.sum(0, keepdim=True).clamp_min(1), persistent=False)
        hann = torch.hann_window(self.window, periodic=False)
        self.register_buffer("taper", hann[:, None] * hann[None, :], persistent=False)

    def forward(self, y: torch.Tensor):
        w, stride = self.window, self.window // 2
        g = y.float().mean(1, keepdim=True)
        H, W = g.shape[-2:]
        # at least one window and whole windows: replicate-pad up (sym_max: no branch on the size)
        Hp, Wp = torch.sym_max(H, w), torch.sym_max(W, w)
        g = F.pad(g, (0, Wp + (w - Wp) % stride - W, 0, Hp + (w - Hp) % stride - H), mode="replicate")
        patches = g.unfold(2, w, stride).unfold(3, w, stride)  # (B, 1, nh, nw, w, w)
        patches = (patches - patches.mean((-2, -1), keepdim=True)) * self.taper
        power = rfft2(patches).abs().square()
        prof = torch.log(power + 1e-8).flatten(-2) @ self.pool  # (B, 1, nh, nw, bins)
        prof = prof[:, 0].permute(0, 3, 1, 2)
        return prof, prof.mean((-2, -1), keepdim=True)


def ringing_evidence(bank: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Per pixel and bank entry, how much each inverse raised the local gradient energy over the photo's:
    ``log(box(|grad x_j|^2) / box(|grad y|^2))`` over ``window`` px, (B, J, H, W). Too small a disk leaves it
    near the photo's, the right one restores the edges, too large a one rings: the energy bends upwards past the
    true radius, a cue a small network reads far more easily than raw pixels."""
    gh, gv = gradients(bank)
    energy = local_mean((gh ** 2 + gv ** 2).mean(2), (window, window))  # over colours, then the box: (B, J, H, W)
    log_energy = torch.log(energy + 1e-6)
    return log_energy - log_energy[:, :1]


def hat_weights(radius: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Linear interpolation weights of a radius map (B, 1, H, W) on a sorted ladder ``radii`` (J,): at most two
    neighbouring entries are non-zero, they sum to 1; radii beyond the ladder take its end. (B, J, H, W)."""
    ladder = radii.to(radius.dtype).view(1, -1, 1, 1)
    r = torch.minimum(torch.maximum(radius, ladder[:, :1]), ladder[:, -1:])  # tensors: no host sync, exportable
    inf = torch.full_like(ladder[:, :1], float("inf"))
    prev = torch.cat([ladder[:, :1] - 1, ladder[:, :-1]], 1)
    nxt = torch.cat([ladder[:, 1:], ladder[:, -1:] + 1], 1)
    left = torch.cat([inf.expand_as(r), ((r - prev) / (ladder - prev))[:, 1:]], 1)
    right = torch.cat([((nxt - r) / (nxt - ladder))[:, :-1], inf.expand_as(r)], 1)
    return torch.minimum(left, right).clamp(0, 1)


class DiskHQS(nn.Module):
    """The deconvolution at the chosen radius: ``iters`` steps of half-quadratic splitting with a hyper-Laplacian
    gradient prior for the blur the radius map describes, each pixel's disk read on the ladder by
    :func:`hat_weights` (``physics.mixture_hqs``). The bank's one-shot inverses are its first guess; these steps
    recover what a quadratic prior blurs or rings (at the true radius of Kodak24 disks: 27.07 dB against the
    bank's 25.88, ``benchmarks/defocus_radius.md``). The data weight ``lam = exp(a) / sigma^2`` (noise from
    ``physics.estimate_noise_sigma``) and the splitting weights ``beta_t`` are learned, starting at the classical
    schedule (``a = log 0.3``, ``beta_t = 4^t``)."""

    frequency_domain = True

    def __init__(self, radii, iters: int = 7):
        super().__init__()
        radii = sorted(float(r) for r in radii)
        size = 2 * math.ceil(radii[-1]) + 1
        with torch.device("cpu"):  # host taps, also when built on the meta device
            kernels = torch.stack([defocus_kernel(r, size) for r in radii])  # radius 0: a delta
        self.register_buffer("kernels", kernels, persistent=False)
        self.register_buffer("radii", torch.tensor(radii), persistent=False)
        self.log_lam = nn.Parameter(torch.tensor(math.log(0.3)))
        self.log_betas = nn.Parameter(torch.arange(int(iters), dtype=torch.float32) * math.log(4.0))

    def forward(self, y: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        sigma = estimate_noise_sigma(y.float()).clamp_min(1e-3)
        lam = self.log_lam.float().exp() / sigma ** 2
        mix = hat_weights(radius.float(), self.radii)
        return mixture_hqs(y, self.kernels, mix, lam=lam, betas=self.log_betas.float().exp().unbind())


class PositionAdaptiveSelection(nn.Module):
    """PAC, in image space: per pixel, a blur radius from two branches, a spatial one (convolutions of the
    features and of :func:`ringing_evidence`) and a frequency one (the features' local spectra and the photo's
    :class:`RadialSpectrum`: the disk's zero rings),
    as the expectation of softmax weights over the ladder. Returns the radius map (B, 1, H, W); the caller reads
    the bank at that radius (two neighbouring inverses, :func:`hat_weights`, not a blend of all of them: a blend
    of inverses of different disks is the inverse of none) or deconvolves there (:class:`DiskHQS`)."""

    def __init__(self, channels: int, spec_channels: int, count: int, context: int = 24, bins: int = 24):
        super().__init__()
        self.context = int(context)
        # the photo's radial spectra (window and photo-wide) to logits over the ladder
        self.radial = nn.Sequential(nn.Conv2d(2 * bins, 2 * bins, 1), nn.GELU(), nn.Conv2d(2 * bins, count, 1))
        self.spatial = nn.Sequential(nn.Conv2d(channels + count, channels, 3, padding=1), nn.GELU(),
                                     nn.Conv2d(channels, count, 3, padding=1))
        self.frequency = nn.Sequential(nn.Conv2d(spec_channels, spec_channels, 1), nn.GELU(),
                                       nn.Conv2d(spec_channels, count, 1))
        self.gate = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, f: torch.Tensor, spec: torch.Tensor, bank: torch.Tensor, radii: torch.Tensor, radial):
        local, whole = radial
        radial_logits = self.radial(torch.cat([local, whole.expand_as(local)], 1).to(f.dtype))
        freq = F.interpolate(self.frequency(spec) + F.interpolate(radial_logits, size=spec.shape[-2:], mode="bilinear",
                                                                  align_corners=False),
                             size=f.shape[-2:], mode="bilinear", align_corners=False)
        evidence = ringing_evidence(bank.float()).to(f.dtype)
        p = torch.softmax(self.spatial(torch.cat([f, evidence], 1)) + freq, 1)
        local = (p * radii.to(p.dtype).view(1, -1, 1, 1)).sum(1, keepdim=True)
        # one depth often spans a region: a gate blends the pixel's radius with its mean over ``context`` px,
        # which flat areas (no evidence of their own) and uniformly defocused photos need
        area = local_mean(local, (self.context, self.context))
        g = torch.sigmoid(self.gate(f))
        return g * local + (1 - g) * area


@register_model(
    "fdikp",
    {
        "tiny": dict(width=32, blocks=2, spec_width=32, refine_blocks=2),
        "small": dict(width=48, blocks=3, spec_width=48, refine_blocks=3),
        # the paper's size is unknown (abstract only): a NAFNet-width-48 encoder, a finer radius ladder
        "paper": dict(width=64, blocks=4, spec_width=64, refine_blocks=4, radii=tuple(r / 2 for r in range(0, 25))),
    },
)
class FDIKP(RestorationModel):
    """Frequency-driven inverse kernel prediction (see the module doc).

    Args:
        width, blocks: feature channels and NAFBlocks per encoder level.
        spec_width, window, bands: local-spectrum descriptor channels, window size and radial bands.
        radii: the disk radii (pixels) of the inverse-kernel bank, starting at 0 (the photo itself).
        scales: pyramid levels (coarse to fine, shared weights).
        refine_blocks: NAFBlocks of the refinement (after one FFT-ReLU block).
        hqs_iters: splitting steps of the full-scale deconvolution at the chosen radius (:class:`DiskHQS`).
        in_channels: image channels.
    """

    radius_map = True
    cpu_channels_last = True  # about 1.2x faster on CPUs (benchmarks/cpu_path.md)
    # the bank's extended Fourier domain and the radial spectra's windows did not export with free sizes
    # (torch.export's symbolic shapes): a fixed 384 px graph, run in tiles. That graph matches PyTorch on a
    # textured tile but gives NaN on a small photo padded to the tile (flat regions), cause not found yet:
    # refused rather than shipped half-right
    onnx_tile = True
    onnx_unsupported = ("onnxruntime returns NaN for FDIKP's graph on flat regions (a photo padded to the "
                        "384 px tile); use the PyTorch backend")

    def __init__(self, width: int = 16, blocks: int = 1, spec_width: int = 16, window: int = 16, bands: int = 6,
                 radii=(0, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10), scales: int = 3, refine_blocks: int = 1,
                 hqs_iters: int = 7, in_channels: int = 3):
        super().__init__()
        self.scales = int(scales)
        self.size_multiple = 2 ** self.scales  # the coarsest scale's encoder halves once more
        c = int(width)
        self.bank = DiskWienerBank(radii)
        count = len(self.bank.radii)
        self.intro = nn.Conv2d((2 + count) * in_channels, c, 3, padding=1)
        self.recur = nn.Conv2d(2 * c, c, 1)  # the previous scale's refined features enter here
        self.enc = nn.Sequential(*[NAFBlock(c) for _ in range(blocks)])
        self.down = Downsample(c)
        self.mid = nn.Sequential(*[NAFBlock(2 * c) for _ in range(blocks)])
        self.up = Upsample(2 * c)
        self.spectrum = LocalSpectrum(c, spec_width, window, bands)
        self.radial_spectrum = RadialSpectrum()
        self.select = PositionAdaptiveSelection(c, spec_width, count)
        self.mix_in = nn.Conv2d(in_channels, c, 1)
        self.deconv = DiskHQS(radii, hqs_iters)
        self.refine = nn.Sequential(ResFFTReLUBlock(c), *[NAFBlock(c) for _ in range(refine_blocks)])
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)

    def _scale(self, y: torch.Tensor, bank: torch.Tensor, x_prev: torch.Tensor, hidden: torch.Tensor, radial,
               full: bool):
        f = self.intro(torch.cat([y, x_prev, bank.flatten(1, 2)], 1))
        f = self.enc(self.recur(torch.cat([f, hidden], 1)))
        f = f + self.up(self.mid(self.down(f)))
        radius = self.select(f, self.spectrum(f), bank, self.bank.radii, radial)
        if full:  # the full-resolution image: deconvolve at the chosen radius
            mix = self.deconv(y, radius)
        else:  # the coarse scales read the one-shot bank there (two neighbouring inverses)
            mix = (hat_weights(radius, self.bank.radii)[:, :, None].to(bank.dtype) * bank).sum(1)
        g = self.refine(f + self.mix_in(mix))
        return mix + self.out(g), g, radius

    def _forward(self, y: torch.Tensor) -> dict:
        bank = self.bank(y)
        radial = self.radial_spectrum(y)  # full resolution: the ladder's radii are full-resolution pixels
        B, J, C = bank.shape[:3]
        pyramid = [(y, bank)]
        for _ in range(self.scales - 1):
            ys, bs = pyramid[0]
            bs = downscale(bs.flatten(1, 2))
            pyramid.insert(0, (downscale(ys), bs.view(B, J, C, *bs.shape[-2:])))
        x, hidden, outputs = pyramid[0][0], None, []
        for i, (ys, bs) in enumerate(pyramid):
            size = ys.shape[-2:]
            x_prev = x if i == 0 else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            h = (torch.zeros(ys.shape[0], self.recur.in_channels // 2, *size, device=ys.device, dtype=ys.dtype)
                 if hidden is None else F.interpolate(hidden, size=size, mode="bilinear", align_corners=False))
            x, hidden, radius = self._scale(ys, bs, x_prev, h, radial, i == len(pyramid) - 1)
            outputs.append((x, 0.5 ** (len(pyramid) - 1 - i)))
        # the radius the full-scale selection inverted at each pixel (pixels of the full-size photo)
        return {"outputs": outputs, "radius_map": radius}


register_weights(
    "fdikp-tiny", "defocus", blind=True, blur=("defocus",),
    data="synthetic defocus on CBSD432: half uniform disks, half random scenes' spatially varying defocus "
         "(depth layers, occlusion), radii up to 8 px, 30 % through a random non-ideal lens, noise 0-0.02, with "
         "the true radius maps; configs/fdikp-tiny-defocus.yaml",
    steps="2200, then 1500 with the full-scale deconvolution DiskHQS (2-core CPU, crops 128, batch 4; "
          "configs/fdikp-tiny-defocus-finetune.yaml)",
    scores="see benchmarks/defocus.md",
)
