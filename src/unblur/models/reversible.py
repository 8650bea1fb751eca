"""RevCol-style reversible multi-level columns (activations recomputed in backward instead of stored).

A column has inputs ``xs`` (fixed tensors, e.g. stem features) and ``n`` levels ``c_0 .. c_{n-1}``. Level ``j`` of
column ``t`` is

    c_j^t = alpha_j * c_j^{t-1} + F_j(cur=[*xs, c_0^t, ..., c_{j-1}^t], prev=[c_k^{t-1} for k in prev_map[j]])

with every ``k`` in ``prev_map[j]`` larger than ``j`` (RevCol's rule is ``prev_map[j] = [j + 1]``: the level above,
from the previous column). The first column of a stack has no previous column: ``c_j = F_j(cur, [])`` and no
``alpha``. ``alpha_j`` is a per-channel parameter (init 0.5) used as ``sign(alpha) * max(|alpha|, 1e-3)``.

Because ``c_j^{t-1} = (c_j^t - F_j(...)) / alpha_j`` and ``F_j`` only needs levels of the previous column above
``j``, the previous column can be rebuilt from this one's outputs, top level first. The reversible path
(:class:`_ReversibleColumnFn`) therefore keeps only the column inputs ``xs`` and outputs ``c^t`` for backward; the
backward pass walks the levels from the top down, recomputes each ``F_j`` with autograd enabled, reconstructs
``c_j^{t-1}``, and back-propagates. The previous column's levels are never read from memory in backward, and
none of the activations inside ``F_j`` are stored in forward. ``reversible=False`` runs the same maths with
ordinary autograd (everything stored), for comparison.

RNG (dropout): the CPU and, for CUDA inputs, the device RNG state are saved before each level in forward and
restored when the level is recomputed, so recomputation draws the same masks. Autocast: the autocast state of
the forward pass is recorded and re-entered for the recomputation.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["ReversibleColumn", "clamp_alpha", "ALPHA_MIN"]

ALPHA_MIN = 1e-3


def clamp_alpha(alpha: torch.Tensor, eps: float = ALPHA_MIN) -> torch.Tensor:
    """``sign(alpha) * max(|alpha|, eps)`` (0 counts as positive); gradient 1 where not clamped, 0 where clamped."""
    floor = torch.where(alpha >= 0, torch.full_like(alpha, eps), torch.full_like(alpha, -eps))
    return torch.where(alpha.abs() >= eps, alpha, floor)


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()


def _rng_state(device: torch.device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _restored_rng(state, device: torch.device):
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


class _ReversibleColumnFn(torch.autograd.Function):
    """Inputs: column, n_xs, n_prev, *xs, *prev, *params. Outputs: the n levels."""

    @staticmethod
    def forward(ctx, column, n_xs, n_prev, *args):
        xs = list(args[:n_xs])
        prev = list(args[n_xs : n_xs + n_prev]) if n_prev else None
        device = xs[0].device
        ctx.column = column
        ctx.n_xs, ctx.n_prev = n_xs, n_prev
        ctx.device = device
        ctx.autocast = (device.type,) + _autocast_state(device.type)
        ctx.rng = []
        with torch.no_grad():
            outs = []
            for j in range(column.n_levels):
                ctx.rng.append(_rng_state(device) if column.preserve_rng_state else None)
                outs.append(column._level(j, xs + outs, prev))
        ctx.save_for_backward(*xs, *outs)
        ctx.prev_meta = [(p.shape, p.dtype) for p in prev] if prev is not None else None
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grad_outs):
        column = ctx.column
        saved = ctx.saved_tensors
        n_xs, n = ctx.n_xs, column.n_levels
        xs, outs = list(saved[:n_xs]), list(saved[n_xs:])
        params = list(column.parameters())
        pidx = {id(p): i for i, p in enumerate(params)}
        g_params: list[torch.Tensor | None] = [None] * len(params)
        # Gradients w.r.t. [*xs, *outs] (the "cur" list) and the previous column's levels.
        g_cur: list[torch.Tensor | None] = [None] * n_xs + [g for g in grad_outs]
        has_prev = ctx.n_prev > 0
        prev_rec: list[torch.Tensor | None] = [None] * n
        g_prev: list[torch.Tensor | None] = [None] * n

        def acc(lst, i, g):
            if g is not None:
                lst[i] = g if lst[i] is None else lst[i] + g

        device_type, ac_enabled, ac_dtype = ctx.autocast
        for j in reversed(range(n)):
            g_out, g_cur[n_xs + j] = g_cur[n_xs + j], None  # complete: levels above j are done
            cur = [t.detach().requires_grad_(t.is_floating_point()) for t in xs + outs[:j]]
            prev_in = [prev_rec[k].detach().requires_grad_() for k in column.prev_map[j]] if has_prev else []
            level_params = [p for p in column.level_parameters(j) if p.requires_grad]
            rng = _restored_rng(ctx.rng[j], ctx.device) if ctx.rng[j] is not None else contextlib.nullcontext()
            with rng, torch.enable_grad(), torch.autocast(device_type, dtype=ac_dtype, enabled=ac_enabled):
                f = column.levels[j](cur, prev_in)
                if has_prev:
                    alpha = column.alphas[j]
                    a = clamp_alpha(alpha)
                    with torch.no_grad():  # reconstruct the previous column's level j
                        c_prev = ((outs[j] - f) / a).to(outs[j].dtype)
                    prev_rec[j] = c_prev
                    c_leaf = c_prev.detach().requires_grad_()
                    out = a * c_leaf + f
                    extra = [c_leaf, alpha]
                else:
                    out = f
                    extra = []
            if g_out is None:
                continue
            inputs = [t for t in cur if t.requires_grad] + prev_in + extra + level_params
            grads = torch.autograd.grad(out, inputs, g_out, allow_unused=True)
            it = iter(grads)
            for i, t in enumerate(cur):
                if t.requires_grad:
                    acc(g_cur, i, next(it))
            for k in column.prev_map[j] if has_prev else []:
                acc(g_prev, k, next(it))
            if has_prev:
                acc(g_prev, j, next(it))
                acc(g_params, pidx[id(column.alphas[j])], next(it))
            for p in level_params:
                acc(g_params, pidx[id(p)], next(it))
        g_xs = g_cur[:n_xs]
        g_prev_out = []
        if has_prev:
            for k, (shape, dtype) in enumerate(ctx.prev_meta):
                g_prev_out.append(g_prev[k])
        return (None, None, None, *g_xs, *g_prev_out, *g_params)


class ReversibleColumn(nn.Module):
    """One column of a reversible multi-level network (see the module docstring).

    Args:
        levels: the ``F_j``; ``levels[j](cur, prev)`` gets ``cur = [*xs, c_0, ..., c_{j-1}]`` (this column) and
            ``prev = [c_k^{t-1} for k in prev_map[j]]`` (previous column; ``[]`` in the first column) and returns
            a tensor shaped like ``c_j``.
        channels: channels of each level (for the per-channel ``alpha``).
        prev_map: previous-column levels fed to each ``F_j`` (each index > j); default RevCol's ``[[j + 1]]``.
        has_prev: ``False`` for the first column of a stack (no previous column, no ``alpha``).
        reversible: recompute activations in backward (``True``) or store them (``False``); same maths.
        preserve_rng_state: save/restore the RNG around each level so that recomputed dropout masks match.
    """

    def __init__(
        self,
        levels: Sequence[nn.Module],
        channels: Sequence[int],
        prev_map: Sequence[Sequence[int]] | None = None,
        has_prev: bool = True,
        reversible: bool = True,
        preserve_rng_state: bool = True,
        alpha_init: float = 0.5,
    ):
        super().__init__()
        n = len(levels)
        if len(channels) != n:
            raise ValueError(f"ReversibleColumn: {n} levels but {len(channels)} channel counts")
        if prev_map is None:
            prev_map = [[j + 1] if j + 1 < n else [] for j in range(n)]
        prev_map = [list(p) for p in prev_map]
        for j, ks in enumerate(prev_map):
            if any(k <= j or k >= n for k in ks):
                raise ValueError(f"ReversibleColumn: prev_map[{j}] = {ks} must name levels above {j} (and < {n})")
        self.levels = nn.ModuleList(levels)
        self.prev_map = prev_map
        self.has_prev = has_prev
        self.reversible = reversible
        self.preserve_rng_state = preserve_rng_state
        self.n_levels = n
        if has_prev:
            self.alphas = nn.ParameterList(
                [nn.Parameter(torch.full((1, c, 1, 1), float(alpha_init))) for c in channels]
            )

    def level_parameters(self, j: int) -> list[nn.Parameter]:
        return list(self.levels[j].parameters())

    def _level(self, j: int, cur: list[torch.Tensor], prev: list[torch.Tensor] | None) -> torch.Tensor:
        if prev is None:
            return self.levels[j](cur, [])
        f = self.levels[j](cur, [prev[k] for k in self.prev_map[j]])
        return clamp_alpha(self.alphas[j]) * prev[j] + f

    def forward(self, xs: Sequence[torch.Tensor], prev: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        xs = list(xs)
        if self.has_prev != (prev is not None):
            raise ValueError("ReversibleColumn: pass prev exactly when the column was built with has_prev=True")
        if prev is not None:
            prev = list(prev)
            if len(prev) != self.n_levels:
                raise ValueError(f"ReversibleColumn: expected {self.n_levels} previous levels, got {len(prev)}")
        params = list(self.parameters())
        needs_grad = torch.is_grad_enabled() and (
            any(t.requires_grad for t in xs + (prev or [])) or any(p.requires_grad for p in params)
        )
        if self.reversible and needs_grad:
            outs = _ReversibleColumnFn.apply(self, len(xs), len(prev or []), *xs, *(prev or []), *params)
            return list(outs)
        outs: list[torch.Tensor] = []
        for j in range(self.n_levels):
            outs.append(self._level(j, xs + outs, prev))
        return outs
