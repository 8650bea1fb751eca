"""Kernels that the L0 estimate finds on noisy camera shake, without and with its noise floor.

Run from the repository root:  .venv/bin/python docs/make_noise_floor_figure.py [--data DIR]
Training photos only (``../shared/data/train/CBSD432``): grey crops and shakes made by
``benchmarks/blind_synthetic.py``'s ``make_cases`` (seed 0, a set of 4 crops: not the same photos as its 24- or
40-crop tables, which take every ``432 // N``-th photo) at three noise levels. Each row is one noise level; for each crop,
the true kernel, then the estimate with ``noise_lambda=0`` and with the default floor, labelled with the kernel
PSNR against the truth (best shift within 4 px, ``unblur.metrics.kernel_psnr``). Writes
docs/images/noise_floor_kernels.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.metrics import kernel_psnr
from unblur.physics import estimate_kernel_l0

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from blind_synthetic import SUPPORT, make_cases  # noqa: E402  (the tuning set's crops and shakes)
from make_figures import render_grid  # noqa: E402

NOISES = (0.01, 0.02, 0.035)
CROPS = (1, 3)  # which of the benchmark's first crops to show


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=HERE.parent / ".." / "shared" / "data" / "train" / "CBSD432")
    ap.add_argument("--out", type=Path, default=HERE / "images" / "noise_floor_kernels.png")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no training photos in {args.data}", file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    rows = []
    for noise in NOISES:
        cases = make_cases(args.data, max(CROPS) + 1, (6.0, 26.0), noise, 0)
        cells = []
        for i in CROPS:
            _, y, k_true = cases[i]
            cells.append((f"crop {i}: true", k_true))
            for floor, name in ((0.0, "no floor"), (32.0, "floor")):
                k = estimate_kernel_l0(y, kernel_size=SUPPORT, noise_lambda=floor)[0, 0]
                cells.append((f"{name}: {kernel_psnr(k, k_true, max_shift=4):.1f} dB", k))
        rows.append((f"noise sigma {noise:g}", cells))
        print(rows[-1][0], [c[0] for c in cells], file=sys.stderr)
    render_grid(rows, args.out, size=SUPPORT, cols=len(rows[0][1]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
