"""Spatially varying defocus: thin-lens blur maps, layered rendering with occlusion, random depth maps.

A defocused photo is blurred by a disk whose radius changes with depth. We describe it by a **signed blur-radius
map** ``s`` (pixels, one value per pixel): ``|s|`` is the radius of the circle of confusion, ``s > 0`` for points
nearer than the focus plane, ``s < 0`` for points farther (:func:`thin_lens_radius`). Increasing ``s`` means
nearer, which is the order in which layers occlude each other.

:func:`render_defocus` renders it by depth layers (the layered model of Hasinoff & Kutulakos 2007 and of
DPDD-style synthesis): the signed radii are placed on a grid of layers ``layer_spacing`` px apart, each pixel is
split between its two neighbouring layers by linear interpolation (the weights sum to 1: no seams between adjacent
layers, and a radius between two layers renders as a blend of their two disks), and the layers are blurred and
composited far to near with the *over* operator, normalised by the accumulated coverage::

    C <- C (1 - A_l) + D_l * (w_l x),   a <- a (1 - A_l) + A_l,   A_l = D_l * w_l;      result C / a

so a blurred foreground spreads over the background and hides it (occlusion), while the split of one smooth surface
between two layers neither darkens nor brightens it (the normalisation; ``tests`` check a ramp for bands). A constant
map is exactly the uniform disk blur. Lens aberrations (:class:`LensAberration`) reshape every layer's disk.

:func:`random_depth_maps` and :class:`DefocusMapGenerator` draw scenes for training (seeded and batched like the
kernel generators): a tilted background plane with a smooth relief, and occluding objects with sharp edges.

Example:
    >>> import torch
    >>> x = torch.rand(1, 3, 32, 32)
    >>> s = torch.linspace(-3, 3, 32).expand(1, 1, 32, 32)      # a ramp: far on the left, near on the right
    >>> render_defocus(x, s).shape
    torch.Size([1, 3, 32, 32])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError
from .conv import conv2d
from .kernels import _defocus_batch, gaussian_kernel

__all__ = ["LensAberration", "DefocusMapGenerator", "DefocusPipeline", "aberrated_disk", "random_depth_maps", "render_defocus",
           "thin_lens_radius"]

_F64 = torch.float64
_SUB = 8  # sub-samples per pixel side for aberrated (elliptical) disks


def thin_lens_radius(depth, focus: float, focal_length_mm: float = 50.0, f_number: float = 2.8,
                     pixel_pitch_mm: float = 0.006):
    """Signed circle-of-confusion radius in pixels of points at ``depth`` (metres, tensor or float) for a thin lens
    focused at ``focus`` metres: ``c = A f (d_f - d) / (d (d_f - f))``, ``A = f / N`` the aperture diameter; radius
    ``c / 2`` over the pixel pitch; ``> 0`` nearer than the focus plane, ``< 0`` farther, 0 on it."""
    f = focal_length_mm / 1000.0
    if not (f > 0 and f_number > 0 and pixel_pitch_mm > 0):
        raise InputError("thin lens: focal_length_mm, f_number and pixel_pitch_mm must be > 0")
    if not focus > f:
        raise InputError(f"thin lens: the focus distance {focus} m must exceed the focal length {f} m")
    d = torch.as_tensor(depth)
    if bool((d <= f).any()):
        raise InputError(f"thin lens: every depth must exceed the focal length {f} m")
    c = (f / f_number) * f * (focus - d) / (d * (focus - f))
    return c / 2 / (pixel_pitch_mm / 1000.0)


@dataclass(frozen=True)
class LensAberration:
    """Departures of a real lens from the ideal disk, applied to every layer's PSF.

    ``gaussian_sigma``: pixels of Gaussian blur on top of the disk (spherical aberration, diffraction, the sensor).
    ``astigmatism``: the disk becomes an ellipse with semi-axes ``r (1 + a)`` and ``r (1 - a)`` (``0 <= a < 0.5``),
    its long axis at ``angle`` radians.
    """

    gaussian_sigma: float = 0.0
    astigmatism: float = 0.0
    angle: float = 0.0

    def __post_init__(self):
        if not (self.gaussian_sigma >= 0 and math.isfinite(self.gaussian_sigma)):
            raise InputError(f"lens aberration: gaussian_sigma must be >= 0, got {self.gaussian_sigma}")
        if not 0 <= self.astigmatism < 0.5:
            raise InputError(f"lens aberration: astigmatism must be in [0, 0.5), got {self.astigmatism}")

    @property
    def ideal(self) -> bool:
        return self.gaussian_sigma == 0 and self.astigmatism == 0

    def margin(self, radius: float) -> int:
        """Extra half-size a PSF of ``radius`` needs."""
        return math.ceil(radius * self.astigmatism + 3 * self.gaussian_sigma)


def aberrated_disk(radius: float, size: int, aberration: LensAberration | None = None) -> torch.Tensor:
    """The PSF of one layer, ``(size, size)`` float64, sum 1: the anti-aliased disk of ``physics.defocus_kernel``
    (ideal lens), else an elliptical disk (sub-sampled coverage) convolved with a Gaussian."""
    if aberration is None or aberration.ideal:
        k = _defocus_batch(torch.tensor([float(radius)], dtype=_F64), size)[0]
        return k / k.sum()
    c = size // 2
    t = (torch.arange(size * _SUB, dtype=_F64) + 0.5) / _SUB - 0.5 - c
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    cos, sin = math.cos(aberration.angle), math.sin(aberration.angle)
    u, v = cos * xx + sin * yy, -sin * xx + cos * yy
    ra, rb = max(radius * (1 + aberration.astigmatism), 1e-6), max(radius * (1 - aberration.astigmatism), 1e-6)
    inside = ((u / ra) ** 2 + (v / rb) ** 2 <= 1).to(_F64)
    k = inside.reshape(size, _SUB, size, _SUB).mean((1, 3))
    if float(k.sum()) == 0:  # below a sub-sample: a point
        k[c, c] = 1.0
    if aberration.gaussian_sigma > 0:
        g = gaussian_kernel(aberration.gaussian_sigma, size=2 * math.ceil(3 * aberration.gaussian_sigma) + 1,
                            dtype=_F64)
        k = conv2d(k[None, None], g, "zeros")[0, 0]
    return k / k.sum()


def _layer_grid(s: torch.Tensor, spacing: float) -> torch.Tensor:
    lo, hi = float(s.min()), float(s.max())
    n = max(1, math.ceil((hi - lo) / spacing - 1e-9) + 1)
    return torch.linspace(lo, hi, n, dtype=_F64) if n > 1 else torch.tensor([lo], dtype=_F64)


def render_defocus(image: torch.Tensor, radius: torch.Tensor, *, layer_spacing: float = 0.5,
                   aberration: LensAberration | None = None, mode: str = "reflect") -> torch.Tensor:
    """Blur ``image`` (B, C, H, W) by the signed blur-radius map ``radius`` ((B | 1, 1, H, W) or (H, W), pixels;
    module doc): layered, occlusion-aware, seamless. ``layer_spacing``: pixels between layer radii (0.5 keeps a
    blend of two neighbouring disks close to the disk between them). ``mode``: the image boundary
    (:func:`~unblur.physics.conv2d`). Differentiable in ``image``."""
    if not torch.is_tensor(image) or image.ndim != 4 or not image.is_floating_point():
        raise InputError(f"render_defocus: image must be a floating tensor (B, C, H, W), got {getattr(image, 'shape', image)}")
    s = torch.as_tensor(radius, device=image.device)
    if s.ndim == 2:
        s = s[None, None]
    B, C, H, W = image.shape
    if s.ndim != 4 or s.shape[1] != 1 or s.shape[0] not in (1, B) or tuple(s.shape[-2:]) != (H, W):
        raise InputError(f"render_defocus: radius map must be (H, W) or (B or 1, 1, H, W) for an image {B}x{C}x{H}x{W}, "
                         f"got {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()):
        raise InputError("render_defocus: the radius map has NaN or infinite values")
    if not layer_spacing > 0:
        raise InputError(f"render_defocus: layer_spacing must be > 0, got {layer_spacing}")
    s = s.to(image.dtype)
    grid = _layer_grid(s, layer_spacing)
    step = float(grid[1] - grid[0]) if len(grid) > 1 else 1.0
    pos = (s - float(grid[0])) / step  # fractional layer index of every pixel
    r_max = float(grid.abs().max())
    half = math.ceil(r_max) + (aberration.margin(r_max) if aberration else 0)
    size = 2 * half + 1
    if size > min(H, W) and mode == "reflect":
        mode = "replicate"  # reflect padding needs the image larger than the kernel
    acc = alpha = None
    for i, r in enumerate(grid.tolist()):  # far (most negative) to near
        w = torch.relu(1 - (pos - i).abs())
        if not bool((w > 0).any()):
            continue
        k = aberrated_disk(abs(r), size, aberration).to(device=image.device, dtype=image.dtype)
        blurred = conv2d(torch.cat([image * w, w.expand(B, 1, H, W)], 1), k, mode)
        layer, cover = blurred[:, :C], blurred[:, C:].clamp(0, 1)
        acc = layer if acc is None else acc * (1 - cover) + layer
        alpha = cover if alpha is None else alpha * (1 - cover) + cover
    return acc / alpha.clamp_min(1e-6)


def _smooth_field(n: int, shape, cells: int, generator) -> torch.Tensor:
    coarse = torch.randn(n, 1, cells, cells, generator=generator, dtype=_F64)
    return F.interpolate(coarse, size=shape, mode="bicubic", align_corners=True)


def random_depth_maps(batch_size: int, shape: tuple[int, int], *, near: float = 0.5, far: float = 20.0,
                      max_objects: int = 3, generator: torch.Generator | None = None, device=None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random scenes' depth maps (B, 1, H, W) in metres within [near, far]: a tilted background plane (linear in
    inverse depth, as a plane projects) with a smooth relief, and up to ``max_objects`` occluding objects (ellipses
    and rectangles, each a plane of its own, nearer than what they cover) with sharp edges."""
    if not 0 < near < far:
        raise InputError(f"random depth maps: need 0 < near < far, got near={near}, far={far}")
    H, W = (int(v) for v in shape)
    n = int(batch_size)
    inv_near, inv_far = 1 / near, 1 / far
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H, dtype=_F64), torch.linspace(-1, 1, W, dtype=_F64), indexing="ij")
    u = lambda *s: torch.rand(*s, generator=generator, dtype=_F64)  # noqa: E731
    span = inv_near - inv_far
    # background: inverse depth in the farther half of the range, tilted, with a smooth relief
    base = inv_far + span * (0.05 + 0.4 * u(n, 1, 1, 1))
    tilt = span * 0.15 * (2 * u(n, 2, 1, 1) - 1)
    inv = base + tilt[:, :1] * xx + tilt[:, 1:] * yy + span * 0.05 * _smooth_field(n, (H, W), 4, generator)
    count = torch.randint(0, max_objects + 1, (n,), generator=generator)
    for b in range(n):
        for _ in range(int(count[b])):
            cy, cx, ry, rx, depth, kind = u(6).tolist()
            cy, cx = 2 * cy - 1, 2 * cx - 1
            ry, rx = 0.15 + 0.45 * ry, 0.15 + 0.45 * rx
            if kind < 0.5:
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            else:
                mask = ((yy - cy).abs() <= ry) & ((xx - cx).abs() <= rx)
            level = float(inv[b, 0][mask].max()) if bool(mask.any()) else float(base[b])
            obj = level + (inv_near - level) * (0.1 + 0.8 * depth)  # nearer than everything it covers
            slope = span * 0.05 * (2 * u(2) - 1)
            inv[b, 0] = torch.where(mask, obj + slope[0] * xx + slope[1] * yy, inv[b, 0])
    depth = 1 / inv.clamp(inv_far, inv_near)
    return depth.to(device=device, dtype=dtype)


