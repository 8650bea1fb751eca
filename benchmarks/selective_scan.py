"""Chunked pure-PyTorch selective scan vs the sequential reference: accuracy and time.

Claim checked: ``unblur.models.selective_scan.selective_scan`` (chunked, no Python loop over positions) gives the
same outputs and gradients as the one-step-per-position loop ``selective_scan_reference`` (max abs difference
<= 1e-4 in float32) and is much faster; and which chunk size is fastest (the decay matrices are per state for
Mamba-1's diagonal A, so the intra-chunk work grows with the chunk).

For each sequence length L: random inputs (batch ``--batch``, ``--channels`` channels, ``--state`` states, delta
through softplus, D and z given), float32; the outputs and the gradients of all inputs (for a fixed random
cotangent) of both implementations are compared, and the median time of forward and forward+backward is taken.
The sequential reference is timed only up to ``--ref-max-len`` (beyond, its error column is computed against a
float64 run of the chunked scan with chunk 2). With ``--device cuda`` and ``mamba_ssm`` installed, its fused
kernel is timed as well.

Usage::

    python benchmarks/selective_scan.py                       # CPU, writes selective_scan.md
    python benchmarks/selective_scan.py --device cuda --out benchmarks/selective_scan_cuda.md
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from unblur.models.selective_scan import mamba_kernel_available, selective_scan, selective_scan_reference
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent


def make_inputs(b, d, n, L, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = dict(
        u=torch.randn(b, d, L, generator=g),
        delta=torch.randn(b, d, L, generator=g) * 0.5 - 1.0,
        A=-torch.exp(torch.randn(d, n, generator=g) * 0.5) * torch.arange(1, n + 1),
        B=torch.randn(b, n, L, generator=g),
        C=torch.randn(b, n, L, generator=g),
        D=torch.randn(d, generator=g),
        z=torch.randn(b, d, L, generator=g),
    )
    return {k: v.to(device=device, dtype=dtype) for k, v in t.items()}


def run(fn, inputs, cot, backward: bool, **kw):
    t = {k: v.detach().clone().requires_grad_(backward) for k, v in inputs.items()}
    y = fn(**t, delta_softplus=True, **kw)
    grads = None
    if backward:
        (y * cot).sum().backward()
        grads = {k: v.grad for k, v in t.items()}
    return y.detach(), grads


def timed(fn, inputs, cot, backward, device, reps, **kw) -> float:
    times = []
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        run(fn, inputs, cot, backward, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])  # first call is a warm-up


def max_err(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def fmt_ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    ap.add_argument("--chunks", type=int, nargs="+", default=[2, 4, 8, 16, 64])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--state", type=int, default=8)
    ap.add_argument("--ref-max-len", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "selective_scan.md")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device available")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    b, d, n = args.batch, args.channels, args.state
    use_mamba = device.type == "cuda" and mamba_kernel_available()

    header = ["L", "chunk", "max abs err y", "max abs err grads", "max rel err grads", "chunked fwd ms", "chunked fwd+bwd ms",
              "sequential fwd ms", "sequential fwd+bwd ms", "speed-up fwd+bwd"]
    if use_mamba:
        header += ["mamba_ssm fwd+bwd ms"]
    rows = []
    for L in args.lengths:
        inputs = make_inputs(b, d, n, L, device)
        cot = torch.randn(b, d, L, generator=torch.Generator().manual_seed(1)).to(device)
        have_ref = L <= args.ref_max_len
        if have_ref:
            ref_y, ref_g = run(selective_scan_reference, inputs, cot, True)
            t_ref_f = timed(selective_scan_reference, inputs, cot, False, device, max(1, args.reps // 2))
            t_ref_b = timed(selective_scan_reference, inputs, cot, True, device, max(1, args.reps // 2))
        else:  # float64 chunked scan as the reference
            i64 = {k: v.double() for k, v in inputs.items()}
            ref_y, ref_g = run(selective_scan, i64, cot.double(), True, chunk_size=2, use_cuda_kernel=False)
            t_ref_f = t_ref_b = None
        t_mamba = None
        if use_mamba:
            t_mamba = timed(selective_scan, inputs, cot, True, device, args.reps, use_cuda_kernel=True)
        for T in args.chunks:
            y, g = run(selective_scan, inputs, cot, True, chunk_size=T, use_cuda_kernel=False)
            e_y = max_err(y, ref_y)
            e_g = max(max_err(g[k], ref_g[k]) for k in g)
            r_g = max(max_err(g[k], ref_g[k]) / float(ref_g[k].abs().max()) for k in g)
            t_f = timed(selective_scan, inputs, cot, False, device, args.reps, chunk_size=T, use_cuda_kernel=False)
            t_b = timed(selective_scan, inputs, cot, True, device, args.reps, chunk_size=T, use_cuda_kernel=False)
            row = [str(L), str(T), f"{e_y:.1e}", f"{e_g:.1e}", f"{r_g:.1e}", fmt_ms(t_f), fmt_ms(t_b), fmt_ms(t_ref_f),
                   fmt_ms(t_ref_b), "-" if t_ref_b is None else f"{t_ref_b / t_b:.0f}x"]
            if use_mamba:
                row.append(fmt_ms(t_mamba))
            rows.append(row)
            print(" | ".join(row), file=sys.stderr, flush=True)

    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}); mamba_ssm kernel: {use_mamba}"
    else:
        machine = f"CPU {cpu_model()}, {args.threads} thread(s)"
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    doc = f"""# Selective scan: chunked (pure PyTorch) vs sequential reference

Output of `{" ".join(["python", "benchmarks/" + Path(__file__).name, cmd]).strip()}`.

- Date: {_dt.date.today().isoformat()}
- Machine: {machine}; torch {torch.__version__}, Python {platform.python_version()}
- Sizes: batch {b}, D = {d} channels, N = {n} states, lengths {', '.join(map(str, args.lengths))}; float32;
  delta through softplus, D and z given; A = -exp(N(0, 0.25)) * (1..N)
- Errors: max abs difference of the outputs and of the gradients of all inputs (u, delta, A, B, C, D, z) against
  the sequential loop in float32 (for L > {args.ref_max_len}: against the chunked scan in float64 with chunk 2).
  Relative: divided by the largest magnitude of that input's reference gradient (the gradients of A and D sum
  over all positions, so their absolute error grows with L, for the reference loop as well)
- Times: median of {args.reps} runs after a warm-up; load average (1 min) at start {load:.2f} (shared machine:
  CPU timings are noisy)

{table}
"""
    args.out.write_text(doc)
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
