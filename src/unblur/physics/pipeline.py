"""Seeded degradation pipeline: sharp images -> (blurred, kernel), batched and reproducible.

Steps, in order (each optional step is skipped when its argument is ``None``/``False``):

1. draw one kernel per image from ``kernel_generator`` -> ``(B, 1, k, k)``;
2. ``linear``: decode sRGB to linear intensities (:func:`~unblur.physics.color.srgb_to_linear`);
3. ``saturation``: multiply by a gain (the scene is brighter than the sensor's range);
4. blur: ``conv2d(x, kernel, mode)``;
5. ``noise``: e.g. :class:`~unblur.physics.noise.GaussianNoise`, applied to the (linear) blurred image;
6. ``saturation``: clip the top at 1 (sensor full well), for the blurred and the sharp image;
7. ``linear``: encode back to sRGB;
8. ``jpeg_quality``: JPEG round trip;
9. ``clip``: clamp the blurred image to [0, 1].

Random draws come from the one ``generator`` in this order: kernels, saturation gains, noise, JPEG
qualities; the same seed gives the same batch.

Alignment: with ``mode="valid"`` the blurred image is ``(H-k+1, W-k+1)`` and output pixel ``i`` sees
input pixels ``i .. i+k-1``, centred on ``i + k - 1 - k//2`` (the kernel centre ``k//2`` multiplies the
input pixel at offset ``k - 1 - k//2``). The returned ``sharp`` is that crop of the input, so
``blurred[..., i, j]`` and ``sharp[..., i, j]`` show the same scene point. Same-size modes return the
input as it is.

Example:
    >>> import torch
    >>> from unblur.physics.pipeline import DegradationPipeline
    >>> pipe = DegradationPipeline.from_name("motion", kernel_size=15, noise_sigma=0.01)
    >>> out = pipe(torch.rand(2, 3, 40, 40), generator=torch.Generator().manual_seed(0))
    >>> out["blurred"].shape, out["sharp"].shape, out["kernel"].shape
    (torch.Size([2, 3, 26, 26]), torch.Size([2, 3, 26, 26]), torch.Size([2, 1, 15, 15]))
"""
from __future__ import annotations

import torch

from ..errors import InputError
from .color import linear_to_srgb, srgb_to_linear
from .conv import SAME_SIZE_MODES, conv2d
from .degradations import _check_quality, jpeg
from .kernels import get_kernel_generator
from .noise import GaussianNoise

__all__ = ["DegradationPipeline", "crop_valid", "PIPELINE_MODES"]

PIPELINE_MODES = ("valid",) + tuple(SAME_SIZE_MODES)


def crop_valid(x: torch.Tensor, kernel_hw: tuple[int, int]) -> torch.Tensor:
    """Crop of ``x`` aligned pixel for pixel with ``conv2d(x, k, "valid")`` for a ``kernel_hw`` kernel.

    >>> crop_valid(torch.arange(10.0).reshape(1, 1, 1, 10), (1, 4))
    tensor([[[[1., 2., 3., 4., 5., 6., 7.]]]])
    """
    kh, kw = kernel_hw
    H, W = x.shape[-2:]
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    return x[..., top:top + H - kh + 1, left:left + W - kw + 1]


def _gen_device(generator):
    return generator.device if generator is not None else torch.device("cpu")


