"""The one tiler of unblur: run a function on overlapping tiles and blend them without seams.

:func:`tiled_apply` cuts a ``(B, C, H, W)`` image into overlapping square tiles, runs ``fn`` on
(batches of) tiles and blends the results with smooth weights. Each tile's weight is 1 in its
middle and falls to 0 over ``overlap`` pixels at every edge it shares with a neighbour (edges
on the image border keep weight 1): the outer quarter of the overlap has weight 0, the middle
half is a raised-cosine ramp. The blend is the per-pixel weighted mean of the tiles that cover
a pixel, accumulated as a running mean so that

- a position-independent ``fn`` (identity, pointwise ops) gives *exactly* ``fn(x)``;
- an ``fn`` whose receptive-field radius is at most ``overlap // 4`` (e.g. a small conv net)
  gives its whole-image result up to float rounding, also at the seams;
- for deep networks (large receptive field) tile borders are cross-faded, with no visible step.

:func:`windowed_apply` is the tiler's window mode for layers *inside* models (all windows in one differentiable
call, linear blending normalised by the weight sum): DeepRFTv2's per-window kernel estimator uses it.

:func:`choose_tile_size` picks the largest tile whose activation memory fits the free memory,
estimated by a probe forward pass on a small tile and scaled by area.

Example:
    >>> import torch
    >>> from unblur.inference.tiling import tiled_apply
    >>> x = torch.rand(1, 3, 100, 70)
    >>> torch.equal(tiled_apply(lambda t: t * 2, x, tile=32, overlap=8), x * 2)
    True
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
import weakref
from typing import Callable

import torch

__all__ = ["tiled_apply", "tile_progress", "tile_starts", "tile_window", "windowed_apply", "window_starts",
           "choose_tile_size", "available_memory", "probe_memory", "CPU_ACTIVATION_LIMIT"]


def _round_down(n: int, multiple: int) -> int:
    return max(multiple, (n // multiple) * multiple)


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, n)`` with overlaps of at least ``overlap``.

    The first tile starts at 0, the last ends at ``n``; starts are spread evenly in between.
    """
    if n <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    count = math.ceil((n - overlap) / (tile - overlap))
    count = max(count, 2)
    span = n - tile
    return [round(i * span / (count - 1)) for i in range(count)]


def _ramp(length: int, overlap: int, device, dtype=torch.float32) -> torch.Tensor:
    """Weights for the first ``length`` pixels after a shared tile edge (0 ... 1)."""
    t = torch.arange(length, device=device, dtype=torch.float64)
    if overlap <= 0:
        return torch.ones(length, device=device, dtype=dtype)
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    # Raised cosine over [margin, margin + width), sampled at pixel centres so it is > 0 there.
    u = ((t - margin + 0.5) / width).clamp(0, 1)
    w = 0.5 - 0.5 * torch.cos(math.pi * u)
    w = torch.where(t < margin, torch.zeros_like(w), w)
    return w.to(dtype)


