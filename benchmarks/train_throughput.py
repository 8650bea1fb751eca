"""Training throughput: images per second of one optimisation step (forward, the training loss on every output, backward,
AdamW) for each model, batch size and crop size, on random data (no data loading in the loop).

Small models are bound by the number of operations launched per step, not by arithmetic, so the table shows
how much a larger batch or crop buys before the device is saturated.

    python benchmarks/train_throughput.py --device cuda --models deeprftv2-tiny nafnet-tiny \
        --batch 16 64 --crop 128 192 [--chunk 4 16] [--reversible both] [--out benchmarks/train_throughput_cuda.md]
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import time
from pathlib import Path

import torch

from unblur.models import create
from unblur.training.losses import MultiScaleLoss

from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def ops_per_step(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Number of ATen operations dispatched by one training step (forward + backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        loss_of(model, x).backward()
    model.zero_grad(set_to_none=True)
    return Count.n


LOSS = MultiScaleLoss()  # the training loss: L1 + 0.01 FFT on every output, targets from the shared downscale


def loss_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return LOSS(model.forward_train(x)["outputs"], x)[0]


def measure(name, batch, crop, device, steps, warmup, amp, chunk, reversible):
    kw = {}
    if name.startswith("deeprftv2"):
        kw = {"reversible": reversible} | ({"scan_chunk": chunk} if chunk else {})
    torch.manual_seed(0)
    model = create(name, **kw).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, crop, crop, device=device)
    n_ops = ops_per_step(model, x[:1])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = loss_of(model, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = (time.perf_counter() - t0) / steps
    mem = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}" if device.type == "cuda" else "-"
    return dt, batch / dt, mem, n_ops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["deeprftv2-tiny", "nafnet-tiny"])
    p.add_argument("--batch", nargs="+", type=int, default=[16, 64])
    p.add_argument("--crop", nargs="+", type=int, default=[128, 192])
    p.add_argument("--chunk", nargs="+", type=int, default=[0], help="DeepRFTv2 scan chunk sizes (0: the default)")
    p.add_argument("--reversible", choices=["on", "off", "both"], default="on",
                   help="DeepRFTv2 columns: recompute activations in backward (on) or store them (off)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--amp", choices=["bf16", "fp16", "none"], default="bf16")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    device = torch.device(a.device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[a.amp]
    if device.type == "cpu":
        amp = None
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{cpu_model()}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f} at start")
    lines = [
        "# Training throughput",
        "",
        f"- date: {datetime.date.today()}; machine: {machine}; CPU {cpu_model()}; torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- one step = forward, the training loss (L1 + 0.01 FFT, every output), backward, AdamW; random data; autocast {a.amp if amp else 'off'}; "
        f"mean of {a.steps} steps after {a.warmup} warm-up",
        "- ops / step: ATen operations dispatched by one step at batch 1 (each is at least one kernel launch or "
        "a metadata op on the host)",
        "",
        "| model | reversible | scan chunk | batch | crop | ms / step | images / s | Mpixel / s | peak GiB | ops / step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for name in a.models:
        dv2 = name.startswith("deeprftv2")
        chunks = a.chunk if dv2 else [0]
        revs = ([True, False] if a.reversible == "both" else [a.reversible == "on"]) if dv2 else [None]
        for rev, chunk, crop, batch in itertools.product(revs, chunks, a.crop, a.batch):
            dt, ips, mem, n_ops = measure(name, batch, crop, device, a.steps, a.warmup, amp, chunk, rev)
            row = (
                f"| `{name}` | {'-' if rev is None else ('yes' if rev else 'no')} | {chunk or 'default'} | {batch} | "
                f"{crop} | {dt * 1e3:.0f} | {ips:.1f} | {ips * crop * crop / 1e6:.2f} | {mem} | {n_ops} |"
            )
            lines.append(row)
            print(row, flush=True)
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
