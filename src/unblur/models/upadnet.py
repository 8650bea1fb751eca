"""UPADNet (Malek, Zhang, Lee, Monga, "Leveraging Phase Information to Boost Unrolled Network Learning for Image
Deblurring", 2026): an unrolled blind deblurring network whose data step estimates the sharp image's Fourier
*amplitude* and *phase* separately, each by a linear minimum-mean-squared-error (LMMSE) estimator.

Only the paper's abstract and introduction are known; the derivation is ours (``docs/models/upadnet.md``). The
shipped sizes (``kernel_init="l0"``) keep GDUNet's L0-initialised skeleton and refine every stage's HQS image
(the image-domain prior step) with the LMMSE estimators::

    k_1 = L0 coarse-to-fine kernel estimate of y (no gradient)
    for t = 1 .. T:
        k_t = k_1 for t = 1, else GDUNet's kernel update on u_{t-1}, fused with k_{t-1}
        v_t = HQS_t(y, k_t)                                               GDUNet's image step
        A^, phi^ = LMMSE of amplitude and phase of X from Y = F(ext y), K_t = F(k_t), prior centred on
                   V = F(ext v_t) with relative variances v_a,t(|w|), v_p,t(|w|)   physics.amplitude_phase_lmmse
        u_t = v_t + g_t (crop F^-1(A^ exp(i phi^)) - v_t)                 gate g_t, starts at 0
        u_t = u_t + a_t P_t(u_t)                                          GDUNet's gated proximal net (shipped:
                                                                          open in the last stage only)
    return u_T and k_1 .. k_T

With every ``g_t = 0`` the network is GDUNet. ``kernel_init="start"`` builds the earlier design (a NAFNet blind
start, GDUNet's first kernel updates, the LMMSE step centred on ``u_{t-1}`` as the whole image step).

Learned per stage (the quantities the derivation fixes): the prior variance profiles ``v_a, v_p`` over the radial
frequency (``profile_bins`` values, linearly interpolated), the noise scale ``n_t`` and the gate ``g_t``; the noise
level ``sigma`` is estimated from the photo (:func:`unblur.physics.estimate_noise_sigma`).

``decomposition="image"`` builds the ablation twin (benchmarks/upadnet_ablation.py): the same network whose data
step is the complex LMMSE of the same statistical model, i.e. the core's closed-form image step
``argmin |K X - Y|^2 + beta |X - U|^2`` with ``beta = s2 / (v |U|^2)``: one prior profile instead of two (the
twin has ``T x profile_bins`` fewer parameters: 24 in the tiny size).

Example:
    >>> import torch
    >>> from unblur.models import create
    >>> net = create("upadnet-tiny").eval()
    >>> out = net.forward_train(torch.rand(1, 3, 48, 40))
    >>> out["outputs"][-1][0].shape, out["kernels"][-1].shape
    (torch.Size([1, 3, 48, 40]), torch.Size([1, 1, 31, 31]))
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import InputError
from ..physics.boundary import Domain
from ..physics.fft import irfft2, rfft2
from ..physics.noise import estimate_noise_sigma
from ..physics.polar import amplitude_phase_lmmse, complex_lmmse_beta, radial_frequency
from ..physics.solvers import FourierDataStep
from .gdunet import GATE_SCALE, SIZES as GDUNET_SIZES, GDUNet
from .registry import register_model, register_weights

__all__ = ["UPADNet"]

DECOMPOSITIONS = ("amplitude-phase", "image")
_SIGMA_FLOOR = 1e-3  # the noise estimate's floor (a clean photo still has quantisation noise)


def _profile(values: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``values`` (R,) placed evenly on [0, 1] at the radii ``radius`` (any shape)."""
    pos = radius.clamp(0, 1) * (values.numel() - 1)
    lo = pos.floor().long().clamp(max=values.numel() - 2)
    frac = pos - lo
    return values[lo] * (1 - frac) + values[lo + 1] * frac


