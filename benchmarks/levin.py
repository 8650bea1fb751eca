"""blind-l0 and the shipped networks on the Levin et al. (2009) real camera-shake captures, next to the published table.

Data: ``../shared/data/levin`` (4 sharp 255x255 images x 8 recorded kernels = 32 real captures; see
its README). The captures match *correlation* with kernel j, i.e. true convolution with the kernel
rotated by 180 degrees, so the known kernel handed to our non-blind reference is ``k.flip``.

Protocol (SelfDeblur's ``statistic_levin.m``, as in the data README): crop 15 px from each side of
the ground truth, align the estimate by sub-pixel shifts (0.25 px, bilinear, up to 10 px;
``unblur.metrics.align_to_reference``), PSNR on [0, 1] (= peak 255), SSIM on the aligned crop
(scikit-image, Gaussian 11x11 sigma 1.5, no sample covariance: Wang et al.'s definition), error ratio
= ||blind - gt|| / ||known kernel - gt|| (ratio of norms, SelfDeblur variant) where "known kernel" is
our ``hqs-hl`` with the true kernel. "success" = ratio <= 2 (<= 3). Also Levin's original ratio of
*squared* errors against the published true-kernel SSD table (``ssd_true_kernel.txt``). No parameter
was tuned on this data: ``blind-l0`` runs with its defaults and ``kernel_size=31``.

    python benchmarks/levin.py [--data ../shared/data/levin] [--limit N] [--threads 1]
                               [--baseline-src OLD/src --baseline-label REV] [--networks gdunet-tiny.motion ...]

Networks are colour models: the grey capture goes in as three equal channels and the mean of the output
channels is scored (nothing was trained or tuned on Levin's data).

``--baseline-src`` runs an older checkout's blind-l0 on the same captures first (same machine, same
script) and adds its row: quality and time before and after a change.

Prints a markdown table and writes it (machine, date) to ``--out`` (default benchmarks/levin.md).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unblur.classical import deblur
from unblur.metrics import align_to_reference
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CROP, MAX_SHIFT, STEP = 15, 10, 0.25

PUBLISHED = [  # (method, PSNR, SSIM, error ratio): SelfDeblur Table 1 via Zhang, Quan, Ji (NeurIPS 2024), data README
    ("true kernel, non-blind", 34.53, 0.949, 1.000),
    ("Krishnan et al. 2011", 29.88, 0.866, 2.452),
    ("Cho & Lee 2009", 30.57, 0.896, 1.711),
    ("Levin et al. 2011", 30.80, 0.909, 1.772),
    ("Xu & Jia 2010", 31.67, 0.916, 1.489),
    ("Sun et al. 2013", 32.99, 0.933, 1.284),
    ("Zuo et al. 2016", 32.66, 0.933, 1.250),
    ("Pan et al. 2016 (dark channel)", 32.69, 0.928, 1.255),
    ("SelfDeblur (Ren et al. 2020)", 33.07, 0.931, 1.196),
    ("SRN (retrained on Levin kernels)", 23.43, 0.712, 6.086),
    ("MPRNet", 26.21, 0.795, 3.050),
    ("Restormer", 27.78, 0.838, 2.633),
    ("Zhang, Quan, Ji (NeurIPS 2024)", 33.74, 0.938, 1.185),
]


def gray(path: Path) -> torch.Tensor:
    from PIL import Image

    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255)[None, None]


def evaluate(est: torch.Tensor, gt: torch.Tensor) -> tuple[float, float, float]:
    """(PSNR, SSIM, sum of squared errors) after Levin/SelfDeblur alignment."""
    from skimage.metrics import structural_similarity

    aligned, _ = align_to_reference(est[0].clamp(0, 1), gt[0], max_shift=MAX_SHIFT, step=STEP, crop=CROP)
    H, W = gt.shape[-2:]
    ref = gt[0, :, CROP:H - CROP, CROP:W - CROP].double()
    sse = float(((aligned - ref) ** 2).sum())
    psnr = -10 * np.log10(sse / ref.numel())
    ssim = structural_similarity(aligned[0].numpy(), ref[0].numpy(), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0)
    return psnr, float(ssim), sse


def load_networks(names: list[str], candidates: list[str] = ()) -> dict:
    """Shipped weight sets (``gdunet-tiny.motion``, ...) by name, and unshipped ones (``MODEL=FILE``, a training
    run's export), in eval mode."""
    from unblur.models import create

    nets = {n: create(n, pretrained=True).eval() for n in names}
    for c in candidates:
        name, _, path = c.partition("=")
        nets[f"{name}, candidate `{Path(path).name}`"] = create(name, weights=path).eval()
    return nets


def run_network(net, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A colour network on a grey capture: the grey channel three times in, the mean of the three out."""
    t = time.perf_counter()
    with torch.inference_mode():
        out = net(y.expand(-1, 3, -1, -1)).mean(1, keepdim=True)
    return out, time.perf_counter() - t


def run_captures(data: Path, limit: int | None, networks: dict | None = None) -> tuple[list[dict], float]:
    """Deblur the captures (image-major order, the first ``limit``); returns per-capture scores and the
    mean blind-l0 time in seconds. ``networks``: name -> model, scored on the same captures
    (``row["nets"][name] = (psnr, ssim, ratio, seconds)``)."""
    ssd_pub = np.loadtxt(data / "ssd_true_kernel.txt")
    rows = []
    t_blind = 0.0
    pairs = [(i, j) for i in range(1, 5) for j in range(1, 9)][:limit]
    for i, j in pairs:
        gt = gray(data / "sharp" / f"im{i}.png")
        y = gray(data / "blurred" / f"im{i}_ker{j}.png")
        k = torch.from_numpy(np.load(data / "kernels" / f"k{j}.npy")).float().flip(-2, -1)  # correlation -> convolution
        known = deblur(y, k, method="hqs-hl").image
        t = time.perf_counter()
        blind = deblur(y, method="blind-l0", kernel_size=31)
        t_blind += time.perf_counter() - t
        pk, sk, ek = evaluate(known, gt)
        pb, sb, eb = evaluate(blind.image, gt)
        rows.append(dict(i=i, j=j, pk=pk, sk=sk, pb=pb, sb=sb, ratio=float(np.sqrt(eb / ek)),
                         levin=float(eb / ssd_pub[i - 1, j - 1]), pblur=evaluate(y, gt)[0], nets={}))
        r = rows[-1]
        for name, net in (networks or {}).items():
            out, secs = run_network(net, y)
            pn, sn, en = evaluate(out, gt)
            r["nets"][name] = (pn, sn, float(np.sqrt(en / ek)), secs)
            print(f"im{i} ker{j}: {name} {pn:.2f}/{sn:.3f} ratio {r['nets'][name][2]:.2f}", file=sys.stderr)
        print(f"im{i} ker{j}: blurred {r['pblur']:.2f}  known {pk:.2f}/{sk:.3f}  blind {pb:.2f}/{sb:.3f}  "
              f"ratio {r['ratio']:.2f}  levin-ratio {r['levin']:.2f}", file=sys.stderr, flush=True)
    return rows, t_blind / max(len(rows), 1)


def run_baseline(src: Path, args) -> tuple[list[dict], float]:
    """The same captures with the ``unblur`` of another checkout (``src`` = its ``src/`` folder), in a
    subprocess, so that before/after numbers come from one script on one machine."""
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--data", str(args.data), "--threads", str(args.threads),
           "--json"] + (["--limit", str(args.limit)] if args.limit else [])
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["rows"], res["seconds"]


def summary_row(label: str, rows: list[dict], seconds: float) -> str:
    return _row(label, [r["pb"] for r in rows], [r["sb"] for r in rows], [r["ratio"] for r in rows], seconds)


def _row(label: str, psnrs, ssims, ratios, seconds: float) -> str:
    ratio = np.array(ratios)
    return (f"| {label} | {np.mean(psnrs):.2f} | {np.mean(ssims):.3f} | "
            f"{ratio.mean():.3f} | {(ratio <= 2).mean() * 100:.0f}% / {(ratio <= 3).mean() * 100:.0f}% | {seconds:.2f} |")


def network_rows(rows: list[dict]) -> list[str]:
    names = list(rows[0]["nets"]) if rows else []
    return [_row(f"{n} (network, grey in as RGB)", *([r["nets"][n][i] for r in rows] for i in range(3)),
                 float(np.mean([r["nets"][n][3] for r in rows]))) for n in names]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "levin")
    ap.add_argument("--limit", type=int, default=None, help="first N captures only (image-major order)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="src/ folder of an older checkout: its blind-l0 is run on the same captures for comparison")
    ap.add_argument("--baseline-label", default="baseline", help="name of the baseline row (e.g. a commit)")
    ap.add_argument("--networks", nargs="*", default=[], metavar="MODEL.TAG",
                    help="shipped networks to score on the same captures (e.g. gdunet-tiny.motion)")
    ap.add_argument("--candidate", nargs="*", default=[], metavar="MODEL=FILE",
                    help="unshipped weights to score too (e.g. deeprftv2-tiny=runs/x.safetensors)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # used by --baseline-src
    ap.add_argument("--out", type=Path, default=HERE / "levin.md")
    args = ap.parse_args(argv)
    if not (args.data / "blurred").is_dir():
        print(f"no Levin data in {args.data}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    if args.json:
        rows, seconds = run_captures(args.data, args.limit)
        print(json.dumps({"rows": rows, "seconds": seconds}))
        return 0
    base = run_baseline(args.baseline_src, args) if args.baseline_src else None
    rows, t_blind = run_captures(args.data, args.limit, load_networks(args.networks, args.candidate))
    n = len(rows)
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    levin = np.array([r["levin"] for r in rows])
    ours = [
        "| method | PSNR | SSIM | error ratio | success (<=2 / <=3) | s / capture |",
        "|---|---|---|---|---|---|",
        f"| blurred input (ours, same protocol) | {mean('pblur'):.2f} | - | - | - | - |",
        f"| unblur hqs-hl with the true kernel | {mean('pk'):.2f} | {mean('sk'):.3f} | 1.000 | - | - |",
    ]
    if base is not None:
        ours.append(summary_row(f"blind-l0 at {args.baseline_label} (kernel_size 31)", *base))
    ours += [
        summary_row("**unblur blind-l0** (kernel_size 31)", rows, t_blind),
        f"| blind-l0, Levin's ratio (squared errors / published true-kernel SSD) | - | - | {levin.mean():.3f} | "
        f"{(levin <= 2).mean() * 100:.0f}% / {(levin <= 3).mean() * 100:.0f}% | - |",
    ] + network_rows(rows)
    extra = f" {args.baseline_label} PSNR | {args.baseline_label} ratio |" if base else ""
    per_kernel = ["| kernel | size | blurred PSNR | known-kernel PSNR | blind PSNR | blind SSIM | error ratio |" + extra,
                  "|---|---|---|---|---|---|---|" + ("---|---|" if base else "")]
    for j in sorted({r["j"] for r in rows}):
        rj = [r for r in rows if r["j"] == j]
        size = np.load(args.data / "kernels" / f"k{j}.npy").shape
        line = (f"| k{j} | {size[0]}x{size[1]} | {np.mean([r['pblur'] for r in rj]):.2f} | {np.mean([r['pk'] for r in rj]):.2f} | "
                f"{np.mean([r['pb'] for r in rj]):.2f} | {np.mean([r['sb'] for r in rj]):.3f} | {np.mean([r['ratio'] for r in rj]):.2f} |")
        if base:
            bj = [r for r in base[0] if r["j"] == j]
            line += f" {np.mean([r['pb'] for r in bj]):.2f} | {np.mean([r['ratio'] for r in bj]):.2f} |"
        per_kernel.append(line)
    pub = ["| published method | PSNR | SSIM | error ratio |", "|---|---|---|---|"]
    pub += [f"| {m} | {p:.2f} | {s:.3f} | {e:.3f} |" for m, p, s, e in PUBLISHED]
    md = ("\n".join(ours) + "\n\nPer kernel (mean over the images):\n\n" + "\n".join(per_kernel)
          + "\n\nPublished (SelfDeblur protocol, mean over the 32 captures):\n\n" + "\n".join(pub))
    print(md)
    header = (
        "# blind-l0 and networks on the Levin et al. 2009 real captures\n\n"
        f"Generated by `benchmarks/levin.py` on {_dt.date.today().isoformat()}; machine: {cpu_model()}, "
        f"{args.threads} torch thread(s), torch {torch.__version__}; {n} of 32 captures; blind-l0 "
        f"{t_blind:.2f} s per 255x255 capture"
        + (f" ({base[1] / t_blind:.1f}x faster than {args.baseline_label}, {base[1]:.2f} s, run just before it by "
           f"the same script with `--baseline-src`)" if base else "") + ".\n\n"
        "Protocol: crop 15 px, best sub-pixel shift (0.25 px steps, up to 10 px), PSNR on [0, 1], SSIM "
        "(scikit-image, Gaussian sigma 1.5, no sample covariance), error ratio = ratio of error norms "
        "(blind / our hqs-hl with the true kernel, SelfDeblur variant); Levin's ratio = ratio of squared "
        "errors against the published true-kernel SSD. Kernels are rotated by 180 degrees for our "
        "convolution convention. No parameter was tuned on this data.\n\n"
    )
    args.out.write_text(header + md + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
