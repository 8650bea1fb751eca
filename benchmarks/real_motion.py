"""Real camera blur: held-out GoPro-style pairs (averaged video frames) restored by classical methods and networks.

Pairs (fixed): in ``../shared/data/train/gopro-frames/GOPR0477_11_00`` only frames 121-150 are used (training
never sees them: ``FrameAverageDataset(split="train")`` stops at frame 120). For every ``N`` in 7, 9, 11, 13,
two windows of ``N`` consecutive frames, one starting at frame 121 and one ending at frame 150, are averaged in
linear light (``unblur.data.average_frames``) and stored in 8 bits; the target is the window's middle frame,
whole 1280x720. **A development set, not a test:** the scene (one court, one person) is the one the training
frames 1-120 show; only the moments differ.

Scores: PSNR and SSIM (as ``benchmarks/motion_kodak24.py``) of the 8-bit output against the middle frame, the
gain over the blurred input, and seconds per photo on this machine through ``unblur.restore`` (networks: whole
photo, no tiles).

    python benchmarks/real_motion.py [--methods deeprftv2-tiny.motion nafnet-tiny.motion blind-l0]
                                     [--weights name=FILE.safetensors ...] [--out real_motion.md [--update]]

A classical method takes options after a colon: ``blind-l0:kernel_error=0`` (``name=value`` pairs separated by
commas). ``--update`` keeps the rows of ``--out`` that this run does not score (each row's run is in the file's git
history).

``--weights label=FILE`` adds a row for a weight file of the architecture ``--arch`` (default ``deeprftv2-tiny``;
e.g. the synthetic-only weights, ``runs/deeprftv2-tiny-motion-synthetic.safetensors``).
"""
from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import torch

from unblur.data import average_frames
from unblur.data.folders import load_rgb
from unblur.metrics import psnr, ssim

from _common import emit, run_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
FRAMES = ROOT / ".." / "shared" / "data" / "train" / "gopro-frames" / "GOPR0477_11_00"
FIRST, LAST = 121, 150
WINDOWS = (7, 9, 11, 13)


def pairs(folder: Path) -> list[dict]:
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".webp", ".png", ".jpg"))
    held = frames[FIRST - 1:LAST]
    out = []
    for n in WINDOWS:
        for start in (0, len(held) - n):
            stack = torch.stack([load_rgb(p) for p in held[start:start + n]])
            blurred = (average_frames(stack) * 255).round() / 255
            out.append({"name": f"frames {FIRST + start}-{FIRST + start + n - 1}", "blurred": blurred[None],
                        "sharp": stack[n // 2][None]})
    return out


def _value(text: str):
    """An option's value: a Python literal (``0``, ``0.5``, ``True``), else the text itself (``circular``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def runner(spec: str, weights: str | None = None):
    from unblur import restore
    from unblur.classical import METHODS
    from unblur.models import create, load_weights

    name, _, opts = spec.partition(":")
    if name in METHODS:
        options = {k: _value(v) for k, v in (o.split("=", 1) for o in opts.split(",") if o)}
        return lambda x: restore(x, method=name, options=options).image
    if weights is None:
        net = create(spec, pretrained=True).eval()
    else:
        net = create(spec.split(".")[0]).eval()
        load_weights(net, weights)
    return lambda x: restore(x, model=net, tile=None, estimate_kernel=False).image


def score(run, cases) -> tuple[float, float, float, float]:
    p, s, base, secs = [], [], [], 0.0
    for c in cases:
        t = time.perf_counter()
        with torch.inference_mode():
            out = run(c["blurred"])
        secs += time.perf_counter() - t
        out = (out.clamp(0, 1) * 255).round() / 255
        p.append(float(psnr(out, c["sharp"])))
        s.append(float(ssim(out, c["sharp"])))
        base.append(float(psnr(c["blurred"], c["sharp"])))
        print(f"  {c['name']}: {base[-1]:.2f} -> {p[-1]:.2f} dB", file=sys.stderr, flush=True)
    n = len(cases)
    return sum(p) / n, sum(s) / n, sum(p) / n - sum(base) / n, secs / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=Path, default=FRAMES)
    ap.add_argument("--methods", nargs="*", default=["deeprftv2-tiny.motion", "nafnet-tiny.motion"])
    ap.add_argument("--arch", default="deeprftv2-tiny", help="architecture of the --weights files")
    ap.add_argument("--weights", nargs="*", default=[], metavar="LABEL=FILE")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--update", action="store_true", help="keep the rows of --out that this run does not score")
    args = ap.parse_args(argv)
    if args.update and not args.out:
        ap.error("--update needs --out")
    if not args.frames.is_dir():
        print(f"frames folder {args.frames} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    cases = pairs(args.frames)
    rows = [("blurred input", *score(lambda x: x, cases))]
    for spec in args.methods:
        print(spec, file=sys.stderr, flush=True)
        rows.append((spec, *score(runner(spec), cases)))
    for item in args.weights:
        label, _, path = item.partition("=")
        print(label, file=sys.stderr, flush=True)
        rows.append((f"{args.arch}, {label}", *score(runner(args.arch, path), cases)))
    lines = ["# Real camera blur: held-out GoPro-style pairs", "", run_line(),
             f"- {len(cases)} pairs from frames {FIRST}-{LAST} of {args.frames.name} "
             f"(N = {', '.join(map(str, WINDOWS))}"
             " frames averaged in linear light, two windows each, 1280x720, 8-bit); target: the middle frame",
             "- a development set, not a test: the same scene as the training frames 1-120 (other moments)",
             f"- `python benchmarks/real_motion.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "| method | PSNR | SSIM | gain over the input (dB) | s / photo |", "|---|---|---|---|---|"]
    table = [f"| {name} | {p:.2f} | {s:.4f} | {gain:+.2f} | {secs:.2f} |" for name, p, s, gain, secs in rows]
    if args.update and Path(args.out).is_file():
        from motion_kodak24 import merge_rows

        table = merge_rows(Path(args.out).read_text(), table)
        lines[-4] = lines[-4] + " (this run's rows; the others are kept from earlier runs: `--update`)"
    emit(lines + table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
