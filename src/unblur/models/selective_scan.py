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
independent recurrence per (batch, d, n). It is evaluated in chunks of ``chunk_size`` (T) positions:

* within a chunk, the zero-start states come from a loop over the T positions, each step one fused
  ``h_t += exp(a_t) * h_{t-1}`` over all chunks and rows at once (positions first in memory): T - 1 small
  operations whatever the length, every decay ``exp`` of a non-positive number (no overflow);
* between chunks, the state at the end of each chunk obeys the same kind of recurrence, with the chunk's
  total log-decay and its zero-start end state as inputs: it is solved by the same routine one level
  up (recursively, so ``ceil(log_T L)`` levels and no Python loop over chunks), then added back as
  ``exp(cumsum(a)) * h_previous_chunk_end``.

(An earlier version formed the intra-chunk states from (T, T) decay matrices, "SSD minimal" style; the loop
gives the same values to float rounding with O(L) instead of O(L T) work and far fewer, larger operations.)

Backward: the adjoint of a linear recurrence is the same recurrence run backwards,
``lam_t = g_t + exp(a_{t+1}) lam_{t+1}``, with ``dL/db_t = lam_t`` and ``dL/da_t = lam_t exp(a_t) h_{t-1}``.
A custom ``autograd.Function`` computes it with the same chunked algorithm on the reversed sequence, so only
``delta``, ``A`` and the states ``h`` are kept for backward, never the (T, T) matrices.

Complexity (M = batch * D * N recurrences of length L, chunk T): time O(M L) per level, O(M L) in all
(each level above is T times shorter), about ``T * ceil(log_T L)`` operations; the same again in backward;
memory O(M L) kept for backward (the states ``h``). Default ``chunk_size=16`` (fastest on CPU at the sizes of
``deeprftv2-tiny``; any chunk >= 2 gives the same result).

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


