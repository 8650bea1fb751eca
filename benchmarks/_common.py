"""Helpers shared by the benchmark scripts (run them as `python benchmarks/NAME.py`)."""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name (for the machine line of every results table)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_line() -> str:
    """The first bullet of every results table: date, machine, threads, torch."""
    import datetime

    import torch

    return (f"- latest run: {datetime.date.today()}; machine: {cpu_model()}, {torch.get_num_threads()} threads; "
            f"torch {torch.__version__}")


def emit(lines: list[str], out: str | None) -> str:
    """Print the markdown ``lines`` and write them to ``out`` (when given); returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
    return text


def photos_in(data, limit: int | None = None):
    """The photos of the folder ``data`` (first ``limit``), or ``None`` with a note when it is absent (benchmarks
    skip, not fail, without ../shared/data)."""
    import sys

    from unblur.io import expand_inputs

    if not Path(data).is_dir():
        print(f"data folder {data} not found; nothing to do", file=sys.stderr)
        return None
    paths, _ = expand_inputs([str(data)])
    return paths[:limit] if limit else paths
