"""LMMSE estimates of a sharp image's Fourier amplitude and phase (UPADNet's data step; derivation in
``docs/models/upadnet.md``).

Observation per frequency ``w`` (half spectrum of :func:`~unblur.physics.fft.rfft2`): ``Y = K X + N`` with white
noise ``N ~ CN(0, s2)`` (``s2 = sigma^2 H W`` for pixel noise ``sigma`` and the unnormalised FFT). The prior is
centred on the current estimate ``U`` of the sharp spectrum: ``X = U + E``, ``E ~ CN(0, v |U|^2)`` (a relative
error ``v`` per frequency). Linearised in polar coordinates around ``U`` this gives two scalar LMMSE problems:

* amplitude: ``B = |K| A + n`` (``B`` the noise-debiased ``|Y|``, ``n`` the radial noise, variance ``s2 / 2``),
  prior ``A ~ (|U|, v_a |U|^2 / 2)``::

      A^ = |U| + g_a (B - |K| |U|),   g_a = v_a |U|^2 |K| / (v_a |U|^2 |K|^2 + s2)

* phase: ``angle(Y conj K) = phi + d`` (``d`` the tangential noise over the signal, variance
  ``s2 / (2 |K|^2 A^2)``), prior ``phi ~ (angle U, v_p / 2)``::

      phi^ = angle U + g_p wrap(angle(Y conj K) - angle U),   g_p = v_p |K|^2 A^2 / (v_p |K|^2 A^2 + s2)

  computed without angles as the weighted mean of unit phasors ``(1 - g_p) U/|U| + g_p Y conj K / |Y conj K|``,
  renormalised: the same to first order in the phase difference, and differentiable everywhere.

The joint (complex) LMMSE of the same model, ``X^ = U + v |U|^2 conj K (Y - K U) / (v |U|^2 |K|^2 + s2)``, is the
closed-form data step ``argmin |K X - Y|^2 + beta |X - U|^2`` with ``beta = s2 / (v |U|^2)``
(:class:`~unblur.physics.solvers.FourierDataStep`): :func:`complex_lmmse_beta` gives that ``beta``.

Example:
    >>> import torch
    >>> from unblur.physics import psf2otf, rfft2
    >>> x = torch.rand(1, 1, 16, 16)
    >>> K = psf2otf(torch.ones(1, 1, 1, 1), (16, 16))   # no blur, no noise: the observation wins
    >>> X = amplitude_phase_lmmse(rfft2(x), K, torch.zeros_like(rfft2(x)) + 1, 1e6, 1e6, 1e-12)
    >>> torch.allclose(X, rfft2(x), atol=1e-3)
    True
"""
from __future__ import annotations

import torch

__all__ = ["amplitude_phase_lmmse", "complex_lmmse_beta", "radial_frequency"]

_TINY = 1e-12


def _abs2(z: torch.Tensor) -> torch.Tensor:
    return z.real ** 2 + z.imag ** 2


def _phasor(z: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    """``z / |z|`` with a floor under ``|z|^2`` (a vanishing ``z`` gives a vanishing phasor, never a NaN)."""
    return z / torch.sqrt(_abs2(z) + floor)


def radial_frequency(shape: tuple[int, int], device=None, dtype=torch.float32) -> torch.Tensor:
    """``|w| / |w|max`` in [0, 1] on the half-spectrum grid of an (H, W) image, shape (H, W // 2 + 1)."""
    H, W = shape
    # fftfreq / rfftfreq from arange: the same values, and ONNX export has no lowering for the fft.*freq ops
    fy = ((torch.arange(H, device=device) + H // 2) % H - H // 2).to(dtype)[:, None] * (1.0 / H)
    fx = torch.arange(W // 2 + 1, device=device).to(dtype)[None, :] * (1.0 / W)
    return torch.sqrt(fy ** 2 + fx ** 2) / (0.5 * 2 ** 0.5)


def amplitude_phase_lmmse(Y: torch.Tensor, K: torch.Tensor, U: torch.Tensor, amp_var, phase_var, noise_var,
                          floor=0.0) -> torch.Tensor:
    """The amplitude and phase LMMSE estimates (module doc) recombined into a spectrum ``A^ exp(i phi^)``.

    Args:
        Y, K, U: spectra of the observation, the blur (OTF, broadcastable) and the current estimate.
        amp_var, phase_var: the prior's relative variances ``v_a, v_p`` (floats or tensors broadcastable to ``Y``).
        noise_var: ``s2``, the noise variance of a spectrum coefficient (float or broadcastable tensor).
        floor: added to ``|U|^2`` in the prior variance, so that a vanishing ``U`` can still grow.
    """
    U2, K2 = _abs2(U), _abs2(K)
    k_abs = torch.sqrt(K2 + _TINY)
    u_abs = torch.sqrt(U2 + _TINY)
    # |Y| without the noise's share of its power (E|Y|^2 = |K|^2 |X|^2 + s2): the linear model's B
    b = torch.sqrt(torch.relu(_abs2(Y) - noise_var) + _TINY)
    prior = amp_var * (U2 + floor)
    amp = torch.relu(u_abs + prior * k_abs / (prior * K2 + noise_var) * (b - k_abs * u_abs))
    signal = phase_var * K2 * amp ** 2
    g = signal / (signal + noise_var)
    mixed = (1 - g) * _phasor(U, _TINY) + g * _phasor(Y * K.conj(), _TINY)
    return amp * _phasor(mixed, _TINY)


def complex_lmmse_beta(U: torch.Tensor, prior_var, noise_var, floor) -> torch.Tensor:
    """``beta = s2 / (v (|U|^2 + floor))``: the weight that makes the closed-form step the complex LMMSE of the
    same model (``floor`` keeps ``beta`` finite where ``U`` vanishes)."""
    return noise_var / (prior_var * (_abs2(U) + floor))
