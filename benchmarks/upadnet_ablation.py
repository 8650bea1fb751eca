"""UPADNet's claim, tested: amplitude/phase LMMSE data steps against the image-domain twin (the same unrolled
network whose data step is the complex LMMSE, i.e. the core's closed-form image step), at three noise levels and
with two amounts of training data; the other blind methods at the same noise levels alongside.

Test pairs: Kodak24 with `benchmarks/motion_kodak24.py`'s seeded motion kernels (31 px, `valid` blur, 8-bit), at
Gaussian noise sigma 0.01, 0.03 and 0.05. Each ``--model LABEL MODEL WEIGHTS`` and each ``--classical METHOD`` is
scored (PSNR, PSNR up to a shift within 4 px, SSIM, kernel PSNR within 4 px); the runs behind the committed table are
`benchmarks/upadnet_ablation_train.sh`.

    python benchmarks/upadnet_ablation.py --model "UPADNet, all" upadnet-tiny runs/abl-ap-all.safetensors \\
        --model "image twin, all" upadnet-tiny:decomposition=image runs/abl-im-all.safetensors \\
        --model gdunet-tiny.motion gdunet-tiny.motion - --classical blind-l0 [--limit N]

``MODEL`` may carry constructor arguments after colons (``upadnet-tiny:decomposition=image``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.metrics import kernel_psnr, psnr, psnr_up_to_shift, ssim
from unblur.models import create

from _common import emit, run_line, photos_in  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import KERNEL_SIZE, SEED, classical, degrade, merge_rows, network, quantise  # noqa: E402

SIGMAS = (0.01, 0.03, 0.05)

def build(model: str, weights: str) -> torch.nn.Module:
    """``MODEL[:key=value...]`` with ``WEIGHTS`` (a safetensors file, or ``-``: a shipped weight set's own
    weights for ``name.tag``, else the freshly built model)."""
    name, *kv = model.split(":")
    args = {k: _value(v) for k, v in (a.split("=", 1) for a in kv)}
    if weights == "-":
        return create(name, pretrained="." in name, **args).eval()
    return create(name, weights=weights, **args).eval()

def _built(name: str, weights: str):
    model = build(name, weights)
    return f"{sum(p.numel() for p in model.parameters()):,}", network(model)


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/test/Kodak24")
    ap.add_argument("--model", action="append", nargs=3, default=[], metavar=("LABEL", "MODEL", "WEIGHTS"),
                    help="a row: its label, MODEL[:key=value...] and a weights file (-: shipped or as built)")
    ap.add_argument("--classical", action="append", default=[], metavar="METHOD",
                    help="a row for a classical blind method (unblur.classical), e.g. blind-l0")
    ap.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the markdown table here (default: print only)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of --out that this run does not score (same label: replaced; new: appended)")
    args = ap.parse_args(argv)
    if args.update and (args.limit or not args.out or args.sigmas != list(SIGMAS)):
        ap.error("--update merges with a full run's table in --out; it needs --out, no --limit and the default sigmas")
    if not args.model and not args.classical:
        ap.error("give at least one --model or --classical row")
    paths = photos_in(args.data, args.limit)
    if paths is None:
        return 0
    torch.set_num_threads(args.threads)
    sets = {s: degrade(paths, "cpu", noise=s) for s in args.sigmas}
    rows = [("blurred input", "-", {s: (sum(psnr(p["blurred"], p["sharp"]).item() for p in ps) / len(ps),
                                         sum(psnr_up_to_shift(p["blurred"], p["sharp"], 4).item() for p in ps) / len(ps),
                                         sum(ssim(p["blurred"], p["sharp"]).item() for p in ps) / len(ps), None)
                                     for s, ps in sets.items()})]
    entries = [(label, *_built(name, weights)) for label, name, weights in args.model]
    entries += [(f"{m} (classical)", "-", classical(m, known=False)) for m in args.classical]
    for label, params, run in entries:
        scores = {}
        for s, pairs in sets.items():
            ps, pshift, ss, kp = [], [], [], []
            for pr in pairs:
                out, k = run(pr)
                out = quantise(out)
                ps.append(psnr(out, pr["sharp"]).item())
                pshift.append(psnr_up_to_shift(out, pr["sharp"], 4).item())
                ss.append(ssim(out, pr["sharp"]).item())
                if k is not None:
                    kp.append(kernel_psnr(k, pr["kernel"], max_shift=4))
            n = len(pairs)
            scores[s] = (sum(ps) / n, sum(pshift) / n, sum(ss) / n, sum(kp) / n if kp else None)
            print(f"{label} sigma {s}: {scores[s][0]:.2f} dB", file=sys.stderr)
        rows.append((label, params, scores))
    cols = " | ".join(f"sigma {s}: PSNR / PSNR up to shift / SSIM / kernel PSNR" for s in args.sigmas)
    table = [f"| model | parameters | {cols} |", "|---|---|" + "---|" * len(args.sigmas)]
    for label, params, scores in rows:
        cells = " | ".join(f"{p:.2f} / {a:.2f} / {q:.4f} / {'-' if k is None else f'{k:.2f}'}"
                           for p, a, q, k in scores.values())
        table.append(f"| {label} | {params} | {cells} |")
    if args.update and Path(args.out).is_file():
        table = table[:2] + merge_rows(Path(args.out).read_text(), table[2:])
    h, w = next(iter(sets.values()))[0]["blurred"].shape[-2:]
    lines = [
        "# UPADNet ablation: amplitude/phase vs image-domain data steps",
        "",
        run_line(),
        f"- {len(paths)} Kodak24 images, blurred size {h}x{w}, motion kernels {KERNEL_SIZE}x{KERNEL_SIZE} seeded "
        f"from {SEED} (as benchmarks/motion_kodak24.py), Gaussian noise at each sigma, 8-bit input and output",
        "- PSNR up to shift: the best over integer shifts of the result within 4 px (a blind estimate is defined up "
        "to a translation; the field's comparisons allow a small shift); kernel PSNR: final stage kernel against the "
        "true one, best integer shift within 4 px",
        "- the runs behind each row: benchmarks/upadnet_ablation_train.sh (the two decompositions fitted the same way "
        "from the same start, on the same pairs; only the data step and the training photos differ)",
        "- `--update` runs rescore only their own rows (and the blurred input); the other rows come from earlier "
        "runs of this script on the same pairs (the git history of this file says when)",
        "",
    ] + table
    emit(lines, args.out)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
