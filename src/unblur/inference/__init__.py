"""Inference: the one restoration code path (``restore``, ``restore_file``) and the one tiler."""
from .restore import RestoreResult, restore, restore_file  # noqa: F401
from .tiling import choose_tile_size, tiled_apply  # noqa: F401
