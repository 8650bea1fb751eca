"""FDIKP's blur radius on uniform disks: does it find the disk, and how much does the choice cost?

The pairs of ``benchmarks/defocus.py``'s ``kodak-uniform`` (and ``kodak-lens``: another generator's PSF, a hard
disk blurred by a Gaussian) set: Kodak24 centre crops, one disk of radius uniform in [2, 7] px, ``valid`` blur,
noise sigma 0.01, 8-bit. Per photo: the true radius; the median and the 10th/90th percentiles of the network's
radius map; PSNR of the input, of the network's own inverse-disk bank read at the *true* radius
(``DiskWienerBank`` + ``hat_weights``) and of its full-scale deconvolution at the true radius (``DiskHQS``): what a
perfect radius choice would give before refinement; and of the network's output.

    python benchmarks/defocus_radius.py [--model fdikp-tiny.defocus] [--limit N] [--sets kodak-uniform kodak-lens]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.metrics import psnr
from unblur.models import create
from unblur.models.fdikp import hat_weights

from _common import emit, photos_in, run_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from defocus import lens_pairs, uniform_pairs  # noqa: E402
from motion_kodak24 import quantise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
    ap.add_argument("--model", default="fdikp-tiny.defocus")
    ap.add_argument("--sets", nargs="+", default=["kodak-uniform", "kodak-lens"], choices=["kodak-uniform", "kodak-lens"])
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"data folder {args.data} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    net = create(args.model, pretrained=True)
    paths = photos_in(args.data, args.limit)
    lines = ["# FDIKP's blur radius on uniform disks", "", run_line(),
             f"- model `{args.model}`; the `kodak-uniform` / `kodak-lens` pairs of `benchmarks/defocus.py` "
             f"({args.crop} px centre crops, noise 0.01, 8-bit); radius map statistics over the whole crop",
             "- `bank at true r`: the network's one-shot inverse-disk bank read at the true radius; `HQS at true r`: "
             "its full-scale deconvolution (`DiskHQS`, learned hyper-Laplacian HQS steps) at the true radius. "
             "Both are what a perfect radius choice would give before refinement; the network never sees the "
             "true radius", ""]
    for name in args.sets:
        pairs = (uniform_pairs if name == "kodak-uniform" else lens_pairs)(paths, args.crop)
        rows, sums = [], torch.zeros(7)
        for pr in pairs:
            y, x = pr["blurred"], pr["sharp"]
            with torch.inference_mode():
                out = net.forward_train(y)
                bank = net.bank(y)
                true_r = torch.full_like(out["radius_map"], pr["radius"])
                at_true = (hat_weights(true_r, net.bank.radii)[:, :, None] * bank).sum(1)
                hqs_true = net.deconv(y, true_r)
            rmap = out["radius_map"].flatten()
            q = torch.quantile(rmap, torch.tensor([0.1, 0.5, 0.9]))
            vals = torch.tensor([pr["radius"], float(q[1]), psnr(y, x).item(),
                                 psnr(quantise(at_true.clamp(0, 1)), x).item(),
                                 psnr(quantise(out["outputs"][-1][0].clamp(0, 1)), x).item(),
                                 float((rmap - pr["radius"]).abs().mean()),
                                 psnr(quantise(hqs_true.clamp(0, 1)), x).item()])
            sums += vals
            rows.append(f"| {pr['name']} | {vals[0]:.2f} | {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f}) | {vals[5]:.2f} | "
                        f"{vals[2]:.2f} | {vals[3]:.2f} | {vals[6]:.2f} | {vals[4]:.2f} |")
            print(rows[-1], file=sys.stderr)
        m = sums / len(pairs)
        lines += [f"## {name}", "",
                  "| photo | true radius px | map median (10th-90th percentile) | map mean abs error px | "
                  "input dB | bank at true r dB | HQS at true r dB | network dB |",
                  "|---|---|---|---|---|---|---|---|"] + rows + [
                  f"| **mean** | {m[0]:.2f} | {m[1]:.2f} | {m[5]:.2f} | {m[2]:.2f} | {m[3]:.2f} | {m[6]:.2f} | "
                  f"{m[4]:.2f} |", ""]
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
