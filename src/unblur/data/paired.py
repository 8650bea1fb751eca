"""Paired (blurred, sharp) folders in the layouts of the common deblurring benchmarks.

==============  ===========================================================================
layout          files read under ``root`` (``<split>`` is e.g. ``train`` or ``test``)
==============  ===========================================================================
``gopro``       ``<split>/<scene>/blur/*.png`` with ``<split>/<scene>/sharp/<same name>``
                (``blur_gamma`` is ignored)
``hide``        ``<split>/**/*.png`` (``test`` has ``test-close-ups``/``test-long-shot``) with
                ``GT/<same name>``
``realblur``    ``RealBlur_J_<split>_list.txt`` (else ``RealBlur_R_...``): one ``gt blur`` pair of
                paths relative to ``root`` per line; ``realblur_j`` / ``realblur_r`` pick one
``dpdd``        ``<split>_c/source/*`` with ``<split>_c/target/<same name>`` (splits train, val, test; the
                published ``dd_dp_dataset_png`` folders), else ``inputC/*`` with ``target/*`` under
                ``root/<split>`` or ``root`` (the test layout Restormer's scripts prepare)
``realdof``     ``source/*`` with ``target/<same name>`` (RealDOF, a test set: ``<split>`` is ignored)
``folders``     ``blur/*`` with ``sharp/<same name>`` under ``root/<split>`` if it exists, else ``root``
==============  ===========================================================================

With ``crop_size`` set, items are random aligned crops (plus flips / rot90 when ``augment``), seeded
from ``(seed, epoch, index)`` like :class:`SyntheticBlurDataset`; without it, whole images.
A layout that does not match what is on disk raises :class:`unblur.errors.InputError` naming the
path that was expected.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError
from .folders import (augment as _augment, ensure_min_size, image_extensions, list_images, load_rgb,
                      make_generator, random_crop, split_key)

LAYOUTS = ("gopro", "hide", "realblur", "realblur_j", "realblur_r", "dpdd", "realdof", "folders")
_STREAM = 0xBA1D


def _by_name(files: list[Path]) -> dict[str, Path]:
    return {p.name: p for p in files}


def _match(blurs: list[Path], sharp_dir: Path, what: str) -> list[tuple[Path, Path]]:
    if not sharp_dir.is_dir():
        raise InputError(f"{what}: missing folder {sharp_dir}")
    sharps = _by_name(list_images(sharp_dir))
    pairs = []
    for b in blurs:
        s = sharps.get(b.name)
        if s is None:
            stem = {p.stem: p for p in sharps.values()}.get(b.stem)  # same name, other extension
            if stem is None:
                raise InputError(f"{what}: no sharp image for {b} in {sharp_dir}")
            s = stem
        pairs.append((b, s))
    return pairs


def _gopro(root: Path, split: str) -> list[tuple[Path, Path]]:
    base = root / split
    if not base.is_dir():
        raise InputError(f"GoPro layout: missing folder {base} (expected {base}/<scene>/blur and sharp)")
    scenes = sorted(p for p in base.iterdir() if (p / "blur").is_dir())
    if not scenes:
        raise InputError(f"GoPro layout: no {base}/<scene>/blur folders found")
    pairs = []
    for sc in scenes:
        pairs += _match(list_images(sc / "blur"), sc / "sharp", "GoPro layout")
    return pairs


def _hide(root: Path, split: str) -> list[tuple[Path, Path]]:
    base, gt = root / split, root / "GT"
    if not base.is_dir() or not gt.is_dir():
        raise InputError(f"HIDE layout: expected folders {base} and {gt}")
    blurs = list_images(base, recursive=True)
    if not blurs:
        raise InputError(f"HIDE layout: no images in {base}")
    return _match(blurs, gt, "HIDE layout")


def _realblur(root: Path, split: str, variant: str | None) -> list[tuple[Path, Path]]:
    variants = [variant] if variant else ["J", "R"]
    lists = [root / f"RealBlur_{v}_{split}_list.txt" for v in variants]
    found = [p for p in lists if p.is_file()]
    if not found:
        raise InputError(f"RealBlur layout: no list file {' or '.join(str(p) for p in lists)}")
    lst = found[0]
    pairs = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise InputError(f"{lst}:{n}: expected 'gt_path blur_path', got {line.strip()!r}")
        gt, blur = root / parts[0], root / parts[1]
        for p in (gt, blur):
            if not p.is_file():
                raise InputError(f"{lst}:{n}: missing file {p}")
        pairs.append((blur, gt))
    if not pairs:
        raise InputError(f"RealBlur layout: {lst} lists no pairs")
    return pairs


def _dpdd(root: Path, split: str) -> list[tuple[Path, Path]]:
    base = root / f"{split}_c"
    src, tgt = base / "source", base / "target"
    if not src.is_dir():
        for alt in (root / split, root):  # Restormer's prepared test folders: inputC / inputL / inputR / target
            if (alt / "inputC").is_dir():
                return _match(list_images(alt / "inputC"), alt / "target", "DPDD layout")
        raise InputError(f"DPDD layout: missing folder {src} (expected {base}/source and {base}/target, or "
                         f"inputC/ and target/)")
    return _match(list_images(src), tgt, "DPDD layout")


def _realdof(root: Path) -> list[tuple[Path, Path]]:
    if not (root / "source").is_dir():
        raise InputError(f"RealDOF layout: missing folder {root / 'source'} (expected source/ and target/)")
    return _match(list_images(root / "source"), root / "target", "RealDOF layout")


def _folders(root: Path, split: str) -> list[tuple[Path, Path]]:
    base = root / split if (root / split / "blur").is_dir() else root
    if not (base / "blur").is_dir():
        raise InputError(f"folders layout: missing folder {root}/blur (or {root}/{split}/blur) next to sharp/")
    return _match(list_images(base / "blur"), base / "sharp", "folders layout")


def find_pairs(root: str | Path, layout: str, split: str = "train") -> list[tuple[Path, Path]]:
    """Sorted ``(blurred_path, sharp_path)`` pairs of a dataset on disk."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise InputError(f"unknown dataset layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise InputError(f"{layout} dataset: {root} is not a folder")
    if layout == "gopro":
        pairs = _gopro(root, split)
    elif layout == "hide":
        pairs = _hide(root, split)
    elif layout.startswith("realblur"):
        pairs = _realblur(root, split, {"realblur": None, "realblur_j": "J", "realblur_r": "R"}[layout])
    elif layout == "dpdd":
        pairs = _dpdd(root, split)
    elif layout == "realdof":
        pairs = _realdof(root)
    else:
        pairs = _folders(root, split)
    exts = image_extensions()
    for b, s in pairs:
        for p in (b, s):
            if p.suffix.lower() not in exts:
                raise InputError(f"{layout} dataset: {p} is not a supported image type")
    return sorted(pairs)


