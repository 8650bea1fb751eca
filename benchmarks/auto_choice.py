"""``--model auto``: how often it picks the right weights, and what the choice does to the result.

A held-out synthetic mix (seeded): every photo of ``--data`` blurred three ways, each with noise sigma 0.01 and
8-bit quantisation, on centre crops of ``--crop`` px:

- motion: a camera-shake kernel (``physics.motion_kernel``, 25 px, seeded per photo), ``valid`` blur;
- uniform defocus: a disk of radius uniform in [2, 7] px, ``valid`` blur;
- varying defocus: a random scene (``physics.DefocusMapGenerator``, largest radius in [3, 7] px), layered rendering.

For each: the kind ``unblur.inference.auto`` chooses (accuracy per kind), and the PSNR of the photo restored with
the chosen weights next to the PSNR with the right weights for its kind (the effect of the wrong choices). The
classifier was trained on the CBSD432 training photos (``scripts/train_auto_classifier.py``), never on a test set:

    python benchmarks/auto_choice.py --data ../shared/data/test/Kodak24 [--limit N] [--out benchmarks/auto_choice.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.data import holdout_split
from unblur.data.folders import list_images
from unblur.inference.auto import AUTO_WEIGHTS, choose_kind
from unblur.io import read_image
from unblur.metrics import psnr
from unblur.models import create
from unblur.physics import DefocusMapGenerator, conv2d, defocus_kernel, motion_kernel, render_defocus
from unblur.physics.noise import GaussianNoise
from unblur.physics.pipeline import crop_valid

from _common import emit, run_line, photos_in  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import quantise  # noqa: E402

SEED = 2028
KINDS = ("motion", "uniform defocus", "varying defocus")


def _centre(x: torch.Tensor, size: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    h, w = min(size, H), min(size, W)
    return x[..., (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w]


def blur(sharp: torch.Tensor, kind: str, g: torch.Generator, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, aligned sharp) of a centre crop of ``sharp`` (1, 3, H, W)."""
    if kind == "varying defocus":
        m = 8
        x = _centre(sharp, crop + 2 * m)
        s = DefocusMapGenerator((3.0, 7.0))(1, x.shape[-2:], generator=g)["radius"]
        out, target = render_defocus(x, s)[..., m:-m, m:-m], x[..., m:-m, m:-m]
    else:
        k = (motion_kernel(25, generator=g) if kind == "motion"
             else defocus_kernel(2.0 + 5.0 * float(torch.rand(1, generator=g)), 17))
        x = _centre(sharp, crop + k.shape[-1] - 1)
        out, target = conv2d(x, k, "valid"), crop_valid(x, k.shape)
    return quantise(GaussianNoise(0.01)(out, generator=g)), target


def real_photos(folder: Path) -> list[str]:
    """The choice on real photos whose names say their blur (``motion_*``, ``defocus_*``), one row each."""
    paths = sorted(p for p in folder.glob("*") if p.stem.split("_")[0] in ("motion", "defocus")) if folder.is_dir() else []
    if not paths:
        return []
    rows, hits = [], 0
    for p in paths:
        truth = p.stem.split("_")[0]
        chosen, why = choose_kind(read_image(p).data)
        hits += chosen == truth
        rows.append(f"| `{p.name}` | {truth} | {chosen} | {why} |")
    return ["", f"Real photos (`{folder}`, no ground truth; the file name says the blur): {hits} of {len(paths)} "
                "chosen right.", "", "| photo | blur (file name) | chosen | why |", "|---|---|---|---|"] + rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--holdout", type=int, default=None, metavar="N",
                    help="use only the N photos training holds out of --data (e.g. CBSD432 and 16: the tuning set)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-restore", action="store_true", help="accuracy only (no network runs)")
    ap.add_argument("--real", default="../shared/data/test/real-photos",
                    help="real blurry photos named motion_* / defocus_* (no ground truth): the choice per photo")
    ap.add_argument("--out", default=None, help="write the markdown table here (default: print only)")
    args = ap.parse_args(argv)
    paths = photos_in(args.data)
    if paths is None:
        return 0
    torch.set_num_threads(args.threads)
    if args.holdout:  # the same sorted list and seeded choice as training's holdout
        every = list_images(args.data, recursive=True)
        paths = [every[i] for i in holdout_split(len(every), args.holdout)[1]]
    paths = paths[: args.limit] if args.limit else paths
    nets = {} if args.no_restore else {k: create(n, pretrained=True).eval() for k, n in AUTO_WEIGHTS.items()}
    rows = []
    for kind in KINDS:
        right = "motion" if kind == "motion" else "defocus"
        hits, p_auto, p_right, p_input = 0, [], [], []
        for i, p in enumerate(paths):
            g = torch.Generator().manual_seed(SEED + 100 * KINDS.index(kind) + i)
            y, x = blur(read_image(p).data[None], kind, g, args.crop)
            chosen, why = choose_kind(y)
            hits += chosen == right
            p_input.append(psnr(y, x).item())
            if nets:
                with torch.inference_mode():
                    outs = {k: quantise(net(y)) for k, net in nets.items()}
                p_auto.append(psnr(outs[chosen], x).item())
                p_right.append(psnr(outs[right], x).item())
            print(f"{kind} {p.stem}: {chosen}: {why}", file=sys.stderr)
        n = len(paths)
        mean = (lambda v: f"{sum(v) / len(v):.2f}" if v else "-")  # noqa: E731
        rows.append(f"| {kind} | {AUTO_WEIGHTS[right]} | {hits}/{n} ({100 * hits / n:.0f} %) | {mean(p_input)} | "
                    f"{mean(p_auto)} | {mean(p_right)} |")
    lines = [
        "# `--model auto`: choice accuracy and its effect",
        "",
        run_line(),
        f"- {len(paths)} photos of `{args.data}`, centre crops of {args.crop} px, each blurred three ways (seed "
        f"{SEED}; the script's docstring), noise sigma 0.01, 8-bit",
        "- right weights: motion -> " + AUTO_WEIGHTS["motion"] + ", defocus -> " + AUTO_WEIGHTS["defocus"],
        "",
        "| blur | right weights | chosen right | PSNR input | PSNR with auto's choice | PSNR with the right weights |",
        "|---|---|---|---|---|---|",
    ] + rows + real_photos(Path(args.real))
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
