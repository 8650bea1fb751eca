"""``--model auto``: decide per photo between motion and defocus weights, with a small classifier on the blur's
spectral signature.

Camera shake removes the frequencies *along one direction* (the power spectrum of the photo is flattened into a
band), defocus removes them *in every direction alike* (and leaves rings). :func:`blur_features` measures that on
the grey photo: the mean power spectrum of 64 px Hann windows (log), pooled into 6 radial bands x 8 orientations,
each band's values relative to its mean over orientations (what is left is the anisotropy, not the photo's overall
brightness or blur strength), plus each band's mean relative to the lowest band (how much the blur removed); once
for the textured half of the windows and once for the most blurred half of those (defocus varies with depth).
:class:`BlurKindClassifier` is a logistic regression on those 106 numbers, trained on synthetic blur of the CBSD432
training photos (``scripts/train_auto_classifier.py``; shipped as ``weights/auto-blur-kind.safetensors``), whose
accuracy on Kodak24 ``benchmarks/auto_choice.py`` measures.
"""
from __future__ import annotations

import math
from importlib import resources

import torch

from ..physics.color import luminance
from ..physics.fft import rfft2

__all__ = ["AUTO_WEIGHTS", "BlurKindClassifier", "blur_features", "choose_kind"]

# The weight set ``--model auto`` picks for each kind: the best measured blind network of that kind
# (benchmarks/motion_kodak24.md; benchmarks/defocus.md: fdikp-tiny.defocus ahead of deeprftv2-tiny.defocus on
# uniform and depth-varying disks of Kodak24 and McMaster and on the mean of the six sets, behind on NYU and the
# other generator's lens PSF; benchmarks/auto_choice.md: on its 320 px crops behind on uniform disks, ahead on
# depth-varying blur).
AUTO_WEIGHTS = {"motion": "deeprftv2-tiny.motion", "defocus": "fdikp-tiny.defocus"}
WINDOW, BANDS, ANGLES = 64, 6, 8
CLASSIFIER_FILE = "auto-blur-kind.safetensors"


