"""onnxruntime (CPU) against PyTorch (CPU) for the networks that export to ONNX.

Each network is exported with ``unblur.inference.onnx.export_onnx`` (into a temporary folder) and run on the same
random ``--size`` photo (default 1280x720) by both, with ``--threads`` threads each: seconds per photo (the best of
``--repeat`` runs after one warm-up), and the largest difference between the two outputs. Networks with free sizes
(nafnet, fdikp): both run the network's core on the whole photo (global channel statistics, as the exported graph;
``restore`` itself tiles large photos). Networks exported as fixed 384 px graphs (deeprftv2, gdunet, upadnet): both
run through ``unblur.restore`` in the same 384 px tiles.

    python benchmarks/onnx_speed.py [--models nafnet-tiny.motion fdikp-tiny.defocus] [--size 1280x720]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from unblur.errors import InputError
from unblur.inference.onnx import OnnxNet, _Core, export_onnx
from unblur.inference.restore import restore
from unblur.models import create, list_models
from unblur.models.base import pad_to_multiple

from _common import emit, run_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from motion_kodak24 import merge_rows  # noqa: E402


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up (first-call allocations, onnxruntime's graph optimisation)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shipped = list_models(pretrained=True)
    ap.add_argument("--models", nargs="+", default=shipped)
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the test photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    ap.add_argument("--update", action="store_true", help="keep the rows of --out for networks not run this time")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    W, H = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            net = create(name, pretrained=True).eval()
            core = _Core(net).eval()
            xp, _ = pad_to_multiple(x, int(net.size_multiple))
            try:
                t0 = time.perf_counter()
                path = export_onnx(net, Path(tmp) / f"{name}.onnx")
                export_s = time.perf_counter() - t0
            except InputError as err:
                rows.append(f"| {name} | - | - | - | - | {err} |")
                continue
            ort = OnnxNet(path, threads=args.threads)
            if ort.tile:  # a fixed-size graph: both through restore, in the same tiles
                run_torch = lambda: restore(x, model=net, tile=ort.tile, estimate_kernel=False).image  # noqa: E731
                run_ort = lambda: restore(x, model=ort, estimate_kernel=False).image  # noqa: E731
                how = f"fixed {ort.tile} px graph, both in {ort.tile} px tiles"
            else:
                run_torch, run_ort, how = (lambda: core(xp)), (lambda: ort(xp)), "whole photo"
            with torch.inference_mode():
                t_torch = best_of(run_torch, args.repeat)
                ref = run_torch()
            t_ort = best_of(run_ort, args.repeat)
            diff = float((run_ort() - ref).abs().max())
            rows.append(f"| {name} | {t_torch:.2f} | {t_ort:.2f} | {t_torch / t_ort:.2f}x | {diff:.1e} | "
                        f"{how}; exported in {export_s:.0f} s |")
            print(rows[-1], file=sys.stderr)
    if args.update and Path(args.out).is_file():  # the table's header is not a row to keep
        old = Path(args.out).read_text().splitlines()
        rows = merge_rows("\n".join(ln for ln in old if not ln.startswith("| network |")), rows)
    lines = [
        "# onnxruntime vs PyTorch on the CPU",
        "",
        run_line() + f"; onnxruntime {__import__('onnxruntime').__version__}",
        f"- one random {W}x{H} photo (padded to the network's multiple), {args.threads} threads each, "
        f"best of {args.repeat} runs after a warm-up",
        "- a network's row is rewritten when it is run (`--update` keeps the others)",
        "",
        "| network | PyTorch s / photo | onnxruntime s / photo | speed-up | max abs difference | note |",
        "|---|---|---|---|---|---|",
    ] + rows
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
