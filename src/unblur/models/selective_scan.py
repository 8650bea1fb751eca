"""Selective scan (the recurrence of a Mamba-1 selective state-space model) in pure PyTorch.

Shapes (the Mamba-1 convention of ``mamba_ssm.selective_scan_fn``)::

    u, delta : (batch, D, L)       input sequence and step sizes (one per channel and position)
    A        : (D, N)              real, diagonal state matrix per channel (use negative values)
    B, C     : (batch, N, L)       input/output projections, shared by all channels, or
               (batch, G, N, L)    G groups of D // G channels each
    D        : (D,) or None        skip connection
    z        : (batch, D, L) | None  gate: the output is multiplied by SiLU(z)
    delta_bias : (D,) or None      added to ``delta`` before the optional softplus

For every channel d and state n (``h`` has shape (batch, D, N)):

    h_t = exp(delta_t A) * h_{t-1} + delta_t * B_t * u_t
    y_t = sum_n C_t[n] h_t[n] + D u_t          (then y_t *= silu(z_t) when z is given)

Pure-PyTorch algorithm (:func:`selective_scan`): the scan is a first-order linear recurrence
``h_t = exp(a_t) h_{t-1} + b_t`` with ``a = delta * A`` (log-decay, <= 0) and ``b = delta * B * u``, one
independent recurrence per (batch, d, n). It is evaluated in chunks of ``chunk_size`` positions, as in the
"SSD minimal" formulation of Mamba-2:

* within a chunk, ``h_t = sum_{s<=t} exp(sum_{k=s+1..t} a_k) b_s`` with the segment sums formed by a
  cumulative sum of a masked (T, T) matrix and masked to ``-inf`` above the diagonal *before* the
  exponential (exponents are always <= 0: nothing overflows, and the gradient of the masked entries is an
  exact zero, never ``0 * inf``);
* between chunks, the state at the end of each chunk obeys the same kind of recurrence, with the chunk's
  total log-decay and its zero-start end state as inputs: it is solved by the same chunked trick one level
  up (recursively, so ``ceil(log_T L)`` levels and no Python loop over positions or chunks), then added
  back as ``exp(cumsum(a)) * h_previous_chunk_end``.

Because Mamba-1's ``A`` is diagonal per (channel, state), the decay differs per state and the (T, T) decay
matrix is per (batch, d, n) (Mamba-2 shares it across states, which makes it a matrix product). The segment
sums themselves are formed once per (batch, d) on ``delta`` and only scaled by ``A[d, n]`` per state.

Backward: the adjoint of a linear recurrence is the same recurrence run backwards,
``lam_t = g_t + exp(a_{t+1}) lam_{t+1}``, with ``dL/db_t = lam_t`` and ``dL/da_t = lam_t exp(a_t) h_{t-1}``.
A custom ``autograd.Function`` computes it with the same chunked algorithm on the reversed sequence, so only
``delta``, ``A`` and the states ``h`` are kept for backward, never the (T, T) matrices.

Complexity (M = batch * D * N recurrences of length L, chunk T): time O(M L T) for the intra-chunk matrices
plus O(M L) for the rest (each level above is T times shorter), the same again in backward; memory O(M L) kept
for backward (the states ``h``) plus a transient O(min(M L T, 2**24)) for the decay matrices, which are built
for groups of chunks of at most ``_GROUP_BUDGET`` elements. Because the intra-chunk work grows with T, small
chunks are fastest; the default ``chunk_size=4`` was the fastest on CPU (``benchmarks/selective_scan.md``).

:func:`selective_scan_reference` is the plain sequential loop (the independent reference used in tests).
When ``mamba_ssm`` is installed and the tensors are on CUDA, :func:`selective_scan` dispatches to its fused
kernel (guarded import; never required).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["selective_scan", "selective_scan_reference", "linear_recurrence", "mamba_kernel_available"]

# Largest number of elements of the (rows, T, T) decay matrices built at once (16 M floats = 64 MB).
_GROUP_BUDGET = 1 << 24

_MAMBA_FN = None
_MAMBA_TRIED = False


def _mamba_fn():
    """``mamba_ssm``'s fused CUDA selective scan, or ``None`` when it cannot be imported."""
    global _MAMBA_FN, _MAMBA_TRIED
    if not _MAMBA_TRIED:
        _MAMBA_TRIED = True
        try:  # optional dependency: compiled kernels that often fail to install
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            selective_scan_fn = None
        _MAMBA_FN = selective_scan_fn
    return _MAMBA_FN


def mamba_kernel_available() -> bool:
    return _mamba_fn() is not None


