"""DeepRFTv2 (Mao et al., arXiv 2511.21132): kernel-level learning with a Fourier Kernel Estimator (FKE) inside a
Decoupled Multi-Scale UNet (DMS-UNet) made of two RevCol-style reversible columns.

Pieces (design choices where the paper note is silent are listed in ``docs/models/deeprftv2.md``):

- :class:`VisualScanBranch` (EVSSM's visual scan): Linear -> split (x, z); depthwise 3x3 + GELU on x; one raster
  scan of a selective SSM with input-dependent ``delta``, ``B``, ``C``; LayerNorm; ``y * GELU(z)``; Linear.
  The scan is :func:`unblur.models.selective_scan.selective_scan` (pure PyTorch; mamba_ssm's kernel on CUDA
  when installed).
- :class:`NAFEVSBlock`: a NAFBlock whose gated features also go through a visual-scan branch, mixed as
  ``x_local * l_local + x_global * l_global`` (``l_global`` starts at 0). Consecutive blocks scan in different
  directions (raster, transposed, flipped, flipped+transposed).
- :class:`FourierKernelEstimator`: predicts one complex transfer function per feature channel from the
  spectrum of the features, multiplies the features' spectrum with it, and fuses the result with the input
  feature. Per-window estimation: non-overlapping windows in training, overlapping windows with linear
  blending at inference (:func:`unblur.inference.tiling.windowed_apply`, the one tiler's window mode).
- :class:`DMSUNet`: full- and half-scale sub-UNets with cross-scale fusion, each column a
  :class:`unblur.models.reversible.ReversibleColumn`.
- :class:`DeepRFTv2`: the registered model (``deeprftv2-tiny``, ``-small``, ``-paper``).

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("deeprftv2-tiny").eval()
    >>> with torch.no_grad():
    ...     y = net(torch.rand(1, 3, 37, 45))
    ...     f = net.estimate_filters(torch.rand(1, 3, 37, 45), size=15)
    >>> tuple(y.shape), tuple(f.shape), net.estimate_kernels(torch.rand(1, 3, 37, 45)) is None
    ((1, 3, 37, 45), (1, 1, 15, 15), True)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inference.tiling import is_channels_last, windowed_apply
from ..physics.fft import irfft2, otf2psf, rfft2
from ..physics.kernels import project_kernel
from .base import RestorationModel, downscale, pad_to_multiple
from .blocks import Downsample, LayerNorm2d, NAFBlock, Upsample, norm_conv1x1
from .registry import register_model, register_weights
from .reversible import ReversibleColumn
from .selective_scan import selective_scan

__all__ = [
    "VisualScanBranch",
    "NAFEVSBlock",
    "FourierKernelEstimator",
    "DMSUNet",
    "DeepRFTv2",
]


# ----------------------------------------------------------------------------------------------------------
# Visual scan
# ----------------------------------------------------------------------------------------------------------


def _orient(x: torch.Tensor, direction: int) -> torch.Tensor:
    """Scan orders: 0 raster (rows), 1 transposed (columns), 2 reversed raster, 3 reversed columns."""
    if direction % 2:
        x = x.transpose(-2, -1)
    if direction % 4 >= 2:
        x = x.flip(-2, -1)
    return x


def _unorient(x: torch.Tensor, direction: int) -> torch.Tensor:
    if direction % 4 >= 2:
        x = x.flip(-2, -1)
    if direction % 2:
        x = x.transpose(-2, -1)
    return x


class VisualScanBranch(nn.Module):
    """EVSSM's visual-scan branch on a (B, C, H, W) map: one selective-SSM scan in the order ``direction``.

    Args:
        channels: input/output channels.
        d_state: SSM state size N per channel.
        expand: inner channels = ``round(expand * channels)`` (the scan's cost is proportional to them).
        dt_rank: rank of the ``delta`` projection (default ``ceil(inner / 16)``, as Mamba).
        direction: scan order (see :func:`_orient`).
        chunk_size: chunk of the pure-PyTorch scan.
    """

    def __init__(
        self,
        channels: int,
        d_state: int = 16,
        expand: float = 1.0,
        dt_rank: int | None = None,
        direction: int = 0,
        chunk_size: int = 16,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ):
        super().__init__()
        inner = max(1, round(expand * channels))
        self.inner, self.d_state, self.direction, self.chunk_size = inner, d_state, direction, chunk_size
        self.dt_rank = dt_rank or math.ceil(inner / 16)
        self.in_proj = nn.Conv2d(channels, 2 * inner, 1)
        self.dwconv = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.x_proj = nn.Conv1d(inner, self.dt_rank + 2 * d_state, 1, bias=False)
        # Mamba's initialisation: delta = softplus(W dt + b) starts log-uniform in [dt_min, dt_max].
        bound = self.dt_rank**-0.5
        self.dt_weight = nn.Parameter(torch.empty(inner, self.dt_rank).uniform_(-bound, bound))
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        # S4D-real: A[d, n] = -(n + 1), stored as log(-A).
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_norm = LayerNorm2d(inner)
        self.out_proj = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs, z = self.in_proj(x).chunk(2, dim=1)
        xs = F.gelu(self.dwconv(xs))
        xo = _orient(xs, self.direction)
        B, D, h, w = xo.shape
        u = xo.reshape(B, D, h * w)
        dt, Bm, Cm = torch.split(self.x_proj(u), [self.dt_rank, self.d_state, self.d_state], dim=1)
        delta = torch.einsum("dr,brl->bdl", self.dt_weight.to(dt.dtype), dt)
        y = selective_scan(
            u, delta, -torch.exp(self.A_log.float()), Bm, Cm, self.D.float(),
            delta_bias=self.dt_bias.float(), delta_softplus=True, chunk_size=self.chunk_size,
        )
        y = _unorient(y.reshape(B, D, h, w), self.direction)
        y = self.out_norm(y) * F.gelu(z)
        return self.out_proj(y)


class NAFEVSBlock(NAFBlock):
    """NAFBlock + visual-scan branch on the gated features: ``g * l_local + scan(g) * l_global``
    (per-channel ``l_local`` init 1, ``l_global`` init 0, so the block starts as a NAFBlock)."""

    def __init__(
        self,
        channels: int,
        d_state: int = 16,
        direction: int = 0,
        chunk_size: int = 16,
        scan_expand: float = 1.0,
        dw_expand: int = 2,
        ffn_expand: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__(channels, dw_expand=dw_expand, ffn_expand=ffn_expand, dropout=dropout)
        gated = channels * dw_expand // 2
        self.scan = VisualScanBranch(
            gated, d_state=d_state, expand=scan_expand, direction=direction, chunk_size=chunk_size
        )
        self.l_local = nn.Parameter(torch.ones(1, gated, 1, 1))
        self.l_global = nn.Parameter(torch.zeros(1, gated, 1, 1))

    def spatial_mixing(self, x: torch.Tensor) -> torch.Tensor:
        g = super().spatial_mixing(x)
        return g * self.l_local + self.scan(g) * self.l_global


class _BlockFactory:
    """Builds NAFBlocks / NAFEVSBlocks; consecutive scan blocks get consecutive scan directions."""

    def __init__(self, d_state: int, chunk_size: int, dropout: float, scan_expand: float = 1.0):
        self.d_state, self.chunk_size, self.dropout, self.scan_expand = d_state, chunk_size, dropout, scan_expand
        self.count = 0

    def __call__(self, channels: int, depth: int, scan: bool) -> nn.Sequential:
        blocks = []
        for _ in range(depth):
            if scan:
                kw = dict(direction=self.count % 4, chunk_size=self.chunk_size, scan_expand=self.scan_expand)
                blocks.append(NAFEVSBlock(channels, self.d_state, dropout=self.dropout, **kw))
                self.count += 1
            else:
                blocks.append(NAFBlock(channels, dropout=self.dropout))
        return nn.Sequential(*blocks)


# ----------------------------------------------------------------------------------------------------------
# Fourier Kernel Estimator
# ----------------------------------------------------------------------------------------------------------


def _interleaved_channels_last(X: torch.Tensor) -> torch.Tensor:
    """``[Re, Im]`` of a complex (B, C, H, W) map as a real (B, 2C, H, W) channels-last map whose channels alternate
    (Re_0, Im_0, Re_1, ...): one copy, where the concatenation ``cat([Re, Im])`` and the convolution's change of
    layout are two."""
    B, C, H, W = X.shape
    z = torch.view_as_real(X).permute(0, 2, 3, 1, 4).reshape(B, H, W, 2 * C)
    return z.permute(0, 3, 1, 2)


def _interleave(w: torch.Tensor, dim: int) -> torch.Tensor:
    """Reorder ``w``'s ``dim`` from (Re_0..Re_C-1, Im_0..Im_C-1) to (Re_0, Im_0, Re_1, ...)."""
    n = w.shape[dim] // 2
    shape = w.shape[:dim] + (2, n) + w.shape[dim + 1:]
    return w.reshape(shape).transpose(dim, dim + 1).reshape(w.shape)


class FourierKernelEstimator(nn.Module):
    """Estimates a complex transfer function (OTF) per feature channel and applies it to the features.

    For a decoder feature ``d`` (B, C, H, W):

    1. ``x = conv1x1(d)``, ``y = conv1x1(d)``;
    2. ``r = conv1x1([Re, Im](rfft2(x) / sqrt(H W)))``: C real channels on the H x (W/2+1) frequency grid
       (orthonormal scaling, so the grid values do not grow with the window size);
    3. ``R(r)``: ``levels`` residual blocks on the frequency grid (NAFEVSBlocks with ``scan=True``, else NAFBlocks),
       no downsampling; their nonlinearities act on Fourier coefficients;
    4. head ``LayerNorm -> conv1x1 (C -> 2C)`` -> ``OTF = Re + i Im`` per channel and frequency bin. The head
       starts at ``OTF = 1`` (weight 0, bias 1/0): the estimator starts as the identity filter;
    5. ``f = irfft2(rfft2(y) * OTF)`` (circular convolution of ``y`` with the kernel), output
       ``conv1x1(cat(f, d))`` (C channels). The model's 3x3 image head turns it into the 3-channel residual.

    Per-window mode (``window_size``): windows of ``window_size`` pixels, non-overlapping in training and overlapping
    by ``overlap`` pixels with linear blending in eval mode; a window at least as large as the input is the
    whole-image mode. Setting ``capture`` to a list makes ``forward`` append ``(otf, (h, w))`` for every call (the
    OTFs of all windows, stacked on the batch dimension as (B * n_windows, C, h, w//2+1)).
    """

    frequency_domain = True  # its blocks run on Fourier grids: their channel attention stays global
    # Set by RestorationModel.local_statistics on large inputs: estimate per window of this fraction of the map
    # (overlapping, blended) instead of one transfer function for the whole map, like the training crops.
    local_fraction: tuple[float, float] | None = None
    eval_group: int | None = 2  # windows per call at inference (memory; windowed_apply's ``group``)

    def __init__(
        self,
        channels: int,
        levels: int = 4,
        scan: bool = True,
        d_state: int = 16,
        chunk_size: int = 16,
        scan_expand: float = 1.0,
        window_size: int | None = None,
        overlap: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        c = channels
        self.channels, self.window_size, self.overlap = c, window_size, overlap
        self.conv_x = nn.Conv2d(c, c, 1)
        self.conv_y = nn.Conv2d(c, c, 1)
        self.freq_in = nn.Conv2d(2 * c, c, 1)
        self.R = _BlockFactory(d_state, chunk_size, dropout, scan_expand)(c, levels, scan)
        self.norm = LayerNorm2d(c)
        self.head = nn.Conv2d(c, 2 * c, 1)
        self.fuse = nn.Conv2d(2 * c, c, 1)
        self.capture: list | None = None
        self.reset_identity()

    @torch.no_grad()
    def reset_identity(self) -> None:
        """Make the predicted OTF exactly 1 (identity filter, ``f = y``) whatever the input."""
        self.head.weight.zero_()
        self.head.bias[: self.channels].fill_(1.0)
        self.head.bias[self.channels :].zero_()

    def transfer_function(self, x: torch.Tensor) -> torch.Tensor:
        """Complex OTF (B, C, H, W//2+1) predicted from the feature ``x = conv_x(d)`` (B, C, H, W)."""
        H, W = x.shape[-2:]
        X = rfft2(x) / math.sqrt(H * W)
        if is_channels_last(x):
            r = F.conv2d(_interleaved_channels_last(X).to(x.dtype), _interleave(self.freq_in.weight, 1),
                         self.freq_in.bias)
        else:
            r = self.freq_in(torch.cat([X.real, X.imag], dim=1).to(x.dtype))
        o = norm_conv1x1(self.norm, self.head, self.R(r)).float()
        return torch.complex(o[:, : self.channels], o[:, self.channels :])

    def _filtered(self, xy: torch.Tensor) -> torch.Tensor:
        """``f = irfft2(rfft2(y) * OTF(x))`` of one window (or the whole map) of ``xy = [conv_x(d), conv_y(d)]``."""
        H, W = xy.shape[-2:]
        c = self.channels
        otf = self.transfer_function(xy[:, :c])
        if self.capture is not None:
            self.capture.append((otf.detach(), (H, W)))
        f = irfft2(rfft2(xy[:, c:]) * otf, s=(H, W)).to(xy.dtype)
        # the FFT returns f in NCHW: back to the input's layout (one explicit copy)
        return f.contiguous(memory_format=torch.channels_last) if is_channels_last(xy) else f

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        c = self.channels
        # The 1x1 convolutions commute with cutting the map into windows and with the blending (linear, weights that
        # sum to one): conv_x and conv_y run once on the whole map, and the fusion conv1x1(cat(f, d)) once on the
        # merged f, instead of on every (overlapping) window
        xy = F.conv2d(d, torch.cat([self.conv_x.weight, self.conv_y.weight]),
                      torch.cat([self.conv_x.bias, self.conv_y.bias]))
        window, overlap = self.window_size, (0 if self.training else self.overlap)
        if self.local_fraction is not None:
            local = max(8, round(max(d.shape[-2] * self.local_fraction[0], d.shape[-1] * self.local_fraction[1])))
            if window is None or local < window:
                window, overlap = local, local // 4
        group = None if self.training else self.eval_group
        f = windowed_apply(self._filtered, xy, window, overlap, group=group)
        out = F.conv2d(d, self.fuse.weight[:, c:], self.fuse.bias)
        return out.add_(F.conv2d(f, self.fuse.weight[:, :c]))


# ----------------------------------------------------------------------------------------------------------
# Decoupled Multi-Scale UNet
# ----------------------------------------------------------------------------------------------------------


class _Level(nn.Module):
    """``F_j`` of a column: sum of adapted inputs (+ previous-column features), then ``body``."""

    def __init__(self, sources: Sequence[tuple[int, nn.Module | None]], body: nn.Module):
        super().__init__()
        self.src = [i for i, _ in sources]
        self.adapters = nn.ModuleList([m if m is not None else nn.Identity() for _, m in sources])
        self.body = body

    def forward(self, cur: list[torch.Tensor], prev: list[torch.Tensor]) -> torch.Tensor:
        x = None
        for i, adapter in zip(self.src, self.adapters):
            t = adapter(cur[i])
            x = t if x is None else x + t
        for p in prev:
            x = x + p
        return self.body(x)


def _downchain(c_in: int, c_out: int, steps: int) -> nn.Module:
    if steps == 0:
        return nn.Conv2d(c_in, c_out, 1)
    mods = [Downsample(c_in, c_in) for _ in range(steps - 1)] + [Downsample(c_in, c_out)]
    return nn.Sequential(*mods) if len(mods) > 1 else mods[0]


class DMSUNet(nn.Module):
    """Decoupled Multi-Scale UNet: per column a full-scale and a half-scale sub-UNet plus one FKE each.

    Levels of one column, in computation order (``k = len(channels)``; ``fe``/``fd``: full-scale encoder/decoder
    at 1/2^i, ``he``/``hd``: half-scale at 1/2^(i+1); ``hk``/``fk``: FKE features)::

        fe_0 .. fe_{k-1}   fe_i = Enc_i(down(fe_{i-1}) or stem_full)
        he_0 .. he_{k-1}   he_i = Enc_i(down(he_{i-1}) or stem_half  +  down(fe_i))         (cross-scale)
        hd_{k-1} .. hd_0   hd_i = Dec_i(up(hd_{i+1}) + he_i),  hd_{k-1} = Dec(he_{k-1})
        hk                 FKE_half(hd_0)
        fd_{k-1} .. fd_0   fd_{k-1} = Dec(fe_{k-1} + down(hk)),  fd_i = Dec_i(up(fd_{i+1}) + fe_i)   (cross-scale)
        fk                 FKE_full(fd_0)

    From the second column on, every level is ``alpha * (same level, previous column) + F`` and each encoder level
    also receives the previous column's decoder level of the same size (``fe_i`` <- ``fd_i``, ``he_i`` <- ``hd_i``):
    the reversible structure of :class:`ReversibleColumn`. Column ``t > 1`` starts from
    ``conv1x1(cat(embedding, previous FKE feature))`` at each scale.

    ``forward(x, x_half)`` returns ``[(image, scale)]``: half-scale outputs of every column (decoder image, FKE
    image), then the full-scale ones; the last is column ``T``'s full-scale FKE image.
    """

    def __init__(
        self,
        channels: Sequence[int] = (48, 96, 192),
        enc_depths: Sequence[int] = (1, 4, 8),
        dec_depths: Sequence[int] = (8, 4, 1),
        num_columns: int = 2,
        fke_levels: int = 4,
        fke_scan: bool = True,
        d_state: int = 16,
        scan_levels: Sequence[int] = (),
        scan_chunk: int = 16,
        scan_expand: float = 1.0,
        windows: Sequence[int | None] = (512, 256),
        overlaps: Sequence[int] = (128, 64),
        reversible: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        k = len(channels)
        if k < 2 or len(enc_depths) != k or len(dec_depths) != k:
            raise ValueError("DMSUNet: channels, enc_depths and dec_depths need the same length >= 2")
        C = list(channels)
        self.k, self.num_columns = k, num_columns
        names = (
            [f"fe{i}" for i in range(k)]
            + [f"he{i}" for i in range(k)]
            + [f"hd{i}" for i in reversed(range(k))]
            + ["hk"]
            + [f"fd{i}" for i in reversed(range(k))]
            + ["fk"]
        )
        idx = {n: j for j, n in enumerate(names)}
        self.level_index = idx
        XF, XH = 0, 1  # column inputs come first in the "cur" list
        cur = {n: 2 + j for n, j in idx.items()}
        lvl_ch = {**{f"{p}{i}": C[i] for p in ("fe", "he", "hd", "fd") for i in range(k)}, "hk": C[0], "fk": C[0]}
        # Encoder levels receive the previous column's decoder level of the same size.
        partner = {"fe": "fd", "he": "hd"}
        prev_map = [[idx[partner[n[:2]] + n[2:]]] if n[:2] in partner else [] for n in names]

        self.embed_full = nn.Conv2d(3, C[0], 3, padding=1)
        self.embed_half = nn.Conv2d(3, C[0], 3, padding=1)
        self.stems_full = nn.ModuleList([nn.Conv2d(2 * C[0], C[0], 1) for _ in range(num_columns - 1)])
        self.stems_half = nn.ModuleList([nn.Conv2d(2 * C[0], C[0], 1) for _ in range(num_columns - 1)])
        self.columns = nn.ModuleList()
        self.heads = nn.ModuleList()
        for t in range(num_columns):
            make = _BlockFactory(d_state, scan_chunk, dropout, scan_expand)
            fke = dict(
                levels=fke_levels, scan=fke_scan, d_state=d_state, chunk_size=scan_chunk, scan_expand=scan_expand,
                dropout=dropout,
            )
            levels = {}
            for i in range(k):
                src = [(XF, None)] if i == 0 else [(cur[f"fe{i-1}"], Downsample(C[i - 1], C[i]))]
                levels[f"fe{i}"] = _Level(src, make(C[i], enc_depths[i], i in scan_levels))
            for i in range(k):
                src = [(XH, None)] if i == 0 else [(cur[f"he{i-1}"], Downsample(C[i - 1], C[i]))]
                src.append((cur[f"fe{i}"], Downsample(C[i], C[i])))
                levels[f"he{i}"] = _Level(src, make(C[i], enc_depths[i], i in scan_levels))
            for i in reversed(range(k)):
                src = [(cur[f"he{i}"], None)]
                if i < k - 1:
                    src.insert(0, (cur[f"hd{i+1}"], Upsample(C[i + 1], C[i])))
                levels[f"hd{i}"] = _Level(src, make(C[i], dec_depths[k - 1 - i], i in scan_levels))
            fke_half = FourierKernelEstimator(C[0], window_size=windows[1], overlap=overlaps[1], **fke)
            levels["hk"] = _Level([(cur["hd0"], None)], fke_half)
            for i in reversed(range(k)):
                if i == k - 1:
                    src = [(cur[f"fe{i}"], None), (cur["hk"], _downchain(C[0], C[k - 1], k - 2))]
                else:
                    src = [(cur[f"fd{i+1}"], Upsample(C[i + 1], C[i])), (cur[f"fe{i}"], None)]
                levels[f"fd{i}"] = _Level(src, make(C[i], dec_depths[k - 1 - i], i in scan_levels))
            fke_full = FourierKernelEstimator(C[0], window_size=windows[0], overlap=overlaps[0], **fke)
            levels["fk"] = _Level([(cur["fd0"], None)], fke_full)
            self.columns.append(
                ReversibleColumn(
                    [levels[n] for n in names], [lvl_ch[n] for n in names], prev_map, has_prev=t > 0,
                    reversible=reversible,
                )
            )
            heads = ("img_half", "fke_half", "img_full", "fke_full")
            self.heads.append(nn.ModuleDict({n: nn.Conv2d(C[0], 3, 3, padding=1) for n in heads}))

    def fke(self, column: int = -1, scale: str = "full") -> FourierKernelEstimator:
        """The FKE of a column (``scale`` "full" or "half")."""
        return self.columns[column].levels[self.level_index["fk" if scale == "full" else "hk"]].body

    def forward(self, x: torch.Tensor, x_half: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        idx = self.level_index
        ef, eh = self.embed_full(x), self.embed_half(x_half)
        half, full = [], []
        prev = None
        for t, (col, head) in enumerate(zip(self.columns, self.heads)):
            if prev is None:
                xs = [ef, eh]
            else:
                xs = [
                    self.stems_full[t - 1](torch.cat([ef, prev[idx["fk"]]], 1)),
                    self.stems_half[t - 1](torch.cat([eh, prev[idx["hk"]]], 1)),
                ]
            c = col(xs, prev)
            half += [(head["img_half"](c[idx["hd0"]]) + x_half, 0.5), (head["fke_half"](c[idx["hk"]]) + x_half, 0.5)]
            full += [(head["img_full"](c[idx["fd0"]]) + x, 1.0), (head["fke_full"](c[idx["fk"]]) + x, 1.0)]
            prev = c
        return half + full


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


@register_model(
    "deeprftv2",
    {
        # CPU-trainable toy (NAFNet-tiny's width): visual scan only in the FKE, state 2, half-width scan branch.
        "tiny": dict(
            channels=(12, 24, 48), enc_depths=(1, 1, 2), dec_depths=(2, 1, 1), fke_levels=2, d_state=2, scan_expand=0.5,
            scan_levels=(),
        ),
        "small": dict(
            channels=(32, 64, 128), enc_depths=(1, 2, 4), dec_depths=(4, 2, 1), fke_levels=3, d_state=8,
            scan_levels=(2,),
        ),
        "paper": dict(
            channels=(48, 96, 192), enc_depths=(1, 4, 8), dec_depths=(8, 4, 1), fke_levels=4, d_state=16,
            scan_levels=(2,),
        ),
    },
)
class DeepRFTv2(RestorationModel):
    """DeepRFTv2: DMS-UNet with Fourier Kernel Estimators (see the module docstring and ``docs/models/deeprftv2.md``).

    Args:
        channels, enc_depths, dec_depths: per UNet level (paper: (48, 96, 192), (1, 4, 8), (8, 4, 1)).
        num_columns: reversible columns (2).
        fke_levels: blocks of the FKE's frequency-domain network R (4); ``fke_scan``: NAFEVSBlocks (else NAFBlocks).
        d_state: SSM state size of the visual-scan branches; ``scan_chunk``: chunk of the pure-PyTorch scan;
            ``scan_expand``: inner channels of the scan branch relative to the gated features.
        scan_levels: UNet levels (0 = full resolution) whose blocks are NAFEVSBlocks.
        windows: FKE window sizes at full and half scale (512, 256); ``overlaps``: inference overlaps (pixels).
        reversible: recompute column activations in backward (memory) instead of storing them (same maths).
        dropout: dropout inside the blocks.

    ``forward_train`` returns 8 outputs: half-scale (col-1 image, col-1 FKE image, col-2 image, col-2 FKE image),
    then the same four at full scale; the last (col-2 FKE image) is the prediction.
    """

    # the selective scan's Python loop over positions unrolls into a graph too large to export in reasonable time
    # The scan unrolls into a long graph: exported for fixed 384 px tiles, without onnxscript's rewriting (free sizes
    # and the rewriting both ran longer than we could wait); onnxruntime optimises it when it loads.
    onnx_tile, onnx_optimize = True, False
    cpu_channels_last = True  # its many depthwise convolutions: 720p in 9.8 s instead of 17.5 (cpu_path.md)

    def __init__(
        self,
        channels: Sequence[int] = (48, 96, 192),
        enc_depths: Sequence[int] = (1, 4, 8),
        dec_depths: Sequence[int] = (8, 4, 1),
        num_columns: int = 2,
        fke_levels: int = 4,
        fke_scan: bool = True,
        d_state: int = 16,
        scan_levels: Sequence[int] = (2,),
        scan_chunk: int = 16,
        scan_expand: float = 1.0,
        windows: Sequence[int | None] = (512, 256),
        overlaps: Sequence[int] = (128, 64),
        reversible: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.size_multiple = 2 ** len(channels)  # (k - 1) downsamplings below the half scale
        self.net = DMSUNet(
            channels, enc_depths, dec_depths, num_columns, fke_levels, fke_scan, d_state, scan_levels, scan_chunk,
            scan_expand, windows, overlaps, reversible, dropout,
        )

    def _forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, float]]:
        return self.net(x, downscale(x, 0.5))

    @torch.no_grad()
    def estimate_filters(self, x: torch.Tensor, size: int = 65) -> torch.Tensor:
        """Spatial views (B, n_windows, size, size) of the final column's full-scale FKE filters.

        These filters act on learned decoder features, not on the photo: they are no estimate of the blur kernel
        (``estimate_kernels`` returns ``None``; ``RestoreResult.filters`` reports them).

        The per-channel transfer functions are averaged over the feature channels (the filter the FKE applies on
        average), brought back to space with ``otf2psf`` on each window's grid (centred, cropped to ``size`` or
        the window if smaller, then zero-padded to ``size``), clipped to >= 0 and normalised to sum 1 (a centred
        delta where nothing positive is left). One PSF per FKE window (1 when the image fits one window).
        """
        xp, _ = pad_to_multiple(x, self.size_multiple)
        fke = self.net.fke(-1, "full")
        fke.capture = []
        try:
            self._forward(xp)
            captured = fke.capture  # one entry per group of windows (eval_group), each (B * n_g, C, h, w // 2 + 1)
        finally:
            fke.capture = None
        B = xp.shape[0]
        (h, w) = captured[0][1]
        otf = torch.cat([o.reshape(B, -1, *o.shape[1:]) for o, _ in captured], 1).flatten(0, 1)
        kh, kw = min(size, h), min(size, w)
        psf = otf2psf(otf.mean(1), (h, w), (kh, kw))  # (B * n, kh, kw)
        top, left = size // 2 - kh // 2, size // 2 - kw // 2
        psf = project_kernel(F.pad(psf, (left, size - kw - left, top, size - kh - top)))
        return psf.reshape(B, -1, size, size).to(x.dtype)


# Shipped weight sets (docs/weights.md tells how each was trained).
register_weights(
    "deeprftv2-tiny", "motion", blind=True, blur=("motion",),
    data="synthetic motion blur on CBSD432 (31 px kernels, noise 0-0.02), configs/deeprftv2-tiny-motion.yaml",
    steps="CPU 2000 + 7700 (crops 128), then H100 2380 + 672 (crops 256, batch 32 / 64); see docs/weights.md",
    scores="Kodak24 motion 24.67 dB / 0.643 SSIM, benchmarks/motion_kodak24.md",
)
register_weights(
    "deeprftv2-tiny", "defocus", blind=True, blur=("defocus",),
    data="synthetic defocus on CBSD432, the data of fdikp-tiny.defocus without its random lenses (half uniform "
         "disks, half random scenes' spatially varying defocus, radii up to 8 px, noise 0-0.02); "
         "configs/deeprftv2-tiny-defocus.yaml",
    steps="1750 from deeprftv2-tiny.motion (2-core CPU, crops 128, batch 4)",
    scores="see benchmarks/defocus.md",
)
register_weights(
    "deeprftv2-tiny", "real", blind=True, blur=("motion",),
    data="the real-blur mix (configs/deeprftv2-tiny-realmotion.yaml): averaged GoPro video frames 1-120, synthetic "
         "non-uniform camera shake with saturation, camera noise and JPEG on CBSD432, 20 % uniform kernels",
    steps="deeprftv2-tiny.motion fine-tuned for 2000 CPU steps (batch 8, crops 128); see docs/weights.md",
    scores="experimental: held-out GoPro frames +1.62 dB over the input (benchmarks/real_motion.md); below "
           "deeprftv2-tiny.motion on Levin (25.40 dB, levin.md) and Kodak24 (23.58 dB, motion_kodak24.md)",
)
