"""Size and cost of every registered restoration model: parameters, MACs and latency.

For each model of ``unblur.models.list_models()`` (so architectures added later are picked up) and each image
size (default 256x256 and 1280x720):

- **params**: number of parameters (model built on the ``meta`` device: nothing is allocated);
- **GMACs**: multiply-accumulates of one forward pass at batch 1, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (MACs = FLOPs / 2). It counts
  convolutions and matrix products only: **FFTs, normalisation, activations and other element-wise ops are not
  counted**, so FFT-based models (DeepRFT, DeepRFTv2) are somewhat under-counted;
- **latency**: median wall time of ``model(x)`` over ``--runs`` runs after ``--warmup`` runs, batch 1,
  ``torch.inference_mode()``, float32, ``torch.set_num_threads(--threads)`` on CPU; on CUDA the timing is
  synchronised and the peak allocated memory is reported too. Weights are random (latency does not depend
  on them). A cell whose first call exceeds ``--cell-budget`` seconds is timed by that call alone. ``--skip-slow`` skips the latency cells whose MAC count exceeds ``--slow-gmacs`` (marked
  ``skipped``); cells that run out of memory are marked ``OOM``.

Usage::

    python benchmarks/model_complexity.py --skip-slow               # CPU, writes model_complexity.md
    python benchmarks/model_complexity.py --device cuda --out benchmarks/model_complexity_cuda.md

Prints a markdown table and writes it (with machine, torch version, date and settings) to ``--out``.
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
from torch.utils.flop_counter import FlopCounterMode

import unblur.models as M
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (H, W) = (720, 1280) (sizes are written width x height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {text!r}") from None
    return h, w


def count_params(name: str) -> int:
    with torch.device("meta"):
        model = M.create(name)
    return sum(p.numel() for p in model.parameters())


def count_macs(name: str, hw: tuple[int, int]) -> float | None:
    """MACs of one forward pass at batch 1 (None when the model cannot run on the meta device)."""
    try:
        with torch.device("meta"):
            model = M.create(name).eval()
            x = torch.empty(1, 3, *hw)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(x)
        return counter.get_total_flops() / 2
    except Exception as err:  # noqa: BLE001 - report and go on with the other cells
        print(f"[{name} {hw}] MACs not counted on meta: {type(err).__name__}: {err}", file=sys.stderr)
        return None


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(model, hw, device, runs: int, warmup: int, budget: float) -> tuple[float, int, float | None]:
    """Median seconds of ``model(x)``, the number of timed runs and, on CUDA, peak allocated memory in GiB.

    When the first call takes more than ``budget`` seconds, it is the only one (warm-up included) and it is
    reported as the timing (1 run, an upper bound of the warm latency)."""
    x = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(0)).to(device)
    peak = None
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        model(x)
        _sync(device)
        first = time.perf_counter() - t0
        if first > budget:
            times = [first]
            runs = 0
        else:
            for _ in range(warmup - 1):
                model(x)
            _sync(device)
            times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
    return statistics.median(times), len(times), peak


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or "out of memory" in str(err).lower() or (
        hasattr(torch, "OutOfMemoryError") and isinstance(err, torch.OutOfMemoryError)
    )


def fmt_time(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[(256, 256), (720, 1280)],
                    metavar="WxH", help="image sizes, width x height (default: 256x256 1280x720)")
    ap.add_argument("--models", nargs="*", default=None,
                    help="model names or architecture prefixes (default: every registered model)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="warm-up runs (oneDNN plans per shape on the first calls)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU (default 2)")
    ap.add_argument("--skip-slow", action="store_true", help="skip latency cells above --slow-gmacs")
    ap.add_argument("--slow-gmacs", type=float, default=None,
                    help="threshold for --skip-slow in GMACs (default 250 on CPU, 20000 on CUDA)")
    ap.add_argument("--cell-budget", type=float, default=20.0,
                    help="seconds: when the first call of a cell is slower, time that single call (default 20)")
    ap.add_argument("--out", type=Path, default=HERE / "model_complexity.md", help="markdown file to write")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device available")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    slow = args.slow_gmacs if args.slow_gmacs is not None else (250.0 if device.type == "cpu" else 20000.0)

    load_before = _load()
    names = M.list_models()
    if args.models:
        names = [n for n in names if n in args.models or n.rsplit("-", 1)[0] in args.models]
    size_txt = [f"{w}x{h}" for h, w in args.sizes]

    header = ["model", "params (M)"]
    for s in size_txt:
        header += [f"GMACs {s}", f"latency {s}"] + ([f"peak mem {s}"] if device.type == "cuda" else [])
    rows = []
    for name in names:
        row = [f"`{name}`", f"{count_params(name) / 1e6:.3f}"]
        model = None
        for hw, s in zip(args.sizes, size_txt):
            macs = count_macs(name, hw)
            row.append("n/a" if macs is None else f"{macs / 1e9:.2f}")
            if args.skip_slow and (macs is None or macs / 1e9 > slow):
                row += ["skipped"] + (["skipped"] if device.type == "cuda" else [])
                continue
            try:
                if model is None:
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(0)
                        model = M.create(name).eval().to(device)
                t, n, peak = measure_latency(model, hw, device, args.runs, args.warmup, args.cell_budget)
                row.append(fmt_time(t) + (" (1 run)" if n == 1 and args.runs > 1 else ""))
                if device.type == "cuda":
                    row.append(f"{peak:.2f} GiB")
            except Exception as err:  # noqa: BLE001
                if not _is_oom(err):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                row += ["OOM"] + (["OOM"] if device.type == "cuda" else [])
            print(f"{name} {s}: {row[-1]}", file=sys.stderr, flush=True)
        del model
        rows.append(row)

    table = "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        + ["| " + " | ".join(r) + " |" for r in rows]
    )
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}); CPU {cpu_model()}"
    else:
        machine = f"CPU {cpu_model()}, {args.threads} threads"
    skip_note = f"; `--skip-slow`: latency skipped above {slow:g} GMACs" if args.skip_slow else ""
    doc = f"""# Model complexity

Output of `python benchmarks/{Path(__file__).name} {' '.join(argv if argv is not None else sys.argv[1:])}`.

- Date: {_dt.date.today().isoformat()}
- Machine: {machine}; torch {torch.__version__}, Python {platform.python_version()}
- Input: batch 1, RGB, sizes {', '.join(size_txt)} (width x height); float32, `torch.inference_mode()`, random weights
- Load average (1 min) at start / end: {load_before:.2f} / {_load():.2f} (more than the thread count means other
  processes competed for the cores and the CPU timings are inflated, sometimes many times over)
- Latency: median of {args.runs} runs after {args.warmup} warm-up run(s){', synchronised' if device.type == 'cuda' else ''}{skip_note};
  "(1 run)": the first call took more than {args.cell_budget:g} s and is the only timing (includes warm-up costs)
- GMACs: `torch.utils.flop_counter.FlopCounterMode` FLOPs / 2 (convolutions and matrix products only;
  FFTs, normalisations and element-wise operations are **not counted**, so FFT-based models are under-counted)

{table}
"""
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(doc)
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
