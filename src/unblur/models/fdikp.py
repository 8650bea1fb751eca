"""FDIKP (Zhang, Tang, Li, Chen, Wu, "Frequency-Driven Inverse Kernel Prediction for Single Image Defocus
Deblurring", 2025): defocus deblurring by predicting a few inverse (deblurring) kernels from spatial *and*
frequency features, applying them per pixel, and refining coarse to fine in both domains.

Only the abstract is known; the design below follows its three stated parts (choices: ``docs/models/fdikp.md``)::

    for each scale s = 1/4, 1/2, 1 (shared weights, scale-recurrent):
        f    = encoder([y_s, x_{s-1} up], hidden_{s-1} up)                        features (NAFBlocks, 2 levels)
        spec = LocalSpectrum(f)        log-amplitude spectra of 16 px windows in radial bands: the blur's
                                       frequency signature (a disk's spectrum has radius-dependent zero rings)
        K    = DIKP(pool(conv f), pool(spec))     M inverse kernels per image (k x k, sum 1, start as deltas)
        g    = PAC(f; K, spec)         each K_m at dilation m applied to the features, mixed per pixel with
                                       the features themselves by softmax weights from [f, spec]
        g    = DSRM(g)                 spatial + Fourier (FFT-ReLU) refinement; hidden_s = g
        x_s  = y_s + conv(g)
    radius map = softplus(head([g, spec]))    per-pixel defocus radius (pixels) at full resolution

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

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..physics.fft import rfft2
from ..physics.polar import radial_frequency
from .base import RestorationModel, downscale
from .blocks import Downsample, NAFBlock, ResFFTReLUBlock, Upsample
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


class InverseKernelBank(nn.Module):
    """DIKP: ``count`` inverse kernels (size x size) per image from a spatial branch (pooled convolved features)
    and a frequency branch (pooled local spectra), fused by an MLP. Each kernel sums to 1 (the mean is kept) and
    starts as a delta (the identity)."""

    def __init__(self, channels: int, spec_channels: int, count: int = 4, size: int = 5):
        super().__init__()
        self.count, self.size = int(count), int(size)
        self.spatial = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU())
        hidden = 2 * (channels + spec_channels)
        self.fuse = nn.Sequential(nn.Linear(channels + spec_channels, hidden), nn.GELU(),
                                  nn.Linear(hidden, self.count * self.size ** 2))
        nn.init.normal_(self.fuse[-1].weight, std=1e-3)
        nn.init.zeros_(self.fuse[-1].bias)
        delta = torch.zeros(self.size, self.size)
        delta[self.size // 2, self.size // 2] = 1
        self.register_buffer("delta", delta, persistent=False)

    def forward(self, f: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        z = torch.cat([self.spatial(f).mean((-2, -1)), spec.mean((-2, -1))], 1)
        d = self.fuse(z).view(-1, self.count, self.size, self.size)
        return self.delta + d - d.mean((-2, -1), keepdim=True)


class PositionAdaptiveConv(nn.Module):
    """PAC: kernel ``m`` of the bank is applied depthwise to the features at dilation ``m + 1`` (the KPAC
    observation: an inverse defocus kernel keeps its shape and scales with the blur), and the results and the
    features themselves are mixed per pixel by softmax weights predicted from the features and local spectra."""

    def __init__(self, channels: int, spec_channels: int, count: int):
        super().__init__()
        self.weights = nn.Sequential(nn.Conv2d(channels + spec_channels, channels, 3, padding=1), nn.GELU(),
                                     nn.Conv2d(channels, count + 1, 3, padding=1))

    def forward(self, f: torch.Tensor, spec: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        B, C, H, W = f.shape
        M, k = kernels.shape[1], kernels.shape[-1]
        # one kernel per image, shared by its channels: images as groups, channels as the batch
        flat = f.transpose(0, 1)  # (C, B, H, W)
        branches = [f]
        for m in range(M):
            d = m + 1
            out = F.conv2d(flat, kernels[:, m, None].to(f.dtype), padding=d * (k // 2), dilation=d, groups=B)
            branches.append(out.transpose(0, 1))
        w = torch.softmax(self.weights(torch.cat([f, spec], 1)), 1)
        return sum(w[:, i:i + 1] * b for i, b in enumerate(branches))


@register_model(
    "fdikp",
    {
        "tiny": dict(width=16, blocks=1, kernels=4, kernel_size=5, spec_width=16),
        "small": dict(width=32, blocks=2, kernels=4, kernel_size=7, spec_width=32),
        # the paper's size is unknown (abstract only): a NAFNet-width-48 encoder, 6 kernels of 7x7
        "paper": dict(width=48, blocks=4, kernels=6, kernel_size=7, spec_width=48),
    },
)
class FDIKP(RestorationModel):
    """Frequency-driven inverse kernel prediction (see the module doc).

    Args:
        width, blocks: feature channels and NAFBlocks per encoder level.
        kernels, kernel_size: inverse kernels per image and their size (kernel ``m`` at dilation ``m + 1``).
        spec_width, window, bands: local-spectrum descriptor channels, window size and radial bands.
        scales: pyramid levels (coarse to fine, shared weights).
        in_channels: image channels.
    """

    radius_map = True
    cpu_channels_last = True  # about 1.2x faster on CPUs (benchmarks/cpu_path.md)

    def __init__(self, width: int = 16, blocks: int = 1, kernels: int = 4, kernel_size: int = 5,
                 spec_width: int = 16, window: int = 16, bands: int = 6, scales: int = 3, in_channels: int = 3):
        super().__init__()
        self.scales = int(scales)
        self.size_multiple = 2 ** self.scales  # the coarsest scale's encoder halves once more
        c = int(width)
        self.intro = nn.Conv2d(2 * in_channels, c, 3, padding=1)
        self.recur = nn.Conv2d(2 * c, c, 1)  # the previous scale's refined features enter here
        self.enc = nn.Sequential(*[NAFBlock(c) for _ in range(blocks)])
        self.down = Downsample(c)
        self.mid = nn.Sequential(*[NAFBlock(2 * c) for _ in range(blocks)])
        self.up = Upsample(2 * c)
        self.spectrum = LocalSpectrum(c, spec_width, window, bands)
        self.bank = InverseKernelBank(c, spec_width, kernels, kernel_size)
        self.pac = PositionAdaptiveConv(c, spec_width, kernels)
        self.refine = nn.Sequential(ResFFTReLUBlock(c), NAFBlock(c))
        self.out = nn.Conv2d(c, in_channels, 3, padding=1)
        self.radius_head = nn.Sequential(nn.Conv2d(c + spec_width, c, 3, padding=1), nn.GELU(),
                                         nn.Conv2d(c, 1, 3, padding=1))

    def _scale(self, y: torch.Tensor, x_prev: torch.Tensor, hidden: torch.Tensor):
        f = self.enc(self.recur(torch.cat([self.intro(torch.cat([y, x_prev], 1)), hidden], 1)))
        f = f + self.up(self.mid(self.down(f)))
        spec = self.spectrum(f)
        spec_up = F.interpolate(spec, size=f.shape[-2:], mode="bilinear", align_corners=False)
        g = self.refine(self.pac(f, spec_up, self.bank(f, spec)))
        return y + self.out(g), g, spec_up

    def _forward(self, y: torch.Tensor) -> dict:
        pyramid = [y]
        for _ in range(self.scales - 1):
            pyramid.insert(0, downscale(pyramid[0]))
        x, hidden, outputs = pyramid[0], None, []
        for i, ys in enumerate(pyramid):
            size = ys.shape[-2:]
            x_prev = x if i == 0 else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            h = (torch.zeros(ys.shape[0], self.recur.in_channels // 2, *size, device=ys.device, dtype=ys.dtype)
                 if hidden is None else F.interpolate(hidden, size=size, mode="bilinear", align_corners=False))
            x, hidden, spec = self._scale(ys, x_prev, h)
            outputs.append((x, 0.5 ** (len(pyramid) - 1 - i)))
        radius = F.softplus(self.radius_head(torch.cat([hidden, spec], 1)))
        return {"outputs": outputs, "radius_map": radius}


register_weights(
    "fdikp-tiny", "defocus", blind=True, blur=("defocus",),
    data="synthetic defocus on CBSD432: half uniform disks, half random scenes' spatially varying defocus "
         "(depth layers, occlusion), radii up to 8 px, noise 0-0.02, with the true radius maps; "
         "configs/fdikp-tiny-defocus.yaml",
    steps="1200 (2-core CPU, crops 128, batch 4)",
    scores="see benchmarks/defocus.md",
)