def _local_states(la: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """Zero-start states inside chunks: ``la``, ``bb`` (..., T) -> (..., T), a loop over the T positions.

    Each step is one fused ``h_t += exp(la_t) * h_{t-1}`` over all chunks and rows at once (positions first in
    memory, so every step reads and writes contiguous rows): T - 1 operations whatever the number of chunks.
    """
    T = la.shape[-1]
    h = bb.movedim(-1, 0).contiguous()  # (T, ...), starts as bb
    if T > 1:
        # unbind once: indexing inside the loop would dispatch 3 extra view operations per step
        hs = h.unbind(0)
        ps = torch.exp(la.movedim(-1, 0)[1:]).unbind(0)  # decays <= 1 (no overflow)
        for t in range(1, T):
            hs[t].addcmul_(ps[t - 1], hs[t - 1])
    return h.movedim(0, -1)


# Levels of the chunked recurrence in a traced graph (ONNX export): a fixed depth, so the graph does not depend on
# the sequence length (free height and width); T**depth positions at most (16**6 = 16.7M, a 4096x4096 map).
EXPORT_DEPTH = 6


def _recurrence_forward(la: torch.Tensor, bb: torch.Tensor, T: int, depth: int | None = None) -> torch.Tensor:
    """States of ``h_t = exp(la_t) h_{t-1} + bb_t`` for (M, L) inputs (no autograd bookkeeping needed).

    ``depth`` (tracing for export): recurse exactly that many levels, padding every level to whole chunks, instead
    of stopping when a level fits in one chunk: the same values whatever the length, and no branch on it."""
    if depth is None and torch.compiler.is_exporting():
        depth = EXPORT_DEPTH
    M, L = la.shape
    if depth == 0 or (depth is None and L <= T):
        return _local_states(la, bb)
    pad = (-L) % T
    if depth is not None or pad:  # padded steps (decay 1, input 0) come after the real ones and are cut off again
        la, bb = F.pad(la, (0, pad)), F.pad(bb, (0, pad))
    nc = (L + pad) // T
    la3 = la.reshape(M, nc, T)
    h_loc = _local_states(la3, bb.reshape(M, nc, T))  # (M, nc, T), zero start per chunk
    cum = torch.cumsum(la3, dim=-1)  # log-decay from the chunk start, <= 0
    # True state at the end of each chunk: the same recurrence over chunks, solved by the same trick.
    h_end = _recurrence_forward(cum[..., -1], h_loc[..., -1], T, None if depth is None else depth - 1)  # (M, nc)
    h_prev = F.pad(h_end[:, :-1], (1, 0))  # state entering each chunk
    h = torch.addcmul(h_loc, torch.exp(cum), h_prev[..., None])
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


def linear_recurrence(loga: torch.Tensor, b: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
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
    """States h (b, D, N, L) of ``h_t = exp(delta_t A) h_{t-1} + bu_t`` (one recurrence per (b, D, N))."""
    bsz, d, n, L = bu.shape
    la = delta[:, :, None, :] * A[None, :, :, None]  # (b, D, N, L), <= 0
    return _recurrence_forward(la.reshape(-1, L), bu.reshape(-1, L), T).reshape(bsz, d, n, L)


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
    """All states h (b, D, N, L) of the selective scan (differentiable in every input; ``T >= 2``, checked by
    :func:`selective_scan`)."""
    bu = (delta * u)[:, :, None, :] * Bc  # (b, D, N, L)
    if torch.is_grad_enabled() and (delta.requires_grad or A.requires_grad or bu.requires_grad):
        return _SelectiveStatesFn.apply(delta, A, bu, T)
    return _selective_forward(delta, A, bu, T)


def _scan_no_grad(u, delta, A, B, C, T):
    """Outputs y (b, D, L) and last states (b, D, N) of the scan when no gradient is needed (inference).

    The same chunked recurrence as :func:`_selective_forward`, but every (b, D, N, L) tensor is written once,
    directly in the layout the position loop wants, (T, b, D, N, chunks): the products ``delta A`` and
    ``delta u B`` write into it, the decays are exponentiated and summed in place, the chunk ends are added back
    in place, and only y (N times smaller) changes layout at the end. Fewer passes over memory than the
    general path, which keeps its layout for the backward pass."""
    b, d, L = u.shape
    n = A.shape[1]
    pad = (-L) % T
    du = delta * u
    if pad:  # padded steps (decay 1, input 0) come after the real ones: they carry the last state unchanged
        delta, du, B, C = (F.pad(t, (0, pad)) for t in (delta, du, B, C))
    nc = (L + pad) // T

    def tfirst(t):  # (..., L') -> (T, ..., chunks) view
        return t.reshape(*t.shape[:-1], nc, T).movedim(-1, 0)

    def per_channel(m):  # B or C as (T, b, D or 1, N, chunks); groups of D // G channels share theirs
        if m.ndim == 3:
            return tfirst(m)[:, :, None]
        v, gs = tfirst(m), m.shape[1]
        return v if gs == 1 else v[:, :, :, None].expand(T, b, gs, d // gs, n, nc).reshape(T, b, d, n, nc)

    Bv, Cv = per_channel(B), per_channel(C)
    la = torch.empty(T, b, d, n, nc, dtype=u.dtype, device=u.device)
    torch.mul(tfirst(delta)[:, :, :, None], A[None, None, :, :, None], out=la)  # log-decays, <= 0
    h = torch.empty_like(la)
    torch.mul(tfirst(du)[:, :, :, None], Bv, out=h)  # inputs; becomes the zero-start states in place
    cum = la.cumsum(0)  # log-decay from the chunk start
    p = la.exp_()
    for t in range(1, T):
        h[t].addcmul_(p[t], h[t - 1])
    # the true state entering each chunk: the same recurrence over chunks (the general routine, T x smaller; on a
    # copy, since it may update its input in place)
    h_end = _recurrence_forward(cum[-1].reshape(-1, nc), h[-1].reshape(-1, nc).clone(), T).reshape(b, d, n, nc)
    h.addcmul_(cum.exp_(), F.pad(h_end[..., :-1], (1, 0)))
    y = (h * Cv).sum(3)  # (T, b, D, chunks)
    if d > 1 and u.stride(1) == 1:  # u is (b, L, D) in memory (a channels-last map): y gets the same layout, so
        # the ops after the scan do not mix layouts
        y = y.permute(1, 3, 0, 2).reshape(b, nc * T, d)[:, :L].transpose(1, 2)
    else:
        y = y.permute(1, 2, 3, 0).reshape(b, d, nc * T)[..., :L]
    return y, h_end[..., -1]


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
    chunk_size: int = 16,
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
        if chunk_size < 2:
            raise ValueError(f"selective_scan: chunk_size must be >= 2, got {chunk_size}")
        if L and not (torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, delta_bias)
                                                        if t is not None)):
            y, last = _scan_no_grad(u_, delta_, A.to(ct), B.to(ct), C.to(ct), chunk_size)
            out = _finish(y, u_, D, z, out_dtype)
            return (out, last.to(out_dtype)) if return_last_state else out
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