class PairedFolderDataset(torch.utils.data.Dataset):
    """Blurred/sharp pairs from disk (see the module docstring for the layouts).

    Items: ``{"blurred": (3, h, w), "sharp": (3, h, w), "index": i, "name": str}``; whole images
    when ``crop_size`` is None (batch them with ``batch_size=1`` unless all have one size).
    ``length`` (default: number of pairs) lets an epoch revisit pairs with new crops.
    """

    def __init__(self, root: str | Path, layout: str = "folders", split: str = "train",
                 crop_size: int | None = None, augment: bool = False, seed: int = 0, length: int | None = None,
                 limit: int | None = None):
        self.root, self.layout, self.split = Path(root), layout, split
        self.pairs = find_pairs(root, layout, split)
        if limit is not None:
            self.pairs = self.pairs[: int(limit)]
        if crop_size is not None and crop_size < 1:
            raise InputError(f"paired dataset: crop_size must be >= 1, got {crop_size}")
        self.crop_size, self.augment, self.seed = crop_size, bool(augment), int(seed)
        self.length = int(length) if length is not None else len(self.pairs)
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, key) -> dict:
        epoch, index = split_key(key)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        bpath, spath = self.pairs[index % len(self.pairs)]
        blurred, sharp = load_rgb(bpath), load_rgb(spath)
        if blurred.shape != sharp.shape:
            raise InputError(f"{bpath}: size {tuple(blurred.shape[-2:])} differs from its sharp image "
                             f"{spath} {tuple(sharp.shape[-2:])}")
        if self.crop_size is not None or self.augment:
            g = make_generator(self.seed, _STREAM, self.epoch if epoch is None else epoch, index)
            if self.crop_size is not None:
                blurred = ensure_min_size(blurred, self.crop_size)
                sharp = ensure_min_size(sharp, self.crop_size)
                blurred, sharp = random_crop(g, self.crop_size, blurred, sharp)
            if self.augment:
                blurred, sharp = _augment(g, blurred, sharp)
        return {"blurred": blurred.contiguous(), "sharp": sharp.contiguous(), "index": index,
                "name": bpath.name}
