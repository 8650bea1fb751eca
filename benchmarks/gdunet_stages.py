"""GDUNet stage by stage on the Kodak24 motion set: PSNR of every stage's image and kernel PSNR of every stage's
kernel (what each unrolled stage adds), the protocol of ``motion_kodak24.py`` (same seeded blur, 8-bit in and out).

    python benchmarks/gdunet_stages.py [--data ../shared/data/test/Kodak24] [--weights FILE --arg KEY=VALUE]
                                       [--out FILE.md]
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

from _common import cpu_model, emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import degrade, quantise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
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
                sigma = estimate_noise_sigma(y.float()).clamp_min(1e-3)
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
        "# GDUNet stage by stage (Kodak24 motion)",
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
    emit(md.splitlines(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
