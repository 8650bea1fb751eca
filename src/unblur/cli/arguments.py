"""argparse value types shared by the subcommands (a bad value is a usage error: one line, exit 2)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def seed_value(text: str) -> int:
    """``--seed``: an integer torch's generators accept, 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range 0..2**64-1")
    return value


def number_in(kind, low=None, high=None, what: str = "a number"):
    """An argparse type: ``kind(text)`` (int or float) within ``[low, high]`` (either bound optional)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low if low is not None else ''}..{high if high is not None else ''}"
            raise argparse.ArgumentTypeError(f"{what} must be in {bounds}, got {text}")
        return value
    return parse


def output_folder(text: str) -> str:
    """``-o``: a non-empty folder name (an empty one would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty output folder: give a folder name (e.g. -o out)")
    return text


def check_output_folder(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be written: a file, a dangling symbolic link,
    or (for a folder still to be created) a parent that is not a writable folder."""
    from ..errors import InputError

    if folder.is_symlink() and not folder.exists():
        raise InputError(f"output {folder} is a broken symbolic link (to {os.readlink(folder)})")
    if folder.exists():
        if not folder.is_dir():
            raise InputError(f"output {folder} exists and is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"output folder {folder} is not writable")
        return
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder {folder} cannot be created: {parent} is not a writable folder")
