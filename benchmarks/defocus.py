"""Defocus deblurring: uniform disks and spatially varying defocus, side by side.

Sets (fixed, seeded; Gaussian noise sigma 0.01, 8-bit quantised input and output, centre crops of ``--crop`` px):

- ``kodak-uniform``, ``mcmaster-uniform``: one anti-aliased disk per photo (``physics.defocus_kernel``, radius
  uniform in [2, 7] px), ``valid`` convolution (the scene goes on beyond the frame), the aligned sharp crop;
- ``kodak-varying``, ``mcmaster-varying``: a random scene per photo (``physics.DefocusMapGenerator``: planes,
  relief, occluding objects; largest radius uniform in [3, 7] px) rendered by depth layers
  (``physics.render_defocus``), 8 px margins cut;
- ``nyu``: the 11 NYU Depth v2 photos of ``test/nyu-rgbd11`` defocused by their *real* depth maps through a thin
  lens (50 mm, 36 mm wide sensor: 0.056 mm pixels at 640 px), two settings per photo: focused at 1.5 m at f/2.8 and
  at 4 m at f/2, radii clipped to 8 px.

- ``kodak-lens``: another generator than the training data's: a hard-edged disk (no anti-aliasing, radius uniform
  in [2, 7] px) convolved with a Gaussian of sigma uniform in [0.3, 1] px, ``valid`` blur (checks that a method does
  not depend on one disk model; the non-blind methods are given this PSF).

- ``dpdd``, ``realdof`` (only with ``--dpdd ROOT`` / ``--realdof ROOT``): the real pairs of those benchmarks, read by
  ``unblur.data.find_pairs`` (DPDD: ``test_c/source`` with ``test_c/target``, or Restormer's ``inputC``/``target``;
  RealDOF: ``source`` with ``target``), centre crops of ``--crop`` px (0: whole photos, the published protocol).

Methods: the blurred input; the classical non-blind ``hqs-hl`` and ``wiener`` given the true PSF (uniform sets and
kodak-lens only); the classical blind ``blind-l0``; every shipped network (motion weights for reference; defocus
weights);
``--candidate MODEL=WEIGHTS`` for unshipped weights. Scores (the DPDD protocol): PSNR, SSIM (scikit-image
defaults: ``ssim(variant="skimage")``), MAE, seconds per image. LPIPS is not reported: it needs its network's
weights on disk, and nothing downloads.

    python benchmarks/defocus.py [--sets kodak-uniform nyu] [--limit N] [--skip blind-l0] [--update]
    python benchmarks/defocus.py --sets --dpdd DPDD_ROOT --realdof REALDOF_ROOT --crop 0 --out dpdd.md
"""
from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unblur.classical import deblur
from unblur.io import expand_inputs, read_image
from unblur.metrics import mae, psnr, ssim
from unblur.models import create, list_models
from unblur.physics import (DefocusMapGenerator, conv2d, defocus_kernel, gaussian_kernel, render_defocus,
                            thin_lens_radius)
from unblur.physics.noise import GaussianNoise
from unblur.physics.pipeline import crop_valid

from _common import emit, run_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import merge_rows, network, quantise  # noqa: E402

SEED = 2027
NOISE = 0.01
DISK_SIZE = 17  # radii up to 8 px
LENS_SIZE = 21  # radii up to 7 px and a Gaussian up to 1 px
SETS = ("kodak-uniform", "kodak-varying", "mcmaster-uniform", "mcmaster-varying", "nyu", "kodak-lens")
NYU_SETTINGS = ((1.5, 2.8), (4.0, 2.0))  # (focus distance m, f-number)


