"""A weighted mix of datasets: item ``i`` of an epoch comes from part ``p`` (drawn with the weights) and is
that part's item ``j`` (drawn uniformly), both from one generator seeded by ``(seed, epoch, i)``, so the
mix is as reproducible as its parts. An item keeps ``blurred`` and ``sharp`` of its part (what every part has; a
kernel or a radius map exists in only some), plus ``index`` and ``part``, so that a batch of mixed items collates.

:func:`real_blur_mix` builds the mix of the real-blur training data: averaged video frames (real shake and
object motion), synthetic non-uniform camera shake (:class:`~unblur.physics.camera_shake.ShakePipeline`) and
the uniform synthetic kernels, all on training images only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..errors import InputError
from .folders import make_generator, randint, split_key

__all__ = ["MixedDataset", "real_blur_mix"]

_MIX_STREAM = 0x3111


class MixedDataset(torch.utils.data.Dataset):
    """``parts`` drawn with probabilities proportional to ``weights``; ``length`` items per epoch."""

    def __init__(self, parts: Sequence[torch.utils.data.Dataset], weights: Sequence[float], length: int,
                 seed: int = 0):
        if not parts or len(parts) != len(weights):
            raise InputError(f"mixed dataset: {len(parts)} parts and {len(weights)} weights")
        w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise InputError(f"mixed dataset: weights must be >= 0 and not all 0, got {list(weights)}")
        self.parts, self.cum = list(parts), (w / w.sum()).cumsum(0)
        self.length, self.seed, self.epoch = int(length), int(seed), 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for p in self.parts:
            if hasattr(p, "set_epoch"):
                p.set_epoch(epoch)

    def __getitem__(self, key) -> dict:
        epoch, index = split_key(key)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        epoch = self.epoch if epoch is None else epoch
        g = make_generator(self.seed, _MIX_STREAM, epoch, index)
        u = float(torch.rand(1, generator=g, dtype=torch.float64))
        p = min(int((self.cum <= u).sum()), len(self.parts) - 1)
        item = self.parts[p][(epoch, randint(g, len(self.parts[p])))]
        item = {k: item[k] for k in ("blurred", "sharp")}
        item["index"], item["part"] = index, p
        return item


def real_blur_mix(image_root: str | Path, frames_root: str | Path | None, *, crop_size: int, kernel_size: int,
                  noise_sigma, weights: Sequence[float] = (0.4, 0.4, 0.2), shake_extent=(4.0, 48.0),
                  holdout: int = 0, length: int | None = None, seed: int = 0, augment: bool = True):
    """Training mix (frames, non-uniform shake, uniform kernels) with ``weights``; ``frames_root=None`` drops
    the frames (its weight too). Sizes: every part returns ``crop_size`` pairs."""
    from ..physics.camera_shake import ShakePipeline
    from .frames import FrameAverageDataset
    from .synthetic import SyntheticBlurDataset

    margin = int(shake_extent[1]) + 2
    shake = SyntheticBlurDataset(image_root, crop_size=crop_size, kernel_size=2 * margin + 1, seed=seed + 1,
                                 augment=augment, split="train", holdout=holdout,
                                 pipeline=ShakePipeline(margin, extent=tuple(shake_extent)))
    uniform = SyntheticBlurDataset(image_root, crop_size=crop_size, kind="motion", kernel_size=kernel_size,
                                   noise_sigma=noise_sigma, seed=seed + 2, augment=augment, split="train",
                                   holdout=holdout)
    parts, w = [shake, uniform], list(weights[1:])
    if frames_root is not None:
        parts.insert(0, FrameAverageDataset(frames_root, crop_size=crop_size, split="train", seed=seed + 3,
                                            augment=augment))
        w.insert(0, weights[0])
    n = length if length is not None else sum(len(p) for p in parts)
    return MixedDataset(parts, w, n, seed=seed)