class DegradationPipeline:
    """Turns sharp sRGB images ``(B, C, H, W)`` into ``dict(blurred=, sharp=, kernel=)`` (see the module doc).

    - ``kernel_generator``: any ``gen(batch_size, *, generator, device, dtype) -> (B, 1, k, k)``.
    - ``noise``: a callable ``noise(x, *, generator=)``, a number or ``(low, high)`` pair (Gaussian
      sigma), or ``None``.
    - ``mode``: ``"valid"`` (default, like a camera: the scene extends beyond the frame) or a same-size
      mode (``"circular"``, ``"reflect"``, ``"replicate"``, ``"zeros"``).
    - ``linear``: blur and add noise in linear light (camera-like) instead of on the sRGB values.
    - ``saturation``: ``None``, a gain ``>= 1`` or a ``(low, high)`` range of gains drawn per image;
      the scene is multiplied by it before blurring and clipped at 1 after the noise, so bright
      areas saturate and their blur is clipped; the returned sharp image is saturated the same way.
    - ``jpeg_quality``: ``None``, an int 1..100 or a ``(low, high)`` range of ints drawn per image.
    - ``clip``: clamp the blurred image to [0, 1] at the end.
    """

    def __init__(
        self,
        kernel_generator,
        noise=None,
        mode: str = "valid",
        linear: bool = False,
        saturation=None,
        jpeg_quality=None,
        clip: bool = True,
    ):
        if not callable(kernel_generator):
            raise InputError(f"kernel_generator must be callable, got {kernel_generator!r}")
        if mode not in PIPELINE_MODES:
            raise InputError(f"pipeline mode must be one of {PIPELINE_MODES}, got {mode!r}")
        if noise is not None and not callable(noise):
            noise = GaussianNoise(noise)
        self.kernel_generator, self.noise, self.mode = kernel_generator, noise, mode
        self.linear, self.clip = bool(linear), bool(clip)
        self.saturation = self._check_saturation(saturation)
        self.jpeg_quality = self._check_jpeg(jpeg_quality)

    @staticmethod
    def _check_saturation(s):
        if s is None:
            return None
        if isinstance(s, (tuple, list)):
            if len(s) != 2 or not 1 <= float(s[0]) <= float(s[1]):
                raise InputError(f"saturation range must be (low, high) with 1 <= low <= high, got {s!r}")
            return (float(s[0]), float(s[1]))
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not s >= 1:
            raise InputError(f"saturation gain must be a number >= 1 or a (low, high) range, got {s!r}")
        return float(s)

    @staticmethod
    def _check_jpeg(q):
        if q is None:
            return None
        if isinstance(q, (tuple, list)):
            if len(q) != 2:
                raise InputError(f"jpeg_quality range must be (low, high), got {q!r}")
            lo, hi = _check_quality(q[0]), _check_quality(q[1])
            if lo > hi:
                raise InputError(f"jpeg_quality range must have low <= high, got {q!r}")
            return (lo, hi)
        return _check_quality(q)

    @classmethod
    def from_name(
        cls, kind: str = "motion", kernel_size: int = 31, noise_sigma=0.01, mode: str = "valid", **kw
    ) -> "DegradationPipeline":
        """Pipeline with :func:`~unblur.physics.kernels.get_kernel_generator` ``(kind, kernel_size)`` kernels
        and Gaussian noise of ``noise_sigma`` (number or ``(low, high)``; 0/None for none). ``kw`` go to
        the constructor (``linear``, ``saturation``, ``jpeg_quality``, ``clip``, or ``noise`` to override)."""
        noise = kw.pop("noise", None)
        if noise is None and noise_sigma:
            noise = GaussianNoise(noise_sigma)
        return cls(get_kernel_generator(kind, kernel_size), noise=noise, mode=mode, **kw)

    def __call__(self, sharp: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        if not torch.is_tensor(sharp) or sharp.ndim != 4 or not sharp.is_floating_point():
            raise InputError(f"pipeline expects floating-point images (B, C, H, W), got {getattr(sharp, 'shape', type(sharp))}")
        B, C, H, W = sharp.shape
        kernel = self.kernel_generator(B, generator=generator, device=sharp.device, dtype=sharp.dtype)
        kh, kw = kernel.shape[-2:]
        if self.mode == "valid" and (kh > H or kw > W):
            raise InputError(f"images of {H}x{W} are smaller than the {kh}x{kw} kernels ('valid' blur)")

        x = srgb_to_linear(sharp) if self.linear else sharp
        if self.saturation is not None:
            x = x * self._draw_uniform(self.saturation, B, generator).to(device=sharp.device, dtype=x.dtype).reshape(B, 1, 1, 1)
        blurred = conv2d(x, kernel, self.mode)
        if self.noise is not None:
            blurred = self.noise(blurred, generator=generator)
        target = sharp
        if self.saturation is not None:
            blurred = blurred.clamp(max=1.0)
            target = x.clamp(max=1.0)
        if self.linear:
            blurred = linear_to_srgb(blurred)
            if self.saturation is not None:
                target = linear_to_srgb(target)
        if self.jpeg_quality is not None:
            blurred = self._jpeg(blurred, generator)
        if self.clip:
            blurred = blurred.clamp(0.0, 1.0)
        if self.mode == "valid":
            target = crop_valid(target, (kh, kw))
        return {"blurred": blurred, "sharp": target, "kernel": kernel}

    @staticmethod
    def _draw_uniform(rng, n: int, generator) -> torch.Tensor:
        if not isinstance(rng, tuple):
            return torch.full((n,), rng, dtype=torch.float64)
        u = torch.rand(n, generator=generator, device=_gen_device(generator), dtype=torch.float64).cpu()
        return rng[0] + (rng[1] - rng[0]) * u

    def _jpeg(self, x: torch.Tensor, generator) -> torch.Tensor:
        if not isinstance(self.jpeg_quality, tuple):
            return jpeg(x, self.jpeg_quality)
        lo, hi = self.jpeg_quality
        qs = torch.randint(lo, hi + 1, (x.shape[0],), generator=generator, device=_gen_device(generator)).tolist()
        return torch.cat([jpeg(x[i:i + 1], q) for i, q in enumerate(qs)])

    def __repr__(self) -> str:
        return (
            f"DegradationPipeline({self.kernel_generator!r}, noise={self.noise!r}, mode={self.mode!r}, "
            f"linear={self.linear}, saturation={self.saturation!r}, jpeg_quality={self.jpeg_quality!r}, clip={self.clip})"
        )
