"""unblur: single-image deblurring (physics, classical methods and networks).

Example:
    >>> import unblur
    >>> photo = unblur.read_image("src/unblur/samples/blurred_camera.png")  # doctest: +SKIP
    >>> result = unblur.restore(photo.data, method="blind-l0")              # doctest: +SKIP
    >>> unblur.write_image("sharp.png", result.image[0])                    # doctest: +SKIP
"""
__version__ = "0.1.0"

from .errors import ConfigError, InputError, UnblurError  # noqa: E402,F401


def __getattr__(name):
    # Lazy so that ``import unblur`` stays light (the CLI imports only what a subcommand needs).
    if name in ("restore", "restore_file", "RestoreResult"):
        import importlib

        return getattr(importlib.import_module(".inference.restore", __name__), name)
    if name in ("read_image", "write_image", "read_kernel", "write_kernel"):
        from . import io as _io

        return getattr(_io, name)
    raise AttributeError(f"module 'unblur' has no attribute {name!r}")


__all__ = [
    "__version__", "restore", "restore_file", "RestoreResult", "read_image", "write_image",
    "read_kernel", "write_kernel", "InputError", "ConfigError", "UnblurError",
]