def _polar_pool() -> torch.Tensor:
    """(WINDOW * (WINDOW // 2 + 1), BANDS * ANGLES) averaging matrix over the half spectrum (DC and the highest
    corner frequencies left out)."""
    fy = torch.fft.fftfreq(WINDOW, dtype=torch.float64)[:, None].expand(WINDOW, WINDOW // 2 + 1)
    fx = torch.fft.rfftfreq(WINDOW, dtype=torch.float64)[None, :].expand(WINDOW, WINDOW // 2 + 1)
    r = torch.sqrt(fx ** 2 + fy ** 2) / 0.5
    theta = torch.remainder(torch.atan2(fy, fx), math.pi)  # orientation, 0..pi (the spectrum is symmetric)
    band = torch.floor(r * BANDS).long()
    angle = torch.floor(theta / math.pi * ANGLES).long().clamp(max=ANGLES - 1)
    ok = (r > 1.0 / WINDOW) & (band < BANDS)
    idx = (band * ANGLES + angle)[ok]
    pool = torch.zeros(WINDOW * (WINDOW // 2 + 1), BANDS * ANGLES, dtype=torch.float64)
    pool[ok.flatten().nonzero()[:, 0], idx] = 1.0
    return pool / pool.sum(0, keepdim=True).clamp_min(1)


_POOL = _polar_pool()


def blur_features(image: torch.Tensor, work_size: int = 768) -> torch.Tensor:
    """The classifier's 106 features of ``image`` ((C, H, W) or (1, C, H, W), [0, 1]); photos larger than
    ``work_size`` px are scaled down first (so that the blur, in pixels, is comparable)."""
    x = image if image.ndim == 4 else image[None]
    g = luminance(x[:1].double())
    H, W = g.shape[-2:]
    scale = min(1.0, work_size / max(H, W))
    if scale < 1:
        g = torch.nn.functional.interpolate(g, scale_factor=scale, mode="area")
        H, W = g.shape[-2:]
    if min(H, W) < WINDOW:
        g = torch.nn.functional.pad(g, (0, max(0, WINDOW - W), 0, max(0, WINDOW - H)), mode="replicate")
    win = torch.hann_window(WINDOW, periodic=False, dtype=torch.float64)
    patches = g.unfold(-2, WINDOW, WINDOW // 2).unfold(-2, WINDOW, WINDOW // 2)  # half-overlapping windows
    patches = patches.reshape(-1, WINDOW, WINDOW)
    patches = (patches - patches.mean((-2, -1), keepdim=True)) * (win[:, None] * win[None, :])
    power = rfft2(patches).abs().square().flatten(1) @ _POOL  # (windows, BANDS * ANGLES)
    # the textured half of the windows (flat ones show only the noise, which is isotropic), and the most blurred
    # half of those (the least high-frequency energy for their texture: where defocus varies with depth, the
    # in-focus subject says least about it)
    bands = power.view(-1, BANDS, ANGLES).mean(-1)
    textured = torch.argsort(bands[:, 1:3].sum(1), descending=True)[: max(1, len(power) // 2)]
    ratio = bands[textured, 3:].sum(1) / bands[textured, 1:3].sum(1)
    blurred = textured[torch.argsort(ratio)[: max(1, len(textured) // 2)]]
    return torch.cat([_describe(power[textured].mean(0)), _describe(power[blurred].mean(0))]).float()


def _describe(power: torch.Tensor) -> torch.Tensor:
    logp = torch.log(power + 1e-12).view(BANDS, ANGLES)
    band_mean = logp.mean(1, keepdim=True)
    return torch.cat([(logp - band_mean).flatten(), (band_mean[1:, 0] - band_mean[0, 0])])


class BlurKindClassifier:
    """Logistic regression ``p(defocus) = sigmoid(w . (f - mean) / std + b)`` on :func:`blur_features`."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor, l2: float = 1e-2, steps: int = 500) -> "BlurKindClassifier":
        """Train on ``features`` (N, F) and ``labels`` (N,), 1 = defocus (L-BFGS, L2-regularised, the two classes
        weighted equally, deterministic)."""
        mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
        z = (features - mean) / std
        labels = labels.float()
        share = labels.mean().clamp(1e-6, 1 - 1e-6)
        weights = torch.where(labels > 0.5, 0.5 / share, 0.5 / (1 - share))
        w = torch.zeros(z.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, labels, weight=weights)
                    + l2 * w.square().sum())
            loss.backward()
            return loss

        opt.step(closure)
        return cls(mean, std, w.detach(), b.detach())

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        """``p(defocus)`` of (F,) or (N, F) features."""
        return torch.sigmoid(((features - self.mean) / self.std) @ self.weight + self.bias)

    def save(self, path) -> None:
        from safetensors.torch import save_file

        from ..io.atomic import atomic_write

        with atomic_write(path, overwrite=True) as tmp:
            save_file({"mean": self.mean, "std": self.std, "weight": self.weight, "bias": self.bias}, str(tmp))

    @classmethod
    def load(cls, path=None) -> "BlurKindClassifier":
        """The shipped classifier (``path=None``) or one of your own."""
        from safetensors.torch import load_file

        path = path or resources.files("unblur") / "weights" / CLASSIFIER_FILE
        t = load_file(str(path))
        return cls(t["mean"], t["std"], t["weight"], t["bias"])


def choose_kind(image: torch.Tensor, classifier: BlurKindClassifier | None = None) -> tuple[str, str]:
    """``(kind, reason)`` for ``image``: ``"motion"`` or ``"defocus"`` and a one-line why."""
    clf = classifier or BlurKindClassifier.load()
    p = float(clf.probability(blur_features(image)))
    if p >= 0.5:
        return "defocus", f"the blur is alike in every direction: defocus (p = {p:.2f})"
    return "motion", f"the blur has a direction: camera shake (p(defocus) = {p:.2f})"
