"""Training checkpoints: everything needed for an exact resume, written atomically.

A checkpoint (``torch.save`` of plain containers and tensors, loadable with ``weights_only=True``)::

    format        "unblur-train-1"
    model_name    registry name, e.g. "deeprftv2-tiny"
    config        the resolved training config (dict)
    step, epoch, batch_in_epoch, world_size, batch_size
    model         state_dict of the plain model (no DDP prefix)
    ema           {"decay", "updates", "module": state_dict} or None
    optimizer, scheduler, scaler   their state_dicts
    rng           one dict per rank: python / numpy / torch CPU / CUDA generator states
    metrics       the latest validation metrics

Resuming restores all of it, so on CPU a run of N steps equals, bit for bit, a run of N/2 steps,
a resume and N/2 more steps (the data order is a pure function of seed, epoch and position).
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

FORMAT = "unblur-train-1"


def capture_rng(device: torch.device | None = None) -> dict:
    """Generator states of this process (python, numpy, torch CPU and, when used, CUDA)."""
    py = random.getstate()
    npst = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"name": npst[0], "keys": torch.from_numpy(npst[1].astype(np.int64)), "pos": int(npst[2]),
                  "has_gauss": int(npst[3]), "cached_gaussian": float(npst[4])},
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device is not None and device.type == "cuda" and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device | None = None) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (a reader never sees a partial file)."""
    from ..io.atomic import atomic_write

    path = Path(path)
    with atomic_write(path, overwrite=True) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a training checkpoint (safely: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling problem is a bad file for the user
        raise InputError(f"checkpoint {path}: cannot be read ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"checkpoint {path}: not an unblur training checkpoint")
    return state


def find_resume(run_dir: str | os.PathLike) -> Path | None:
    """``<run_dir>/last.pt`` if it exists (what ``--resume auto`` picks)."""
    p = Path(run_dir) / "last.pt"
    return p if p.is_file() else None


def prune_periodic(run_dir: str | os.PathLike, keep: int | None = None) -> None:
    """Keep the newest ``keep`` ``step_*.pt`` files (all when ``keep`` is None)."""
    if keep is None:
        return
    files = sorted(Path(run_dir).glob("step_*.pt"))
    for p in files[: max(len(files) - keep, 0)]:
        p.unlink(missing_ok=True)
