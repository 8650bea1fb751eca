"""Shared helpers of the datasets: listing images, decoding to a uint8 cache, seeding, cropping."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError


def image_extensions() -> tuple[str, ...]:
    from ..io.paths import IMAGE_EXTENSIONS

    return tuple(e.lower() for e in IMAGE_EXTENSIONS)


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` sorted by path (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    exts = image_extensions()
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def load_rgb(path: str | Path) -> torch.Tensor:
    """Decode ``path`` to a (3, H, W) float32 tensor in [0, 1] (grey is repeated, alpha dropped)."""
    from ..io import read_image

    img = read_image(path)
    x = img.data if hasattr(img, "data") else img
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.ndim == 2:
        x = x[None]
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 4:
        x = x[:3]
    if x.shape[0] != 3:
        raise InputError(f"{path}: expected a grey, RGB or RGBA image, got {x.shape[0]} channels")
    return x.clamp(0, 1).contiguous()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).div_(255.0)


def item_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, epoch, index, ...); stable across runs and platforms."""
    words = np.random.SeedSequence([int(p) % (2**63) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(words[0]) << 31) ^ int(words[1])) % (2**63)


def make_generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(item_seed(*parts))


def randint(g: torch.Generator, high: int) -> int:
    """Uniform integer in [0, high)."""
    return int(torch.randint(0, max(int(high), 1), (1,), generator=g))


def ensure_min_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (C, H, W) bottom/right so both sides are >= ``size`` (replicate if far too small)."""
    H, W = x.shape[-2:]
    ph, pw = max(size - H, 0), max(size - W, 0)
    if not (ph or pw):
        return x
    mode = "reflect" if ph < H and pw < W else "replicate"
    return F.pad(x[None].float(), (0, pw, 0, ph), mode=mode)[0].to(x.dtype)


def random_crop(g: torch.Generator, size: int, *images: torch.Tensor) -> list[torch.Tensor]:
    """The same random ``size`` x ``size`` window of each (C, H, W) image (all of the same H, W)."""
    H, W = images[0].shape[-2:]
    top, left = randint(g, H - size + 1), randint(g, W - size + 1)
    return [im[..., top:top + size, left:left + size] for im in images]


def augment(g: torch.Generator, *images: torch.Tensor) -> list[torch.Tensor]:
    """Random horizontal flip, vertical flip and rot90 (the 8 dihedral transforms), same for every image."""
    r = torch.randint(0, 2, (3,), generator=g).tolist()
    out = list(images)
    if r[0]:
        out = [im.flip(-1) for im in out]
    if r[1]:
        out = [im.flip(-2) for im in out]
    if r[2]:
        out = [im.transpose(-2, -1) for im in out]
    return [im.contiguous() for im in out]


def split_key(key) -> tuple[int | None, int]:
    """A dataset key is an index or ``(epoch, index)`` (from :class:`unblur.training.distributed.ShardedSampler`)."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return None, int(key)


def item_generator(key, length: int, seed: int, epoch: int, stream: int, fixed: bool = False):
    """``(index, generator)`` of dataset item ``key`` (an index or ``(epoch, index)``): the generator is seeded by
    ``(seed, stream, epoch, index)``, or by ``(seed, stream, index)`` when ``fixed`` (a validation set: the same
    item in every epoch). An index outside ``[0, length)`` is an IndexError."""
    key_epoch, index = split_key(key)
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    if fixed:
        return index, make_generator(seed, stream, index)
    return index, make_generator(seed, stream, epoch if key_epoch is None else key_epoch, index)