def _no_autocast(t: torch.Tensor):
    if t.device.type in ("cuda", "cpu") and torch.is_autocast_enabled(t.device.type):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def _check_shapes(u, delta, A, B, C, D, z, delta_bias):
    if u.ndim != 3 or delta.shape != u.shape:
        raise ValueError(
            f"selective_scan: u and delta must be (batch, D, L), got {tuple(u.shape)} and {tuple(delta.shape)}"
        )
    b, d, L = u.shape
    if A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"selective_scan: A must be (D={d}, N), got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported by the pure-PyTorch scan")
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        ok = (m.ndim == 3 and m.shape == (b, n, L)) or (
            m.ndim == 4 and m.shape[0] == b and m.shape[2:] == (n, L) and d % m.shape[1] == 0
        )
        if not ok:
            raise ValueError(f"selective_scan: {name} must be (batch, N, L) or (batch, G, N, L), got {tuple(m.shape)}")
    if D is not None and D.shape != (d,):
        raise ValueError(f"selective_scan: D must be (D,), got {tuple(D.shape)}")
    if delta_bias is not None and delta_bias.shape != (d,):
        raise ValueError(f"selective_scan: delta_bias must be (D,), got {tuple(delta_bias.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"selective_scan: z must be (batch, D, L), got {tuple(z.shape)}")


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _per_channel(m: torch.Tensor, d: int) -> torch.Tensor:
    """B or C as (batch, D or 1, N, L), broadcastable against the (batch, D, N, L) state."""
    if m.ndim == 3:
        return m[:, None]
    return m.repeat_interleave(d // m.shape[1], dim=1)


def _prepare_delta(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None].to(delta.dtype)
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


# ----------------------------------------------------------------------------------------------------------
# Chunked first-order linear recurrence h_t = exp(a_t) h_{t-1} + b_t
# ----------------------------------------------------------------------------------------------------------


def _intra_chunk(la: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """Zero-start states inside chunks: ``la``, ``bb`` (R, T) -> (R, T)."""
    T = la.shape[-1]
    ones = torch.ones(T, T, dtype=torch.bool, device=la.device)
    strict = torch.tril(ones, diagonal=-1)  # [t, k]: k < t
    incl = torch.tril(ones)  # [t, s]: s <= t
    # x[r, t, s] = la[r, t] for s < t, else 0; cumsum over t gives segsum[r, t, s] = sum_{s < k <= t} la[r, k].
    x = la[:, :, None].expand(-1, T, T).masked_fill(~strict, 0.0)
    seg = torch.cumsum(x, dim=1)
    decay = torch.exp(seg.masked_fill(~incl, float("-inf")))  # mask before exp: exp(-inf) = 0
    return torch.matmul(decay, bb[:, :, None])[..., 0]


def _recurrence_forward(la: torch.Tensor, bb: torch.Tensor, T: int) -> torch.Tensor:
    """States of ``h_t = exp(la_t) h_{t-1} + bb_t`` for (M, L) inputs (no autograd bookkeeping needed)."""
    M, L = la.shape
    if L <= T:
        T = max(L, 1)
    pad = (-L) % T
    if pad:  # padded steps (decay 1, input 0) come after the real ones and are cut off again
        la, bb = F.pad(la, (0, pad)), F.pad(bb, (0, pad))
    nc = (L + pad) // T
    la3, bb2 = la.reshape(M * nc, T), bb.reshape(M * nc, T)
    rows = max(1, _GROUP_BUDGET // (T * T))  # bound the transient (rows, T, T) decay matrices
    h_loc = torch.cat([_intra_chunk(la3[r : r + rows], bb2[r : r + rows]) for r in range(0, M * nc, rows)], 0)
    if nc == 1:
        return h_loc.reshape(M, T)[:, :L]
    h_loc = h_loc.reshape(M, nc, T)
    cum = torch.cumsum(la.reshape(M, nc, T), dim=-1)  # log-decay from the chunk start, <= 0
    # True state at the end of each chunk: the same recurrence over chunks, solved by the same trick.
    h_end = _recurrence_forward(cum[..., -1], h_loc[..., -1], T)  # (M, nc)
    h_prev = F.pad(h_end[:, :-1], (1, 0))  # state entering each chunk
    h = h_loc + torch.exp(cum) * h_prev[..., None]
    return h.reshape(M, nc * T)[:, :L]


def _shift_next(t: torch.Tensor) -> torch.Tensor:
    """``t_{i+1}`` along the last dim (0 at the end)."""
    return F.pad(t[..., 1:], (0, 1))


def _shift_prev(t: torch.Tensor) -> torch.Tensor:
    """``t_{i-1}`` along the last dim (0 at the start)."""
    return F.pad(t[..., :-1], (1, 0))


class _LinearRecurrenceFn(torch.autograd.Function):
    """Backward of a linear recurrence is a reversed one: ``lam_t = g_t + exp(la_{t+1}) lam_{t+1}``,
    ``db_t = lam_t``, ``dla_t = lam_t exp(la_t) h_{t-1}``. Only ``la`` and ``h`` are kept for backward."""

    @staticmethod
    def forward(ctx, la, bb, T):
        h = _recurrence_forward(la, bb, T)
        ctx.save_for_backward(la, h)
        ctx.T = T
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        la, h = ctx.saved_tensors
        lam = _recurrence_forward(_shift_next(la).flip(-1), g.flip(-1), ctx.T).flip(-1)
        dla = lam * torch.exp(la) * _shift_prev(h)
        return dla, lam, None


def linear_recurrence(loga: torch.Tensor, b: torch.Tensor, chunk_size: int = 4) -> torch.Tensor:
    """All states of ``h_t = exp(loga_t) * h_{t-1} + b_t`` (``h_{-1} = 0``) along the last dimension.

    ``loga`` and ``b`` have the same shape (..., L); ``loga`` should be <= 0 (a decaying recurrence).
    Chunked as described in the module docstring; differentiable (backward = one reversed recurrence).
    """
    if loga.shape != b.shape:
        raise ValueError(f"linear_recurrence: shapes differ: {tuple(loga.shape)} vs {tuple(b.shape)}")
    if chunk_size < 2:
        raise ValueError(f"linear_recurrence: chunk_size must be >= 2, got {chunk_size}")
    lead, L = loga.shape[:-1], loga.shape[-1]
    if L == 0:
        return b.clone()
    la, bb = loga.reshape(-1, L), b.reshape(-1, L)
    if torch.is_grad_enabled() and (la.requires_grad or bb.requires_grad):
        h = _LinearRecurrenceFn.apply(la, bb, chunk_size)
    else:
        h = _recurrence_forward(la, bb, chunk_size)
    return h.reshape(*lead, L)


# ----------------------------------------------------------------------------------------------------------
# Selective scan
# ----------------------------------------------------------------------------------------------------------


def _selective_forward(delta: torch.Tensor, A: torch.Tensor, bu: torch.Tensor, T: int) -> torch.Tensor:
    """States h (b, D, N, L) of ``h_t = exp(delta_t A) h_{t-1} + bu_t``; first chunk level factored.

    The log-decay ``delta_t[d] * A[d, n]`` is a product, so the segment sums inside chunks are formed once per
    (batch, d) on ``delta`` (a cumulative sum of a masked (T, T) matrix) and only scaled by ``A`` per state;
    the chunk-level recurrence above uses :func:`_recurrence_forward`.
    """
    bsz, d, n, L = bu.shape
    if L <= T:
        T = max(L, 1)
    pad = (-L) % T
    if pad:  # padded steps (delta 0: decay 1, input 0) come after the real ones and are cut off again
        delta, bu = F.pad(delta, (0, pad)), F.pad(bu, (0, pad))
    nc = (L + pad) // T
    dl = delta.reshape(bsz, d, nc, T)
    ones = torch.ones(T, T, dtype=torch.bool, device=bu.device)
    strict, incl = torch.tril(ones, diagonal=-1), torch.tril(ones)
    # sd[b, d, c, t, s] = sum_{s < k <= t} delta_k (0 on and above the diagonal), shared by the N states.
    sd = torch.cumsum(dl[..., :, None].expand(-1, -1, -1, T, T).masked_fill(~strict, 0.0), dim=-2)
    A6 = A[None, :, :, None, None, None]
    bu = bu.reshape(bsz, d, n, nc, T)
    step = max(1, nc * _GROUP_BUDGET // (bsz * d * n * nc * T * T))  # bound the transient decay matrices
    pieces = []
    for c0 in range(0, nc, step):
        seg = (A6 * sd[:, :, None, c0 : c0 + step]).masked_fill(~incl, float("-inf"))  # mask before exp
        pieces.append(torch.matmul(torch.exp(seg), bu[:, :, :, c0 : c0 + step, :, None])[..., 0])
    h_loc = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 3)  # (b, D, N, nc, T), zero start per chunk
    if nc == 1:
        return h_loc.reshape(bsz, d, n, T)[..., :L]
    logdecay = A[None, :, :, None, None] * torch.cumsum(dl, dim=-1)[:, :, None]  # (b, D, N, nc, T), <= 0
    h_end = _recurrence_forward(logdecay[..., -1].reshape(-1, nc), h_loc[..., -1].reshape(-1, nc), T)
    h = h_loc + torch.exp(logdecay) * _shift_prev(h_end).reshape(bsz, d, n, nc, 1)
    return h.reshape(bsz, d, n, nc * T)[..., :L]


class _SelectiveStatesFn(torch.autograd.Function):
    """States of the selective scan with a hand-written backward (one reversed chunked recurrence).

    Keeps ``delta``, ``A`` and the states ``h`` only: memory O(b D N L), no (T, T) matrices stored."""

    @staticmethod
    def forward(ctx, delta, A, bu, T):
        h = _selective_forward(delta, A, bu, T)
        ctx.save_for_backward(delta, A, h)
        ctx.T = T
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        delta, A, h = ctx.saved_tensors
        lam = _selective_forward(_shift_next(delta).flip(-1), A, g.flip(-1), ctx.T).flip(-1)
        dla = lam * torch.exp(delta[:, :, None, :] * A[None, :, :, None]) * _shift_prev(h)  # d loss / d (delta A)
        d_delta = torch.einsum("bdnl,dn->bdl", dla, A)
        d_A = torch.einsum("bdnl,bdl->dn", dla, delta)
        return d_delta, d_A, lam, None


def _selective_states(u, delta, A, Bc, T):
    """All states h (b, D, N, L) of the selective scan (differentiable in every input)."""
    if T < 2:
        raise ValueError(f"selective_scan: chunk_size must be >= 2, got {T}")
    bu = (delta * u)[:, :, None, :] * Bc  # (b, D, N, L)
    if torch.is_grad_enabled() and (delta.requires_grad or A.requires_grad or bu.requires_grad):
        return _SelectiveStatesFn.apply(delta, A, bu, T)
    return _selective_forward(delta, A, bu, T)


def _finish(y, u, D, z, out_dtype):
    if D is not None:
        y = y + D[None, :, None].to(y.dtype) * u
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    chunk_size: int = 4,
    use_cuda_kernel: bool | None = None,
):
    """Selective scan (see the module docstring for shapes and maths); returns ``y`` (batch, D, L) in
    ``u``'s dtype, and the last state (batch, D, N) too when ``return_last_state``.

    Computed in float32 (float64 for float64 inputs), autocast disabled. ``use_cuda_kernel``: ``None`` uses
    ``mamba_ssm``'s kernel when installed and ``u`` is on CUDA, ``False`` forces the pure-PyTorch scan,
    ``True`` requires the kernel.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if use_cuda_kernel is None:
        use_cuda_kernel = u.is_cuda and mamba_kernel_available()
    if use_cuda_kernel:
        fn = _mamba_fn()
        if fn is None or not u.is_cuda:
            raise RuntimeError("selective_scan: the mamba_ssm CUDA kernel needs mamba_ssm installed and CUDA tensors")
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)

    out_dtype = u.dtype
    with _no_autocast(u):
        ct = _compute_dtype(u)
        bsz, d, L = u.shape
        u_, delta_ = u.to(ct), delta.to(ct)
        delta_ = _prepare_delta(delta_, delta_bias, delta_softplus)
        h = _selective_states(u_, delta_, A.to(ct), _per_channel(B.to(ct), d), chunk_size)  # (b, D, N, L)
        C_ = C.to(ct)
        y = torch.einsum("bdnl,bnl->bdl", h, C_) if C_.ndim == 3 else (h * _per_channel(C_, d)).sum(2)
        out = _finish(y, u_, D, z, out_dtype)
        if return_last_state:
            return out, h[..., -1].to(out_dtype)
        return out


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
):
    """Sequential reference: one Python step per position (slow; for tests and benchmarks)."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    out_dtype = u.dtype
    ct = _compute_dtype(u)
    bsz, d, L = u.shape
    u_, delta_ = u.to(ct), delta.to(ct)
    delta_ = _prepare_delta(delta_, delta_bias, delta_softplus)
    A_ = A.to(ct)
    Bc, Cc = _per_channel(B.to(ct), d), _per_channel(C.to(ct), d)
    h = u_.new_zeros(bsz, d, A.shape[1])
    ys = []
    for t in range(L):
        dt = delta_[:, :, t, None]
        h = torch.exp(dt * A_) * h + dt * Bc[..., t] * u_[:, :, t, None]
        ys.append((h * Cc[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u_.new_zeros(bsz, d, 0)
    out = _finish(y, u_, D, z, out_dtype)
    if return_last_state:
        return out, h.to(out_dtype)
    return out
