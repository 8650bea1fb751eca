"""The CPU path's memory allocator setting.

PyTorch has no caching allocator on the CPU: every tensor is a ``malloc``, and glibc serves blocks above its mmap
threshold (32 MB at most) with a fresh ``mmap`` that it unmaps again on ``free``. A network at 720p allocates and
frees hundreds of such feature maps, and each one costs its pages' faults and zeroing again (one 720p photo through
``deeprftv2-tiny`` from the command line: 13.5 s with glibc's defaults, 7.3 s with this; in a running process 9.6 s
-> 4.3 s, ``benchmarks/cpu_path.md``; ``tests/test_inference.py`` counts the page faults).
:func:`reuse_freed_memory` tells glibc to serve every block from its heap and to keep freed memory for reuse, which
removes that cost; the process then keeps its peak memory until it exits (for a command-line run, nothing else
changes; outputs are identical). ``unblur restore`` and ``unblur serve`` call it on CPUs; set
``UNBLUR_SYSTEM_MALLOC=1`` to keep glibc's defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
_DONE: bool | None = None


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (no ``mmap`` per large block, no trimming); returns
    whether it applies (Linux with glibc, not disabled by ``UNBLUR_SYSTEM_MALLOC``). Safe to call more than once."""
    global _DONE
    if _DONE is not None:
        return _DONE
    _DONE = False
    if not sys.platform.startswith("linux") or os.environ.get("UNBLUR_SYSTEM_MALLOC", "") not in ("", "0"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to set
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success; the trim threshold is an int: 2 GB is its largest value
    _DONE = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _DONE
