"""Render example blur kernels to docs/images/kernels.png (Pillow only).

Run from the repository root:  .venv/bin/python docs/make_figures.py
Each kernel is shown scaled to its own maximum (white), magnified with nearest-neighbour pixels.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from unblur.physics.kernels import (
    DefocusBlurGenerator,
    GaussianBlurGenerator,
    MotionBlurGenerator,
    defocus_kernel,
    gaussian_kernel,
    motion_kernel,
    pad_kernel,
)

SIZE = 31  # kernel support
ZOOM = 4  # display pixels per kernel pixel
PAD = 6  # gap between cells
LABEL_H = 14  # text line under each cell
COLS = 6


def _rows() -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
    g = torch.Generator().manual_seed(2024)
    motion = MotionBlurGenerator(SIZE)(2 * COLS, generator=g)[:, 0]
    shaky = MotionBlurGenerator(SIZE, jerk_prob=0.03, jerk_strength=3.0)(COLS, generator=g)[:, 0]
    smooth = [motion_kernel(SIZE, generator=g, inertia=0.99, exposure=0.0, length=float(SIZE - 1)) for _ in range(COLS)]
    defocus = [defocus_kernel(r, SIZE) for r in (0.7, 1.5, 3.0, 5.2, 8.0, 12.5)]
    gauss = [
        gaussian_kernel(sx, sy, th, SIZE)
        for sx, sy, th in ((1.0, 1.0, 0), (3.0, 3.0, 0), (4.0, 1.0, 0), (4.0, 1.0, math.pi / 4), (3.0, 0.7, 2.0), (1.5, 4.0, 0.3))
    ]
    rand_def = DefocusBlurGenerator(SIZE)(COLS, generator=g)[:, 0]
    rand_gau = GaussianBlurGenerator(SIZE)(COLS, generator=g)[:, 0]
    return [
        ("motion (defaults)", [("", k) for k in motion[:COLS]]),
        ("motion (defaults)", [("", k) for k in motion[COLS:]]),
        ("motion, jerk_prob=0.03, jerk_strength=3", [("", k) for k in shaky]),
        ("motion, inertia=0.99, exposure=0, length=30", [("", k) for k in smooth]),
        ("defocus_kernel(r)", [(f"r={r}", k) for r, k in zip((0.7, 1.5, 3.0, 5.2, 8.0, 12.5), defocus)]),
        ("gaussian_kernel(sx, sy, theta)", [(f"{sx},{sy},{th:.2g}", k) for (sx, sy, th), k in zip(
            ((1.0, 1.0, 0), (3.0, 3.0, 0), (4.0, 1.0, 0), (4.0, 1.0, math.pi / 4), (3.0, 0.7, 2.0), (1.5, 4.0, 0.3)), gauss)]),
        ("DefocusBlurGenerator / GaussianBlurGenerator", [("", k) for k in rand_def[:3]] + [("", k) for k in rand_gau[:3]]),
    ]


def render(path: Path) -> None:
    render_grid(_rows(), path)


def render_grid(rows: list[tuple[str, list[tuple[str, torch.Tensor]]]], path: Path, size: int = SIZE,
                cols: int = COLS) -> None:
    """Rows of labelled kernels (each shown on a ``size`` canvas, scaled to its own maximum) as one PNG."""
    cell = size * ZOOM
    title_h = LABEL_H + 2
    W = cols * cell + (cols + 1) * PAD
    H = len(rows) * (title_h + cell + LABEL_H + PAD) + PAD
    img = Image.new("L", (W, H), 40)
    draw = ImageDraw.Draw(img)
    y = PAD
    for title, cells in rows:
        draw.text((PAD, y), title, fill=230)
        y += title_h
        for j, (label, k) in enumerate(cells):
            k = pad_kernel(k.double(), size)
            a = (k / k.max() * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            tile = Image.fromarray(a, mode="L").resize((cell, cell), Image.NEAREST)
            x = PAD + j * (cell + PAD)
            img.paste(tile, (x, y))
            if label:
                draw.text((x, y + cell + 1), label, fill=200)
        y += cell + LABEL_H + PAD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp, optimize=True)
    tmp.replace(path)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "images" / "kernels.png"
    render(out)
    print(f"wrote {out}")