class DefocusMapGenerator:
    """Random spatially varying defocus for training: ``gen(batch, (H, W), generator=g)`` -> ``dict(depth,
    radius)``, both (B, 1, H, W). Depth maps from :func:`random_depth_maps`; the focus distance is drawn inside the
    scene (uniform in inverse depth); signed radii follow the thin lens, ``s = c (1 / d - 1 / d_f)``, with ``c``
    scaled so that the largest ``|s|`` of each map is uniform in ``max_radius_range`` pixels."""

    def __init__(self, max_radius_range: tuple[float, float] = (2.0, 8.0), near: float = 0.5, far: float = 20.0,
                 max_objects: int = 3):
        lo, hi = (float(v) for v in max_radius_range)
        if not 0 < lo <= hi:
            raise InputError(f"defocus map generator: max_radius_range must be 0 < low <= high, got {max_radius_range}")
        self.max_radius_range, self.near, self.far, self.max_objects = (lo, hi), near, far, int(max_objects)

    def __call__(self, batch_size: int, shape: tuple[int, int], *, generator: torch.Generator | None = None,
                 device=None, dtype: torch.dtype = torch.float32) -> dict:
        depth = random_depth_maps(batch_size, shape, near=self.near, far=self.far, max_objects=self.max_objects,
                                  generator=generator, dtype=_F64)
        n = depth.shape[0]
        inv = 1 / depth
        lo_inv, hi_inv = inv.amin((1, 2, 3), keepdim=True), inv.amax((1, 2, 3), keepdim=True)
        focus_inv = lo_inv + (hi_inv - lo_inv) * torch.rand(n, 1, 1, 1, generator=generator, dtype=_F64)
        s = inv - focus_inv
        target = self.max_radius_range[0] + (self.max_radius_range[1] - self.max_radius_range[0]) * torch.rand(
            n, 1, 1, 1, generator=generator, dtype=_F64)
        s = s * target / s.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-12)
        return {"depth": depth.to(device=device, dtype=dtype), "radius": s.to(device=device, dtype=dtype)}

    def __repr__(self) -> str:
        return (f"DefocusMapGenerator(max_radius_range={self.max_radius_range}, near={self.near}, far={self.far}, "
                f"max_objects={self.max_objects})")


