"""GDUNet stage by stage on the Kodak24 motion set: PSNR of every stage's image and kernel PSNR of every stage's
kernel (what each unrolled stage adds), the protocol of ``motion_kodak24.py`` (same seeded blur, 8-bit in and out);
and on Levin's real captures (``--levin``, the protocol of ``levin.py``: grey in as RGB, sub-pixel alignment,
15 px crop), each stage's PSNR per recorded kernel next to ``blind-l0``'s.

    python benchmarks/gdunet_stages.py [--data ../shared/data/test/Kodak24] [--levin ../shared/data/levin]
                                       [--weights FILE --arg KEY=VALUE] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from unblur.io import expand_inputs
from unblur.metrics import kernel_psnr, psnr
from unblur.models import create
from unblur.physics import estimate_noise_sigma
from unblur.physics.l0_kernel import KERNEL_ERROR_SIGMA

from _common import cpu_model, emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import degrade, quantise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
    ap.add_argument("--levin", default="../shared/data/levin", help="Levin's captures (skipped when absent)")
    ap.add_argument("--weights", default=None, help="a safetensors export (default: the shipped gdunet-tiny.motion)")
    ap.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                    help="model argument for --weights (e.g. edge_ratio=10), as in the training config's model.args")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"data folder {args.data} not found; nothing to do", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.arg)}
    net = (create("gdunet-tiny", weights=args.weights, **overrides) if args.weights
           else create("gdunet-tiny.motion", pretrained=True, **overrides))
    paths, _ = expand_inputs([args.data])
    images, kernels, steps = [], [], []
    for pr in degrade(paths, "cpu"):
        y = pr["blurred"]
        with torch.inference_mode():
            out = net.forward_train(y)
            if net.l0:  # each stage's HQS deconvolution before its proximal net (it depends on y and k_t only)
                sigma = estimate_noise_sigma(y.float()).clamp_min(KERNEL_ERROR_SIGMA)  # as GDUNet's forward
                steps.append([psnr(quantise(net._hqs_step(t, y, k, sigma)), pr["sharp"]).item()
                              for t, k in enumerate(out["kernels"])])
        images.append([psnr(quantise(img), pr["sharp"]).item() for img, _ in out["outputs"]])
        kernels.append([kernel_psnr(k, pr["kernel"], max_shift=4) for k in out["kernels"]])
    img, ker = np.mean(images, 0), np.mean(kernels, 0)
    hqs = np.mean(steps, 0) if steps else None
    if len(img) == len(ker):  # kernel_init "l0": stage 1 deconvolves with the L0 estimate, later ones refit
        rows = [f"| stage {t + 1}{' (L0 kernel estimate)' if t == 0 else ''} | {hqs[t]:.2f} | {img[t]:.2f} | "
                f"{ker[t]:.2f} |" for t in range(len(img))]
    else:  # the blind-start design: P_0's image first, then one kernel and image per stage
        rows = [f"| start (`P_0`) | - | {img[0]:.2f} | - |"]
        rows += [f"| stage {t} | - | {img[t]:.2f} | {ker[t - 1]:.2f} |" for t in range(1, len(img))]
    md = "\n".join([
        "# GDUNet stage by stage (Kodak24 motion, Levin's captures)",
        "",
        f"- latest run: {datetime.date.today()}; machine: {cpu_model()}, {args.threads} thread(s); weights: "
        f"{args.weights or 'gdunet-tiny.motion (shipped)'}{' ' + ' '.join(args.arg) if args.arg else ''}",
        f"- {len(images)} images, the seeded blur of `motion_kodak24.py`; mean PSNR of each stage's image (8-bit; "
        "for the L0 design also of its HQS deconvolution before the proximal net), mean kernel PSNR of each "
        "stage's kernel (best shift within 4 px)",
        "",
        "| output | PSNR of the image step, before the proximal net (dB) | PSNR (dB) | kernel PSNR (dB) |",
        "|---|---|---|---|",
        *rows,
    ]) + "\n"
    if Path(args.levin, "blurred").is_dir():
        md += "\n" + levin_section(net, Path(args.levin))
    emit(md.splitlines(), args.out)
    return 0


def levin_section(net, data: Path) -> str:
    """Each stage's PSNR on Levin's 32 captures, per recorded kernel (mean over the 4 images), and blind-l0's."""
    from unblur.classical import deblur
    from levin import evaluate, gray  # noqa: E402

    per_kernel: dict[int, list[list[float]]] = {}
    sizes = {}
    for i in range(1, 5):
        for j in range(1, 9):
            gt, y = gray(data / "sharp" / f"im{i}.png"), gray(data / "blurred" / f"im{i}_ker{j}.png")
            sizes[j] = np.load(data / "kernels" / f"k{j}.npy").shape
            with torch.inference_mode():
                out = net.forward_train(y.expand(-1, 3, -1, -1))
            row = [evaluate(deblur(y, method="blind-l0", kernel_size=31).image, gt)[0]]
            row += [evaluate(img.mean(1, keepdim=True), gt)[0] for img, _ in out["outputs"]]
            per_kernel.setdefault(j, []).append(row)
            print(f"levin im{i} ker{j}: " + " ".join(f"{v:.2f}" for v in row), file=sys.stderr, flush=True)
    stages = len(per_kernel[1][0]) - 1  # the blind-start design has one output more: its start P_0
    names = [f"stage {t + 1}" for t in range(net.stages)]
    names = names if stages == net.stages else ["start (`P_0`)"] + names
    lines = [
        "## Levin's real captures",
        "",
        "- 32 captures (4 images x 8 recorded kernels), the protocol of `levin.py` (grey in as RGB, the mean of the "
        "output channels scored after sub-pixel alignment, 15 px crop); PSNR (dB), mean over the 4 images of each "
        "kernel; nothing was trained or tuned on this data",
        "",
        "| kernel | size | blind-l0 | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * stages,
    ]
    for j in sorted(per_kernel):
        m = np.mean(per_kernel[j], 0)
        lines.append(f"| k{j} | {sizes[j][0]}x{sizes[j][1]} | " + " | ".join(f"{v:.2f}" for v in m) + " |")
    m = np.mean([r for rows in per_kernel.values() for r in rows], 0)
    lines.append("| **all 32** | | " + " | ".join(f"**{v:.2f}**" for v in m) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
