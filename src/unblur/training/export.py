"""Export the weights of a training checkpoint as ``.safetensors`` for shipping / ``create(pretrained=True)``.

Example:
    >>> export_weights("runs/deeprftv2-tiny-motion/last.pt", "deeprftv2-tiny.safetensors")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from .checkpoint import load_checkpoint


def export_weights(checkpoint: str | os.PathLike, out_path: str | os.PathLike, use_ema: bool = True,
                   overwrite: bool = False) -> Path:
    """Write the EMA weights (or the raw weights with ``use_ema=False`` or when the run had no EMA)
    of ``checkpoint`` to ``out_path``; metadata records the model name, the step and which weights."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_write

    ckpt = load_checkpoint(checkpoint)
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise InputError(f"{out_path}: the output must end with .safetensors")
    ema = ckpt.get("ema")
    which = "ema" if use_ema and ema is not None else "model"
    sd = ema["module"] if which == "ema" else ckpt["model"]
    # safetensors refuses shared storage: store an independent contiguous copy of each tensor
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items() if torch.is_tensor(v)}
    meta = {"model": str(ckpt.get("model_name", "")), "step": str(ckpt.get("step", "")), "weights": which,
            "format": "unblur-weights-1"}
    with atomic_write(out_path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return out_path
