"""Training memory of DeepRFTv2 with reversible columns vs the same network storing its activations.

Claim checked: the RevCol-style reversible columns (``reversible=True``, activations recomputed in backward from
the column outputs) need much less training memory than ordinary autograd (``reversible=False``) and give the
same gradients (max abs difference of all parameter and input gradients <= 1e-4).

For each model size and variant (same weights, same input, training mode, one forward + backward of the sum of
the L1 losses of all outputs):

- **saved for backward**: bytes of the distinct tensor storages autograd keeps between forward and backward,
  counted with ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded). This is the activation memory
  held at the end of the forward pass, exact and independent of the allocator.
- **peak**: on CUDA, ``torch.cuda.max_memory_allocated`` during forward + backward minus the memory allocated
  before it (weights, input); on CPU, the growth of the peak resident set size (``VmHWM``, reset first) of a fresh
  subprocess that runs one forward + backward, with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB so that
  freed blocks leave the RSS (otherwise heap fragmentation dominates); includes transients, coarser than CUDA's.
- **time**: median wall time of forward + backward.
- **max abs grad diff**: largest absolute difference between the two variants over all parameter gradients and the
  input gradient.

Usage::

    python benchmarks/reversible_memory.py                    # CPU: tiny and small at 256x256, writes .md
    python benchmarks/reversible_memory.py --device cuda --models tiny small paper --size 512 \\
        --out benchmarks/reversible_memory_cuda.md
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import unblur.models as M
from unblur.models.base import downscale
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent


def build(size: str, reversible: bool, device) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = M.create(f"deeprftv2-{size}", reversible=reversible)
        with torch.no_grad():  # wake up the zero-initialised residual scales so that every path is exercised
            for p in model.parameters():
                if not p.any():
                    p.normal_(0.0, 0.1)
    return model.train().to(device)


def make_input(batch: int, size: int, device) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)


def loss_fn(model, x):
    """Sum of the L1 losses of all outputs against the input at their scale (values do not matter here)."""
    half = downscale(x, 0.5)
    return sum((img - (x if s == 1.0 else half)).abs().mean() for img, s in model.forward_train(x)["outputs"])


def saved_bytes(model, x) -> tuple[int, torch.Tensor]:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, x)
    return sum(storages.values()), loss


def grads(model, x):
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    loss_fn(model, x).backward()
    return [p.grad.detach().clone() for p in model.parameters()] + [x.grad.detach().clone()]


def step_time(model, x, device, reps: int) -> float:
    times = []
    for _ in range(reps + 1):
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss_fn(model, x).backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def cuda_peak(model, x, device) -> int:
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    loss_fn(model, x).backward()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def child(size: str, reversible: bool, batch: int, hw: int, threads: int) -> None:
    """Fresh process: growth of the peak resident set size (VmHWM) during one forward + backward."""
    torch.set_num_threads(threads)
    model = build(size, reversible, torch.device("cpu"))
    x = make_input(batch, hw, torch.device("cpu"))
    try:  # Linux >= 4.0: writing 5 to clear_refs resets the peak RSS to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS") * 1024
        loss_fn(model, x).backward()
        peak = _status_kib("VmHWM") * 1024
    except (OSError, KeyError):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        loss_fn(model, x).backward()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_growth": peak - before}))


def cpu_peak(size, reversible, batch, hw, threads) -> int:
    cmd = [sys.executable, __file__, "--_child", size, str(int(reversible)), str(batch), str(hw), str(threads)]
    # Large blocks through mmap (fixed threshold): freed memory leaves the RSS, so its peak follows live memory
    # instead of glibc's heap fragmentation.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_growth"]


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_child"]:
        size, rev, batch, hw, threads = argv[1:6]
        child(size, bool(int(rev)), int(batch), int(hw), int(threads))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["tiny", "small"], help="deeprftv2 sizes")
    ap.add_argument("--size", type=int, default=256, help="square input side")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "reversible_memory.md")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device available")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    header = ["model", "variant", "saved for backward (MiB)", "peak (MiB)", "fwd+bwd time (s)", "max abs grad diff"]
    rows = []
    for size in args.models:
        x = make_input(args.batch, args.size, device)
        results = {}
        for rev in (False, True):
            model = build(size, rev, device)
            sb, loss = saved_bytes(model, x)
            del loss
            peak = cuda_peak(model, x, device) if device.type == "cuda" else cpu_peak(
                size, rev, args.batch, args.size, args.threads)
            t = step_time(model, x, device, args.reps)
            g = grads(model, x)
            results[rev] = (sb, peak, t, g)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        diff = max(float((a - b).abs().max()) for a, b in zip(results[True][3], results[False][3]))
        for rev, name in ((False, "stored activations"), (True, "reversible columns")):
            sb, peak, t, _ = results[rev]
            rows.append([f"`deeprftv2-{size}`", name, mib(sb), mib(peak), f"{t:.2f}", f"{diff:.1e}" if rev else "-"])
        s0, p0 = results[False][0], results[False][1]
        s1, p1 = results[True][0], results[True][1]
        rows.append([f"`deeprftv2-{size}`", "**ratio reversible / stored**", f"{s1 / s0:.2f}", f"{p1 / max(p0, 1):.2f}",
                     f"{results[True][2] / results[False][2]:.2f}", ""])
        print("\n".join(" | ".join(r) for r in rows[-3:]), file=sys.stderr, flush=True)

    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
        peak_txt = "`torch.cuda.max_memory_allocated` growth during forward + backward"
    else:
        machine = f"CPU {cpu_model()}, {args.threads} thread(s)"
        peak_txt = (
            "growth of the peak RSS (`VmHWM`, reset before the step) of a fresh process during one forward + backward,"
            " glibc `MALLOC_MMAP_THRESHOLD_=131072` so that freed blocks leave the RSS (includes transients; coarser)"
        )
    cmd = " ".join(argv)
    doc = f"""# DeepRFTv2: reversible columns vs stored activations (training memory)

Output of `{" ".join(["python", "benchmarks/" + Path(__file__).name, cmd]).strip()}`.

- Date: {_dt.date.today().isoformat()}
- Machine: {machine}; torch {torch.__version__}, Python {platform.python_version()}
- Input: batch {args.batch}, 3 x {args.size} x {args.size}, float32, training mode, loss = sum of L1 losses of all
  8 outputs; same weights for both variants (zero-initialised scales set to N(0, 0.1) so every path is active)
- Saved for backward: distinct storages held by autograd after the forward pass (parameters excluded)
- Peak: {peak_txt}
- Time: median of {args.reps} forward + backward runs after a warm-up; load average (1 min) at start {load:.2f}
- max abs grad diff: over all parameter gradients and the input gradient, reversible vs stored

{table}
"""
    args.out.write_text(doc)
    print(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
