"""True kernels next to the kernels GDUNet estimates at each stage (and blind-l0's), on Kodak24 and Levin.

Run from the repository root:  .venv/bin/python docs/make_gdunet_figure.py [--kodak DIR] [--levin DIR]
Kodak24: the first photos blurred as in ``benchmarks/motion_kodak24.py`` (same seeds); Levin: real captures (grey
in as RGB, the kernel rotated 180 degrees for our convolution convention). Writes docs/images/gdunet_kernels.png;
labels give the kernel PSNR against the truth (best shift within 4 px, ``unblur.metrics.kernel_psnr``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from unblur.classical import deblur
from unblur.metrics import kernel_psnr
from unblur.models import create

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from make_figures import render_grid  # noqa: E402
from motion_kodak24 import degrade  # noqa: E402  (the benchmark's seeded blur)

SIZE = 31


def _cases(kodak: Path, levin: Path, n_kodak: int, levin_pairs) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    cases = []
    if kodak.is_dir():
        paths = sorted(p for p in kodak.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp", ".tif"))
        for pr in degrade(paths[:n_kodak], "cpu"):
            cases.append((f"Kodak24 {pr['name']}", pr["blurred"], pr["kernel"]))
    if (levin / "blurred").is_dir():
        from PIL import Image

        for i, j in levin_pairs:
            y = torch.from_numpy(np.asarray(Image.open(levin / "blurred" / f"im{i}_ker{j}.png").convert("L"),
                                            np.float32) / 255)[None, None]
            k = torch.from_numpy(np.load(levin / "kernels" / f"k{j}.npy")).float().flip(-2, -1)
            cases.append((f"Levin im{i} ker{j}", y.expand(-1, 3, -1, -1), k))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", type=Path, default=HERE.parent / ".." / "shared" / "data" / "test" / "Kodak24")
    ap.add_argument("--levin", type=Path, default=HERE.parent / ".." / "shared" / "data" / "levin")
    ap.add_argument("--out", type=Path, default=HERE / "images" / "gdunet_kernels.png")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    net = create("gdunet-tiny.motion", pretrained=True)
    rows = []
    for title, y, k_true in _cases(args.kodak, args.levin, 3, [(1, 4), (2, 8)]):
        with torch.inference_mode():
            stages = net.forward_train(y)["kernels"]
        l0 = deblur(y.mean(1, keepdim=True), method="blind-l0", kernel_size=SIZE).kernel
        cells = [("true", k_true.reshape(k_true.shape[-2:]))]
        for t, k in enumerate(stages, 1):
            cells.append((f"stage {t}: {kernel_psnr(k, k_true, max_shift=4):.1f} dB", k[0, 0]))
        cells.append((f"blind-l0: {kernel_psnr(l0, k_true, max_shift=4):.1f} dB", l0.reshape(l0.shape[-2:])))
        rows.append((title, cells))
        print(title, [c[0] for c in cells], file=sys.stderr)
    if not rows:
        print("no Kodak24 or Levin data found", file=sys.stderr)
        return 1
    render_grid(rows, args.out, size=SIZE, cols=len(rows[0][1]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
