"""Turning command-line inputs (files, folders, glob patterns) into image paths, and pairing kernels.

Rules:

- A file named explicitly is taken whatever its extension (reading it says what is wrong with it).
- A folder contributes the image files directly inside it (extension in :data:`IMAGE_EXTENSIONS`,
  case-insensitive; not recursive; hidden files, such as temporary files of atomic writes, skipped),
  sorted by name.
- Anything else containing ``*``, ``?`` or ``[`` is a glob pattern (``**`` recurses); it contributes the
  matching image files, sorted.
- Paths are deduplicated (same file reached twice, in any spelling), first occurrence kept.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "KERNEL_EXTENSIONS", "expand_inputs", "match_kernels", "is_image_file"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
KERNEL_EXTENSIONS = (".npy", ".png")  # in order of preference when both exist
_GLOB_CHARS = set("*?[")


def is_image_file(path: Path) -> bool:
    """A regular, non-hidden file with an image extension."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _key(path: Path) -> str:
    try:
        return os.path.normcase(str(path.resolve()))
    except OSError:
        return os.path.normcase(os.path.abspath(path))


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and glob patterns into image paths.

    Returns ``(paths, errors)``: the paths found (deduplicated, in order) and one message per item
    that gave nothing (missing file, folder without images, pattern without matches).
    """
    found: list[Path] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        k = _key(p)
        if k not in seen:
            seen.add(k)
            found.append(p)

    for item in items:
        item = str(item)
        p = Path(item)
        if p.is_dir():
            images = sorted((q for q in p.iterdir() if is_image_file(q)), key=lambda q: q.name)
            if not images:
                errors.append(f"{item}: no image files in this folder ({', '.join(IMAGE_EXTENSIONS)})")
            for q in images:
                add(q)
        elif p.is_file():
            add(p)
        elif _GLOB_CHARS & set(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            images = [q for q in matches if is_image_file(q)]
            if not images:
                errors.append(f"{item}: no image files match this pattern")
            for q in images:
                add(q)
        elif p.exists():
            errors.append(f"{item}: not a regular file or folder")
        else:
            errors.append(f"{item}: no such file or folder")
    return found, errors


def match_kernels(inputs: list[Path], kernel_arg: str | os.PathLike | None) -> dict[Path, Path | None]:
    """Kernel file of every input: one kernel file for all, or a folder of kernels matched by stem.

    In a folder, ``<stem>.npy`` is preferred over ``<stem>.png`` (exact values). Inputs without a
    kernel map to ``None`` (the caller reports them). ``kernel_arg=None`` maps everything to ``None``.
    Raises :class:`InputError` if ``kernel_arg`` names nothing.
    """
    inputs = [Path(p) for p in inputs]
    if kernel_arg is None:
        return {p: None for p in inputs}
    k = Path(kernel_arg)
    if k.is_file():
        return {p: k for p in inputs}
    if not k.is_dir():
        raise InputError(f"kernel {k}: no such file or folder")
    by_stem: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(KERNEL_EXTENSIONS)}
    for q in sorted(k.iterdir(), key=lambda q: q.name):
        ext = q.suffix.lower()
        if ext not in rank or q.name.startswith(".") or not q.is_file():
            continue
        best = by_stem.get(q.stem)
        if best is None or rank[ext] < rank[best.suffix.lower()]:
            by_stem[q.stem] = q
    return {p: by_stem.get(p.stem) for p in inputs}
