"""Non-uniform camera shake: a random camera rotation during the exposure, rendered as an average of
homographies in linear light, so the blur varies across the frame as it does in real photos (Whyte et al.
2012: a rotating camera turns the scene by ``H = K R K^-1``; translation matters little for distant scenes).

- :class:`CameraShakeGenerator` draws trajectories: (n, knots, 3) yaw, pitch and roll angles, a random walk
  with inertia, centred so that the middle of the exposure is the reference pose (the sharp target), and
  scaled so that the image centre travels ``extent`` pixels (drawn per trajectory) at the given focal length.
- :func:`render_shake` averages the warped frames along a trajectory (sampled finely enough that no point
  jumps more than about a pixel between frames), with an optional moving foreground layer (object motion).
- :class:`ShakePipeline` composes it with the camera's other effects (linear light, saturated highlights,
  Poisson-Gaussian noise, JPEG) into training pairs, like :class:`~unblur.physics.DegradationPipeline` does
  for uniform kernels.

Conventions: ``focal`` is the focal length in pixels of the rendered image; ``center`` its principal point
(x, y) in pixels (default: the image centre; a crop of a larger photo has it elsewhere). The returned images
are the central crop of the rendered window, ``margin`` pixels in from each side, so that no frame samples
outside the window (the scene beyond the frame enters, as in a camera).

Example:
    >>> import torch
    >>> from unblur.physics.camera_shake import CameraShakeGenerator, render_shake
    >>> g = torch.Generator().manual_seed(0)
    >>> traj = CameraShakeGenerator(extent=(8, 8), focal=100.0)(2, generator=g)
    >>> traj.shape
    torch.Size([2, 8, 3])
    >>> out = render_shake(torch.rand(2, 3, 48, 48, generator=g), traj, focal=100.0, margin=12)
    >>> out.shape
    torch.Size([2, 3, 24, 24])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError
from .color import linear_to_srgb, srgb_to_linear
from .degradations import jpeg
from .noise import PoissonGaussianNoise

__all__ = ["CameraShakeGenerator", "shake_homographies", "render_shake", "center_path_extent", "max_travel",
           "ShakePipeline"]


def _uniform(lo: float, hi: float, n: int, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


class CameraShakeGenerator:
    """Random camera-rotation trajectories, (n, knots, 3) radians (yaw, pitch, roll).

    Args:
        extent: (low, high) pixels the image centre travels (the blur's length there), drawn per trajectory.
        focal: focal length in pixels (the rotation that moves the centre by ``extent`` depends on it).
        knots: time samples of the walk (the renderer interpolates between them).
        roll: (low, high) in-plane rotation, as the extra travel it gives a point ``focal`` pixels from the
            centre, relative to ``extent`` (0: uniform-looking blur; 1: a point that far moves twice as far).
        inertia: in [0, 1): how much of its velocity the walk keeps from knot to knot (higher: smoother paths).
    """

    def __init__(self, extent=(4.0, 60.0), focal: float = 1000.0, knots: int = 8, roll=(0.0, 0.5),
                 inertia: float = 0.7):
        lo, hi = (float(v) for v in extent)
        if not 0 <= lo <= hi:
            raise InputError(f"camera shake extent must be (low, high) pixels with 0 <= low <= high, got {extent}")
        r_lo, r_hi = (float(v) for v in roll)
        if not 0 <= r_lo <= r_hi:
            raise InputError(f"camera shake roll must be (low, high) with 0 <= low <= high, got {roll}")
        if not focal > 0:
            raise InputError(f"camera shake focal length must be > 0 pixels, got {focal}")
        if int(knots) < 2:
            raise InputError(f"camera shake needs knots >= 2, got {knots}")
        if not 0 <= inertia < 1:
            raise InputError(f"camera shake inertia must be in [0, 1), got {inertia}")
        self.extent, self.roll, self.focal = (lo, hi), (r_lo, r_hi), float(focal)
        self.knots, self.inertia = int(knots), float(inertia)

    def __call__(self, n: int, *, generator: torch.Generator | None = None, device=None,
                 dtype=torch.float32) -> torch.Tensor:
        T = self.knots
        steps = torch.randn(n, T, 3, generator=generator, dtype=torch.float64)
        vel = torch.zeros(n, 3, dtype=torch.float64)
        path = torch.zeros(n, T, 3, dtype=torch.float64)
        for t in range(1, T):
            vel = self.inertia * vel + (1 - self.inertia) * steps[:, t]
            path[:, t] = path[:, t - 1] + vel
        path = path - path[:, (T - 1) // 2: (T - 1) // 2 + 1]  # the middle of the exposure is the reference pose
        # scale yaw/pitch so that the centre travels `extent` px; roll so that a point `focal` px out travels
        # `roll * extent` px more
        span = center_path_extent(path[..., :2]).clamp_min(1e-12)
        length = _uniform(*self.extent, n, generator)
        path[..., :2] *= (length / (self.focal * span))[:, None, None]
        roll_span = (path[..., 2].amax(1) - path[..., 2].amin(1)).clamp_min(1e-12)
        path[..., 2] *= (_uniform(*self.roll, n, generator) * length / (self.focal * roll_span))[:, None]
        return path.to(device=device, dtype=dtype)

    def __repr__(self) -> str:
        return (f"CameraShakeGenerator(extent={self.extent}, focal={self.focal}, knots={self.knots}, "
                f"roll={self.roll}, inertia={self.inertia})")


def center_path_extent(angles: torch.Tensor) -> torch.Tensor:
    """Largest distance between two points of the (yaw, pitch) path ``angles`` (n, T, 2), in radians
    (times the focal length: the pixels the image centre travels, to first order)."""
    d = angles[:, :, None, :] - angles[:, None, :, :]
    return d.square().sum(-1).sqrt().flatten(1).amax(1)


def _rotations(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of (yaw, pitch, roll) angles (..., 3): R = Rz(roll) Ry(yaw) Rx(pitch)."""
    yaw, pitch, roll = angles.unbind(-1)
    c, s = torch.cos, torch.sin
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    rx = torch.stack([one, zero, zero, zero, c(pitch), -s(pitch), zero, s(pitch), c(pitch)], -1)
    ry = torch.stack([c(yaw), zero, s(yaw), zero, one, zero, -s(yaw), zero, c(yaw)], -1)
    rz = torch.stack([c(roll), -s(roll), zero, s(roll), c(roll), zero, zero, zero, one], -1)
    shape = angles.shape[:-1] + (3, 3)
    return rz.view(shape) @ ry.view(shape) @ rx.view(shape)


def shake_homographies(angles: torch.Tensor, focal: float, center) -> torch.Tensor:
    """``K R K^-1`` (..., 3, 3) for rotations ``angles`` (..., 3), focal length ``focal`` px, principal point
    ``center`` (x, y) px: maps a pixel of the reference view to where the rotated camera sees that ray."""
    cx, cy = (float(v) for v in center)
    K = angles.new_tensor([[focal, 0, cx], [0, focal, cy], [0, 0, 1]])
    K_inv = angles.new_tensor([[1 / focal, 0, -cx / focal], [0, 1 / focal, -cy / focal], [0, 0, 1]])
    return K @ _rotations(angles) @ K_inv


def _fine_path(angles: torch.Tensor, samples: int) -> torch.Tensor:
    """Linear interpolation of knots (T, 3) to ``samples`` evenly spaced times (samples, 3)."""
    T = angles.shape[0]
    t = torch.linspace(0, T - 1, samples, dtype=angles.dtype, device=angles.device)
    i0 = t.floor().long().clamp(max=T - 2)
    w = (t - i0.to(t.dtype))[:, None]
    return angles[i0] * (1 - w) + angles[i0 + 1] * w


def _samples_needed(angles: torch.Tensor, focal: float, radius: float, max_samples: int) -> int:
    """Frames so that no point within ``radius`` px of the centre moves more than ~1 px between frames."""
    step = (angles[1:] - angles[:-1]).abs()
    move = focal * (step[:, 0] + step[:, 1]) + radius * step[:, 2] + (radius ** 2 / focal) * (step[:, 0] + step[:, 1])
    return int(min(max_samples, max(2, math.ceil(float(move.sum())) + 1)))


def render_shake(image: torch.Tensor, angles: torch.Tensor, *, focal: float, margin: int, center=None,
                 foreground: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                 object_motion: torch.Tensor | None = None, max_samples: int = 200) -> torch.Tensor:
    """Average of ``image`` (B, C, H, W), linear light, seen along the trajectories ``angles`` (B, T, 3).

    ``center``: principal point (x, y) in pixels of ``image`` (default its centre). ``margin``: pixels cut
    from each side of the result (B, C, H - 2 margin, W - 2 margin); it must exceed the largest motion.
    Object motion: a ``foreground`` layer (B, C, H, W) with its alpha ``mask`` (B, 1, H, W) is moved, on top
    of the camera's motion, by ``object_motion`` (B, T, 2) pixels (dx, dy; zero at the middle knot), and
    composited over the background in every frame. Bilinear sampling, ``align_corners=True``.
    """
    if image.ndim != 4 or angles.ndim != 3 or angles.shape[0] != image.shape[0] or angles.shape[-1] != 3:
        raise InputError(f"render_shake expects images (B, C, H, W) and angles (B, T, 3), got "
                         f"{tuple(image.shape)} and {tuple(angles.shape)}")
    B, C, H, W = image.shape
    if (foreground is None) != (mask is None):
        raise InputError("render_shake: a foreground layer needs its alpha mask, and a mask its foreground")
    if not 0 <= margin < min(H, W) / 2:
        raise InputError(f"render_shake: margin {margin} leaves nothing of a {H}x{W} image")
    cx, cy = ((W - 1) / 2, (H - 1) / 2) if center is None else (float(center[0]), float(center[1]))
    radius = math.hypot(max(cx, W - 1 - cx), max(cy, H - 1 - cy))
    h, w = H - 2 * margin, W - 2 * margin
    ys, xs = torch.meshgrid(torch.arange(margin, margin + h, dtype=torch.float64),
                            torch.arange(margin, margin + w, dtype=torch.float64), indexing="ij")
    pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)  # (h*w, 3)
    scale = torch.tensor([2 / max(W - 1, 1), 2 / max(H - 1, 1)], dtype=torch.float64)
    out = []
    for b in range(B):
        a = angles[b].double().cpu()
        obj = None if object_motion is None else object_motion[b].double().cpu()
        n = _samples_needed(a, focal, radius, max_samples)
        if obj is not None:  # the object's own travel also needs fine enough frames
            travel = float((obj[1:] - obj[:-1]).norm(dim=-1).sum())
            n = int(min(max_samples, max(n, math.ceil(travel) + 1)))
        fine = _fine_path(a, n)
        Hs = shake_homographies(fine, focal, (cx, cy))  # (n, 3, 3)
        src = pix @ Hs.transpose(-1, -2)  # (n, h*w, 3)
        src = src[..., :2] / src[..., 2:]
        grid = (src * scale - 1).view(n, h, w, 2).to(image.dtype).to(image.device)
        frames = F.grid_sample(image[b:b + 1].expand(n, -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=True)
        if foreground is not None:
            shift = _fine_path(torch.cat([obj, torch.zeros_like(obj[:, :1])], -1), n)[:, :2] if obj is not None \
                else torch.zeros(n, 2, dtype=torch.float64)
            grid_fg = ((src - shift[:, None, :]) * scale - 1).view(n, h, w, 2).to(image.dtype).to(image.device)
            layer = torch.cat([foreground[b:b + 1] * mask[b:b + 1], mask[b:b + 1]], 1).expand(n, -1, -1, -1)
            moved = F.grid_sample(layer, grid_fg, mode="bilinear", padding_mode="zeros", align_corners=True)
            frames = frames * (1 - moved[:, C:]) + moved[:, :C]
        out.append(frames.mean(0, keepdim=True))
    return torch.cat(out)


def max_travel(angles: torch.Tensor, focal: float, center, size, margin: int) -> float:
    """Largest distance (px) a corner of the output window (``size`` minus ``margin`` on each side) moves
    from its reference position at any knot of ``angles`` (T, 3)."""
    H, W = size
    corners = torch.tensor([[margin, margin, 1], [W - 1 - margin, margin, 1], [margin, H - 1 - margin, 1],
                            [W - 1 - margin, H - 1 - margin, 1]], dtype=torch.float64)
    src = corners @ shake_homographies(angles.double().cpu(), focal, center).transpose(-1, -2)
    src = src[..., :2] / src[..., 2:]
    return float((src - corners[:, :2]).norm(dim=-1).max())


def _ellipse_masks(n: int, H: int, W: int, generator, device, dtype) -> torch.Tensor:
    """Soft elliptical alpha masks (n, 1, H, W): random centre, radii 10-30 % of the side, 2 px soft edge."""
    cy, cx = _uniform(0.25, 0.75, n, generator) * H, _uniform(0.25, 0.75, n, generator) * W
    ry, rx = _uniform(0.1, 0.3, n, generator) * H, _uniform(0.1, 0.3, n, generator) * W
    ys = torch.arange(H, dtype=torch.float64).view(1, H, 1)
    xs = torch.arange(W, dtype=torch.float64).view(1, 1, W)
    cy, cx, ry, rx = (v.view(-1, 1, 1) for v in (cy, cx, ry, rx))
    r = (((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2).sqrt()
    edge = 2.0 / torch.minimum(ry, rx)
    return ((1 - r) / edge + 0.5).clamp(0, 1)[:, None].to(device=device, dtype=dtype)


class ShakePipeline:
    """Sharp sRGB windows (B, C, H, W) -> ``dict(blurred=, sharp=)`` of non-uniform camera shake, both
    (B, C, H - 2 margin, W - 2 margin); what a camera does, in order:

    1. sRGB to linear light; a random exposure gain in ``saturation`` (> 1: highlights will clip);
    2. with probability ``object_prob``, a moving foreground: an elliptical piece of the window rotated by 180
       degrees (texture from elsewhere in the scene) that travels up to ``object_extent`` px on its own
       straight path;
    3. the shake (:func:`render_shake` with :class:`CameraShakeGenerator` ``(extent, focal, roll)``; the
       principal point is drawn within ``center_spread`` x the window's side of its centre, as for a crop of
       a larger photo);
    4. Poisson-Gaussian noise (shot-noise ``gain`` and read-noise ``sigma``, each a (low, high) range);
    5. clip at 1 (full well) and back to sRGB; the target is the middle of the exposure, saturated alike;
    6. JPEG with probability ``jpeg_prob`` at a quality in ``jpeg_quality``.

    ``focal`` is in pixels of the window: 1.0 x the window's long side is roughly a 35 mm lens on a crop
    of the whole photo; a smaller value makes the blur vary more across the window.
    """

    def __init__(self, margin: int, extent=(4.0, 60.0), focal=(0.5, 2.0), roll=(0.0, 0.5), center_spread: float = 1.0,
                 object_prob: float = 0.3, object_extent=(0.0, 30.0), saturation=(1.0, 1.5), noise_gain=(0.0, 0.002),
                 noise_sigma=(0.0, 0.005), jpeg_prob: float = 0.3, jpeg_quality=(70, 95)):
        for name, p in (("object_prob", object_prob), ("jpeg_prob", jpeg_prob)):
            if not 0 <= p <= 1:
                raise InputError(f"shake pipeline: {name} must be a probability in [0, 1], got {p}")
        CameraShakeGenerator(extent, 1.0, roll=roll)  # the same checks of extent and roll, at construction
        if not 0 < float(focal[0]) <= float(focal[1]):
            raise InputError(f"shake pipeline: focal must be (low, high) with 0 < low <= high, got {focal}")
        if extent[1] + 1 > margin:
            raise InputError(f"shake pipeline: margin {margin} px must exceed the largest extent {extent[1]} px")
        self.margin, self.extent, self.focal, self.roll = int(margin), tuple(extent), tuple(focal), tuple(roll)
        self.center_spread, self.object_prob, self.object_extent = float(center_spread), float(object_prob), \
            tuple(object_extent)
        self.saturation, self.noise_gain, self.noise_sigma = tuple(saturation), tuple(noise_gain), tuple(noise_sigma)
        self.jpeg_prob, self.jpeg_quality = float(jpeg_prob), tuple(jpeg_quality)

    def __call__(self, sharp: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        B, C, H, W = sharp.shape
        m = self.margin
        x = srgb_to_linear(sharp.double()) * _uniform(*self.saturation, B, generator).view(B, 1, 1, 1)
        side = max(H, W)
        blurred, targets = [], []
        for b in range(B):
            focal = float(_uniform(*self.focal, 1, generator)) * side
            gen = CameraShakeGenerator(self.extent, focal, roll=self.roll)
            angles = gen(1, generator=generator, dtype=torch.float64)
            off = (torch.rand(2, generator=generator, dtype=torch.float64) - 0.5) * self.center_spread * side
            center = ((W - 1) / 2 + float(off[0]), (H - 1) / 2 + float(off[1]))
            # a strong roll far from the principal point can move a corner beyond the margin: scale it back
            travel = max_travel(angles[0], focal, center, (H, W), m)
            if travel > m - 1:
                angles = angles * ((m - 1) / travel)
            fg = mask = motion = None
            img = x[b:b + 1]
            if float(torch.rand(1, generator=generator)) < self.object_prob:
                mask = _ellipse_masks(1, H, W, generator, x.device, x.dtype)
                fg = img.flip(-2, -1)  # another part of the scene as the object's texture (no seam)
                length = float(_uniform(*self.object_extent, 1, generator))
                theta = float(_uniform(0, 2 * math.pi, 1, generator))
                t = torch.linspace(-0.5, 0.5, gen.knots, dtype=torch.float64)
                t = t - t[(gen.knots - 1) // 2]  # zero at the middle knot: the target shows the object there
                motion = (t[:, None] * length * torch.tensor([math.cos(theta), math.sin(theta)],
                                                             dtype=torch.float64))[None]
            out = render_shake(img, angles, focal=focal, margin=m, center=center, foreground=fg, mask=mask,
                               object_motion=motion)
            target = img if fg is None else img * (1 - mask) + fg * mask
            blurred.append(out)
            targets.append(target[..., m:H - m, m:W - m])
        blurred, target = torch.cat(blurred), torch.cat(targets)
        noise = PoissonGaussianNoise(gain=self.noise_gain, sigma=self.noise_sigma)
        blurred = noise(blurred, generator=generator)
        blurred = linear_to_srgb(blurred.clamp(0, 1))
        target = linear_to_srgb(target.clamp(0, 1))
        out = []
        for b in range(B):
            if float(torch.rand(1, generator=generator)) < self.jpeg_prob:
                q = int(torch.randint(self.jpeg_quality[0], self.jpeg_quality[1] + 1, (1,), generator=generator))
                out.append(jpeg(blurred[b:b + 1], q))
            else:
                out.append(blurred[b:b + 1])
        return {"blurred": torch.cat(out).to(sharp.dtype), "sharp": target.to(sharp.dtype)}

    def __repr__(self) -> str:
        return (f"ShakePipeline(margin={self.margin}, extent={self.extent}, focal={self.focal}, roll={self.roll}, "
                f"object_prob={self.object_prob}, saturation={self.saturation}, jpeg_prob={self.jpeg_prob})")
