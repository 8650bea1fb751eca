"""The one restoration code path behind the Python API and the CLI.

:func:`restore` deblurs a tensor with a classical method (``method=``) or a network (``model=``);
:func:`restore_file` reads a photo, restores it and writes the result (and optionally the kernel
and a before/after picture) next to nothing but its own outputs.

Example:
    >>> import torch, unblur
    >>> blurred = torch.rand(3, 48, 48)
    >>> kernel = torch.ones(5, 5) / 25
    >>> unblur.restore(blurred, method="wiener", kernel=kernel).image.shape
    torch.Size([1, 3, 48, 48])
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
import torch
import torch.nn as nn

from ..errors import InputError
from ..io.atomic import check_name_length
from ..io.images import FLOAT_RANGE, FORMATS, check_profile_writable
from ..physics.kernels import as_kernel, pad_kernel
from .defaults import DEFAULT_METHOD, NON_BLIND_DEFAULT
from .tiling import choose_tile_size, tiled_apply

__all__ = ["RestoreResult", "restore", "restore_file", "resolve_device", "load_model", "DEFAULT_METHOD", "NON_BLIND_DEFAULT",
           "default_choice",
           "output_paths"]

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
KERNEL_SIZE = 65  # size of the PSFs networks are asked to estimate
_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass
class RestoreResult:
    """``image``: restored (B, C, H, W) float32 in [0, 1].

    ``kernel``: only ever a physical blur kernel (non-negative, sum 1): the one given, the one a blind classical
    method estimated ((kh, kw) or (B, C|1, kh, kw)), or the one a network with physical kernels estimated
    ((B, 1, k, k), ``model.estimate_kernels``); else ``None``.
    ``filters``: filters a network applies to its features (``model.estimate_filters``, e.g. DeepRFTv2's FKE),
    (B, n, s, s) normalised for display, when asked for (``estimate_filters=True``); they are not blur kernels.
    ``radius_map``: the per-pixel defocus radius (pixels, (B, 1, H, W)) of a network that estimates spatially
    varying defocus (``model.radius_map``, e.g. FDIKP), from the same pass as the image."""

    image: torch.Tensor
    kernel: torch.Tensor | None = None
    filters: torch.Tensor | None = None
    radius_map: torch.Tensor | None = None
    note: str | None = None  # e.g. which weights ``model="auto"`` chose and why


# A blur-radius map is written as a 16-bit grey PNG: white = this many pixels of radius (fixed, so maps compare).
RADIUS_MAP_SCALE = 16.0


def resolve_device(device=None, like: torch.Tensor | None = None) -> torch.device:
    """``None`` -> the device of ``like`` (else CPU); ``"auto"`` -> CUDA when available, else CPU."""
    if device is None:
        return like.device if like is not None else torch.device("cpu")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"invalid device {device!r}: {err}") from None
    if device.type not in ("cpu", "cuda"):  # meta, mps, xpu...: tensors there hold no data or are untested
        raise InputError(f"device {str(device)!r} is not supported: use cpu, cuda, cuda:N or auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {str(device)!r} requested but CUDA is not available (use --device cpu)")
    return device


_MODEL_CACHE: dict[str, nn.Module] = {}


def default_choice(kernel_given: bool) -> tuple[str | None, str | None]:
    """``(method, model)`` run when neither is named: :data:`NON_BLIND_DEFAULT` with a kernel, else
    :data:`DEFAULT_METHOD` (a weight set name such as ``gdunet-tiny.motion`` means a network)."""
    if kernel_given:
        return NON_BLIND_DEFAULT, None
    return (None, DEFAULT_METHOD) if "." in DEFAULT_METHOD else (DEFAULT_METHOD, None)


def load_model(name: str) -> nn.Module:
    """Build model ``name`` with its shipped weights (cached per process)."""
    if name not in _MODEL_CACHE:
        from ..models import create

        _MODEL_CACHE.clear()  # keep at most one model in memory
        _MODEL_CACHE[name] = create(name, pretrained=True)
    return _MODEL_CACHE[name]


AUTO = "auto"  # the model name that picks motion or defocus weights per photo (unblur.inference.auto)


def estimates_blur(method: str | None, model) -> bool:
    """Whether restoring with ``method`` or ``model`` (a network, or :data:`AUTO`) estimates something worth
    writing next to the result: a blind classical method's kernel, a blind network's physical kernel or its
    blur-radius map (``auto`` decides per photo, in :func:`restore_file`)."""
    if model is None:
        from ..classical import METHODS

        return bool(METHODS[method].blind)
    if isinstance(model, str) and model == AUTO:
        return True
    return bool(getattr(model, "radius_map", False)) or (
        getattr(model, "blind", True) and bool(getattr(model, "physical_kernels", False)))


def resolve_auto(image: torch.Tensor) -> tuple[str, str]:
    """``(weight set, note)`` that ``model="auto"`` picks for ``image``: a small classifier on the blur's spectral
    signature (:mod:`unblur.inference.auto`)."""
    from .auto import AUTO_WEIGHTS, choose_kind

    kind, why = choose_kind(image)
    return AUTO_WEIGHTS[kind], f"auto chose {AUTO_WEIGHTS[kind]}: {why}"


def _as_batch(image) -> torch.Tensor:
    if not torch.is_tensor(image):
        try:
            image = torch.as_tensor(image)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"image must be a tensor or array of shape (C, H, W) or (B, C, H, W): {err}") from None
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise InputError(f"image must have shape (C, H, W) or (B, C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InputError(f"image must be floating point with values in [0, 1], got dtype {image.dtype}")
    if image.shape[-1] < 2 or image.shape[-2] < 2:
        raise InputError(f"image is too small: {image.shape[-2]}x{image.shape[-1]} pixels")
    if not bool(torch.isfinite(image).all()):
        raise InputError("image has NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < FLOAT_RANGE[0] or hi > FLOAT_RANGE[1]:  # e.g. 0..255 data: every method would return white
        raise InputError(f"image values run from {lo:g} to {hi:g}; unblur expects [0, 1] (divide 8-bit data by 255)")
    return image


def _as_kernel(kernel, x: torch.Tensor) -> torch.Tensor:
    """A kernel (tensor, array or kernel file) as (B|1, C|1, kh, kw) float32 summing to 1 (:func:`as_kernel`)."""
    if isinstance(kernel, (str, os.PathLike)):
        from ..io import read_kernel

        name = f"kernel file {kernel}"
        kernel = read_kernel(kernel)
    else:
        name = "kernel"
    return as_kernel(kernel, like=x.float(), name=name, ndims=(2, 4))


def _autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=PRECISIONS[precision])
    return contextlib.nullcontext()  # fp16/bf16 only on CUDA; CPU runs in float32


def _with_radius_map(net: nn.Module):
    """``x -> cat([image, radius map], 1)``: one pass of a radius-map network, so tiles blend both together."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        out = net.forward_train(x)
        img = [im for im, s in out["outputs"] if s == 1.0][-1]
        return torch.cat([img, out["radius_map"].to(img.dtype)], 1)

    return fn


def _apply(net: nn.Module, x: torch.Tensor, tile: int | None, multiple: int, want_kernel: bool = False):
    """``(image, kernel, radius_map)``: the whole image when ``tile`` is None or covers it, else blended tiles.
    ``kernel``: the final stage kernel of a network with physical kernels, taken from the same pass (whole image
    only), else None. ``radius_map``: a radius-map network's map, from the same pass (tiled like the image)."""
    whole = tile is None or tile >= max(x.shape[-2:])
    if want_kernel and getattr(net, "radius_map", False):
        fn = _with_radius_map(net)
        if whole:
            both = fn(x)
        else:
            tile = max(tile, multiple)
            both = tiled_apply(fn, x, tile=tile, overlap=min(max(16, tile // 8), tile // 2), multiple=multiple)
        return both[:, :-1], None, both[:, -1:]
    if whole:
        if want_kernel and getattr(net, "physical_kernels", False):
            out = net.forward_train(x)
            kernels = out.get("kernels")
            return [img for img, s in out["outputs"] if s == 1.0][-1], (kernels[-1] if kernels else None), None
        return net(x), None, None
    tile = max(tile, multiple)
    overlap = min(max(16, tile // 8), tile // 2)
    return tiled_apply(net, x, tile=tile, overlap=overlap, multiple=multiple), None, None


def _run_model(net: nn.Module, x: torch.Tensor, tile, precision: str, estimate: bool, filters: bool = False):
    gray = x.shape[1] == 1
    if x.shape[1] not in (1, 3):
        raise InputError(f"networks take grayscale or RGB images, got {x.shape[1]} channels")
    xin = x.expand(-1, 3, -1, -1).contiguous() if gray else x
    if x.device.type == "cpu" and getattr(net, "cpu_channels_last", False):
        # The same numbers, faster: CPU depthwise convolutions are several times quicker on channels-last tensors
        # (benchmarks/cpu_path.md). Parameters keep their values; only their memory layout changes.
        net = net.to(memory_format=torch.channels_last)
        xin = xin.contiguous(memory_format=torch.channels_last)
    multiple = int(getattr(net, "size_multiple", 1) or 1)
    H, W = x.shape[-2:]
    auto = tile == "auto"
    if tile == "none":
        tile = None
    elif tile is not None and not auto:
        try:
            tile = int(tile)
        except (TypeError, ValueError):
            raise InputError(f"tile must be 'auto', a positive integer or None, got {tile!r}") from None
        if tile < 1:
            raise InputError(f"tile must be positive, got {tile}")
    with torch.no_grad(), _autocast(x.device, precision):
        if auto:
            tile = choose_tile_size(net, xin, x.device)
        while True:
            try:
                out, kernels, radius = _apply(net, xin, tile, multiple, want_kernel=estimate)
                break
            except _OOM:
                # The estimate was optimistic (or the device is shared): retry with smaller tiles.
                smallest = max(64, multiple)
                if not auto or tile <= smallest:
                    raise
                if x.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile = max(smallest, (min(tile, max(H, W)) // 2 // multiple) * multiple)
        feature_filters = None
        if kernels is not None and kernels.shape[-1] < KERNEL_SIZE:
            kernels = pad_kernel(kernels, KERNEL_SIZE)
        if (estimate and kernels is None and radius is None) or filters:
            crop = xin
            if tile is not None and tile < max(H, W):  # whole image too large: estimate on a centre tile
                th, tw = min(tile, H), min(tile, W)
                y0, x0 = (H - th) // 2, (W - tw) // 2
                crop = xin[..., y0:y0 + th, x0:x0 + tw]
            if estimate and kernels is None and radius is None and hasattr(net, "estimate_kernels"):
                kernels = net.estimate_kernels(crop, size=KERNEL_SIZE)
            if filters and hasattr(net, "estimate_filters"):
                feature_filters = net.estimate_filters(crop, size=KERNEL_SIZE)
    out = out.float().clamp(0, 1)
    if gray:
        out = out.mean(1, keepdim=True)
    return (out, kernels.float() if kernels is not None else None,
            feature_filters.float() if feature_filters is not None else None,
            radius.float() if radius is not None else None)


def restore(
    image,
    *,
    method: str | None = None,
    model: str | nn.Module | None = None,
    kernel=None,
    device=None,
    tile: int | str | None = "auto",
    precision: str = "fp32",
    options: dict | None = None,
    estimate_kernel: bool = True,
    estimate_filters: bool = False,
) -> RestoreResult:
    """Deblur ``image`` ((C, H, W) or (B, C, H, W), values in [0, 1]).

    Exactly one of ``method`` (a classical method, see ``unblur.classical.METHODS``) or ``model``
    (a registered model name, loaded with its shipped weights, ``"auto"`` for motion or defocus weights chosen for
    this image by :func:`resolve_auto`, or an ``nn.Module``) may be given;
    with neither, ``method="blind-l0"`` (``"hqs-hl"`` when a ``kernel`` is given). ``kernel`` (tensor, array or kernel file) is required by
    the non-blind methods. ``device``: ``None`` (the image's device), ``"auto"``, ``"cpu"``,
    ``"cuda"``. ``tile`` (networks only): ``"auto"`` (whole image when it fits in memory, else the
    largest tile that fits), a tile size, or ``None`` (never tile). ``precision`` ``"fp16"``/``"bf16"``
    uses autocast on CUDA (ignored on CPU). ``options`` go to the classical method.
    ``estimate_kernel=False`` skips a network's kernel estimation (networks without physical kernels have none);
    ``estimate_filters=True`` also reports a network's feature filters as ``RestoreResult.filters``.
    """
    if method is not None and model is not None:
        raise InputError("give either a classical method or a model, not both")
    if method is None and model is None:
        method, model = default_choice(kernel is not None)
    x = _as_batch(image)
    dev = resolve_device(device, like=x)
    x = x.to(device=dev, dtype=torch.float32)
    if model is None:
        from ..classical import deblur

        k = _as_kernel(kernel, x) if kernel is not None else None
        res = deblur(x, kernel=k, method=method, **(options or {}))
        return RestoreResult(res.image.float().clamp(0, 1), res.kernel)
    if options:
        raise InputError(f"options {sorted(options)} only apply to classical methods")
    note = None
    if isinstance(model, str) and model == AUTO:
        if kernel is not None:
            raise InputError("model 'auto' picks blind weights; a kernel can only be given to a classical method "
                             "or a non-blind network")
        model, note = resolve_auto(x)
    net = load_model(model) if isinstance(model, str) else model
    if not isinstance(net, nn.Module):
        raise InputError(f"model must be a model name or a torch.nn.Module, got {type(model).__name__}")
    blind = getattr(net, "blind", True)
    if kernel is not None and blind:
        raise InputError("this network is blind (it estimates the blur itself); a kernel can only be given to a "
                         "classical method or a non-blind network")
    if kernel is None and not blind:
        raise InputError("this network is non-blind: give the blur kernel")
    k = _as_kernel(kernel, x) if kernel is not None else None
    net = net.to(dev).eval()
    if tile == "auto" and getattr(net, "session", None) is not None:  # an onnxruntime network (inference.onnx)
        from .onnx import ONNX_TILE

        tile = ONNX_TILE
    out, kernels, filters, radius = _run_model(_GivenKernel(net, k) if k is not None else net, x, tile, precision,
                                               estimate_kernel and k is None, estimate_filters)
    return RestoreResult(out, k if k is not None else kernels, filters, radius, note)


class _GivenKernel(nn.Module):
    """A non-blind network with its kernel bound, so the tiler and the memory probe call it as ``fn(x)``."""

    def __init__(self, net: nn.Module, kernel: torch.Tensor):
        super().__init__()
        self.net, self.kernel = net, kernel
        self.size_multiple = int(getattr(net, "size_multiple", 1) or 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, kernel=self.kernel)

    def estimate_filters(self, x: torch.Tensor, size: int = 65):
        fn = getattr(self.net, "estimate_filters", None)
        return fn(x, size=size) if fn is not None else None


# --------------------------------------------------------------------------- files


def output_paths(in_path, out_dir, save_kernel: bool = False, side_by_side: bool = False,
                 save_filters: bool = False, radius_map: bool = False) -> dict[str, Path]:
    """Where :func:`restore_file` writes: ``image`` (same name as the input), ``kernel`` (``_kernel.png``, or
    ``_defocus.png``, the blur-radius map, for a ``radius_map`` model), ``filters``, ``side_by_side``."""
    in_path, out_dir = Path(in_path), Path(out_dir)
    paths = {"image": out_dir / in_path.name}
    if save_kernel:
        paths["kernel"] = out_dir / f"{in_path.stem}_{'defocus' if radius_map else 'kernel'}.png"
    if save_filters:
        paths["filters"] = out_dir / f"{in_path.stem}_filters.png"
    if side_by_side:
        paths["side_by_side"] = out_dir / f"{in_path.stem}_before_after.png"
    return paths


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _kernel_picture(kernel: torch.Tensor) -> torch.Tensor:
    """(1, h, w) display image of one or several kernels (each scaled to max 1), in a grid."""
    k = kernel.detach().float().cpu()
    while k.ndim > 3 and k.shape[0] == 1:
        k = k[0]
    k = k.reshape(-1, *k.shape[-2:])
    k = k / k.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    n, kh, kw = k.shape
    cols = int(n ** 0.5 + 0.999999)
    rows = -(-n // cols)
    gap = 1 if n > 1 else 0
    canvas = torch.zeros(rows * kh + (rows - 1) * gap, cols * kw + (cols - 1) * gap)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = k[i]
    return canvas[None]


def _before_after(before: torch.Tensor, after: torch.Tensor, gap: int = 8) -> torch.Tensor:
    """(C, H, 2W + gap) picture: input left, result right, separated by a white bar."""
    C, H, _ = before.shape
    bar = torch.ones(C, H, gap, dtype=before.dtype)
    return torch.cat([before.cpu(), bar, after.cpu()], dim=-1)


def restore_file(
    in_path,
    out_dir,
    *,
    method: str | None = None,
    model: str | nn.Module | None = None,
    kernel=None,
    device=None,
    tile: int | str | None = "auto",
    precision: str = "fp32",
    options: dict | None = None,
    overwrite: bool = False,
    save_kernel: bool = False,
    side_by_side: bool = False,
    save_filters: bool = False,
    report=None,
) -> list[Path]:
    """Restore the photo ``in_path`` into ``out_dir/<same file name>``; return the paths written.

    ``model="auto"`` picks motion or defocus weights for this photo (:func:`resolve_auto`) and tells ``report``
    (a callable taking one line) which and why; ``save_kernel`` then writes what the chosen network estimates
    (a kernel, a blur-radius map, or nothing).

    Keeps the input's bit depth and passes its alpha channel through. ``save_kernel`` also writes
    ``<stem>_kernel.png`` (a physical kernel only: an error for a network without one; for a network with a
    blur-radius map, ``<stem>_defocus.png``: 16-bit grey, value x :data:`RADIUS_MAP_SCALE` = radius in pixels),
    ``save_filters``
    ``<stem>_filters.png`` (a network's feature filters, e.g. DeepRFTv2's FKE, in a grid), ``side_by_side``
    ``<stem>_before_after.png`` (8-bit PNG).
    Never writes over the input; an existing output is an error unless ``overwrite``.
    """
    from ..io import read_image, write_image, write_kernel

    in_path, out_dir = Path(in_path), Path(out_dir)
    loaded = None
    if isinstance(model, str) and model == AUTO:
        loaded = read_image(in_path)
        name, note = resolve_auto(loaded.data)
        if report is not None:
            report(f"{in_path}: {note}")
        model = load_model(name)
        save_kernel = save_kernel and bool(getattr(model, "radius_map", False) or getattr(model, "physical_kernels", False))
    if isinstance(model, str):
        model = load_model(model)
    radius_map = bool(getattr(model, "radius_map", False))
    targets = output_paths(in_path, out_dir, save_kernel, side_by_side, save_filters, radius_map=radius_map)
    if targets["image"].suffix.lower() not in FORMATS:  # e.g. a .gif input: refused before the work
        raise InputError(f"{in_path}: results keep the input's name, and {in_path.suffix!r} files cannot be written "
                         f"(writable: {', '.join(sorted(FORMATS))}); convert the input to PNG first")
    for path in targets.values():
        check_name_length(path)  # found before the photo is computed, not after
        if _same_file(path, in_path):
            raise InputError(f"{in_path}: output {path} would overwrite the input; choose another output folder")
        if path.exists() and not overwrite:
            raise InputError(f"{path} already exists (use --overwrite to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} is not a folder")
    loaded = read_image(in_path) if loaded is None else loaded
    check_profile_writable(targets["image"], loaded.icc_profile)  # before the work, not after
    result = restore(
        loaded.data, method=method, model=model, kernel=kernel, device=device, tile=tile,
        precision=precision, options=options, estimate_kernel=save_kernel, estimate_filters=save_filters,
    )
    restored = result.image[0].detach().cpu()
    if save_kernel and result.kernel is None and result.radius_map is None:
        raise InputError(f"{in_path}: this model estimates no physical blur kernel; run without --save-kernel")
    if save_filters and result.filters is None:
        raise InputError(f"{in_path}: this model has no feature filters to save; run without --save-filters")
    if side_by_side and loaded.data.shape[-2:] != restored.shape[-2:]:
        raise InputError(f"{in_path}: restored image has a different size; cannot build the before/after picture")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    write_image(targets["image"], restored, bit_depth=loaded.bit_depth, alpha=loaded.alpha, overwrite=overwrite,
                icc_profile=loaded.icc_profile)
    written.append(targets["image"])
    if save_kernel and result.radius_map is not None:  # 16-bit grey: value x RADIUS_MAP_SCALE = radius in pixels
        picture = (result.radius_map[0].detach().float().cpu() / RADIUS_MAP_SCALE).clamp(0, 1)
        write_image(targets["kernel"], picture, bit_depth=16, overwrite=overwrite)
        written.append(targets["kernel"])
    elif save_kernel:
        k = result.kernel.detach().float().cpu()
        single = k.reshape(-1, *k.shape[-2:]).shape[0] == 1 if k.ndim > 2 else True
        if single:
            write_kernel(targets["kernel"], k.reshape(k.shape[-2:]), overwrite=overwrite)
        else:
            write_image(targets["kernel"], _kernel_picture(k[:1]), bit_depth=8, overwrite=overwrite)
        written.append(targets["kernel"])
    if save_filters:
        write_image(targets["filters"], _kernel_picture(result.filters[:1]), bit_depth=8, overwrite=overwrite)
        written.append(targets["filters"])
    if side_by_side:
        before = loaded.data.cpu()
        write_image(targets["side_by_side"], _before_after(before, restored.to(before.dtype)), bit_depth=8,
                    overwrite=overwrite, icc_profile=loaded.icc_profile)
        written.append(targets["side_by_side"])
    return written

