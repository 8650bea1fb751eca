"""Reading and writing blur kernels (PSFs): ``.npy`` arrays and 8/16-bit PNG pictures.

A kernel read from disk is a float32 ``(kh, kw)`` tensor, non-negative, summing to 1, its centre at
``(kh // 2, kw // 2)`` (the package convention; nothing is shifted on reading).

Choices:

- ``.npy``: any 2-D integer, boolean or floating array (no pickles). ``.png``: gray 8 or 16 bit; a colour
  picture is averaged over R, G, B; alpha is ignored.
- Negative values down to ``-NEGATIVE_TOLERANCE * max`` (float noise of an estimator) are set to zero;
  larger negative values are an error. Kernels larger than ``MAX_KERNEL_SIZE`` px on a side are refused.
- Writing ``.npy`` stores the values as given, in float32 (not renormalised). Writing ``.png`` clips
  negative values, scales the maximum to full white and stores 16 bits by default (8 bits quantise a
  spread-out kernel too coarsely); ``bit_depth=8`` gives the usual 0-255 picture.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..physics.kernels import NEGATIVE_TOLERANCE, as_kernel
from .atomic import atomic_write
from .images import _load_pixels, _Unreadable, write_image
from .paths import KERNEL_EXTENSIONS

__all__ = ["read_kernel", "write_kernel", "KERNEL_EXTENSIONS", "MAX_KERNEL_SIZE", "NEGATIVE_TOLERANCE"]

MAX_KERNEL_SIZE = 255


def _kernel_array(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if not path.exists():
        raise _Unreadable("no such file")
    if path.is_dir():
        raise _Unreadable("it is a folder, not a file")
    if suffix == ".npy":
        try:
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise _Unreadable("not a .npy file")
                f.seek(0)
                arr = np.load(f, allow_pickle=False)
        except _Unreadable:
            raise
        except ValueError as err:
            text = str(err)
            reason = "it holds pickled objects" if "pickle" in text else " ".join(text.split())
            raise _Unreadable(f"invalid .npy file: {reason}") from None
        except (OSError, EOFError) as err:
            raise _Unreadable(f"invalid .npy file: {' '.join(str(err).split()) or type(err).__name__}") from None
        if not isinstance(arr, np.ndarray):
            raise _Unreadable("not a single .npy array")
        if arr.dtype.kind not in "biuf":
            raise _Unreadable(f"unsupported data type {arr.dtype} (need integers or floats)")
        return arr.astype(np.float64)
    if suffix == ".png":
        samples, _, _ = _load_pixels(path)
        samples = samples.astype(np.float64)
        c = samples.shape[-1]
        colour = samples[..., :3] if c >= 3 else samples[..., :1]
        grey = colour.mean(axis=-1)
        _refuse_photo(colour, grey)
        return grey
    raise _Unreadable(f"unsupported kernel format {path.suffix!r} (use .npy or .png)")


def _refuse_photo(colour: np.ndarray, grey: np.ndarray) -> None:
    """A kernel picture is grey and dark at its border; a photo given as ``--kernel`` by mistake is not."""
    top = float(grey.max()) if grey.size else 0.0
    if top <= 0:
        return  # the all-zero case has its own message
    if colour.shape[-1] == 3 and float(np.abs(colour - grey[..., None]).max()) > 0.02 * top:
        raise _Unreadable("it is a colour picture, not a blur kernel (a kernel PNG is grey: white = most weight)")
    h, w = grey.shape
    if max(h, w) > 31:  # small kernels (a box) may fill their support
        ring = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
        if float(ring.mean()) > 0.25 * top:
            raise _Unreadable(f"a {w}x{h} picture with a bright border looks like a photo, not a blur kernel")


def _validated(arr: np.ndarray) -> np.ndarray:
    """Check a kernel array (:func:`unblur.physics.as_kernel`) and return it clipped at zero and normalised to sum 1 (float64)."""
    if arr.ndim == 2:
        kh, kw = arr.shape
        if kh > MAX_KERNEL_SIZE or kw > MAX_KERNEL_SIZE:
            raise _Unreadable(f"kernel of {kh}x{kw} px is larger than the maximum {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}")
    try:
        k = as_kernel(torch.from_numpy(np.asarray(arr, dtype=np.float64)), ndims=(2,), negative_tolerance=NEGATIVE_TOLERANCE)
    except InputError as err:
        raise _Unreadable(str(err)) from None
    return k[0, 0].numpy()


def read_kernel(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``.npy`` or ``.png`` kernel as a float32 (kh, kw) tensor that sums to 1.

    Raises :class:`InputError` ``"cannot read kernel <path>: <reason>"`` (one line) for a missing file,
    a non-kernel file, a non-2-D, empty, oversized, non-finite, negative or all-zero kernel.
    """
    path = Path(path)
    try:
        k = _validated(_kernel_array(path))
    except _Unreadable as err:
        raise InputError(f"cannot read kernel {path}: {err}") from None
    return torch.from_numpy(k.astype(np.float32))


def write_kernel(path: str | os.PathLike, kernel, overwrite: bool = False, bit_depth: int = 16) -> Path:
    """Write ``kernel`` ((kh, kw) or (1, 1, kh, kw)) as ``.npy`` (float32, exact) or ``.png`` (max = white).

    ``bit_depth`` (8 or 16) applies to PNG. Atomic; an existing file raises unless ``overwrite``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if torch.is_tensor(kernel):
        arr = kernel.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(kernel, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if suffix not in KERNEL_EXTENSIONS:
        raise InputError(f"cannot write kernel {path}: unsupported extension {path.suffix!r} (use .npy or .png)")
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"cannot write kernel {path}: a kernel must be a non-empty 2-D array, got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise InputError(f"cannot write kernel {path}: kernel contains NaN or infinite values")
    if suffix == ".npy":
        with atomic_write(path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr.astype(np.float32))
        return path
    top = arr.max()
    if top <= 0:
        raise InputError(f"cannot write kernel {path}: kernel has no positive value")
    picture = np.clip(arr, 0.0, None) / top
    return write_image(path, picture[None], bit_depth=bit_depth, overwrite=overwrite)
