"""Atomic file writes: a temporary file in the target's folder, moved into place only on success.

A reader never sees a half-written output, a failed write leaves nothing behind, and an existing
file is never truncated unless the caller asked for ``overwrite``.

Example:
    >>> from pathlib import Path
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "result.txt"
    >>> with atomic_write(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text()
    'done'
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

from ..errors import InputError

__all__ = ["atomic_write", "atomic_open", "check_name_length", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """Hidden sibling of ``path`` that keeps its suffix (``.name.unblur-tmp-1a2b3c.png``).

    The real suffix stays last so that writers choosing a format from the extension still work;
    the leading dot keeps it out of folder listings (``expand_inputs`` skips hidden files).
    """
    token = secrets.token_hex(4)
    # the stem is shortened so that the temporary name fits wherever the final name fits (255 bytes)
    room = NAME_MAX - len(f"..unblur-tmp-{token}{path.suffix}".encode())
    stem = path.stem.encode()[:max(room, 0)].decode(errors="ignore")
    return path.with_name(f".{stem}.unblur-tmp-{token}{path.suffix}")


NAME_MAX = 255  # bytes in one file name on the common file systems (ext4, APFS, NTFS in UTF-16 units)


def check_name_length(path: Path) -> None:
    """Raise :class:`InputError` before any work when ``path``'s file name cannot exist on disk."""
    n = len(path.name.encode())
    if n > NAME_MAX:
        raise InputError(f"{path}: file name of {n} bytes is longer than the {NAME_MAX} a file system allows")


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_permissions(tmp: Path) -> None:
    """Give the file the permissions a plain ``open()`` would (some writers create 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~umask)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``path``; without ``overwrite`` an existing ``path`` is never replaced."""
    _default_permissions(tmp)
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # hard link fails if ``path`` exists: no window in which another file could be clobbered
        os.link(tmp, path)
    except FileExistsError:
        raise InputError(f"{path} already exists (use --overwrite to replace it)") from None
    except OSError:  # file system without hard links: check, then rename
        if os.path.lexists(path):
            raise InputError(f"{path} already exists (use --overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    - The temporary file is hidden and ends with ``path``'s suffix (format detection works).
    - Parent folders are created.
    - An existing ``path`` raises :class:`InputError` up front unless ``overwrite`` (and is never
      truncated: the new content only arrives through the final rename).
    - If the body raises, the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder")
    if not overwrite and os.path.lexists(path):
        raise InputError(f"{path} already exists (use --overwrite to replace it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create folder {path.parent}: {err.strerror or err}") from None
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise InputError(f"cannot write {path}: nothing was written")
        _fsync(tmp)
        _publish(tmp, path, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", overwrite: bool = False, **kwargs) -> Iterator[IO]:
    """Like :func:`atomic_write` but yields an open file (``mode`` ``"w"`` or ``"wb"``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb', got {mode!r}")
    with atomic_write(path, overwrite=overwrite) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
