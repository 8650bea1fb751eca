"""The docs' gallery (docs/gallery.md): real blurry photos that no method here was trained or tuned on
(``../shared/data/test/real-photos/motion_*``, no ground truth), restored by the motion methods side by side.

Run from the repository root:  .venv/bin/python docs/make_gallery.py [--photos DIR] [--methods ...]
    [--weights LABEL=FILE ...]

For every photo it writes ``docs/images/gallery/<name>.jpg``: the whole photo (input | first method) on top and,
below, the same detail window (the photo's most informative 200 px square, :func:`unblur.physics.l0_kernel.
informative_region`) from the input and every method, magnified 2x. ``--weights LABEL=FILE`` adds a column
for a weight file of the first network's architecture (e.g. the synthetic-only weights). Then it rewrites
``docs/gallery.md``'s picture list.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from unblur import restore
from unblur.classical import METHODS
from unblur.data.folders import load_rgb
from unblur.models import create, load_weights
from unblur.physics.color import luminance
from unblur.physics.l0_kernel import informative_region

OUT = Path("docs/images/gallery")
DETAIL, ZOOM, WIDTH, GAP = 200, 2, 1100, 6


def _pil(x: torch.Tensor) -> Image.Image:
    a = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(a)


def _runner(spec: str, weights: str | None = None):
    if spec in METHODS:
        return lambda x: restore(x, method=spec).image[0]
    net = create(spec.split(".")[0]).eval() if weights else create(spec, pretrained=True).eval()
    if weights:
        load_weights(net, weights)
    return lambda x: restore(x, model=net, tile="auto", estimate_kernel=False).image[0]


def _labelled(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 18), "white")
    out.paste(img, (0, 18))
    ImageDraw.Draw(out).text((4, 3), text, fill="black")
    return out


def figure(x: torch.Tensor, results: list[tuple[str, torch.Tensor]]) -> Image.Image:
    H, W = x.shape[-2:]
    d = min(DETAIL, H, W)
    top, left = informative_region(luminance(x[None]), d)
    cols = [("input", x)] + results
    details = [_labelled(_pil(im[:, top:top + d, left:left + d]).resize((d * ZOOM, d * ZOOM), Image.NEAREST), name)
               for name, im in cols]
    row_w = sum(c.width for c in details) + GAP * (len(details) - 1)
    half = (max(row_w, WIDTH) - GAP) // 2
    scale = half / W
    size = (half, round(H * scale))
    whole = [_labelled(_pil(im).resize(size, Image.LANCZOS), name) for name, im in cols[:2]]
    for w in whole:  # the detail window, outlined
        ImageDraw.Draw(w).rectangle([left * scale, 18 + top * scale, (left + d) * scale, 18 + (top + d) * scale],
                                    outline="red", width=2)
    canvas = Image.new("RGB", (max(row_w, 2 * half + GAP), whole[0].height + GAP + details[0].height), "white")
    canvas.paste(whole[0], (0, 0))
    canvas.paste(whole[1], (half + GAP, 0))
    x0 = 0
    for c in details:
        canvas.paste(c, (x0, whole[0].height + GAP))
        x0 += c.width + GAP
    return canvas


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=Path("../shared/data/test/real-photos"))
    ap.add_argument("--methods", nargs="+", default=["deeprftv2-tiny.real", "deeprftv2-tiny.motion", "blind-l0"])
    ap.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FILE")
    args = ap.parse_args(argv)
    photos = sorted(args.photos.glob("motion_*"))
    if not photos:
        print(f"no motion_* photos in {args.photos}; nothing to do", file=sys.stderr)
        return 0
    runners = [(m, _runner(m)) for m in args.methods]
    net = next(m for m in args.methods if m not in METHODS)
    for item in args.weights:
        label, _, path = item.partition("=")
        runners.append((f"{net.split('.')[0]}, {label}", _runner(net, path)))
    OUT.mkdir(parents=True, exist_ok=True)
    entries = []
    for p in photos:
        x = load_rgb(p)
        results = []
        for name, run in runners:
            t = time.perf_counter()
            with torch.inference_mode():
                results.append((name, run(x[None])))
            print(f"{p.name}: {name} {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
        out = OUT / f"{p.stem}.jpg"
        figure(x, results).save(out, quality=88)
        entries.append(f"### {p.name} ({x.shape[-1]}x{x.shape[-2]})\n\n![{p.stem}](images/gallery/{out.name})\n")
    doc = Path("docs/gallery.md")
    head = doc.read_text().split("<!-- pictures -->")[0] if doc.exists() else "# Gallery\n\n"
    cmd = " ".join(["docs/make_gallery.py"] + (argv if argv is not None else sys.argv[1:]))
    doc.write_text(head.rstrip("\n") + "\n\n<!-- pictures -->\n\nMade by `" + cmd + "`; columns: "
                   + ", ".join(["input"] + [n for n, _ in runners]) + ".\n\n" + "\n".join(entries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