def tile_window(size: int, overlap: int, lead: bool, trail: bool, device=None) -> torch.Tensor:
    """1-D weight of a tile of length ``size``: ramps at its leading/trailing edge when shared."""
    w = torch.ones(size, device=device, dtype=torch.float32)
    ramp_len = min(overlap, size)
    if lead and ramp_len > 0:
        w[:ramp_len] = torch.minimum(w[:ramp_len], _ramp(ramp_len, overlap, device))
    if trail and ramp_len > 0:
        w[size - ramp_len:] = torch.minimum(w[size - ramp_len:], _ramp(ramp_len, overlap, device).flip(0))
    return w


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    batch: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` to overlapping ``tile`` x ``tile`` tiles of ``x`` (B, C, H, W) and blend them.

    ``fn`` maps (N, C, h, w) to (N, C', h, w) (same spatial size; the channel count may change).
    ``tile`` is rounded down to a multiple of ``multiple`` (a model's ``size_multiple``); axes
    shorter than a tile are processed whole. ``batch`` tiles (of every image of ``x``) go through
    ``fn`` together. Returns a float32 tensor (or ``fn``'s floating dtype if wider) on ``x``'s device.
    """
    if x.ndim != 4:
        raise ValueError(f"tiled_apply expects (B, C, H, W), got shape {tuple(x.shape)}")
    if tile < 1 or multiple < 1 or batch < 1 or overlap < 0:
        raise ValueError(f"invalid tiling: tile={tile}, overlap={overlap}, multiple={multiple}, batch={batch}")
    B, _, H, W = x.shape
    tile = _round_down(int(tile), int(multiple))
    th, tw = min(tile, H), min(tile, W)
    if th == H and tw == W:
        return fn(x)
    overlap = min(int(overlap), tile - 1)
    ys, xs = tile_starts(H, th, overlap), tile_starts(W, tw, overlap)
    # Weight windows per axis position (edges on the image border are not ramped).
    wy = [tile_window(th, overlap, i > 0, i < len(ys) - 1, x.device) for i in range(len(ys))]
    wx = [tile_window(tw, overlap, j > 0, j < len(xs) - 1, x.device) for j in range(len(xs))]
    positions = [(i, j) for i in range(len(ys)) for j in range(len(xs))]

    mean = None  # running weighted mean (B, C', H, W)
    wsum = torch.zeros(1, 1, H, W, device=x.device, dtype=torch.float32)
    bar = _Progress(len(positions))
    for start in range(0, len(positions), batch):
        chunk = positions[start:start + batch]
        crops = [x[..., ys[i]:ys[i] + th, xs[j]:xs[j] + tw] for i, j in chunk]
        out = fn(torch.cat(crops, 0) if len(crops) > 1 else crops[0])
        if out.shape[0] != B * len(chunk) or out.shape[-2:] != (th, tw):
            raise ValueError(
                f"tiled_apply: fn must keep batch and spatial size, got {tuple(out.shape)} for tiles "
                f"of shape {(B * len(chunk), x.shape[1], th, tw)}"
            )
        if mean is None:
            dtype = torch.promote_types(out.dtype, torch.float32) if out.is_floating_point() else torch.float32
            mean = torch.zeros(B, out.shape[1], H, W, device=x.device, dtype=dtype)
        for n, (i, j) in enumerate(chunk):
            sy, sx = slice(ys[i], ys[i] + th), slice(xs[j], xs[j] + tw)
            w = (wy[i][:, None] * wx[j][None, :])[None, None]
            acc = wsum[..., sy, sx] + w
            # Running mean: m += (w / sum w) * (v - m). Exact when all tiles agree at a pixel.
            ratio = (w / acc.clamp_min(torch.finfo(torch.float32).tiny)).to(mean.dtype)
            m = mean[..., sy, sx]
            v = out[n * B:(n + 1) * B].to(device=x.device, dtype=mean.dtype)
            mean[..., sy, sx] = m + ratio * (v - m)
            wsum[..., sy, sx] = acc
        bar.update(len(chunk))
    bar.close()
    return mean


_PROGRESS: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("unblur_tile_progress", default=None)


@contextlib.contextmanager
def tile_progress(desc: str, enabled: bool = True, callback: Callable[[int, int], None] | None = None):
    """Within the block, every :func:`tiled_apply` over several tiles shows a progress bar labelled ``desc``
    (tqdm on stderr; on terminals only). Long work on big photos (a tiled network, blind-l0's tiled final
    deconvolution) then reports how far it got. ``callback(done, total)``, when given, is also called after each
    batch of tiles (the web page's progress), whether or not the bar is shown."""
    token = _PROGRESS.set((desc if enabled else None, callback))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


class _Progress:
    """The tqdm bar and/or the callback of the enclosing :func:`tile_progress` block."""

    def __init__(self, total: int):
        desc, self.callback = _PROGRESS.get() or (None, None)
        self.total, self.done, self.bar = total, 0, None
        if desc is not None and total >= 2:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="tile", leave=False, disable=None)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- window mode (models)


def is_channels_last(t: torch.Tensor) -> bool:
    """``t`` is laid out channels-last where that differs from the default layout (the CPU path's layout, which
    layers that build new tensors, such as the window tiler and DeepRFTv2's Fourier branch, keep)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def window_starts(n: int, window: int, overlap: int = 0) -> list[int]:
    """Start offsets of windows of length ``min(window, n)`` covering ``[0, n)`` with stride ``window - overlap``;
    the last window is aligned to the end (it may overlap its neighbour by more than ``overlap``)."""
    window = min(window, n)
    if not 0 <= overlap < window and window < n:
        raise ValueError(f"window overlap must be in [0, {window}), got {overlap}")
    if window >= n:
        return [0]
    starts = list(range(0, n - window + 1, window - overlap))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def _linear_ramp(start: int, length: int, n: int, overlap: int, device, dtype) -> torch.Tensor:
    """1-D weight of a window: linear ramp ``1/(overlap+1) .. overlap/(overlap+1)`` at inner edges, else 1."""
    w = torch.ones(length, device=device, dtype=dtype)
    if overlap > 0:
        ramp = torch.arange(1, overlap + 1, device=device, dtype=dtype) / (overlap + 1)
        if start > 0:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if start + length < n:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def windowed_apply(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, window: int | None, overlap: int = 0,
    group: int | None = None,
) -> torch.Tensor:
    """Window mode of the tiler, for layers inside models (e.g. DeepRFTv2's per-window kernel estimator):
    apply ``fn`` (a (N, C, h, w) -> (N, C', h, w) map) per window of ``x`` (B, C, H, W) and merge.

    Unlike :func:`tiled_apply` (whole networks on large photos, memory-bound, tiles run in batches), the window
    layout is part of the model's definition: the windows of ``min(window, H) x min(window, W)`` (see
    :func:`window_starts`) go through ``fn`` stacked on the batch dimension, and the result stays differentiable.
    Overlapping parts are blended with weights that ramp linearly over ``overlap`` pixels at inner window edges,
    normalised to sum to one, so a position-independent ``fn`` gives exactly its whole-image result. With
    ``overlap=0`` and sizes divisible by the window this is a plain partition (training). ``window=None`` or a
    window at least as large as ``x`` calls ``fn(x)`` directly.

    ``group``: at most this many windows per call of ``fn`` (``None``: all in one call). ``fn`` must treat the
    batch entries independently; the result is the same, and the cut windows and ``fn``'s intermediate maps
    then only exist for one group at a time (inference on a CPU: a 720p photo's 15 windows of 384 px make
    feature maps of hundreds of MB, whose first use costs page faults; ``benchmarks/cpu_path.md``).
    """
    B, C, H, W = x.shape
    if window is None or (H <= window and W <= window):
        return fn(x)
    if group is not None and group < 1:
        raise ValueError(f"windowed_apply: group must be >= 1 or None, got {group}")
    wh, ww = min(window, H), min(window, W)
    oy, ox = min(overlap, wh - 1), min(overlap, ww - 1)
    ys, xs = window_starts(H, wh, oy), window_starts(W, ww, ox)
    boxes = [(y0, x0) for y0 in ys for x0 in xs]
    fmt = torch.channels_last if is_channels_last(x) else None
    group = len(boxes) if group is None else group
    acc = wsum = None
    for g in range(0, len(boxes), group):
        part = boxes[g : g + group]
        patches = torch.stack([x[..., y0 : y0 + wh, x0 : x0 + ww] for y0, x0 in part], 1)
        patches = patches.reshape(B * len(part), C, wh, ww)
        if fmt is not None:  # keep x's layout (the stacked windows would be neither layout: every conv would copy them)
            patches = patches.contiguous(memory_format=fmt)
        out = fn(patches)
        del patches
        out = out.reshape(B, len(part), *out.shape[1:])
        if acc is None:
            acc = out.new_zeros(B, out.shape[2], H, W)
            if fmt is not None:
                acc = acc.contiguous(memory_format=fmt)
            wsum = out.new_zeros(H, W)
        for k, (y0, x0) in enumerate(part):
            wy = _linear_ramp(y0, wh, H, oy, out.device, out.dtype)
            wx = _linear_ramp(x0, ww, W, ox, out.device, out.dtype)
            wk = wy[:, None] * wx[None, :]
            acc[..., y0 : y0 + wh, x0 : x0 + ww] += out[:, k] * wk
            wsum[y0 : y0 + wh, x0 : x0 + ww] += wk
    return acc / wsum


# --------------------------------------------------------------------------- tile size selection

_CPU_SAFETY = 0.5  # fraction of available RAM the activations of one tile batch may use
# At most this many bytes of activations per tile batch on a CPU, whatever the RAM: with the photo's own buffers a
# 24-megapixel photo stays within about 4 GB (benchmarks/large_photo.md), so a laptop keeps working meanwhile.
CPU_ACTIVATION_LIMIT = 2 << 30
_CUDA_SAFETY = 0.8  # fraction of free GPU memory


def available_memory(device) -> int:
    """Bytes that can be used for activations on ``device`` (free memory times a safety factor; on a CPU at most
    :data:`CPU_ACTIVATION_LIMIT`)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * _CUDA_SAFETY)
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 4 << 30  # unknown platform: assume 4 GiB
    return int(min(avail * _CPU_SAFETY, CPU_ACTIVATION_LIMIT))


class _LiveTensorTracker:
    """Peak bytes of tensors alive during a forward pass (CPU or any device without allocator stats)."""

    def __init__(self):
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def add(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
        except (RuntimeError, NotImplementedError):
            return
        if key in self.live or nbytes == 0:
            return  # a view of a tensor already counted
        self.live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(t, self._release, key)


def _probe_cpu(fn: Callable, x: torch.Tensor) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    tracker = _LiveTensorTracker()

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    tracker.add(t)
            return out

    with _Mode():
        out = fn(x)
    del out
    return tracker.peak


def probe_memory(fn: Callable, x: torch.Tensor) -> int:
    """Peak bytes allocated while running ``fn(x)`` (beyond what was allocated before)."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        base = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        out = fn(x)
        torch.cuda.synchronize(x.device)
        peak = torch.cuda.max_memory_allocated(x.device) - base
        del out
        return int(peak)
    return int(_probe_cpu(fn, x))


def choose_tile_size(
    model: Callable,
    x: torch.Tensor,
    device=None,
    budget_bytes: int | None = None,
    probe: int = 128,
    min_tile: int = 64,
    batch: int = 1,
) -> int:
    """Largest tile (a multiple of ``model.size_multiple``) whose activations fit in memory.

    The model runs once (no grad) on a ``probe`` x ``probe`` tile of ``x``'s batch and channels;
    its peak memory per pixel, times the tile area and ``batch``, must fit into ``budget_bytes``
    (default: :func:`available_memory` of ``device``). The result is capped at the size that
    covers the whole image (so ``tile >= max(H, W)`` means "no tiling needed").
    """
    if x.ndim != 4:
        raise ValueError(f"choose_tile_size expects (B, C, H, W), got shape {tuple(x.shape)}")
    device = torch.device(device) if device is not None else x.device
    multiple = int(getattr(model, "size_multiple", 1) or 1)
    B, C, H, W = x.shape
    whole = -(-max(H, W) // multiple) * multiple
    probe = -(-max(probe, multiple) // multiple) * multiple
    ph, pw = min(probe, H), min(probe, W)
    sample = x[:, :, :ph, :pw].to(device)
    if ph < probe or pw < probe:  # tiny image: probe on a padded copy of the full probe size
        sample = torch.nn.functional.pad(sample, (0, probe - pw, 0, probe - ph), mode="replicate")
    with torch.no_grad():
        peak = probe_memory(model, sample)
    per_pixel = max(peak, 1) / float(probe * probe)
    budget = available_memory(device) if budget_bytes is None else int(budget_bytes)
    side = math.isqrt(max(int(budget / (per_pixel * max(batch, 1))), 0))
    side = (side // multiple) * multiple
    floor = -(-max(min_tile, multiple) // multiple) * multiple
    return int(min(max(side, floor), whole))
