"""The CPU path of a network: seconds per 720p photo, the profile's top entries, and the command-line start.

For each ``--models`` entry, on one random ``--size`` photo (default 1280x720) with ``--threads`` threads, through
``unblur.restore`` (whole photo, as the command line does on a machine with the memory for it):

* ``eager, NCHW``: the plain PyTorch path (what restore did before the channels-last path);
* ``eager, channels-last``: model and photo in channels-last memory format (restore's CPU path for networks
  that set ``cpu_channels_last``);
* the same after :func:`unblur.inference.cpu.reuse_freed_memory` (glibc keeps freed blocks for reuse: what the
  command line does on CPUs);
* ``torch.compile`` (for the networks named by ``--compile``): inductor on the CPU, the first call (compiling)
  reported separately;

each with the largest difference to the NCHW output (the target: 1e-4) and the best of ``--repeat`` runs after a
warm-up. Then the top ``--top`` operators of PyTorch's profiler (self CPU time) before and after, and (measured
first) the wall time of ``unblur restore`` on a 720p PNG in a fresh process (start-up, imports, model loading, the
photo, writing) with glibc's defaults and as shipped (with its peak resident memory), and of
``python -c "import torch"`` and ``import unblur``; ``--baseline-src DIR`` runs the command lines once more with an older source tree first on
``PYTHONPATH`` (e.g. a ``git worktree`` of an earlier commit).

    python benchmarks/cpu_path.py [--models deeprftv2-tiny.motion nafnet-tiny.motion] [--compile deeprftv2-tiny.motion]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from unblur.inference.cpu import reuse_freed_memory
from unblur.inference.restore import restore
from unblur.io import write_image
from unblur.models import create

from _common import emit, run_line  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def best_of(fn, repeat: int):
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def profile_rows(fn, top: int) -> list[str]:
    with torch.profiler.profile() as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [f"| `{e.key}` | {e.count} | {e.self_cpu_time_total / 1e3:.0f} | {100 * e.self_cpu_time_total / total:.1f} |"
            for e in events[:top]]


def wall(cmd: list[str], threads: int, extra: dict | None = None) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (GB) of ``cmd`` in a fresh process.

    Linux keeps a process's peak across ``exec``, so the child's figure is at least this process's own resident size
    when it forked (about 0.25 GB here, with torch imported): exact for the networks' runs (0.8 GB and more), a floor
    for anything smaller."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(extra or {})}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full pipe
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak RSS in KB
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                               f"{err.read().decode(errors='replace').strip()[-500:]}")
    return seconds, usage.ru_maxrss / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["deeprftv2-tiny.motion"])
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the test photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--compile", nargs="*", default=[], metavar="NAME",
                    help="also time torch.compile for these networks (minutes of compiling each; run last, since "
                         "its worker processes stay alive); without it, the compile rows of --out are kept")
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="also run the command lines with this source tree first on PYTHONPATH (an older checkout)")
    ap.add_argument("--baseline-label", default="baseline", help="name of the baseline columns (e.g. a commit)")
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    W, H = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    lines = ["# The CPU path: seconds per photo", "", run_line(),
             f"- one random {W}x{H} photo through `unblur.restore` (whole photo, no tiles), {args.threads} threads, "
             f"float32, best of {args.repeat} runs after a warm-up; max diff: largest absolute difference to the "
             "NCHW output (images in [0, 1]); `reuse freed memory`: `unblur.inference.cpu.reuse_freed_memory()` "
             "(glibc keeps freed blocks instead of unmapping them; what `unblur restore` and `unblur serve` do on "
             "CPUs)", ""]

    # Fresh processes first: nothing of this process's settings leaks into them.
    base = args.baseline_label
    extra = f" {base}: s | {base}: peak memory GB |" if args.baseline_src else ""
    start = ["## From the command line (fresh process each)", "",
             "| command | glibc defaults (`UNBLUR_SYSTEM_MALLOC=1`) s | as shipped s | as shipped: peak memory GB |"
             + extra,
             "|---|---|---|---|" + ("---|---|" if args.baseline_src else "")]
    exe = [sys.executable, "-m", "unblur"]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        write_image(photo, x[0])
        imports = [("python -c \"import torch\"", [sys.executable, "-c", "import torch"]),
                   ("python -c \"import unblur\"", [sys.executable, "-c", "import unblur"])]
        for label, cmd in imports:
            blank = " | |" if args.baseline_src else ""
            start.append(f"| `{label}` | {wall(cmd, args.threads)[0]:.2f} | | |" + blank)
        for name in args.models:
            cmd = exe + ["restore", str(photo), "-o", str(Path(tmp) / "out"), "--model", name, "--overwrite",
                         "--quiet", "--tile", "none"]
            before, _ = wall(cmd, args.threads, {"UNBLUR_SYSTEM_MALLOC": "1"})
            shipped, peak = wall(cmd, args.threads)
            row = (f"| `unblur restore photo.png --model {name} --tile none` ({W}x{H}) | {before:.2f} | {shipped:.2f} | "
                   f"{peak:.2f} |")
            if args.baseline_src:  # the same command with the older source tree imported first
                old_path = os.pathsep.join([str(args.baseline_src.resolve()), os.environ.get("PYTHONPATH", "")])
                b_s, b_peak = wall(cmd, args.threads, {"PYTHONPATH": old_path})
                row += f" {b_s:.2f} | {b_peak:.2f} |"
            start.append(row)

    speed = ["## In one process", "", "| network | path | s / photo | max diff | note |", "|---|---|---|---|---|"]
    profiles, results = [], {}

    def run(name, memory_format):
        net = create(name, pretrained=True).eval()
        if memory_format == "nchw":
            net.cpu_channels_last = False  # the instance attribute wins over the class's choice
        else:
            net = net.to(memory_format=torch.channels_last)
            net.cpu_channels_last = True
        return lambda: restore(x, model=net, tile=None, estimate_kernel=False).image

    for name in args.models:
        base_s, base = best_of(run(name, "nchw"), args.repeat)
        cl_s, cl = best_of(run(name, "channels_last"), args.repeat)
        results[name] = base_s, base
        speed.append(f"| {name} | eager, NCHW | {base_s:.2f} | 0 | |")
        speed.append(f"| {name} | eager, channels-last | {cl_s:.2f} | {(cl - base).abs().max():.1e} | "
                     f"{base_s / cl_s:.2f}x |")
        profiles += [f"### {name}, NCHW, glibc defaults: top {args.top} operators by self CPU time", "",
                     "| operator | calls | ms | % |", "|---|---|---|---|", *profile_rows(run(name, "nchw"), args.top), ""]
    reused = reuse_freed_memory()  # from here on, for the rest of this process
    for name in args.models:
        base_s, base = results[name]
        fast_s, fast = best_of(run(name, "channels_last"), args.repeat)
        speed.append(f"| {name} | eager, channels-last, reuse freed memory{'' if reused else ' (not available)'} | "
                     f"{fast_s:.2f} | {(fast - base).abs().max():.1e} | {base_s / fast_s:.2f}x |")
        profiles += [f"### {name}, channels-last, reuse freed memory: top {args.top} operators by self CPU time", "",
                     "| operator | calls | ms | % |", "|---|---|---|---|",
                     *profile_rows(run(name, "channels_last"), args.top), ""]
    for name in args.compile:
        base_s, base = results[name]
        net = create(name, pretrained=True).eval()
        net.cpu_channels_last = False
        net._forward = torch.compile(net._forward, dynamic=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            restore(x, model=net, tile=None, estimate_kernel=False)
        first = time.perf_counter() - t0
        c_s, c = best_of(lambda: restore(x, model=net, tile=None, estimate_kernel=False).image, args.repeat)
        speed.append(f"| {name} | torch.compile, NCHW, reuse freed memory | {c_s:.2f} | {(c - base).abs().max():.1e} | "
                     f"{base_s / c_s:.2f}x after a first call of {first:.0f} s (compiling, or loading what inductor's "
                     "on-disk cache kept from an earlier run) |")
    if not args.compile and Path(args.out).exists():  # keep the (slow) compile rows of the last run that made them
        old = Path(args.out).read_text().splitlines()
        when = next((ln.split("latest run:")[1].split(";")[0].strip() for ln in old if "latest run:" in ln), "?")
        for ln in old:
            if ln.startswith("| ") and "torch.compile" in ln:
                speed.append(ln if "not rerun" in ln else ln[:-2] + f" (run of {when}, not rerun) |")
    lines += start + [""] + speed + ["", *profiles]
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
