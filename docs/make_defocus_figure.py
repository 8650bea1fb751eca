"""Render docs/images/defocus_map.png: a random scene's depth, its signed blur-radius map and the layered rendering.

Run from the repository root:  .venv/bin/python docs/make_defocus_figure.py
Panels: the sharp sample photo, the depth map (near = bright), the signed radius (red: nearer than the focus
plane, blue: farther, black: in focus), the photo rendered with it, and the same scene with a lens aberration.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from unblur.io import read_image
from unblur.physics import DefocusMapGenerator, LensAberration, render_defocus

SEED = 5
LABEL_H = 16


def _rgb(x: torch.Tensor) -> Image.Image:
    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(a)


def main(out: Path) -> None:
    sharp = read_image(resources.files("unblur") / "samples" / "sharp.png").data[None].float()
    sharp = torch.nn.functional.avg_pool2d(sharp, 2)  # half size: a small figure
    H, W = sharp.shape[-2:]
    scene = DefocusMapGenerator((4.0, 4.0), max_objects=2)(1, (H, W), generator=torch.Generator().manual_seed(SEED))
    depth, s = scene["depth"], scene["radius"]
    inv = 1 / depth
    near = ((inv - inv.min()) / (inv.max() - inv.min()))[0].expand(3, H, W)
    m = float(s.abs().max())
    signed = torch.cat([(s / m).clamp(min=0), torch.zeros_like(s), (-s / m).clamp(min=0)], 1)[0]
    blurred = render_defocus(sharp, s)
    aberrated = render_defocus(sharp, s, aberration=LensAberration(gaussian_sigma=0.7, astigmatism=0.25, angle=0.6))
    panels = [("sharp", sharp[0]), ("depth (near = bright)", near), (f"signed radius (max {m:.1f} px)", signed),
              ("rendered", blurred[0]), ("+ aberration", aberrated[0])]
    pad = 6
    canvas = Image.new("RGB", (len(panels) * (W + pad) + pad, H + LABEL_H + 2 * pad), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for i, (label, img) in enumerate(panels):
        x = pad + i * (W + pad)
        canvas.paste(_rgb(img), (x, pad))
        draw.text((x, pad + H + 2), label, fill=(220, 220, 220))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    canvas.save(tmp, optimize=True)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "images" / "defocus_map.png")
