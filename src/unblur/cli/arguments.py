"""argparse value types shared by the subcommands (a bad value is a usage error: one line, exit 2)."""
from __future__ import annotations

import argparse


def seed_value(text: str) -> int:
    """``--seed``: an integer torch's generators accept, 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer") from None
    if not 0 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range 0..2**64-1")
    return value


def output_folder(text: str) -> str:
    """``-o``: a non-empty folder name (an empty one would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty output folder: give a folder name (e.g. -o out)")
    return text
