"""Starting weights for an L0-initialised GDUNet (``kernel_init="l0"``) from weights of the earlier blind-start
GDUNet (``kernel_init="start"``) of the same size: what both share keeps its training.

- the stage proximal nets ``proxes.t`` (each cleans a data step's deconvolution in both designs);
- the kernel updates: the start design fits a kernel in every stage, the first one on ``P_0``'s image; the L0
  design fits from the second stage on, on the stage images: ``kernel_proxes``, ``attentions`` and ``log_gamma``
  of the start design's stages 2..T become the L0 design's 1..T-1;
- everything else (the gradient priors in their new place, the HQS weights, the four-input kernel fusions)
  starts fresh (``model.init_strict: false`` in the config).

    python scripts/gdunet_l0_start.py OLD.safetensors OUT.safetensors [--size tiny]
    python scripts/gdunet_l0_start.py --drop-schedule L0.safetensors OUT.safetensors

``--drop-schedule``: weights of an L0-initialised GDUNet trained with another number of splitting steps
(``model.args.hqs_iters``) without their splitting weights ``log_betas``, so that the model's default schedule
(``beta`` from 1 by 2) applies when they are loaded; everything else is kept.

The old ``gdunet-tiny.motion`` is in git history: ``git show f8f1038:src/unblur/weights/gdunet-tiny.motion.safetensors``.
"""
from __future__ import annotations

import argparse
import re
import sys

import torch
from safetensors.torch import load_file, save_file

from unblur.models import create


def convert(old: dict, new_model: torch.nn.Module) -> dict:
    mine = new_model.state_dict()
    out = {}
    for key, value in old.items():
        m = re.match(r"(kernel_proxes|attentions)\.(\d+)\.(.*)", key)
        if m:
            t = int(m.group(2)) - 1
            key = f"{m.group(1)}.{t}.{m.group(3)}" if t >= 0 else None
        elif key == "log_gamma":
            value = value[1:]
        if key is not None and key in mine and mine[key].shape == value.shape and (
                key.startswith(("proxes.", "kernel_proxes.", "attentions.")) or key == "log_gamma"):
            out[key] = value.contiguous()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("out")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--drop-schedule", action="store_true")
    args = ap.parse_args(argv)
    if args.drop_schedule:
        weights = {k: v for k, v in load_file(args.old).items() if k != "log_betas"}
        model = create(f"gdunet-{args.size}")
        weights["log_betas"] = model.state_dict()["log_betas"]
        model.load_state_dict(weights)  # the result must fit the current model exactly
        save_file(weights, args.out)
        print(f"{args.out}: {len(weights)} tensors, splitting weights at the default schedule")
        return 0
    model = create(f"gdunet-{args.size}")
    if not model.l0:
        print(f"gdunet-{args.size} is not L0-initialised: nothing to convert", file=sys.stderr)
        return 1
    weights = convert(load_file(args.old), model)
    save_file(weights, args.out)
    print(f"{len(weights)} of {len(model.state_dict())} tensors carried over to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
