"""blind-l0 on a 12-megapixel photo through the command line: wall time and peak memory.

The photo (4000x3000 RGB) is a mosaic of CBSD432 training photos upscaled 2x, blurred by one camera
shake of ``--shake`` px (support 61, ``valid`` convolution of a larger canvas), with noise sigma 0.005
and 8-bit quantisation, saved as PNG. Then, in a fresh process with ``--threads`` threads (the
default 2 is the laptop this project targets)::

    unblur restore photo.png -o OUT --method blind-l0 --quiet

runs while its wall time and peak resident memory (``getrusage`` of the child) are recorded. PSNR of
the input and of the result against the sharp photo (central crop; the result after the
whole-pixel shift that matches it best, as a blind estimate is defined up to a translation) are reported to show
the run did what it should, not as a quality benchmark (that is ``levin.py`` / ``blind_synthetic.py``).

    python benchmarks/blind_large.py [--threads 2] [--shake 45] [--out benchmarks/blind_large.md]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from unblur.physics import MotionBlurGenerator, conv2d
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
W, H, SUPPORT = 4000, 3000, 61


def mosaic(data: Path, width: int, height: int) -> np.ndarray:
    """(height, width, 3) float32 canvas tiled with 2x-upscaled training photos (sorted order)."""
    files = sorted(data.glob("*.jpg")) + sorted(data.glob("*.png"))
    canvas = np.zeros((height, width, 3), np.float32)
    y = x = row_h = 0
    i = 0
    while y < height:
        im = Image.open(files[i % len(files)]).convert("RGB")
        im = im.resize((im.width * 2, im.height * 2), Image.BICUBIC)
        a = np.asarray(im, np.float32) / 255
        h, w = min(a.shape[0], height - y), min(a.shape[1], width - x)
        canvas[y:y + h, x:x + w] = a[:h, :w]
        row_h = max(row_h, h)
        x += w
        i += 1
        if x >= width:
            x, y, row_h = 0, y + row_h, 0
    return canvas


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a.astype(np.float64) - b) ** 2)))


def aligned(est: np.ndarray, ref: np.ndarray, crop: int, max_shift: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Central crops of ``est`` and ``ref`` after the whole-pixel shift (up to ``max_shift`` px) that best
    matches a 512x512 window of their centres: a blind estimate is defined up to a translation."""
    from unblur.metrics import align_to_reference

    h, w = ref.shape[:2]
    m = max_shift
    top, left = h // 2 - 256 - m, w // 2 - 256 - m
    win = (slice(top, top + 512 + 2 * m), slice(left, left + 512 + 2 * m))
    grey = lambda a: torch.from_numpy(np.ascontiguousarray(a[win].mean(-1)))[None]  # noqa: E731
    _, (dy, dx) = align_to_reference(grey(est), grey(ref), max_shift=m, step=1.0, crop=m)
    dy, dx = int(round(dy)), int(round(dx))
    return est[crop + dy:h - crop + dy, crop + dx:w - crop + dx], ref[crop:h - crop, crop:w - crop]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "train" / "CBSD432")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shake", type=float, default=45.0, help="camera-shake path length in photo pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no training photos in {args.data}", file=sys.stderr)
        return 1
    g = torch.Generator().manual_seed(args.seed)
    pad = SUPPORT - 1
    sharp_big = mosaic(args.data, W + pad, H + pad)
    k = MotionBlurGenerator(SUPPORT, length_range=(args.shake, args.shake))(1, generator=g)
    big = torch.from_numpy(sharp_big).permute(2, 0, 1)[None]
    y = conv2d(big, k, "valid")[0].permute(1, 2, 0).numpy()
    y = np.clip(y + 0.005 * torch.randn(y.shape, generator=g).numpy(), 0, 1)
    y8 = (y * 255).round().astype(np.uint8)
    sharp = sharp_big[pad // 2:pad // 2 + H, pad // 2:pad // 2 + W]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        Image.fromarray(y8).save(src)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, "-m", "unblur", "restore", str(src), "-o", str(Path(tmp) / "out"),
               "--method", "blind-l0", "--quiet"]
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        seconds = time.perf_counter() - t
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out = np.asarray(Image.open(Path(tmp) / "out" / "photo.png").convert("RGB"), np.float32) / 255
        kernel_file = Path(tmp) / "out" / "photo_kernel.png"
        ksize = Image.open(kernel_file).size if kernel_file.exists() else None
    c = 200  # central crop: the frame's outer band holds scene that the blur brought in from outside
    p_in, p_out = psnr(y8[c:-c, c:-c] / 255, sharp[c:-c, c:-c]), psnr(*aligned(out, sharp, c))
    md = "\n".join([
        "| photo | shake | threads | wall time | peak memory | PSNR input | PSNR result | kernel written |",
        "|---|---|---|---|---|---|---|---|",
        f"| {W}x{H} RGB ({W * H / 1e6:.0f} MP) | {args.shake:g} px | {args.threads} | {seconds:.1f} s | {peak_mb:.0f} MB | "
        f"{p_in:.2f} | {p_out:.2f} | {ksize[0]}x{ksize[1]} |" if ksize else "",
    ])
    print(md)
    if args.out is not None:
        header = (
            "# blind-l0 on a 12-megapixel photo (command line)\n\n"
            f"Generated by `benchmarks/blind_large.py` on {_dt.date.today().isoformat()}; machine: {cpu_model()}, "
            f"torch {torch.__version__}; `unblur restore photo.png --method blind-l0` in a fresh process with "
            f"{args.threads} threads; peak memory = peak resident set size of that process (includes Python, "
            "torch and reading/writing the 12 MP image).\n\n"
        )
        args.out.write_text(header + md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
