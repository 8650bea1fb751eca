"""File input/output: images, kernels, atomic writes and input expansion.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from unblur.io import read_image, write_image
    >>> p = Path(tempfile.mkdtemp()) / "x.png"
    >>> _ = write_image(p, torch.rand(3, 8, 8), bit_depth=16)
    >>> img = read_image(p)
    >>> img.data.shape, img.bit_depth
    (torch.Size([3, 8, 8]), 16)
"""
from .atomic import atomic_open, atomic_write
from .images import FORMATS, LoadedImage, read_image, write_image
from .kernels import MAX_KERNEL_SIZE, read_kernel, write_kernel
from .paths import IMAGE_EXTENSIONS, KERNEL_EXTENSIONS, expand_inputs, is_image_file, match_kernels

__all__ = [
    "LoadedImage", "read_image", "write_image", "read_kernel", "write_kernel", "atomic_write", "atomic_open",
    "IMAGE_EXTENSIONS", "KERNEL_EXTENSIONS", "FORMATS", "MAX_KERNEL_SIZE", "expand_inputs", "match_kernels",
    "is_image_file",
]
