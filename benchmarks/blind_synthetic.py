"""Blind deblurring on synthetic camera shake of the *training* photos: the set blind-l0 is tuned on.

Nothing here touches a test set or Levin's captures: ``N`` grey 255x255 crops of
``../shared/data/train/CBSD432`` (sorted, every ``432 // N``-th photo, a seeded random crop), each
blurred by its own random camera-shake kernel (:class:`unblur.physics.MotionBlurGenerator`, support 31,
path length uniform in ``--lengths``) as a real camera does it (``valid`` convolution of a larger crop:
the scene beyond the frame enters the border), Gaussian noise ``--noise`` and 8-bit quantisation.

Scored like Levin's benchmark (``benchmarks/levin.py``: 15 px crop, best sub-pixel shift, PSNR, SSIM,
error ratio against ``hqs-hl`` with the true kernel, success = ratio <= 2), plus the PSNR on the same crop without
any shift ("PSNR, no shift"): the generator centres every kernel's centroid on its centre pixel, so a result moved
off that convention (a blind estimate is defined up to a translation) loses there what the alignment forgives.

    python benchmarks/blind_synthetic.py [--n 16] [--method blind-l0] [--set kernel_size=41 ...] [--compare ...]
    python benchmarks/blind_synthetic.py --method gdunet-tiny.motion --compare register=False   # a shipped network

``--set name=value`` passes options to the method (``unblur.classical.deblur``); ``--compare name=value``
adds a second row on the same images (e.g. ``--compare kernel_sparsity=0``: the previous default). The script
only uses stable public API, so running it with ``PYTHONPATH=<older checkout>/src`` measures an older version
of the method on exactly the same images. Prints a markdown table and, with ``--out``, writes it with the machine
and date (``--append``: as a new section of that file).
"""
from __future__ import annotations

import argparse
import ast
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unblur.classical import deblur
from unblur.physics import MotionBlurGenerator, conv2d
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from levin import CROP, evaluate, run_network  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZE, SUPPORT = 255, 31


def load_gray(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255)[None, None]


