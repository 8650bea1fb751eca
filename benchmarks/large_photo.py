"""Every shipped method on a big photo (default 24 megapixels) through the command line: wall time and peak memory.

The photo (``--size``, default 6000x4000 RGB) is a mosaic of CBSD432 training photos upscaled 2x, blurred by
one camera shake of ``--shake`` px (support 61, ``valid`` convolution of a larger canvas), with noise sigma
0.005 and 8-bit quantisation, saved as PNG. Then for each method, in a fresh process with ``--threads``
threads (the default 2 is the laptop this project targets)::

    unblur restore photo.png -o OUT --method blind-l0 --quiet           (classical methods)
    unblur restore photo.png -o OUT --model gdunet-tiny.motion --quiet  (shipped networks)

runs while its wall time and peak resident memory (``getrusage`` of that child alone) are recorded: the
memory bound is the point (``unblur.inference.tiling.CPU_ACTIVATION_LIMIT`` caps a network's activations,
blind-l0 deconvolves in tiles). PSNR of the input and of the result against the sharp photo (central crop;
the result after the whole-pixel shift that matches it best, as a blind estimate is defined up to a
translation) show that each run did what it should; they are not a quality benchmark (that is
``levin.py`` / ``motion_kodak24.py``: the networks were trained on 128-256 px crops of blur up to 31 px).

    python benchmarks/large_photo.py [--size 6000x4000] [--threads 2] [--shake 45]
                                     [--methods blind-l0 gdunet-tiny.motion ...] [--out benchmarks/large_photo.md]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
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
from motion_kodak24 import merge_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUPPORT = 61


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
    matches a window (512 px, less on small photos) of their centres: a blind estimate is defined up to a translation."""
    from unblur.metrics import align_to_reference

    h, w = ref.shape[:2]
    m = max_shift
    half = min(256, min(h, w) // 2 - m)  # a 512 px window, smaller on small photos
    top, left = h // 2 - half - m, w // 2 - half - m
    win = (slice(top, top + 2 * half + 2 * m), slice(left, left + 2 * half + 2 * m))
    grey = lambda a: torch.from_numpy(np.ascontiguousarray(a[win].mean(-1)))[None]  # noqa: E731
    _, (dy, dx) = align_to_reference(grey(est), grey(ref), max_shift=m, step=1.0, crop=m)
    dy, dx = int(round(dy)), int(round(dx))
    return est[crop + dy:h - crop + dy, crop + dx:w - crop + dx], ref[crop:h - crop, crop:w - crop]


def run_method(src: Path, out_dir: Path, method: str, threads: int) -> tuple[float, float]:
    """``unblur restore`` of ``src`` with ``method`` in a fresh process: (seconds, peak resident MB of that process)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    which = ["--model", method] if "." in method else ["--method", method]
    code = ("import resource, sys, runpy; sys.argv = ['unblur'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('unblur', run_name='__main__')\n"
            "finally:\n    print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    cmd = [sys.executable, "-c", code, "restore", str(src), "-o", str(out_dir), *which, "--quiet", "--save-kernel"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    peaks = [int(ln.split()[1]) for ln in proc.stderr.splitlines() if ln.startswith("PEAK_KB")]
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed: {proc.stderr.strip().splitlines()[-2:]}")
    return seconds, peaks[-1] / 1024


DEFAULT_METHODS = ["blind-l0", "nafnet-tiny.motion", "deeprftv2-tiny.motion", "gdunet-tiny.motion"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "train" / "CBSD432")
    ap.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT of the photo (default 24 MP)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shake", type=float, default=45.0, help="camera-shake path length in photo pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS,
                    help="classical method names and shipped weight sets (name.tag)")
    ap.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of --out for methods this run does not measure (same photo settings)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no training photos in {args.data}", file=sys.stderr)
        return 1
    W, H = (int(v) for v in args.size.lower().split("x"))
    g = torch.Generator().manual_seed(args.seed)
    pad = SUPPORT - 1
    sharp_big = mosaic(args.data, W + pad, H + pad)
    k = MotionBlurGenerator(SUPPORT, length_range=(args.shake, args.shake))(1, generator=g)
    big = torch.from_numpy(sharp_big).permute(2, 0, 1)[None]
    y = conv2d(big, k, "valid")[0].permute(1, 2, 0).numpy()
    del big
    y = np.clip(y + 0.005 * torch.randn(y.shape, generator=g).numpy(), 0, 1)
    y8 = (y * 255).round().astype(np.uint8)
    del y
    sharp = sharp_big[pad // 2:pad // 2 + H, pad // 2:pad // 2 + W]
    c = min(200, min(W, H) // 8)  # central crop: the outer band holds scene that the blur brought in from outside
    p_in = psnr(y8[c:-c, c:-c] / 255, sharp[c:-c, c:-c])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        Image.fromarray(y8).save(src)
        for method in args.methods:
            out_dir = Path(tmp) / method
            seconds, peak_mb = run_method(src, out_dir, method, args.threads)
            out = np.asarray(Image.open(out_dir / "photo.png").convert("RGB"), np.float32) / 255
            kernel_file = out_dir / "photo_kernel.png"
            ksize = Image.open(kernel_file).size if kernel_file.exists() else None
            p_out = psnr(*aligned(out, sharp, c))
            rows.append(f"| {method} | {seconds:.1f} s | {peak_mb:.0f} MB | {p_in:.2f} | {p_out:.2f} | "
                        f"{f'{ksize[0]}x{ksize[1]}' if ksize else '-'} |")
            print(rows[-1], file=sys.stderr, flush=True)
            shutil.rmtree(out_dir)
    kept = ""
    if args.update and args.out is not None and args.out.is_file():
        rows = merge_rows(args.out.read_text(), rows)
        others = [r.split("|")[1].strip() for r in rows if r.split("|")[1].strip() not in args.methods]
        if others:
            kept = (f" Measured in this run: {', '.join(args.methods)}; the rows of {', '.join(others)} are kept from "
                    "the earlier file (`--update`, same photo settings; their dates are in its git history).")
    every = {r.split("|")[1].strip() for r in rows} >= set(DEFAULT_METHODS)
    md = "\n".join([
        f"Photo: {W}x{H} RGB ({W * H / 1e6:.0f} MP), camera shake {args.shake:g} px, {args.threads} threads.",
        "",
        "| method | wall time | peak memory | PSNR input | PSNR result | kernel written |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(md)
    if args.out is not None:
        header = (
            f"# {'Every shipped method' if every else 'Shipped methods'} on a "
            f"{W * H / 1e6:.0f}-megapixel photo (command line)\n\n"
            f"Generated by `benchmarks/large_photo.py` on {_dt.date.today().isoformat()}; machine: {cpu_model()}, "
            f"torch {torch.__version__}; `unblur restore photo.png --save-kernel` with each method in a fresh process "
            f"with {args.threads} threads; peak memory = peak resident set size of that process (includes Python, "
            f"torch and reading/writing the image). PSNR after the best whole-pixel shift, central crop.{kept}\n\n"
        )
        args.out.write_text(header + md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
