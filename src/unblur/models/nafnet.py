"""NAFNet (Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022).

A plain UNet of NAFBlocks (no nonlinear activation functions: SimpleGate + simplified channel attention)::

    x -> conv3x3 (3 -> w) -> [enc_i: NAFBlock * n_i -> 2x2 stride-2 conv (c -> 2c)] * L
      -> middle: NAFBlock * m
      -> [dec_i: 1x1 conv + PixelShuffle (c -> c/2) -> + skip_i -> NAFBlock * d_i] * L
      -> conv3x3 (w -> 3) -> + x            (global residual)

Sizes (see docs/models/nafnet.md): ``small`` is NAFNet-width32 and ``paper`` NAFNet-width64 of the GoPro
experiments (17.1M / 67.9M parameters, as published); ``tiny`` is a CPU-trainable toy.

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("nafnet-tiny").eval()
    >>> net(torch.rand(1, 3, 37, 45)).shape
    torch.Size([1, 3, 37, 45])
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import RestorationModel
from .blocks import Downsample, NAFBlock, Upsample
from .registry import register_model, register_weights

__all__ = ["NAFNet"]


@register_model(
    "nafnet",
    {
        # 0.71M parameters, 0.82 GMACs at 256x256: trainable on 2 CPU cores in hours. Width 12 rather than 16
        # keeps four levels (receptive field for long motion blur) inside ~1M parameters (width 16: 1.26M).
        "tiny": dict(width=12, enc_blocks=(1, 1, 1, 2), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
        # NAFNet-width32 (GoPro): 17.1M parameters.
        "small": dict(width=32, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
        # NAFNet-width64 (GoPro): 67.9M parameters.
        "paper": dict(width=64, enc_blocks=(1, 1, 1, 28), middle_blocks=1, dec_blocks=(1, 1, 1, 1)),
    },
)
class NAFNet(RestorationModel):
    """NAFNet UNet.

    Args:
        width: channels of the first level (doubled at every downsampling).
        enc_blocks: NAFBlocks per encoder level (its length is the number of downsamplings).
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level (same length as ``enc_blocks``).
        in_channels: image channels (3).
        dropout: dropout inside NAFBlocks (0 in the paper's deblurring models).
    """

    cpu_channels_last = True  # depthwise convolutions: about 2x faster on CPUs (benchmarks/cpu_path.md)

    def __init__(
        self,
        width: int = 16,
        enc_blocks=(1, 1, 1, 2),
        middle_blocks: int = 1,
        dec_blocks=(1, 1, 1, 1),
        in_channels: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        enc_blocks, dec_blocks = tuple(enc_blocks), tuple(dec_blocks)
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"NAFNet: enc_blocks {enc_blocks} and dec_blocks {dec_blocks} differ in length")
        self.size_multiple = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.ending = nn.Conv2d(width, in_channels, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(n)]))
            self.downs.append(Downsample(ch))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for n in dec_blocks:
            self.ups.append(Upsample(ch))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch, dropout=dropout) for _ in range(n)]))

    def residual(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(correction, bottleneck features)``: the prediction is ``x + correction`` (unrolled networks that use
        a NAFNet as a proximal module also read its bottleneck)."""
        feat = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            feat = enc(feat)
            skips.append(feat)
            feat = down(feat)
        bottleneck = feat = self.middle(feat)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            feat = dec(up(feat) + skip)
        return self.ending(feat), bottleneck

    def _forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        return [(x + self.residual(x)[0], 1.0)]


# Shipped weight sets (docs/weights.md tells how each was trained).
register_weights(
    "nafnet-tiny", "motion", blind=True, blur=("motion",),
    data="synthetic motion blur on CBSD432 (31 px kernels, noise 0-0.02), configs/nafnet-tiny-motion.yaml",
    steps="3000 (1 H100, crops 192, batch 16)",
    scores="Kodak24 motion 23.29 dB / 0.577 SSIM, benchmarks/motion_kodak24.md",
)