def make_cases(data: Path, n: int, lengths: tuple[float, float], noise: float, seed: int):
    """(sharp, blurred, kernel) triples, identical for identical arguments."""
    files = sorted(data.glob("*.jpg")) + sorted(data.glob("*.png"))
    if not files:
        raise SystemExit(f"no training photos in {data}")
    g = torch.Generator().manual_seed(seed)
    kernels = MotionBlurGenerator(SUPPORT, length_range=lengths)(n, generator=g)
    cases = []
    for i in range(n):
        img = load_gray(files[(i * max(1, len(files) // n)) % len(files)])
        H, W = img.shape[-2:]
        big = SIZE + SUPPORT - 1
        top = int(torch.randint(0, H - big + 1, (1,), generator=g))
        left = int(torch.randint(0, W - big + 1, (1,), generator=g))
        crop = img[..., top:top + big, left:left + big]
        c = SUPPORT // 2
        sharp = crop[..., c:c + SIZE, c:c + SIZE]
        y = conv2d(crop, kernels[i:i + 1], "valid") + noise * torch.randn(1, 1, SIZE, SIZE, generator=g)
        y = (y.clamp(0, 1) * 255).round() / 255
        cases.append((sharp, y, kernels[i, 0]))
    return cases


def parse_sets(items: list[str]) -> dict:
    opts = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name or not value:
            raise SystemExit(f"--set expects name=value, got {item!r}")
        try:
            opts[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            opts[name] = value
    return opts


def blind_method(method: str, opts: dict):
    """``y -> restored`` for a classical method (``unblur.classical.deblur`` with ``opts``) or a shipped network
    (``MODEL.TAG``; ``opts`` go to its constructor, e.g. ``register=False``), grey in and out (a colour network gets
    the grey channel three times, as in ``levin.py``)."""
    if "." in method:
        from unblur.models import create

        net = create(method, pretrained=True, **opts).eval()
        return lambda y: run_network(net, y)[0]
    return lambda y: deblur(y, method=method, **opts).image


def score(method: str, opts: dict, cases) -> str:
    """One table row: ``method`` with ``opts`` on the (sharp, blurred, kernel) cases."""
    rows, seconds = [], 0.0
    restore = blind_method(method, opts)
    for idx, (sharp, y, k) in enumerate(cases):
        known = deblur(y, k, method="hqs-hl").image
        t = time.perf_counter()
        blind = restore(y)
        seconds += time.perf_counter() - t
        pk, sk, ek = evaluate(known, sharp)
        pb, sb, eb = evaluate(blind, sharp)
        c = CROP
        plain = float(-10 * torch.log10((blind.clamp(0, 1) - sharp)[..., c:-c, c:-c].double().square().mean()))
        rows.append((evaluate(y, sharp)[0], pk, pb, sb, float(np.sqrt(eb / ek)), plain))
        print(f"case {idx}: blurred {rows[-1][0]:.2f}  known {pk:.2f}  blind {pb:.2f}/{sb:.3f}  ratio {rows[-1][4]:.2f}",
              file=sys.stderr, flush=True)
    a = np.array(rows)
    setting = ", ".join(f"{k}={v}" for k, v in opts.items())
    return (f"| {method} ({setting}) | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} | {a[:, 2].mean():.2f} | "
            f"{a[:, 3].mean():.3f} | {a[:, 4].mean():.3f} | {(a[:, 4] <= 2).mean() * 100:.0f}% / "
            f"{(a[:, 4] <= 3).mean() * 100:.0f}% | {seconds / len(rows):.2f} | {a[:, 5].mean():.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "train" / "CBSD432")
    ap.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    ap.add_argument("--lengths", type=float, nargs=2, default=(6.0, 26.0), help="shake path length range, px")
    ap.add_argument("--noise", type=float, default=0.003, help="Gaussian noise sigma on [0, 1]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="blind-l0")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="options for the method")
    ap.add_argument("--compare", nargs="*", default=None, metavar="NAME=VALUE",
                    help="a second row on the same images with these options (e.g. the previous default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    ap.add_argument("--append", action="store_true", help="add the table to --out as a new section")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no training photos in {args.data}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    base = {} if "." in args.method else {"kernel_size": SUPPORT}  # a network's kernel size is its own
    settings = [{**base, **parse_sets(args.set)}]
    if args.compare is not None:
        settings.append({**base, **parse_sets(args.compare)})
    cases = make_cases(args.data, args.n, tuple(args.lengths), args.noise, args.seed)
    lines = [
        "| method | blurred PSNR | known-kernel PSNR | PSNR | SSIM | error ratio | success (<=2 / <=3) | s / image "
        "| PSNR, no shift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for opts in settings:
        lines.append(score(args.method, opts, cases))
        print(lines[-1], file=sys.stderr, flush=True)
    md = "\n".join(lines)
    print(md)
    if args.out is not None:
        section = (
            f"## {len(cases)} crops, shake length {args.lengths[0]:g}-{args.lengths[1]:g} px, noise {args.noise:g}\n\n"
            f"Generated by `benchmarks/blind_synthetic.py {' '.join(argv if argv is not None else sys.argv[1:])}` on "
            f"{_dt.date.today().isoformat()}; machine: {cpu_model()}, {args.threads} torch thread(s), torch "
            f"{torch.__version__}; {len(cases)} grey {SIZE}x{SIZE} crops of CBSD432, shake length "
            f"{args.lengths[0]:g}-{args.lengths[1]:g} px (support {SUPPORT}), noise {args.noise:g}, 8-bit, seed {args.seed}.\n\n"
        )
        title = "# Blind deblurring on synthetic camera shake of the training photos\n\n"
        old = args.out.read_text() if args.append and args.out.exists() else title
        args.out.write_text(old.rstrip("\n") + "\n\n" + section + md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
