"""Pack the real-blur training data into one folder small enough to travel with a GPU run (at most 64 MiB of
files go along): the CBSD432 training photos as they are, and the training frames (1-120) of each GoPro
sequence re-encoded as WebP (quality ``--quality``; lossless frames are ~0.45 MB each). The held-out frames
(121 on) stay behind: validation on the GPU uses the synthetic held-out photos (``val.kind=synthetic``).

    python scripts/prepare_gpu_data.py OUT_DIR [--photos ../shared/data/train/CBSD432]
        [--frames ../shared/data/train/gopro-frames] [--quality 90] [--budget-mib 60]

Then (scripts/train_gpu_realmix.sh): ``train.data.root=OUT_DIR/photos train.data.frames_root=OUT_DIR/frames``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

from unblur.data.frames import TRAIN_FRAMES, frame_sequences


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--photos", type=Path, default=Path("../shared/data/train/CBSD432"))
    ap.add_argument("--frames", type=Path, default=Path("../shared/data/train/gopro-frames"))
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--budget-mib", type=float, default=60.0)
    args = ap.parse_args(argv)
    if args.out.exists():
        print(f"{args.out} exists; remove it first", file=sys.stderr)
        return 1
    shutil.copytree(args.photos, args.out / "photos")
    for i, seq in enumerate(frame_sequences(args.frames)):
        dest = args.out / "frames" / (seq[0].parent.name or f"seq{i}")
        dest.mkdir(parents=True)
        for p in seq[TRAIN_FRAMES[0] - 1:TRAIN_FRAMES[1]]:
            with Image.open(p) as im:
                im.convert("RGB").save(dest / f"{p.stem}.webp", quality=args.quality, method=4)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2 ** 20
    print(f"{args.out}: {size:.1f} MiB")
    if size > args.budget_mib:
        print(f"over the {args.budget_mib} MiB budget: lower --quality", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
