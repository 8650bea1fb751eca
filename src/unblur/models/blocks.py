"""Building blocks shared by every architecture (NAFNet-style: small and readable)."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference.tiling import is_channels_last
from ..physics.fft import irfft2, rfft2


class _LayerNorm2dFn(torch.autograd.Function):
    """Channel LayerNorm of (B, C, H, W) with a hand-written backward: fewer, larger operations than letting
    autograd record the 9 element-wise steps (forward and backward about 2x faster on CPU). Same maths:
    ``xhat = (x - mean) / sqrt(var + eps)`` (biased variance over C), ``y = xhat * weight + bias``."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        rstd = torch.rsqrt((xc * xc).mean(1, keepdim=True) + eps)
        xhat = xc.mul_(rstd)
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.x_dtype = x.dtype
        return torch.addcmul(bias[:, None, None], xhat, weight[:, None, None])

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved_tensors
        gx = dw = db = None
        if ctx.needs_input_grad[0]:
            gw = g * weight[:, None, None]
            m1 = gw.mean(1, keepdim=True)
            m2 = (gw * xhat).mean(1, keepdim=True)
            gx = ((gw - m1).sub_(xhat * m2)).mul_(rstd).to(ctx.x_dtype)
        if ctx.needs_input_grad[1]:
            dw = (g * xhat).sum((0, 2, 3)).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            db = g.sum((0, 2, 3)).to(weight.dtype)
        return gx, dw, db, None


class _ChannelNormFn(torch.autograd.Function):
    """``(x - mean) / sqrt(var + eps)`` over the channels of (B, C, H, W), no affine (see :func:`norm_conv1x1`)."""

    @staticmethod
    def forward(ctx, x, eps):
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        rstd = torch.rsqrt((xc * xc).mean(1, keepdim=True) + eps)
        xhat = xc.mul_(rstd)
        ctx.save_for_backward(xhat, rstd)
        return xhat

    @staticmethod
    def backward(ctx, g):
        xhat, rstd = ctx.saved_tensors
        m1 = g.mean(1, keepdim=True)
        m2 = (g * xhat).mean(1, keepdim=True)
        return (g - m1).sub_(xhat * m2).mul_(rstd), None


def norm_conv1x1(norm: "LayerNorm2d", conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(norm(x))`` for a 1x1 ``conv``, with the LayerNorm's affine folded into the convolution's weights
    (``W diag(w)``, ``bias + W b``): the same maths with one full-size pass less forward and three less backward.
    Falls back to the plain composition for anything else."""
    if type(norm) is not LayerNorm2d or conv.kernel_size != (1, 1) or conv.groups != 1 or conv.stride != (1, 1):
        return conv(norm(x))
    w = conv.weight * norm.weight[None, :, None, None]
    b = torch.mv(conv.weight[:, :, 0, 0], norm.bias)
    b = b if conv.bias is None else b + conv.bias
    return F.conv2d(_ChannelNormFn.apply(x, norm.eps), w, b)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor, with per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LayerNorm2dFn.apply(x, self.weight, self.bias, self.eps)


class SimpleGate(nn.Module):
    """Split channels in two halves and multiply them: the nonlinearity of NAFNet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def _clamped_box_mean(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Mean over ``size`` consecutive entries along ``dim`` around each index, the window shifted to stay inside."""
    n = x.shape[dim]
    if size >= n:
        return x.mean(dim, keepdim=True).expand_as(x)
    c = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), x.cumsum(dim)], dim)
    start = (torch.arange(n, device=x.device) - size // 2).clamp(0, n - size)
    return (c.index_select(dim, start + size) - c.index_select(dim, start)) / size


def local_mean(x: torch.Tensor, window: tuple[int, int], cells: int = 8, transform=None) -> torch.Tensor:
    """Per-pixel mean of ``x`` (B, C, H, W) over a ``window`` (h, w) around it, shifted to stay inside the map
    (TLC's local statistics; a window as large as the map is the global mean). Sums run in float64.

    ``cells``: windows larger than ``cells`` px per side are computed on a map average-pooled by
    ``window // cells`` and interpolated back (bilinear): statistics over hundreds of pixels vary slowly, and the
    full-resolution sums would cost more than the block they feed.

    ``transform``: a per-pixel map that commutes with the averaging (a 1x1 convolution: linear across channels,
    and every averaging weight set sums to one), applied to the means *before* they are interpolated back (or
    broadcast, for the global mean): ``transform(local_mean(x)) == local_mean(x, transform=transform)`` to float
    rounding, at the cost of the small map instead of the full one. The result has ``x``'s memory format.
    """
    H, W = x.shape[-2:]
    transform = transform or (lambda t: t)
    wh, ww = min(max(int(window[0]), 1), H), min(max(int(window[1]), 1), W)
    if wh == H and ww == W:
        return transform(x.mean((-2, -1), keepdim=True, dtype=torch.float64).to(x.dtype)).expand(-1, -1, H, W)
    step = max(1, min(wh, ww) // cells)
    if step == 1:
        y = _clamped_box_mean(x.double(), wh, -2)
        return transform(_clamped_box_mean(y, ww, -1).to(x.dtype))
    # pooled in x's dtype (each cell is a mean of step**2 values; the long sums below run in float64)
    small = F.avg_pool2d(x, step, ceil_mode=True).double()
    y = _clamped_box_mean(_clamped_box_mean(small, max(wh // step, 1), -2), max(ww // step, 1), -1)
    y = transform(y.to(x.dtype))
    if is_channels_last(x):
        y = y.contiguous(memory_format=torch.channels_last)  # the interpolated map comes out in x's layout
    return F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)


class SimplifiedChannelAttention(nn.Module):
    """``x * conv1x1(mean(x))``. The mean is global, or with ``local_fraction = (fh, fw)`` set (TLC, Chu et al.
    ECCV 2022) a local mean over windows of that fraction of the map, so that a photo's statistics match those of
    the training crops and a tile sees the same statistics as the whole photo (see
    :meth:`~unblur.models.base.RestorationModel.local_statistics`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        self.local_fraction: tuple[float, float] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.local_fraction is None:
            return x * self.conv(F.adaptive_avg_pool2d(x, 1))
        fh, fw = self.local_fraction
        window = (round(x.shape[-2] * fh), round(x.shape[-1] * fw))
        return x * local_mean(x, window, transform=self.conv)  # the 1x1 conv runs on the pooled map


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
        return self.gate(self.conv2(norm_conv1x1(self.norm1, self.conv1, x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.sca(self.spatial_mixing(x)))
        x = torch.addcmul(x, self.dropout(y), self.beta)  # x + dropout(y) * beta, one fused operation
        y = self.conv5(self.gate(norm_conv1x1(self.norm2, self.conv4, x)))
        return torch.addcmul(x, self.dropout(y), self.gamma)


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
