"""Train the blur-kind classifier of ``unblur restore --model auto`` (``unblur.inference.auto``) and ship it.

Data: the CBSD432 training photos (the 16 that training holds out are the validation set here too; no test set),
each cut at a random size (200 to 480 px) and blurred three ways with seeded random parameters: camera shake
(``physics.motion_kernel``, 9 to 31 px), a uniform disk (radius 1.5 to 8 px) and a random scene's spatially varying
defocus (largest radius 2 to 8 px); Gaussian noise up to 0.02; 8-bit quantised. Features: ``blur_features``.
Deterministic (seeded); about a minute on 2 cores.

    python scripts/train_auto_classifier.py --data ../shared/data/train/CBSD432 [--out src/unblur/weights/auto-blur-kind.safetensors]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.data import holdout_split
from unblur.data.folders import list_images
from unblur.inference.auto import CLASSIFIER_FILE, BlurKindClassifier, blur_features
from unblur.io import read_image
from unblur.physics import DefocusMapGenerator, conv2d, defocus_kernel, motion_kernel, render_defocus

SEED = 77
KINDS = ("motion", "uniform", "varying")


def example(sharp: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    H, W = sharp.shape[-2:]
    u = lambda: float(torch.rand(1, generator=g))  # noqa: E731
    side = int(200 + 280 * u())
    h, w = min(side, H), min(int(side * (0.75 + 0.5 * u())), W)
    top, left = int((H - h) * u()), int((W - w) * u())
    x = sharp[..., top:top + h, left:left + w]
    if kind == "motion":
        size = 9 + 2 * int(11 * u())
        y = conv2d(x, motion_kernel(size, generator=g), "reflect")
    elif kind == "uniform":
        y = conv2d(x, defocus_kernel(1.5 + 6.5 * u(), 17), "reflect")
    else:
        y = render_defocus(x, DefocusMapGenerator((2.0, 8.0))(1, (h, w), generator=g)["radius"])
    y = y + 0.02 * u() * torch.randn(y.shape, generator=g)
    return (y.clamp(0, 1) * 255).round() / 255


def dataset(paths, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for i, p in enumerate(paths):
        sharp = read_image(p).data[None]
        for j, kind in enumerate(KINDS):
            g = torch.Generator().manual_seed(seed + 10 * i + j)
            feats.append(blur_features(example(sharp, kind, g)))
            labels.append(0 if kind == "motion" else 1)
    return torch.stack(feats), torch.tensor(labels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/train/CBSD432")
    ap.add_argument("--holdout", type=int, default=16, help="photos held out of training (the validation set)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/unblur/weights" / CLASSIFIER_FILE))
    args = ap.parse_args(argv)
    torch.manual_seed(SEED)
    every = list_images(args.data, recursive=True)
    if not every:
        print(f"no images in {args.data}", file=sys.stderr)
        return 1
    train_idx, val_idx = holdout_split(len(every), args.holdout)
    xt, yt = dataset([every[i] for i in train_idx], SEED)
    xv, yv = dataset([every[i] for i in val_idx], SEED + 100_000)
    clf = BlurKindClassifier.fit(xt, yt)
    for name, x, y in (("training", xt, yt), ("held-out", xv, yv)):
        pred = (clf.probability(x) >= 0.5).long()
        per = {k: float((pred[i::3] == y[i::3]).float().mean()) for i, k in enumerate(KINDS)}
        print(f"{name}: accuracy {float((pred == y).float().mean()):.3f} "
              + ", ".join(f"{k} {v:.3f}" for k, v in per.items()) + f" ({len(y)} examples)")
    clf.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
