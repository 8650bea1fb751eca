"""Building blocks shared by every architecture (NAFNet-style: small and readable)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..physics.fft import irfft2, rfft2


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor, with per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: the nonlinearity of NAFNet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SimplifiedChannelAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv(F.adaptive_avg_pool2d(x, 1))


class NAFBlock(nn.Module):
    """NAFNet block: (LN -> 1x1 -> dw3x3 -> SimpleGate -> SCA -> 1x1) + (LN -> 1x1 -> SimpleGate -> 1x1),
    each residual scaled by a learned per-channel factor initialised to 0 (block starts as identity)."""

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0):
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        self.sca = SimplifiedChannelAttention(dw // 2)
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def spatial_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """Gated depthwise features before channel attention (hook for variants that add a branch)."""
        return self.gate(self.conv2(self.conv1(self.norm1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.sca(self.spatial_mixing(x)))
        x = x + self.dropout(y) * self.beta
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + self.dropout(y) * self.gamma


def _float32_region(x: torch.Tensor):
    """Autocast switched off (parameters stay float32) on the input's device type."""
    if x.device.type in ("cuda", "cpu") and torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return contextlib.nullcontext()


class FFTReLUBranch(nn.Module):
    """DeepRFT's frequency branch: rfft2 -> [Re, Im] -> 1x1 -> ReLU -> 1x1 -> complex -> irfft2.

    The ReLU acts on Fourier coefficients ("frequency selection"); the 1x1 convs learn its thresholds.
    Runs in float32 under autocast (see physics/fft.py)."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.conv1 = nn.Conv2d(2 * channels, 2 * hidden, 1)
        self.conv2 = nn.Conv2d(2 * hidden, 2 * channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Fourier coefficients of large maps exceed the float16 range: the whole branch runs in float32.
        with _float32_region(x):
            H, W = x.shape[-2:]
            X = rfft2(x)
            z = torch.cat([X.real, X.imag], dim=1)
            z = self.conv2(F.relu(self.conv1(z.to(self.conv1.weight.dtype)))).float()
            re, im = z.chunk(2, dim=1)
            return irfft2(torch.complex(re, im), s=(H, W)).to(x.dtype)


class ResFFTReLUBlock(nn.Module):
    """DeepRFT Res FFT-ReLU block: x + conv3x3-ReLU-conv3x3(x) + FFTReLUBranch(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1)
        )
        self.freq = FFTReLUBranch(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.spatial(x) + self.freq(x)


class Downsample(nn.Module):
    """2x2 stride-2 convolution doubling (by default) the channels."""

    def __init__(self, in_ch: int, out_ch: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch or 2 * in_ch, 2, stride=2)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """1x1 conv + PixelShuffle(2), halving (by default) the channels."""

    def __init__(self, in_ch: int, out_ch: int | None = None):
        super().__init__()
        out_ch = out_ch or in_ch // 2
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 1, bias=False)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))
