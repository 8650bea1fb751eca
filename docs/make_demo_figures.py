"""Render the README's demo pictures from what `make demo` runs (Pillow only).

Run from the repository root:  .venv/bin/python docs/make_demo_figures.py [--scores-only] [restore options]
Without options: ``unblur restore``'s default method, as ``make demo``; or e.g. ``--model deeprftv2-tiny``: the same
options as ``unblur restore``.
``--scores-only`` prints the scores and writes no picture (how the README's numbers for other methods are made).
``--prefix NAME`` names the pictures ``NAME_before_after.png`` and ``NAME_kernels.png`` (default ``demo``, what
``make demo`` runs; the README's network comparison uses ``--model deeprftv2-tiny --prefix demo_deeprftv2``).

Writes ``docs/images/demo_before_after.png`` (the bundled blurred sample left, the result right, the picture
``unblur restore --side-by-side`` writes) and, when the method gives a physical blur kernel (``--save-kernel``
writes one: blind classical methods, GDUNet; not DeepRFTv2, whose FKE filters act on features), ``docs/images/
PREFIX_kernels.png`` (the true kernel the sample was blurred with, left, and the estimated kernel, right; each
scaled to its own maximum, on a common support, magnified with nearest-neighbour pixels). Prints PSNR/SSIM of the
input and the result against the sharp photo.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from unblur.cli.main import main as unblur_main
from unblur.io import read_image, read_kernel
from unblur.metrics import psnr, ssim
from unblur.physics.kernels import pad_kernel

SAMPLES = Path("src/unblur/samples")
IMAGES = Path("docs/images")
DISPLAY = 130  # about this many display pixels per kernel
GAP = 6


def _kernel_cells(paths: list[Path]) -> list[Image.Image]:
    """Kernels centred on a common support (so both have the same pixel scale), scaled to max 255, magnified."""
    kernels = [read_kernel(p) for p in paths]
    side = max(max(k.shape) for k in kernels)
    zoom = max(1, DISPLAY // side)
    cells = []
    for k in kernels:
        k = pad_kernel(k / k.max(), side)
        cell = Image.fromarray((k * 255).round().byte().numpy(), mode="L")
        cells.append(cell.resize((side * zoom, side * zoom), Image.NEAREST))
    return cells


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--scores-only", action="store_true")
    ap.add_argument("--prefix", default="demo")
    args, options = ap.parse_known_args(argv)  # the rest goes to `unblur restore`
    scores_only, prefix = args.scores_only, args.prefix
    blurred = SAMPLES / "blurred_camera.png"
    with tempfile.TemporaryDirectory() as tmp:
        pictures = [] if scores_only else ["--save-kernel", "--side-by-side"]
        code = unblur_main(["restore", str(blurred), "-o", tmp, *options, *pictures])
        if code != 0:
            return code
        out = Path(tmp)
        sharp = read_image(SAMPLES / "sharp.png").data[None]
        for name, path in (("input", blurred), ("result", out / blurred.name)):
            img = read_image(path).data[None]
            print(f"{name}: PSNR {psnr(img, sharp).item():.2f} dB, SSIM {ssim(img, sharp).item():.3f}")
        if scores_only:
            return 0
        IMAGES.mkdir(parents=True, exist_ok=True)
        before_after, kernels = IMAGES / f"{prefix}_before_after.png", IMAGES / f"{prefix}_kernels.png"
        shutil.copyfile(out / f"{blurred.stem}_before_after.png", before_after)
        estimated = out / f"{blurred.stem}_kernel.png"
        if not estimated.is_file():
            print(f"wrote {before_after}; no physical kernel estimated, so no {kernels}")
            return 0
        cells = _kernel_cells([SAMPLES / "true_kernel.png", estimated])
        cell = cells[0].size[0]
        canvas = Image.new("L", (2 * cell + 3 * GAP, cell + 2 * GAP), 128)
        for i, c in enumerate(cells):
            canvas.paste(c, (GAP + i * (cell + GAP), GAP))
        canvas.save(kernels)
        print(f"wrote {before_after} and {kernels}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
