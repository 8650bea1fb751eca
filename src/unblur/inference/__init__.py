"""Inference: the one restoration code path (``restore``, ``restore_file``) and the one tiler.

Attributes load lazily, so that models may import :mod:`unblur.inference.tiling` (the tiler's window mode runs
inside DeepRFTv2) without importing :mod:`unblur.inference.restore`, which itself builds models.
"""
import importlib

_EXPORTS = {
    "RestoreResult": ".restore", "restore": ".restore", "restore_file": ".restore",
    "choose_tile_size": ".tiling", "tiled_apply": ".tiling", "windowed_apply": ".tiling",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