def _centre(x: torch.Tensor, size: int) -> torch.Tensor:
    H, W = x.shape[-2:]
    h, w = min(size, H), min(size, W)
    return x[..., (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w]


def _noisy(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return quantise(GaussianNoise(NOISE)(x, generator=g))


def uniform_pairs(paths, crop: int) -> list[dict]:
    pairs = []
    for i, p in enumerate(paths):
        g = torch.Generator().manual_seed(SEED + i)
        sharp = _centre(read_image(p).data[None], crop + DISK_SIZE - 1)
        r = 2.0 + 5.0 * float(torch.rand(1, generator=g))
        k = defocus_kernel(r, DISK_SIZE)
        pairs.append({"name": p.stem, "blurred": _noisy(conv2d(sharp, k, "valid"), g),
                      "sharp": crop_valid(sharp, k.shape), "kernel": k, "radius": r})
    return pairs


def lens_psf(radius: float, sigma: float, size: int = LENS_SIZE) -> torch.Tensor:
    """Another generator's defocus PSF: a hard-edged disk (pixel centres inside the circle, no anti-aliasing)
    convolved with a Gaussian (lens aberrations, sensor), sum 1."""
    t = torch.arange(size, dtype=torch.float64) - size // 2
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius ** 2).double()
    k = conv2d(disk[None, None], gaussian_kernel(sigma, size=2 * math.ceil(3 * sigma) + 1, dtype=torch.float64),
               "zeros")[0, 0]
    return (k / k.sum()).float()


def lens_pairs(paths, crop: int) -> list[dict]:
    pairs = []
    for i, p in enumerate(paths):
        g = torch.Generator().manual_seed(SEED + 3000 + i)
        sharp = _centre(read_image(p).data[None], crop + LENS_SIZE - 1)
        r = 2.0 + 5.0 * float(torch.rand(1, generator=g))
        k = lens_psf(r, 0.3 + 0.7 * float(torch.rand(1, generator=g)))
        pairs.append({"name": p.stem, "blurred": _noisy(conv2d(sharp, k, "valid"), g),
                      "sharp": crop_valid(sharp, k.shape), "kernel": k, "radius": r})
    return pairs


def varying_pairs(paths, crop: int) -> list[dict]:
    pairs, m = [], 8
    for i, p in enumerate(paths):
        g = torch.Generator().manual_seed(SEED + 1000 + i)
        sharp = _centre(read_image(p).data[None], crop + 2 * m)
        s = DefocusMapGenerator((3.0, 7.0))(1, sharp.shape[-2:], generator=g)["radius"]
        blurred = render_defocus(sharp, s)[..., m:-m, m:-m]
        pairs.append({"name": p.stem, "blurred": _noisy(blurred, g), "sharp": sharp[..., m:-m, m:-m],
                      "kernel": None, "radius": float(s.abs().max())})
    return pairs


def nyu_pairs(root: Path, crop: int) -> list[dict]:
    pairs = []
    for i, p in enumerate(sorted((root / "image").iterdir())):
        depth_file = root / "depth" / f"{p.stem}.npy"
        if not depth_file.is_file():
            continue
        sharp = read_image(p).data[None]
        depth = torch.from_numpy(np.load(depth_file)).float().clamp(0.5, 10.0)[None, None]
        for j, (focus, f_number) in enumerate(NYU_SETTINGS):
            g = torch.Generator().manual_seed(SEED + 2000 + 10 * i + j)
            s = thin_lens_radius(depth, focus, focal_length_mm=50, f_number=f_number, pixel_pitch_mm=36 / 640)
            s = s.clamp(-8, 8)
            blurred = render_defocus(sharp, s)
            pairs.append({"name": f"{p.stem}@{focus}m", "blurred": _noisy(_centre(blurred, crop), g),
                          "sharp": _centre(sharp, crop), "kernel": None, "radius": float(s.abs().max())})
    return pairs


def real_pairs(root: Path, layout: str, crop: int, limit: int | None) -> list[dict]:
    """The real (blurred, sharp) pairs of a defocus benchmark on disk, as read by unblur.data.find_pairs."""
    from unblur.data import find_pairs

    pairs = []
    for blurred, sharp in find_pairs(root, layout, "test")[:limit]:
        b, t = read_image(blurred).data[None], read_image(sharp).data[None]
        if crop:
            b, t = _centre(b, crop), _centre(t, crop)
        pairs.append({"name": blurred.stem, "blurred": b, "sharp": t, "kernel": None, "radius": None})
    return pairs


def classical(method: str, known: bool):
    def run(pr):
        if known and pr["kernel"] is None:
            return None
        res = deblur(pr["blurred"], pr["kernel"] if known else None, method=method)
        return res.image

    return run


def as_image(fn):
    return lambda pr: fn(pr)[0]


def _built_on_first_use(name: str):
    """A shipped network as a method, loaded when first run (a skipped method is never built)."""
    built = []

    def run(pr):
        if not built:
            built.append(as_image(network(create(name, pretrained=True))))
        return built[0](pr)

    return run


def methods(candidates: dict[str, str]):
    yield "blurred input", lambda pr: pr["blurred"]
    yield "hqs-hl, true disk (classical non-blind)", classical("hqs-hl", known=True)
    yield "wiener, true disk (classical non-blind)", classical("wiener", known=True)
    yield "blind-l0 (classical blind)", classical("blind-l0", known=False)
    for name in list_models(pretrained=True):
        yield f"{name} (network, blind)", _built_on_first_use(name)
    for name, path in candidates.items():
        yield (f"{name} (network, blind; candidate weights `{Path(path).name}`, not shipped)",
               as_image(network(create(name, weights=path))))


def _lpips_status() -> str:
    """LPIPS is not wired in (its network weights would have to be on disk: nothing downloads); say whether the
    package is even there."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return "not installed on this machine: not reported"
    return "installed, but its weights are not wired in: not reported"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/test")
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    ap.add_argument("--dpdd", metavar="ROOT", help="also the DPDD test pairs under ROOT (test_c/source, test_c/target)")
    ap.add_argument("--realdof", metavar="ROOT", help="also the RealDOF pairs under ROOT (source, target)")
    ap.add_argument("--crop", type=int, default=320,
                    help="centre crop side of every test photo (default 320; 0: whole photos, DPDD and RealDOF only)")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of each set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], help="substrings of method names to skip")
    ap.add_argument("--candidate", action="append", default=[], metavar="MODEL=WEIGHTS")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    ap.add_argument("--update", action="store_true", help="keep the rows of --out that this run does not recompute")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir() and args.sets:
        print(f"data folder {data} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    try:
        candidates = dict(c.split("=", 1) for c in args.candidate)
    except ValueError:
        ap.error("--candidate takes MODEL=WEIGHTS")

    def photos(name):
        paths, _ = expand_inputs([str(data / name)])
        return paths[: args.limit] if args.limit else paths

    builders = {"kodak-uniform": lambda: uniform_pairs(photos("Kodak24"), args.crop),
                "kodak-varying": lambda: varying_pairs(photos("Kodak24"), args.crop),
                "mcmaster-uniform": lambda: uniform_pairs(photos("McMaster"), args.crop),
                "mcmaster-varying": lambda: varying_pairs(photos("McMaster"), args.crop),
                "nyu": lambda: nyu_pairs(data / "nyu-rgbd11", args.crop),
                "kodak-lens": lambda: lens_pairs(photos("Kodak24"), args.crop)}
    if args.dpdd:
        builders["dpdd"] = lambda: real_pairs(Path(args.dpdd), "dpdd", args.crop, args.limit)
    if args.realdof:
        builders["realdof"] = lambda: real_pairs(Path(args.realdof), "realdof", args.crop, args.limit)
    sets = {}
    for name in args.sets + [n for n in ("dpdd", "realdof") if n in builders]:
        pairs = builders[name]()
        sets[name] = pairs[: 2 * args.limit] if (args.limit and name == "nyu") else pairs
    rows = []
    for label, fn in methods(candidates):
        if any(s in label for s in args.skip):
            continue
        cells = []
        for name, pairs in sets.items():
            ps, ss, ms, secs = [], [], [], []
            for pr in pairs:
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out = fn(pr)
                secs.append(time.perf_counter() - t0)
                if out is None:
                    break
                out = quantise(out)
                ps.append(psnr(out, pr["sharp"]).item())
                ss.append(ssim(out, pr["sharp"], variant="skimage").item())
                ms.append(mae(out, pr["sharp"]).item())
            if not ps:
                cells.append("-")
                continue
            n = len(ps)
            cells.append(f"{sum(ps) / n:.2f} / {sum(ss) / n:.4f} / {sum(ms) / n:.4f} / {sum(secs) / n:.2f}")
            print(f"{label} on {name}: {sum(ps) / n:.2f} dB", file=sys.stderr)
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {datetime.date.today()} |")
    header = "| method | " + " | ".join(f"{s}: PSNR / SSIM / MAE / s" for s in sets) + " | measured |"
    table = rows
    if args.update and Path(args.out).is_file():
        table = merge_rows(Path(args.out).read_text(), rows)
    sizes = ", ".join(f"{n} {len(p)} images" for n, p in sets.items())
    lines = [
        "# Defocus deblurring: uniform disks and spatially varying defocus",
        "",
        run_line(),
        f"- sets: {sizes}; {f'centre crops of {args.crop} px' if args.crop else 'whole photos'}; noise sigma {NOISE}, 8-bit input and output; protocol "
        "in the script's docstring (uniform: disk radius 2-7 px, `valid` blur; varying: random scenes, largest "
        "radius 3-7 px; nyu: real depth maps, thin lens, 2 settings a photo; kodak-lens: another generator, hard disk "
        "radius 2-7 px * Gaussian 0.3-1 px)",
        "- SSIM: scikit-image defaults (7x7 uniform window, sample covariances; `ssim(variant=\"skimage\")`, the "
        "DPDD protocol); MAE on [0, 1]; s: seconds per image on this machine, wall clock",
        f"- LPIPS: {_lpips_status()}",
        "- `-`: the method does not apply (a classical non-blind method needs one PSF: uniform sets and kodak-lens only)",
        "- rows kept from earlier runs (`--update`) say when they were measured",
        "",
        header,
        "|---|" + "---|" * len(sets) + "---|",
    ] + table
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