class DefocusPipeline:
    """Sharp patches -> defocused training pairs with their blur-radius maps (the defocus counterpart of
    :class:`~unblur.physics.pipeline.DegradationPipeline`, ``valid``-like).

    Each image is, with probability ``uniform_prob``, blurred by one disk of radius uniform in ``radius_range``
    (a flat scene), else by a random scene's spatially varying map (:class:`DefocusMapGenerator`, largest radius
    uniform in ``radius_range``), rendered by :func:`render_defocus` through ``aberration`` or, with probability
    ``aberration_prob`` per image, a random lens (:class:`LensAberration`: Gaussian sigma uniform in [0, 1] px,
    astigmatism in [0, 0.25], any angle; real lenses are not ideal disks); then ``noise`` (a Gaussian sigma, a
    ``(low, high)`` range, or a callable) and a crop of ``margin`` pixels on every side (default
    ``ceil(radius_range[1])``: the rendering's boundary never shows). Returns ``dict(blurred, sharp, radius)``,
    ``radius`` the unsigned map ``|s|`` (B, 1, h, w) (one photo cannot tell in front of the focus plane from
    behind it). Random draws come from ``generator`` in a fixed order: same seed, same batch.

    >>> import torch
    >>> out = DefocusPipeline((1.0, 4.0))(torch.rand(2, 3, 40, 40), generator=torch.Generator().manual_seed(0))
    >>> out["blurred"].shape, out["radius"].shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2, 1, 32, 32]))
    """

    def __init__(self, radius_range: tuple[float, float] = (1.0, 8.0), uniform_prob: float = 0.5, noise=None,
                 margin: int | None = None, aberration: LensAberration | None = None, aberration_prob: float = 0.0):
        from .noise import GaussianNoise

        lo, hi = (float(v) for v in radius_range)
        if not 0 <= lo <= hi or hi <= 0:
            raise InputError(f"defocus pipeline: radius_range must be 0 <= low <= high, high > 0, got {radius_range}")
        if not 0 <= uniform_prob <= 1:
            raise InputError(f"defocus pipeline: uniform_prob must be in [0, 1], got {uniform_prob}")
        self.radius_range, self.uniform_prob = (lo, hi), float(uniform_prob)
        self.noise = noise if (noise is None or callable(noise)) else GaussianNoise(noise)
        self.margin = math.ceil(hi) if margin is None else int(margin)
        if not 0 <= aberration_prob <= 1:
            raise InputError(f"defocus pipeline: aberration_prob must be in [0, 1], got {aberration_prob}")
        if aberration_prob > 0 and aberration is not None:
            raise InputError("defocus pipeline: give a fixed aberration or aberration_prob, not both")
        self.aberration, self.aberration_prob = aberration, float(aberration_prob)
        self.maps = DefocusMapGenerator((max(lo, 0.5), hi))

    def __call__(self, sharp: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        if not torch.is_tensor(sharp) or sharp.ndim != 4 or not sharp.is_floating_point():
            raise InputError(f"defocus pipeline expects floating-point images (B, C, H, W), got "
                             f"{getattr(sharp, 'shape', type(sharp))}")
        B, C, H, W = sharp.shape
        m = self.margin
        if H <= 2 * m or W <= 2 * m:
            raise InputError(f"defocus pipeline: images of {H}x{W} are too small for a {m} px margin")
        uniform = torch.rand(B, generator=generator) < self.uniform_prob
        lo, hi = self.radius_range
        flat = lo + (hi - lo) * torch.rand(B, generator=generator, dtype=_F64)
        scenes = self.maps(B, (H, W), generator=generator, dtype=_F64)["radius"]
        s = torch.where(uniform[:, None, None, None], flat[:, None, None, None].expand(B, 1, H, W), scenes)
        s = s.to(device=sharp.device, dtype=sharp.dtype)
        lenses = [self.aberration] * B
        if self.aberration_prob > 0:  # drawn only when asked: the ideal-lens stream stays as it was
            u = torch.rand(B, 4, generator=generator, dtype=_F64).tolist()
            lenses = [LensAberration(gaussian_sigma=a, astigmatism=0.25 * b, angle=math.pi * c)
                      if p < self.aberration_prob else None for p, a, b, c in u]
        blurred = torch.cat([render_defocus(sharp[i:i + 1], s[i:i + 1], aberration=lenses[i]) for i in range(B)])
        if self.noise is not None:
            blurred = self.noise(blurred, generator=generator)
        crop = (..., slice(m, H - m), slice(m, W - m))
        return {"blurred": blurred.clamp(0, 1)[crop], "sharp": sharp[crop], "radius": s.abs()[crop]}

    def __repr__(self) -> str:
        return (f"DefocusPipeline(radius_range={self.radius_range}, uniform_prob={self.uniform_prob}, "
                f"noise={self.noise!r}, margin={self.margin})")
