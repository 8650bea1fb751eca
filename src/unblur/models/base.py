"""Base class of every restoration model: the call shapes DEVELOPERS.md promises."""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from ..physics.conv import pad


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad bottom/right so H and W are multiples of ``multiple``; returns the original size."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = pad(x, (0, ph, 0, pw), "reflect")
    return x, (H, W)


def _kernel4d(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(k, k)`` or ``(B | 1, 1, k, k)`` -> ``(B | 1, 1, k, k)`` on ``x``'s device (the network's kernel input)."""
    k = torch.as_tensor(kernel)
    if k.ndim == 2:
        k = k[None, None]
    if k.ndim != 4 or k.shape[1] != 1 or k.shape[0] not in (1, x.shape[0]):
        raise InputError(f"kernel must have shape (kh, kw) or (B or 1, 1, kh, kw) for a batch of {x.shape[0]}, "
                         f"got {tuple(k.shape)}")
    return k.to(device=x.device, dtype=torch.float32)


class RestorationModel(nn.Module):
    """The model contract: ``model(x, kernel=None) -> image`` and ``forward_train(x, kernel=None) -> dict``.

    Subclasses implement ``_forward`` on inputs whose size is a multiple of ``size_multiple``:

    - blind models (``blind = True``): ``_forward(x)``; a ``kernel`` given to ``forward`` is a hint that the
      architecture may use where it can (no shipped blind network uses it yet, so the base class ignores it);
    - non-blind models (``blind = False``): ``_forward(x, kernel)`` with the blur kernel ``(B | 1, 1, k, k)``
      (non-negative, sum 1), which ``forward`` then requires.

    ``_forward`` returns either the list ``[(image, scale), ...]`` (scale 1.0 = full resolution, 0.5 = half,
    0.25 = quarter; the last full-scale one is the prediction) or a dict ``{"outputs": [...], "kernels": [...]}``
    where ``kernels`` are the physical PSFs a model estimates, one per stage (unrolled networks), each
    ``(B, 1, k, k)``, non-negative and summing to 1, last = final estimate; such a model sets
    ``physical_kernels = True`` and :meth:`estimate_kernels` returns the final one.

    ``forward_train`` crops a scale-``s`` output of an (H, W) input to ``(ceil(H * s), ceil(W * s))``, which
    ``size_multiple >= 1 / s`` guarantees is available, and returns ``{"outputs": [(image, scale), ...]}`` plus
    ``"kernels"`` when ``_forward`` gave them (kernels are not cropped: they do not depend on the padding), and
    ``"radius_map"`` (B, 1, H, W), a per-pixel blur radius in pixels, for models that estimate spatially varying
    defocus (``radius_map = True``; :meth:`estimate_radius_map`).

    :meth:`estimate_filters` is for architectures whose internal filters act on learned features (e.g.
    DeepRFTv2's Fourier Kernel Estimator): they are not blur kernels and never reported as one.
    """

    size_multiple: int = 1
    blind: bool = True  # False: the model needs the blur kernel (``model(x, kernel=k)``)
    physical_kernels: bool = False  # True: ``_forward`` returns ``"kernels"`` (physical PSFs per stage)
    radius_map: bool = False  # True: ``_forward`` returns ``"radius_map"`` (per-pixel defocus radius, pixels)
    onnx_unsupported: str | None = None  # why ``unblur export --onnx`` refuses this architecture (None: it exports)
    cpu_channels_last: bool = False  # restore on a CPU runs it in channels-last memory format (faster, same output)
    onnx_tile: bool = False  # export a fixed 384 px graph run in tiles (too long a graph for free sizes)
    onnx_optimize: bool = True  # let onnxscript rewrite the graph (False: onnxruntime's optimiser only)
    # TLC (Chu et al., ECCV 2022): at inference on inputs larger than this (pixels), channel attention averages over
    # windows of this size instead of the whole map: statistics like those of the training crops, and a tile sees
    # the same statistics as the whole photo. ``None``: global statistics always.
    stats_window: int | None = 384

    def _spatial_attentions(self) -> list[nn.Module]:
        """Modules with a ``local_fraction`` (global statistics of spatial maps); the inside of a module marked
        ``frequency_domain`` (it pools spectra, not places) is skipped."""
        found, stack = [], [self]
        while stack:
            m = stack.pop()
            if hasattr(m, "local_fraction"):
                found.append(m)
            if not getattr(m, "frequency_domain", False):
                stack.extend(m.children())
        return found

    @contextlib.contextmanager
    def local_statistics(self, hw: tuple[int, int]):
        """Within the block, inputs of size ``hw`` larger than :attr:`stats_window` use local channel statistics
        (eval mode only; training crops are smaller than the window)."""
        H, W = (int(v) for v in hw)
        w = self.stats_window
        mods = self._spatial_attentions() if (not self.training and w and max(H, W) > w) else []
        for m in mods:
            m.local_fraction = (min(1.0, w / H), min(1.0, w / W))
        try:
            yield
        finally:
            for m in mods:
                m.local_fraction = None

    def _forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> list[tuple[torch.Tensor, float]] | dict:
        raise NotImplementedError

    def forward_train(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> dict:
        xp, (H, W) = pad_to_multiple(x, self.size_multiple)
        if not self.blind and kernel is None:
            raise InputError(f"model {getattr(self, 'model_name', type(self).__name__)!r} is non-blind: "
                             "give the blur kernel (model(x, kernel=k))")
        with self.local_statistics(xp.shape[-2:]):
            raw = self._forward(xp) if self.blind else self._forward(xp, _kernel4d(kernel, x))
        result = dict(raw) if isinstance(raw, dict) else {"outputs": raw}
        outs = []
        for img, scale in result["outputs"]:
            h, w = -(-H * scale // 1), -(-W * scale // 1)  # ceil(H * scale), exact for 0.5, 0.25
            outs.append((img[..., : int(h), : int(w)], scale))
        result["outputs"] = outs
        if "radius_map" in result:  # a per-pixel blur-radius map (defocus models), full resolution
            result["radius_map"] = result["radius_map"][..., :H, :W]
        if "kernels" in result:
            result["kernels"] = list(result["kernels"])
            for k in result["kernels"]:
                if k.ndim != 4 or k.shape[1] != 1 or k.shape[0] != x.shape[0]:
                    raise ValueError(f"{type(self).__name__}: stage kernels must be (B, 1, k, k), got {tuple(k.shape)}")
        return result

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        outs = self.forward_train(x, kernel)["outputs"]
        return [img for img, s in outs if s == 1.0][-1]

    @torch.no_grad()
    def estimate_kernels(self, x: torch.Tensor, size: int | None = None) -> torch.Tensor | None:
        """The physical blur kernel the model estimates, ``(B, 1, k, k)`` (non-negative, sum 1; zero-padded to
        ``size`` when smaller), or ``None`` when the architecture has no physical kernel."""
        if not self.physical_kernels:
            return None
        kernels = self.forward_train(x).get("kernels")
        if not kernels:
            return None
        k = kernels[-1].float()
        if size is not None and size > max(k.shape[-2:]):
            from ..physics.kernels import pad_kernel

            k = pad_kernel(k, size)
        return k

    def estimate_radius_map(self, x: torch.Tensor) -> torch.Tensor | None:
        """The per-pixel blur radius (pixels, (B, 1, H, W)) of a model with ``radius_map = True``, else ``None``."""
        if not self.radius_map:
            return None
        return self.forward_train(x).get("radius_map")

    def estimate_filters(self, x: torch.Tensor, size: int = 65) -> torch.Tensor | None:
        """Spatial views ``(B, n, size, size)`` of filters the network applies to its *features* (normalised for
        display), or ``None``. They are not blur kernels of the photo."""
        return None


def downscale(x: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """Image pyramid step used by multi-scale models and losses (bilinear, antialiased)."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, antialias=True)
