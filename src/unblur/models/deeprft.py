"""DeepRFT (v1): Mao et al., "Deep Residual Fourier Transformation for Single Image Deblurring" (2021).

A MIMO-UNet (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image Deblurring", ICCV 2021) whose
residual blocks are Res FFT-ReLU blocks (``x + conv3x3-ReLU-conv3x3(x) + FFT-ReLU branch(x)``).

Three scales, base width ``C`` (32 in the paper)::

    x4 = down(down(x)), x2 = down(x)                           (image pyramid, multi-input)
    e1 = Enc1(conv3x3(x))                                      C   ch, full res
    e2 = Enc2(FAM(conv3x3/2(e1), SCM(x2)))                     2C  ch, 1/2
    e3 = Enc3(FAM(conv3x3/2(e2), SCM(x4)))                     4C  ch, 1/4
    a1 = AFF(e1, up(e2), up(e3)),  a2 = AFF(down(e1), e2, up(e3))   (cross-scale fusion of encoder features)
    d3 = Dec3(e3)                      -> out_1/4 = x4 + conv3x3(d3)
    d2 = Dec2(conv1x1[convT(d3), a2])  -> out_1/2 = x2 + conv3x3(d2)
    d1 = Dec1(conv1x1[convT(d2), a1])  -> out_1   = x  + conv3x3(d1)     (multi-output)

- SCM (shallow convolution module): a few 3x3/1x1 convs lifting a downscaled image to features, concatenated with
  the image itself and mixed by a 1x1 conv.
- FAM (feature attention module): ``f + conv3x3(f * s)`` -- the image-derived features ``s`` gate the
  encoder features ``f`` multiplicatively.
- AFF (asymmetric feature fusion): concatenation of the three encoder outputs resized to one scale,
  1x1 conv + ReLU, 3x3 conv.

Sizes (docs/models/deeprft.md): ``paper`` is DeepRFT+ (20 blocks per encoder/decoder level, 23.0M parameters).

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("deeprft-tiny").eval()
    >>> [tuple(o.shape[-2:]) for o, s in net.forward_train(torch.rand(1, 3, 37, 45))["outputs"]]
    [(10, 12), (19, 23), (37, 45)]
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import RestorationModel, downscale
from .blocks import ResFFTReLUBlock
from .registry import register_model

__all__ = ["DeepRFT"]


def _conv(in_ch: int, out_ch: int, k: int, stride: int = 1, relu: bool = True) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, k, stride=stride, padding=k // 2)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else conv


def _up(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ShallowConvModule(nn.Module):
    """SCM: features (``channels``) of a downscaled input image."""

    def __init__(self, channels: int, in_channels: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            _conv(in_channels, channels // 4, 3),
            _conv(channels // 4, channels // 2, 1),
            _conv(channels // 2, channels // 2, 3),
            _conv(channels // 2, channels - in_channels, 1),
        )
        self.mix = _conv(channels, channels, 1, relu=False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([img, self.body(img)], dim=1))


class FeatureAttention(nn.Module):
    """FAM: ``f + conv3x3(f * s)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.merge = _conv(channels, channels, 3, relu=False)

    def forward(self, f: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return f + self.merge(f * s)


class AsymmetricFeatureFusion(nn.Module):
    """AFF: fuse encoder features of all scales (already resized to one scale)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv(in_channels, out_channels, 1), _conv(out_channels, out_channels, 3, relu=False))

    def forward(self, *feats: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat(feats, dim=1))


def _stage(channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResFFTReLUBlock(channels) for _ in range(n)])


@register_model(
    "deeprft",
    {
        # 0.40M parameters, 3.3 GMACs at 256x256 (without FFTs): a CPU-trainable toy.
        "tiny": dict(base_channels=12, num_blocks=2),
        # 5.09M parameters: DeepRFT with a short stack (4 blocks per level).
        "small": dict(base_channels=32, num_blocks=4),
        # DeepRFT+ (MIMO-UNet+ backbone): 20 blocks per level, 23.0M parameters.
        "paper": dict(base_channels=32, num_blocks=20),
    },
)
class DeepRFT(RestorationModel):
    """DeepRFT: MIMO-UNet with Res FFT-ReLU blocks; outputs at 1/4, 1/2 and full scale.

    Args:
        base_channels: channels at full resolution (doubled at 1/2 and 1/4); a multiple of 4.
        num_blocks: Res FFT-ReLU blocks in every encoder and decoder level (8 in DeepRFT, 20 in DeepRFT+).
        in_channels: image channels (3).
    """

    size_multiple = 4

    def __init__(self, base_channels: int = 32, num_blocks: int = 8, in_channels: int = 3):
        super().__init__()
        if base_channels % 4 or base_channels < 8:
            raise ValueError(f"DeepRFT: base_channels must be a multiple of 4 and >= 8, got {base_channels}")
        c1, c2, c3 = base_channels, 2 * base_channels, 4 * base_channels
        self.head = _conv(in_channels, c1, 3)
        self.down1 = _conv(c1, c2, 3, stride=2)
        self.down2 = _conv(c2, c3, 3, stride=2)
        self.scm2, self.scm4 = ShallowConvModule(c2, in_channels), ShallowConvModule(c3, in_channels)
        self.fam2, self.fam4 = FeatureAttention(c2), FeatureAttention(c3)
        self.enc1, self.enc2, self.enc3 = _stage(c1, num_blocks), _stage(c2, num_blocks), _stage(c3, num_blocks)
        self.aff1 = AsymmetricFeatureFusion(c1 + c2 + c3, c1)
        self.aff2 = AsymmetricFeatureFusion(c1 + c2 + c3, c2)
        self.dec3, self.dec2, self.dec1 = _stage(c3, num_blocks), _stage(c2, num_blocks), _stage(c1, num_blocks)
        self.up3 = nn.Sequential(nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(inplace=True))
        self.fuse2, self.fuse1 = _conv(2 * c2, c2, 1), _conv(2 * c1, c1, 1)
        self.out4 = _conv(c3, in_channels, 3, relu=False)
        self.out2 = _conv(c2, in_channels, 3, relu=False)
        self.out1 = _conv(c1, in_channels, 3, relu=False)

    def _forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        x2 = downscale(x)
        x4 = downscale(x2)
        e1 = self.enc1(self.head(x))
        e2 = self.enc2(self.fam2(self.down1(e1), self.scm2(x2)))
        e3 = self.enc3(self.fam4(self.down2(e2), self.scm4(x4)))
        s1, s2 = e1.shape[-2:], e2.shape[-2:]
        a1 = self.aff1(e1, _up(e2, s1), _up(e3, s1))
        a2 = self.aff2(F.avg_pool2d(e1, 2), e2, _up(e3, s2))
        d3 = self.dec3(e3)
        d2 = self.dec2(self.fuse2(torch.cat([self.up3(d3), a2], dim=1)))
        d1 = self.dec1(self.fuse1(torch.cat([self.up2(d2), a1], dim=1)))
        return [(x4 + self.out4(d3), 0.25), (x2 + self.out2(d2), 0.5), (x + self.out1(d1), 1.0)]
