"""The model contract with kernels: ``model(x, kernel=None)``, ``forward_train`` stage kernels, the kernel and
reblur losses, the trainer with kernel targets, weight tags in the registry, ``unblur models``, and
``RestoreResult.kernel`` being only a physical kernel (DeepRFTv2's FKE filters are ``filters``)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import unblur.models as M
import unblur.models.registry as R
from unblur.errors import ConfigError, InputError
from unblur.metrics import kernel_psnr
from unblur.models.base import RestorationModel, downscale
from unblur.physics import conv2d
from unblur.physics.kernels import normalize_kernel, pad_kernel
from unblur.physics.pipeline import DegradationPipeline
from unblur.training.losses import MultiScaleLoss, TrainingLoss, kernel_loss, reblur_loss


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_kernel(k: int, seed: int, batch: int = 1) -> torch.Tensor:
    return normalize_kernel(torch.rand(batch, 1, k, k, generator=_gen(seed)) ** 4)


# ---------------------------------------------------------------------------------------------- fake models
class FakeNonBlind(RestorationModel):
    """Non-blind toy: ``x + a * (k (*) x - x)`` with the given kernel (replicate boundary), a learnable ``a``."""

    blind = False

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))
        self.seen: list[torch.Tensor] = []

    def _forward(self, x, kernel):
        self.seen.append(kernel)
        return [(x + self.a * (conv2d(x, kernel, "replicate") - x), 1.0)]


class FakeUnrolled(RestorationModel):
    """Blind toy with the shape of an unrolled network: each of ``stages`` stages estimates a physical kernel
    (softmax of learned logits, the same for every image) and refines the image; ``_forward`` returns the dict
    form ``{"outputs", "kernels"}``."""

    physical_kernels = True
    size_multiple = 2

    def __init__(self, stages: int = 2, ksize: int = 5):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(stages, 1, 1, ksize, ksize))
        self.convs = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1) for _ in range(stages)])

    def _forward(self, x):
        kernels, img = [], x
        for logit, conv in zip(self.logits, self.convs):
            k = torch.softmax(logit.flatten(1), -1).reshape(logit.shape).expand(x.shape[0], -1, -1, -1)
            kernels.append(k)
            img = img + conv(img)
        return {"outputs": [(downscale(img), 0.5), (img, 1.0)], "kernels": kernels}


# ---------------------------------------------------------------------------------------------- model contract
def test_non_blind_model_gets_the_kernel_and_requires_it():
    model = FakeNonBlind()
    x = torch.rand(2, 3, 13, 11, generator=_gen(0))
    k = _random_kernel(5, 1, batch=2)
    with torch.no_grad():
        y = model(x, kernel=k)
        ref = x + 0.5 * (conv2d(x, k, "replicate") - x)
    torch.testing.assert_close(y, ref)
    assert model.seen[-1].shape == (2, 1, 5, 5)
    with torch.no_grad():
        y2 = model(x, kernel=k[0, 0])  # (kh, kw) is broadcast over the batch
    torch.testing.assert_close(y2, x + 0.5 * (conv2d(x, k[0, 0], "replicate") - x))
    assert not torch.allclose(y, y2)  # the per-image kernels mattered
    with pytest.raises(InputError, match="is non-blind: give the blur kernel"):
        model(x)
    with pytest.raises(InputError, match=r"kernel must have shape .* got \(3, 1, 5, 5\)"):
        model(x, kernel=_random_kernel(5, 2, batch=3))


@pytest.mark.parametrize("name", [n for n in M.list_models() if n.endswith("-tiny")])
def test_blind_networks_accept_and_ignore_a_kernel(name):
    torch.manual_seed(0)
    model = M.create(name).eval()
    assert model.blind
    x = torch.rand(1, 3, 20, 24, generator=_gen(1))
    with torch.no_grad():
        a, b = model(x), model(x, kernel=_random_kernel(7, 3))
        c = model.forward_train(x, kernel=_random_kernel(7, 3))
    assert torch.equal(a, b) and ("kernels" in c) == model.physical_kernels
    assert (model.estimate_kernels(x) is not None) == model.physical_kernels


def test_forward_train_passes_stage_kernels_through():
    torch.manual_seed(0)
    model = FakeUnrolled(stages=3, ksize=5)
    x = torch.rand(2, 3, 15, 9, generator=_gen(2))  # odd sizes: padded to 16 x 10, outputs cropped back
    out = model.forward_train(x)
    assert [tuple(img.shape) for img, _ in out["outputs"]] == [(2, 3, 8, 5), (2, 3, 15, 9)]
    assert len(out["kernels"]) == 3
    for k in out["kernels"]:
        assert k.shape == (2, 1, 5, 5) and (k >= 0).all()
        torch.testing.assert_close(k.sum((-2, -1)), torch.ones(2, 1))
    assert out["kernels"][0].requires_grad
    assert torch.equal(model(x), out["outputs"][-1][0])
    est = model.estimate_kernels(x, size=9)
    assert est.shape == (2, 1, 9, 9)
    torch.testing.assert_close(est, pad_kernel(out["kernels"][-1].detach(), 9))


def test_forward_train_rejects_badly_shaped_stage_kernels():
    class Bad(FakeUnrolled):
        def _forward(self, x):
            out = super()._forward(x)
            return {**out, "kernels": [k[:, 0] for k in out["kernels"]]}  # (B, k, k): no channel axis

    with pytest.raises(ValueError, match=r"stage kernels must be \(B, 1, k, k\)"):
        Bad().forward_train(torch.rand(1, 3, 8, 8))


# ---------------------------------------------------------------------------------------------- losses
def test_kernel_loss_is_zero_up_to_a_shift_and_positive_otherwise():
    t = _random_kernel(9, 4)
    shifted = torch.roll(pad_kernel(t, 15), shifts=(1, -2), dims=(-2, -1))  # another support size too
    assert kernel_loss(shifted, t, max_shift=2).item() == pytest.approx(0.0, abs=1e-7)
    assert kernel_loss(shifted, t, max_shift=2, norm="l2").item() == pytest.approx(0.0, abs=1e-9)
    assert kernel_loss(shifted, t, max_shift=1).item() > 0.05  # the shift is outside the search
    other = _random_kernel(9, 5)
    assert kernel_loss(other, t, max_shift=2).item() > 0.1
    # batch: mean of the per-kernel values
    both = kernel_loss(torch.cat([shifted, pad_kernel(other, 15)]), torch.cat([t, t]), max_shift=2)
    torch.testing.assert_close(both, kernel_loss(other, t, max_shift=2) / 2)


def test_kernel_loss_l2_matches_kernel_psnr():
    """Independent reference: metrics.kernel_psnr (float64 correlation search) gives the same best squared error."""
    for seed in range(3):
        e, t = _random_kernel(7, 10 + seed), _random_kernel(11, 20 + seed)
        for s in (0, 3):
            p = kernel_psnr(e[0, 0], t[0, 0], max_shift=s)
            sse = t.numel() * float(t.max()) ** 2 / 10 ** (p / 10)
            assert kernel_loss(e, t, max_shift=s, norm="l2").item() == pytest.approx(sse, rel=1e-4)


def test_kernel_loss_has_gradients():
    logits = torch.zeros(1, 1, 7, 7, requires_grad=True)
    k = torch.softmax(logits.flatten(1), -1).reshape(1, 1, 7, 7)
    kernel_loss(k, _random_kernel(7, 6)).backward()
    assert logits.grad.abs().sum() > 0


def test_reblur_loss_zero_for_the_true_kernel_of_the_synthetic_pipeline():
    pipe = DegradationPipeline.from_name("motion", kernel_size=9, noise_sigma=0, mode="valid")
    pair = pipe(torch.rand(2, 3, 40, 36, generator=_gen(7)), generator=_gen(8))
    k = pair["kernel"]
    assert reblur_loss(k, pair["sharp"], pair["blurred"]).item() < 1e-6
    assert reblur_loss(pad_kernel(k, 13), pair["sharp"], pair["blurred"]).item() < 1e-6  # zero-padded: same kernel
    assert reblur_loss(k.flip(-1), pair["sharp"], pair["blurred"]).item() > 1e-3
    assert reblur_loss(torch.roll(k, 1, -1), pair["sharp"], pair["blurred"]).item() > 1e-3  # alignment matters


def test_reblur_loss_matches_the_synthetic_dataset(tmp_path):
    from unblur.data import SyntheticBlurDataset

    folder = tmp_path / "sharp"
    _write_images(folder, n=2)
    ds = SyntheticBlurDataset(folder, crop_size=20, kernel_size=9, noise_sigma=0.0, return_kernel=True)
    item = ds[0]
    k = item["kernel"][None]
    assert k.shape == (1, 1, 9, 9)
    assert reblur_loss(k, item["sharp"][None], item["blurred"][None]).item() < 1e-6


def test_training_loss_parts_and_errors():
    torch.manual_seed(0)
    model = FakeUnrolled()
    pipe = DegradationPipeline.from_name("motion", kernel_size=5, noise_sigma=0, mode="valid")
    pair = pipe(torch.rand(2, 3, 20, 20, generator=_gen(9)), generator=_gen(10))
    out = model.forward_train(pair["blurred"])
    image = MultiScaleLoss("l1", fft_weight=0.0)
    loss = TrainingLoss(image, kernel_weight=2.0, reblur_weight=3.0, kernel_max_shift=1)
    total, parts = loss(out, pair["sharp"], blurred=pair["blurred"], kernel=pair["kernel"])
    assert set(parts) == {"pixel", "kernel", "reblur"}
    img_total, _ = image(out["outputs"], pair["sharp"])
    kl = sum(kernel_loss(k, pair["kernel"], 1) for k in out["kernels"]) / 2
    rl = sum(reblur_loss(k, pair["sharp"], pair["blurred"]) for k in out["kernels"]) / 2
    torch.testing.assert_close(total, img_total + 2 * kl + 3 * rl)
    assert parts["kernel"] == pytest.approx(kl.item()) and parts["reblur"] == pytest.approx(rl.item())
    with pytest.raises(ConfigError, match="returns no kernels"):
        loss({"outputs": out["outputs"]}, pair["sharp"], blurred=pair["blurred"], kernel=pair["kernel"])
    with pytest.raises(ConfigError, match="needs the true kernels"):
        loss(out, pair["sharp"], blurred=pair["blurred"])
    assert set(TrainingLoss(MultiScaleLoss())(out, pair["sharp"])[1]) == {"pixel", "fft"}


# ---------------------------------------------------------------------------------------------- trainer
def _write_images(folder: Path, n: int = 4, size=(36, 40)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.random((*size, 3)) * 0.5 + 0.25
        Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def _cfg(tmp_path: Path, extra=()):
    from unblur.training.config import load_config

    root = tmp_path / "sharp"
    if not root.exists():
        _write_images(root)
    return load_config(None, [
        "model.name=fake-tiny", f"train.data.root={root}", "train.data.crop_size=16", "train.data.kernel_size=5",
        "train.data.noise_sigma=0", "train.batch_size=2", "train.num_workers=0", "train.device=cpu",
        "train.steps=2", "train.log_every=1", "train.ema=0", "sched.warmup_steps=1", "val.every=2",
        "val.num_images=2", "val.crop_size=16", "val.batch_size=2", "run.ckpt_every=100",
        "run.tensorboard=true", "run.progress=false", f"run.dir={tmp_path / 'run'}", *extra])


class _Recorder:
    def __init__(self):
        self.tags: dict[str, list[float]] = {}

    def add_scalar(self, tag, value, step):
        self.tags.setdefault(tag, []).append(float(value))

    def add_image(self, *a, **k):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def test_trainer_step_with_a_kernel_returning_model(tmp_path, monkeypatch):
    """The true kernels of the synthetic batch reach the kernel loss; its parts are logged by name."""
    import unblur.training.trainer as T

    rec = _Recorder()
    monkeypatch.setattr(T, "_tensorboard_writer", lambda *a, **k: rec)
    torch.set_num_threads(1)
    cfg = _cfg(tmp_path, ["loss.kernel_weight=1.0", "loss.reblur_weight=0.5", "loss.kernel_max_shift=1"])
    tr = T.Trainer(cfg, model=FakeUnrolled)
    tr.setup()
    batch = next(iter(tr.loader))
    assert batch["kernel"].shape == (2, 1, 5, 5)
    before = tr.model.logits.detach().clone()
    with torch.no_grad():
        out = tr.model.forward_train(batch["blurred"])
    want = sum(kernel_loss(k, batch["kernel"], 1) for k in out["kernels"]) / len(out["kernels"])
    r = tr.train_step(batch)
    assert set(r["parts"]) == {"pixel", "fft", "kernel", "reblur"}
    assert r["parts"]["kernel"] == pytest.approx(want.item(), rel=1e-5)
    assert not torch.equal(tr.model.logits, before)  # the kernel terms moved the kernel logits

    result = T.Trainer(cfg, model=FakeUnrolled, overwrite=True).fit()
    assert result["step"] == 2
    for name in ("loss", "loss_pixel", "loss_fft", "loss_kernel", "loss_reblur"):
        assert len(rec.tags[f"train/{name}"]) == 2, sorted(rec.tags)


def test_trainer_passes_kernels_to_non_blind_models_only(tmp_path):
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    model = FakeNonBlind()
    tr = Trainer(_cfg(tmp_path, ["run.tensorboard=false"]), model=model)
    tr.setup()
    batch = next(iter(tr.loader))
    tr.train_step(batch)
    assert torch.equal(model.seen[-1], batch["kernel"])
    tr.validate()  # the validation set also carries kernels for a non-blind model
    assert model.seen[-1].shape == (2, 1, 5, 5)

    class Spy(FakeUnrolled):
        def forward_train(self, x, kernel=None):
            assert kernel is None  # blind: the kernel is a target, never an input
            return super().forward_train(x)

    tr = Trainer(_cfg(tmp_path, ["run.tensorboard=false", "loss.kernel_weight=1", "run.dir=" + str(tmp_path / "b")]),
                 model=Spy)
    tr.setup()
    tr.train_step(next(iter(tr.loader)))


def test_trainer_config_errors_for_kernel_losses(tmp_path):
    from unblur.training.trainer import Trainer

    cfg = _cfg(tmp_path, ["run.tensorboard=false", "loss.reblur_weight=1"])
    with pytest.raises(ConfigError, match="estimates no physical kernels"):
        Trainer(cfg, model=lambda: M.create("nafnet-tiny")).setup()
    cfg = _cfg(tmp_path, ["run.tensorboard=false", "loss.kernel_weight=1", "train.data.kind=gopro"])
    with pytest.raises(ConfigError, match="train.data.kind must be synthetic"):
        Trainer(cfg, model=FakeUnrolled).setup()


# ---------------------------------------------------------------------------------------------- registry tags
def test_weight_tags_load_default_and_named():
    tagged = M.list_models(pretrained=True)
    assert {"deeprftv2-tiny.motion", "nafnet-tiny.motion"} <= set(tagged)
    assert all("." in n for n in tagged)
    a = M.create("deeprftv2-tiny", pretrained=True)
    b = M.create("deeprftv2-tiny.motion", pretrained=True)
    assert a.weight_spec.name == b.weight_spec.name == "deeprftv2-tiny.motion"
    assert a.weight_spec.blind and a.weight_spec.blur == ("motion",) and "24.67 dB" in a.weight_spec.scores
    fresh = M.create("deeprftv2-tiny.motion")  # a tag without pretrained: the architecture, untrained
    assert fresh.weight_spec is None and fresh.training
    for (k, v), w, f in zip(a.state_dict().items(), b.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(v, w), k
    assert any(not torch.equal(v, f) for v, f in zip(a.state_dict().values(), fresh.state_dict().values()))


def test_unknown_tag_and_extra_tags(monkeypatch, tmp_path):
    with pytest.raises(InputError, match=r"^unknown weights 'deeprftv2-tiny\.gopro'; weight tags of "
                                         r"'deeprftv2-tiny': deeprftv2-tiny\.motion, deeprftv2-tiny\.defocus, "
                                         r"deeprftv2-tiny\.real$"):
        M.create("deeprftv2-tiny.gopro", pretrained=True)
    with pytest.raises(InputError, match="unknown model 'deeprftv9-tiny'"):
        M.create("deeprftv9-tiny.motion", pretrained=True)
    # A second weight set of the same size (same file here) loads by its tag; the first stays the default.
    monkeypatch.setattr(R, "_WEIGHTS", {k: dict(v) for k, v in R._WEIGHTS.items()})
    R.register_weights("nafnet-tiny", "copy", file="nafnet-tiny.motion.safetensors", blur=("motion",))
    R.register_weights("nafnet-tiny", "gone", blur=("defocus",))  # registered, file not installed
    assert M.create("nafnet-tiny.copy", pretrained=True).weight_spec.tag == "copy"
    assert M.create("nafnet-tiny", pretrained=True).weight_spec.tag == "motion"
    assert "nafnet-tiny.copy" in M.list_models(pretrained=True)
    assert "nafnet-tiny.gone" not in M.list_models(pretrained=True)
    with pytest.raises(InputError, match=r"weight tags of 'nafnet-tiny': nafnet-tiny\.motion, nafnet-tiny\.copy, "
                                         r"nafnet-tiny\.gone$"):
        M.create("nafnet-tiny.other", pretrained=True)
    with pytest.raises(InputError, match=r"nafnet-tiny\.gone\.safetensors of 'nafnet-tiny\.gone' is not installed"):
        M.create("nafnet-tiny.gone", pretrained=True)
    with pytest.raises(ValueError, match="without '.'"):
        R.register_weights("nafnet-tiny", "a.b")


def test_cli_models_table(capsys):
    from unblur.cli.main import main

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    n = sum(p.numel() for p in M.create("deeprftv2-tiny").parameters())
    row = next(line.split() for line in lines if line.split()[:1] == ["deeprftv2-tiny"])
    assert row[1] == f"{n / 1e6:.2f}M" and row[2] == "yes" and row[3:5] == ["defocus,", "motion"]
    assert " ".join(row[5:]).startswith("deeprftv2-tiny.motion*: Kodak24 motion 24.67 dB / 0.643 SSIM")
    extra = lines[lines.index(next(line for line in lines if line.split()[:1] == ["deeprftv2-tiny"])) + 1]
    assert extra.split()[0] == "deeprftv2-tiny.defocus:"  # the second tag on its own line
    small = next(line.split() for line in lines if line.split()[:1] == ["deeprftv2-small"])
    assert small[2:] == ["yes", "-", "-"]
    assert any(line.split()[:1] == ["blind-l0"] for line in lines)


# ---------------------------------------------------------------------------------------------- restore
def _photo(path: Path, size=(40, 48)) -> Path:
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_restore_reports_deeprftv2_filters_never_as_kernel(tmp_path):
    from unblur.inference.restore import restore, restore_file

    x = torch.rand(1, 3, 40, 48, generator=_gen(11))
    res = restore(x, model="deeprftv2-tiny", device="cpu", estimate_filters=True)
    assert res.kernel is None
    assert res.filters is not None and res.filters.shape[-2:] == (65, 65)
    assert restore(x, model="deeprftv2-tiny", device="cpu").filters is None
    src = _photo(tmp_path / "p.png")
    with pytest.raises(InputError, match="estimates no physical blur kernel"):
        restore_file(src, tmp_path / "out", model="deeprftv2-tiny", device="cpu", save_kernel=True)
    assert not (tmp_path / "out" / "p_kernel.png").exists()
    written = restore_file(src, tmp_path / "out", model="deeprftv2-tiny", device="cpu", save_filters=True)
    assert written == [tmp_path / "out" / "p.png", tmp_path / "out" / "p_filters.png"]


def test_cli_save_kernel_with_deeprftv2_writes_a_note_not_a_kernel(tmp_path, capsys):
    from unblur.cli.main import main

    src = _photo(tmp_path / "p.png")
    out = tmp_path / "out"
    assert main(["restore", str(src), "-o", str(out), "--model", "deeprftv2-tiny.motion", "--save-kernel",
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "deeprftv2-tiny.motion estimates no physical blur kernel" in err and "--save-filters" in err
    assert sorted(p.name for p in out.iterdir()) == ["p.png"]
    assert main(["restore", str(src), "-o", str(out), "--model", "deeprftv2-tiny", "--save-filters",
                 "--overwrite", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p.png", "p_filters.png"]
    assert main(["restore", str(src), "-o", str(out), "--model", "deeprftv2-tiny.gopro", "--device", "cpu"]) == 2
    assert "unknown weights 'deeprftv2-tiny.gopro'" in capsys.readouterr().err


def test_restore_passes_the_given_kernel_to_a_non_blind_network(tmp_path):
    from unblur.inference.restore import restore

    x = torch.rand(1, 3, 40, 48, generator=_gen(12))
    k = _random_kernel(5, 13)
    net = FakeNonBlind()
    res = restore(x, model=net, kernel=k[0, 0], tile=None)
    with torch.no_grad():
        want = net(x, kernel=k).clamp(0, 1)
    torch.testing.assert_close(res.image, want)
    torch.testing.assert_close(res.kernel.reshape(k.shape), k)  # the kernel used: a physical one
    tiled = restore(x, model=net, kernel=k[0, 0], tile=32)  # the tiler calls the network with its kernel bound
    torch.testing.assert_close(tiled.image, want, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="is non-blind: give the blur kernel"):
        restore(x, model=net)
    with pytest.raises(InputError, match="is blind"):
        restore(x, model="nafnet-tiny", kernel=k[0, 0])
