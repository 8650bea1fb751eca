"""On-the-fly synthetic training pairs from any folder of sharp images.

Each item: pick an image, take a random window of ``crop_size + kernel_size - 1`` pixels, apply a
random flip / rot90, then the physics pipeline (:class:`unblur.physics.pipeline.DegradationPipeline`,
``mode="valid"``): a random kernel of the chosen kind, the valid convolution (which is how a camera
records a scene extending beyond the frame, so no boundary artefacts are learnt), and Gaussian noise.
The blurred image and the aligned sharp crop are both ``crop_size`` x ``crop_size``.

Reproducibility: all randomness of item ``i`` comes from one :class:`torch.Generator` seeded from
``(seed, epoch, i)``, so an item does not depend on the worker count, the rank or what was drawn
before it. Keys may be ``i`` (uses the epoch of :meth:`set_epoch`) or ``(epoch, i)`` (what
:class:`unblur.training.distributed.ShardedSampler` yields).

Splits: ``holdout=n`` reserves ``n`` images (a fixed seeded choice that does not depend on ``seed``):
``split="train"`` never uses them, ``split="val"`` uses only them (all images when ``holdout=0``).
``split="val"`` is a fixed evaluation set: item ``i`` is always the same pair (no epoch, no
augmentation), with kernels drawn from a stream different from training.

Decoded images are cached in memory as uint8 (CBSD432: about 200 MB once all are seen).

Example:
    >>> ds = SyntheticBlurDataset("../shared/data/train/CBSD432", crop_size=128, kind="motion")  # doctest: +SKIP
    >>> item = ds[0]; item["blurred"].shape, item["sharp"].shape  # doctest: +SKIP
    (torch.Size([3, 128, 128]), torch.Size([3, 128, 128]))
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..errors import InputError
from .folders import (augment, ensure_min_size, from_uint8, item_generator, list_images, load_rgb, random_crop,
                      to_uint8)

_TRAIN_STREAM, _VAL_STREAM, _HOLDOUT_SEED = 0x7A11, 0x5EED, 0x401D


def holdout_split(n: int, holdout: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices) of ``n`` sorted images; the choice depends only on ``n``, ``holdout``."""
    if holdout <= 0:
        return list(range(n)), list(range(n))
    if holdout >= n:
        raise InputError(f"holdout={holdout} leaves no training image out of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_HOLDOUT_SEED)).tolist()
    held = sorted(perm[:holdout])
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


class SyntheticBlurDataset(torch.utils.data.Dataset):
    """Args:
        root: folder of sharp images (searched recursively).
        crop_size: side of the returned pairs.
        kind: ``"motion"``, ``"defocus"``, ``"gaussian"`` or ``"mixed"`` (see ``unblur.physics.kernels``), or
            ``"defocus-map"``: spatially varying defocus of random scenes, half of them uniform disks, radii up to
            ``(kernel_size - 1) / 2`` (``unblur.physics.DefocusPipeline``); items then carry the ``"radius"`` map.
        kernel_size: odd kernel support.
        noise_sigma: Gaussian noise std (on [0, 1] images), or a ``(low, high)`` range drawn per item.
        length: items per epoch (default: number of images; larger values revisit images with new crops).
        seed: base seed. split: ``"train"`` or ``"val"``. holdout: see the module docstring.
        max_images: use only the first ``max_images`` images of the split (sorted by path; e.g. a small-data
            ablation); ``None``: all.
        augment: random flips / rot90 (train split only).
        pipeline: optional callable ``pipeline(sharp (1, 3, H, W), generator=g) -> dict(blurred, sharp, kernel)``
            replacing the default ``DegradationPipeline.from_name(kind, kernel_size, noise_sigma, "valid")``
            (e.g. a pipeline with JPEG or saturation, or fixed kernels from ``physics.kernels.FileKernels``).
        return_kernel: also return the kernel (``(1, k, k)``) under ``"kernel"``.
        aberration: ``"defocus-map"`` only: the probability that an item's lens is a random aberrated one
            (``DefocusPipeline(aberration_prob=...)``).
    """

    def __init__(self, root: str | Path, crop_size: int = 256, kind: str = "motion", kernel_size: int = 31,
                 noise_sigma: float | Sequence[float] = 0.01, length: int | None = None, seed: int = 0,
                 augment: bool = True, split: str = "train", holdout: int = 0,
                 pipeline: Callable | None = None, return_kernel: bool = False, max_images: int | None = None,
                 aberration: float = 0.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"synthetic dataset: {self.root} is not a folder")
        files = list_images(self.root, recursive=True)
        if not files:
            raise InputError(f"synthetic dataset: no images found in {self.root}")
        if split not in ("train", "val"):
            raise InputError(f"synthetic dataset: split must be 'train' or 'val', got {split!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InputError(f"synthetic dataset: kernel_size must be odd and >= 1, got {kernel_size}")
        if crop_size < 1:
            raise InputError(f"synthetic dataset: crop_size must be >= 1, got {crop_size}")
        train_idx, val_idx = holdout_split(len(files), holdout)
        self.files = [files[i] for i in (train_idx if split == "train" else val_idx)]
        if max_images is not None:
            if int(max_images) < 1:
                raise InputError(f"synthetic dataset: max_images must be >= 1, got {max_images}")
            self.files = self.files[: int(max_images)]
        self.crop_size, self.kind, self.kernel_size = int(crop_size), kind, int(kernel_size)
        if not 0 <= float(aberration) <= 1:
            raise InputError(f"synthetic dataset: aberration must be a probability in [0, 1], got {aberration}")
        self.aberration = float(aberration)
        if isinstance(noise_sigma, (list, tuple)):
            lo, hi = (float(s) for s in noise_sigma)
        else:
            lo = hi = float(noise_sigma)
        if not 0 <= lo <= hi:
            raise InputError(f"synthetic dataset: noise_sigma must be >= 0 (a value or low <= high), got {noise_sigma}")
        self.sigma_range = (lo, hi)
        self.length = int(length) if length is not None else len(self.files)
        self.seed, self.split = int(seed), split
        self.augment = bool(augment) and split == "train"
        self.epoch = 0
        self.return_kernel = return_kernel
        self._custom = pipeline
        self._pipe: Callable | None = None
        self._cache: dict[int, torch.Tensor] = {}
        self._unreadable: set[int] = set()
        self._pipeline()  # fail early on a bad kind / kernel size

    # -- bookkeeping
    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def patch_size(self) -> int:
        """Side of the sharp window cut before the valid blur."""
        return self.crop_size + self.kernel_size - 1

    def _image(self, i: int) -> torch.Tensor:
        """Image ``i`` decoded (cached); an unreadable file (e.g. truncated) is reported once and the next
        readable image stands in for it, so one bad file does not stop a training run."""
        n = len(self.files)
        for j in range(n):
            k = (i + j) % n
            if k in self._unreadable:
                continue
            img = self._cache.get(k)
            if img is not None:
                return img
            try:
                img = to_uint8(ensure_min_size(load_rgb(self.files[k]), self.patch_size))
            except InputError as err:
                self._unreadable.add(k)
                warnings.warn(f"synthetic dataset: skipping an unreadable image: {err}", stacklevel=2)
                continue
            self._cache[k] = img
            return img
        raise InputError(f"synthetic dataset: none of the {n} images in {self.root} can be read")

    def _pipeline(self) -> Callable:
        if self._pipe is None:
            if self._custom is not None:
                self._pipe = self._custom
            else:
                from ..physics.pipeline import DegradationPipeline

                lo, hi = self.sigma_range
                sigma = lo if lo == hi else (lo, hi)
                if self.kind == "defocus-map":  # spatially varying defocus: radii up to the kernel's half size
                    from ..physics.defocus_map import DefocusPipeline

                    half = (self.kernel_size - 1) // 2
                    if half < 1:
                        raise InputError("synthetic dataset: defocus-map needs kernel_size >= 3")
                    self._pipe = DefocusPipeline((min(1.0, half), float(half)), noise=sigma or None, margin=half,
                                                 aberration_prob=self.aberration)
                else:
                    self._pipe = DegradationPipeline.from_name(kind=self.kind, kernel_size=self.kernel_size,
                                                               noise_sigma=sigma, mode="valid")
        return self._pipe

    def __getitem__(self, key) -> dict:
        val = self.split == "val"
        index, g = item_generator(key, self.length, self.seed, self.epoch, _VAL_STREAM if val else _TRAIN_STREAM, val)
        img_idx = index % len(self.files)
        (patch,) = random_crop(g, self.patch_size, self._image(img_idx))
        patch = from_uint8(patch)
        if self.augment:
            (patch,) = augment(g, patch)
        out = self._pipeline()(patch[None], generator=g)
        blurred, sharp = out["blurred"][0], out["sharp"][0]
        if blurred.shape[-2:] != (self.crop_size, self.crop_size) or sharp.shape != blurred.shape:
            raise InputError(f"synthetic dataset: degradation returned blurred {tuple(blurred.shape)} and sharp "
                             f"{tuple(sharp.shape)}, expected (3, {self.crop_size}, {self.crop_size})")
        item = {"blurred": blurred.float().contiguous(), "sharp": sharp.float().contiguous(), "index": index}
        if "radius" in out:  # the blur-radius map of spatially varying defocus
            item["radius"] = out["radius"][0].float().contiguous()
        if self.return_kernel:
            if "kernel" not in out:
                raise InputError(f"synthetic dataset: blur {self.kind!r} has no single kernel to return")
            k = out["kernel"]
            item["kernel"] = k.reshape(-1, *k.shape[-2:])[:1].float()
        return item

    def __repr__(self) -> str:
        return (f"SyntheticBlurDataset({str(self.root)!r}, split={self.split!r}, images={len(self.files)}, "
                f"length={self.length}, crop_size={self.crop_size}, kind={self.kind!r}, "
                f"kernel_size={self.kernel_size}, noise_sigma={self.sigma_range})")
