"""Blind motion deblurring on Kodak24: classical methods and shipped networks side by side.

Protocol (fixed, seeded): every test photo is blurred with its own motion kernel drawn from
``MotionBlurGenerator`` (seed 2026, one kernel per image index), ``valid`` boundaries (the blur
reaches the frame edge as in a real photo), Gaussian noise sigma 0.01 on [0, 1], then quantised to
8 bits like a saved photo. Each method's output is quantised to 8 bits and scored against the
aligned sharp crop: PSNR and SSIM (Wang et al. Gaussian, per channel, as scikit-image with
gaussian_weights=True, use_sample_covariance=False), and seconds per image on this machine.

    python benchmarks/motion_kodak24.py --data ../shared/data/test/Kodak24 [--limit N] [--device cpu]
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from unblur.classical import deblur
from unblur.io import expand_inputs, read_image
from unblur.metrics import kernel_psnr, psnr, psnr_up_to_shift, ssim
from unblur.models import create, list_models
from unblur.physics.pipeline import DegradationPipeline

from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SEED = 2026
KERNEL_SIZE = 31
NOISE = 0.01


def quantise(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def degrade(paths: list[Path], device, noise: float = NOISE) -> list[dict]:
    """Blur every photo with its own seeded kernel (same pairs on every run and machine)."""
    pipe = DegradationPipeline.from_name("motion", kernel_size=KERNEL_SIZE, noise_sigma=noise, mode="valid")
    pairs = []
    for i, p in enumerate(paths):
        g = torch.Generator().manual_seed(SEED + i)
        sharp = read_image(p).data[None]
        out = pipe(sharp, generator=g)
        pairs.append({"name": p.stem, "blurred": quantise(out["blurred"]).to(device),
                      "sharp": out["sharp"].to(device), "kernel": out["kernel"].to(device)})
    return pairs


def network(model: torch.nn.Module):
    """The model as a method: blurred (1, 3, H, W) -> (restored, final stage kernel or None), whole image."""
    model = model.eval()

    def run(pr):
        with torch.inference_mode():
            out = model.forward_train(pr["blurred"])
        kernels = out.get("kernels")
        return [img for img, s in out["outputs"] if s == 1.0][-1], (kernels[-1] if kernels else None)

    return run


def classical(method: str, known: bool):
    """A classical method as (restored, kernel it estimated or None)."""
    def run(pr):
        res = deblur(pr["blurred"], pr["kernel"] if known else None, method=method)
        return res.image, (None if known else res.kernel)

    return run


def methods(device, with_models: list[str], candidates: dict[str, str] | None = None):
    yield "blurred input", lambda pr: (pr["blurred"], None)
    yield "hqs-hl, true kernel (classical non-blind)", classical("hqs-hl", known=True)
    yield "wiener, true kernel (classical non-blind)", classical("wiener", known=True)
    yield "blind-l0 (classical blind)", classical("blind-l0", known=False)
    for name in with_models:  # the motion tag keeps its short label (rows of earlier runs)
        label = name[: -len(".motion")] if name.endswith(".motion") else name
        yield f"{label} (network, blind)", network(create(name, pretrained=True).to(device))
    for name, path in (candidates or {}).items():  # weights not shipped (yet): a training run's export
        yield (f"{name} (network, blind; candidate weights `{Path(path).name}`, not shipped)",
               network(create(name, weights=path).to(device)))


HEADER = ("| method | PSNR (dB) | SSIM | PSNR, best shift within 4 px (dB) | kernel PSNR, best shift within 4 px (dB) "
          "| s / image | measured |")


def merge_rows(old_text: str, new_rows: list[str]) -> list[str]:
    """Rows of the table in ``old_text`` with those of ``new_rows`` replacing the same method (new methods
    appended), in the old order."""
    def method(row: str) -> str:
        return row.split("|")[1].strip()

    new = {method(r): r for r in new_rows}
    old = [ln for ln in old_text.splitlines() if ln.startswith("| ")][1:]  # the first is the header
    merged = [new.pop(method(r), r) for r in old]
    return merged + [r for r in new_rows if method(r) in new]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    ap.add_argument("--skip", nargs="*", default=[], help="substrings of method names to skip")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    ap.add_argument("--candidate", action="append", default=[], metavar="MODEL=WEIGHTS",
                    help="also score unshipped weights (e.g. deeprftv2-tiny=runs/x.safetensors from `unblur export`)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of --out that this run does not recompute (e.g. the slow classical ones "
                         "when only a network changed); each row says when it was measured")
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"data folder {args.data} not found; nothing to do", file=sys.stderr)
        return 0
    if args.update and args.limit:
        ap.error("--update merges with a full run's rows; it cannot be combined with --limit")
    torch.set_num_threads(args.threads)
    paths, _ = expand_inputs([args.data])
    paths = paths[: args.limit] if args.limit else paths
    pairs = degrade(paths, args.device)
    shipped = list_models(pretrained=True)
    models = [f"{m}.{tag}" for m in ("nafnet-tiny", "deeprftv2-tiny", "gdunet-tiny", "upadnet-tiny")
              for tag in ("motion", "real") if f"{m}.{tag}" in shipped]
    rows = []
    try:
        candidates = dict(c.split("=", 1) for c in args.candidate)
    except ValueError:
        ap.error("--candidate takes MODEL=WEIGHTS")
    for label, fn in methods(args.device, models, candidates):
        if any(s in label for s in args.skip):
            continue
        ps, ss, pshift, kp, secs = [], [], [], [], []
        for pr in pairs:
            t0 = time.perf_counter()
            out, kernel = fn(pr)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            secs.append(time.perf_counter() - t0)
            out = quantise(out)
            ps.append(psnr(out, pr["sharp"]).item())
            ss.append(ssim(out, pr["sharp"]).item())
            pshift.append(psnr_up_to_shift(out, pr["sharp"], max_shift=4).item())
            if kernel is not None:
                kp.append(kernel_psnr(kernel.cpu(), pr["kernel"].cpu(), max_shift=4))
        n = len(pairs)
        kcol = f"{sum(kp) / n:.2f}" if kp else "-"
        rows.append((label, sum(ps) / n, sum(ss) / n, sum(pshift) / n, kcol, sum(secs) / n, str(datetime.date.today())))
        print(f"{label}: {rows[-1][1]:.2f} dB", file=sys.stderr)
    h, w = pairs[0]["blurred"].shape[-2:]
    table = [f"| {m} | {p:.2f} | {s:.4f} | {q:.2f} | {k} | {t:.2f} | {d} |" for m, p, s, q, k, t, d in rows]
    if args.update and Path(args.out).is_file():
        table = merge_rows(Path(args.out).read_text(), table)
    lines = [
        "# Blind motion deblurring on Kodak24",
        "",
        f"- latest run: {datetime.date.today()}; machine: {cpu_model()}, "
        f"{torch.get_num_threads()} threads, device {args.device}; torch {torch.__version__}",
        f"- {len(pairs)} images, blurred size {h}x{w} (500x500 crops, `valid` blur), motion kernels "
        f"{KERNEL_SIZE}x{KERNEL_SIZE} seeded from {SEED}, noise sigma {NOISE}, 8-bit quantised input and output",
        "- SSIM: Wang et al. Gaussian per channel (scikit-image gaussian_weights=True, use_sample_covariance=False)",
        "- time: seconds per image, wall clock, first call included; PSNR/SSIM columns without shift unless named",
        "- kernel PSNR: the estimated kernel against the true one (`unblur.metrics.kernel_psnr`, best integer shift "
        "within 4 px), for every blind method that returns a physical kernel",
        "- rows kept from earlier runs (`--update`) say when they were measured; all on the same kind of machine",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|",
    ] + table
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
