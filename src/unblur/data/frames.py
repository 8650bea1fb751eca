"""Real blur from high-speed video: the average of ``N`` consecutive frames, in linear light, is a photo
taken with an ``N`` times longer exposure (real camera shake *and* object motion, non-uniform); its middle
frame is the sharp target (Nah et al. 2017, how the GoPro dataset was made).

Layout: ``root`` holds the frames of one sequence (sorted by name), or one folder per sequence. A split
uses the frames whose 1-based position in their sequence lies in ``frames`` (inclusive range): the
default keeps frames 121 and later for validation only (``split="val"``), so no validation pair shares a
frame with a training pair. ``N`` is odd (a middle frame exists), drawn from ``window`` per item.

Reproducibility as :class:`~unblur.data.SyntheticBlurDataset`: item ``i`` of an epoch draws everything
from one generator seeded by ``(seed, epoch, i)``; ``split="val"`` items are fixed (no epoch, no
augmentation). Decoded frames are cached as uint8 (150 frames of 1280x720: about 400 MB).

Example:
    >>> ds = FrameAverageDataset("../shared/data/train/gopro-frames", crop_size=256)  # doctest: +SKIP
    >>> item = ds[0]; item["blurred"].shape, item["frames"]  # doctest: +SKIP
    (torch.Size([3, 256, 256]), 9)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..errors import InputError
from ..physics.color import linear_to_srgb, srgb_to_linear
from .folders import augment, from_uint8, item_generator, list_images, load_rgb, randint, to_uint8

__all__ = ["FrameAverageDataset", "average_frames", "frame_sequences", "TRAIN_FRAMES", "VAL_FRAMES"]

TRAIN_FRAMES, VAL_FRAMES = (1, 120), (121, 10 ** 9)
_TRAIN_STREAM, _VAL_STREAM = 0xF7A1, 0xF7A2


def average_frames(frames: torch.Tensor) -> torch.Tensor:
    """Blurred sRGB image (C, H, W) from consecutive sRGB frames (N, C, H, W): averaged in linear light."""
    return linear_to_srgb(srgb_to_linear(frames).mean(0)).clamp(0, 1)


def frame_sequences(root: str | Path) -> list[list[Path]]:
    """The frame lists (sorted) of ``root``: its own images, or those of each sub-folder (one sequence each)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"frame dataset: {root} is not a folder")
    own = list_images(root)
    seqs = [own] if own else [list_images(d) for d in sorted(p for p in root.iterdir() if p.is_dir())]
    seqs = [s for s in seqs if s]
    if not seqs:
        raise InputError(f"frame dataset: no frames in {root} (expected images, or folders of images)")
    return seqs


class FrameAverageDataset(torch.utils.data.Dataset):
    """Args:
        root: a folder of frames, or of sequence folders (see the module doc).
        crop_size: side of the returned pairs (``None``: whole frames, e.g. for a benchmark).
        window: (low, high) number of frames averaged; odd values in that range are drawn.
        split: ``"train"`` (frames 1-120 of each sequence) or ``"val"`` (121 on); ``frames`` overrides.
        length: items per epoch (default: the number of windows of the largest ``N``).
        augment: random flips / transpose (train split only). seed: base seed.
    """

    def __init__(self, root: str | Path, crop_size: int | None = 256, window: Sequence[int] = (7, 13),
                 split: str = "train", frames: Sequence[int] | None = None, length: int | None = None,
                 augment: bool = True, seed: int = 0):
        if split not in ("train", "val"):
            raise InputError(f"frame dataset: split must be 'train' or 'val', got {split!r}")
        lo, hi = (int(v) for v in window)
        odd = [n for n in range(lo, hi + 1) if n % 2 == 1]
        if lo < 1 or not odd:
            raise InputError(f"frame dataset: window must be (low, high) frames containing an odd number >= 1, "
                             f"got {tuple(window)}")
        first, last = (int(v) for v in (frames or (TRAIN_FRAMES if split == "train" else VAL_FRAMES)))
        self.sequences = [s[first - 1:last] for s in frame_sequences(root)]
        self.sequences = [s for s in self.sequences if len(s) >= odd[0]]
        if not self.sequences:
            raise InputError(f"frame dataset: no sequence of {root} has {odd[0]} frames within frames "
                             f"{first}-{last if last < VAL_FRAMES[1] else 'end'}")
        if crop_size is not None and int(crop_size) < 1:
            raise InputError(f"frame dataset: crop_size must be >= 1, got {crop_size}")
        self.root, self.crop_size, self.windows = Path(root), crop_size, odd
        self.split, self.seed, self.epoch = split, int(seed), 0
        self.augment = bool(augment) and split == "train"
        starts = sum(max(0, len(s) - odd[-1] + 1) for s in self.sequences)
        self.length = int(length) if length is not None else max(1, starts)
        self._cache: dict[Path, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _frame(self, path: Path) -> torch.Tensor:
        img = self._cache.get(path)
        if img is None:
            img = self._cache[path] = to_uint8(load_rgb(path))
        return img

    def __getitem__(self, key) -> dict:
        val = self.split == "val"
        index, g = item_generator(key, self.length, self.seed, self.epoch, _VAL_STREAM if val else _TRAIN_STREAM, val)
        seq = self.sequences[randint(g, len(self.sequences))]
        usable = [n for n in self.windows if n <= len(seq)]
        n = usable[randint(g, len(usable))]
        start = randint(g, len(seq) - n + 1)
        paths = seq[start:start + n]
        first = self._frame(paths[0])
        H, W = first.shape[-2:]
        if self.crop_size is None:
            top, left, h, w = 0, 0, H, W
        else:
            h = w = int(self.crop_size)
            if h > H or w > W:
                raise InputError(f"frame dataset: crop_size {h} exceeds the {H}x{W} frames of {paths[0].parent}")
            top, left = randint(g, H - h + 1), randint(g, W - w + 1)
        stack = []
        for p in paths:
            f = self._frame(p)
            if f.shape[-2:] != (H, W):
                raise InputError(f"frame dataset: {p} is {tuple(f.shape[-2:])}, its sequence's frames are {(H, W)}")
            stack.append(from_uint8(f[:, top:top + h, left:left + w]))
        stack = torch.stack(stack)
        blurred, sharp = average_frames(stack), stack[n // 2]
        if self.augment:
            blurred, sharp = augment(g, blurred, sharp)
        # 8-bit, as a camera stores it
        blurred = from_uint8(to_uint8(blurred))
        return {"blurred": blurred.contiguous(), "sharp": sharp.contiguous(), "index": index, "frames": n}

    def __repr__(self) -> str:
        return (f"FrameAverageDataset({str(self.root)!r}, split={self.split!r}, sequences={len(self.sequences)}, "
                f"length={self.length}, crop_size={self.crop_size}, window={self.windows})")