# GDUNet's sizes and L0-initialised skeleton (docs/models/upadnet.md): a size starts from the GDUNet weights of the
# same size (init_from), whose modules it shares by name; the paper size unrolls 5 stages (its depth is unknown)
@register_model("upadnet", {**GDUNET_SIZES, "paper": dict(GDUNET_SIZES["paper"], stages=5)})
class UPADNet(GDUNet):
    """Unrolled amplitude/phase network (see the module doc).

    Args:
        decomposition: ``"amplitude-phase"`` (UPADNet) or ``"image"`` (the image-domain twin).
        profile_bins: values of each learned radial profile.
        amp_var, phase_var, noise_scale: initial prior variances and noise scale (learned per stage).
        init_from: a shipped GDUNet weight set of the same shape (e.g. ``"gdunet-tiny.motion"``) whose shared
            modules (blind start, kernel updates, proximal nets) start this network (training only).
        The other arguments are GDUNet's (``kernel_init="start"``: the earlier design, without GDUNet's HQS steps).
    """

    def __init__(self, stages: int = 3, kernel_size: int = 31, start_width: int = 12, start_blocks=(1, 1, 1, 2),
                 width: int = 8, levels: int = 2, blocks: int = 1, prior_width: int = 4, gamma: float = 0.01,
                 in_channels: int = 3, start_from: str | None = None, edge_ratio: float = 10.0,
                 kernel_init: str = "l0", hqs_iters: int = 13, hqs_cg: int = 8, hqs_rate: float = 2.0,
                 init_iters=(5, 6, 2), train_init_iters=(2, 3, 0), init_sparsity: float = 0.05,
                 decomposition: str = "amplitude-phase", profile_bins: int = 8, amp_var: float = 1.0,
                 phase_var: float = 1.0, noise_scale: float = 1.0, init_from: str | None = None,
                 register: bool = True):
        if decomposition not in DECOMPOSITIONS:
            raise InputError(f"UPADNet: decomposition must be one of {', '.join(DECOMPOSITIONS)}, got {decomposition!r}")
        if int(profile_bins) < 2:
            raise InputError(f"UPADNet: profile_bins must be >= 2, got {profile_bins}")
        self.decomposition, self._bins = decomposition, int(profile_bins)
        self._inits = (amp_var, phase_var, noise_scale)
        super().__init__(stages=stages, kernel_size=kernel_size, start_width=start_width, start_blocks=start_blocks,
                         width=width, levels=levels, blocks=blocks, prior_width=prior_width, gamma=gamma,
                         in_channels=in_channels, start_from=start_from, edge_ratio=edge_ratio,
                         kernel_init=kernel_init, hqs_iters=hqs_iters, hqs_cg=hqs_cg, hqs_rate=hqs_rate,
                         init_iters=init_iters, train_init_iters=train_init_iters, init_sparsity=init_sparsity,
                         register=register)
        if init_from:
            self._init_from(init_from)

    def _build_image_steps(self, channels: int, prior_width: int, beta: float, weight: float) -> None:
        amp_var, phase_var, noise_scale = self._inits
        T, R = self.stages, self._bins
        if self.l0:  # GDUNet's HQS steps, then the LMMSE refinement through a gate that starts at 0
            super()._build_image_steps(channels, prior_width, beta, weight)
            self.lmmse_gates = nn.Parameter(torch.zeros(T))
        self.log_amp_var = nn.Parameter(torch.full((T, R), math.log(amp_var)))  # the twin's prior variance
        if self.decomposition == "amplitude-phase":
            self.log_phase_var = nn.Parameter(torch.full((T, R), math.log(phase_var)))
        self.log_noise = nn.Parameter(torch.full((T,), math.log(noise_scale)))

    def _init_from(self, name: str) -> None:
        from .registry import create

        theirs = create(name, pretrained=True).state_dict()
        mine = self.state_dict()
        shared = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
        if not any(k.startswith("proxes.") for k in shared):
            raise InputError(f"UPADNet: {name!r} shares no stage modules with this size")
        self.load_state_dict(shared, strict=False)

    def _image_step_inputs(self, y_ext: torch.Tensor) -> dict:
        H, W = y_ext.shape[-2:]
        sigma = estimate_noise_sigma(y_ext).detach().clamp_min(_SIGMA_FLOOR).float()
        return {"Y": rfft2(y_ext), "radius": radial_frequency((H, W), device=y_ext.device),
                "sigma2": sigma ** 2 * (H * W), "floor": _SIGMA_FLOOR ** 2 * (H * W)}

    def _image_step(self, t: int, u: torch.Tensor, y_ext: torch.Tensor, otf: torch.Tensor, otfs_grad,
                    shared: dict) -> torch.Tensor:
        noise_var = self.log_noise[t].exp() * shared["sigma2"]  # noise of a spectrum coefficient
        amp_var = _profile(self.log_amp_var[t], shared["radius"]).exp()
        U = rfft2(u)
        if self.decomposition == "image":
            beta = complex_lmmse_beta(U, amp_var, noise_var, shared["floor"])
            return FourierDataStep(y_ext, otf)(beta=beta, u=u)
        phase_var = _profile(self.log_phase_var[t], shared["radius"]).exp()
        X = amplitude_phase_lmmse(shared["Y"], otf, U, amp_var, phase_var, noise_var, shared["floor"])
        return irfft2(X, s=u.shape[-2:]).to(u.dtype)

    def _l0_step_inputs(self, y: torch.Tensor, sigma: torch.Tensor) -> dict:
        dom = Domain(y.shape[-2:], (self.kernel_size, self.kernel_size), device=y.device)
        y_ext = dom.extend(y.float())
        return {**self._image_step_inputs(y_ext), "dom": dom, "y_ext": y_ext}

    def _l0_image_step(self, t: int, y: torch.Tensor, k: torch.Tensor, sigma: torch.Tensor, shared: dict):
        """HQS image ``v`` of stage ``t``, then ``v + g_t (x^ - v)``: ``x^`` the LMMSE estimate (amplitude and phase,
        or the twin's complex one) with the prior centred on ``v``, on the periodic extension (module doc)."""
        return self.lmmse_refine(t, self._hqs_step(t, y, k, sigma), k, shared)

    def lmmse_refine(self, t: int, v: torch.Tensor, k: torch.Tensor, shared: dict) -> torch.Tensor:
        """Stage ``t``'s refinement ``v + g_t (x^ - v)`` of an image ``v`` for the kernel ``k`` (``shared``: what
        :meth:`_l0_step_inputs` computed for the photo). Also what ``scripts/upadnet_fit.py`` fits."""
        gate = self.lmmse_gates[t] * GATE_SCALE
        if not self.training and not bool(gate):  # a closed gate: exactly the HQS image, without the FFTs
            return v
        dom = shared["dom"]
        x = self._image_step(t, dom.extend(v.float()), shared["y_ext"], dom.otf(k.float()), None, shared)
        return v + gate * (dom.crop(x).to(v.dtype) - v)

register_weights(
    "upadnet-tiny", "motion", blind=True, blur=("motion",),
    data="gdunet-tiny.motion's modules; the LMMSE steps and the last stage's proximal net fitted on 416 synthetic "
         "camera-shake pairs from the CBSD432 training photos (31 px kernels, noise 0-0.05), scripts/upadnet_fit.py",
    steps="300 Adam steps per stage on 18 parameters a stage, then 800 on the last proximal net (gate open), every "
          "other module frozen (2-core CPU); see docs/weights.md",
    scores="see benchmarks/upadnet_ablation.md, benchmarks/motion_kodak24.md and benchmarks/levin.md",
)
