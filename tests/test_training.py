"""Training stack: config, losses, schedule, EMA, datasets, trainer, exact resume, DDP (gloo) and export."""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from unblur.errors import ConfigError, InputError
from unblur.models import create
from unblur.models.base import RestorationModel, downscale
from unblur.training.config import load_config
from unblur.training.losses import MultiScaleLoss, charbonnier_loss, fft_loss, l1_loss, psnr_loss

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- helpers
class TinyNet(RestorationModel):
    """A 2-scale residual CNN with dropout (so the RNG state matters for exact resume)."""

    size_multiple = 2

    def __init__(self, ch: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, ch, 3, padding=1)
        self.body = nn.Conv2d(ch, ch, 3, padding=1)
        self.drop = nn.Dropout2d(0.1)
        self.tail = nn.Conv2d(ch, 3, 3, padding=1)
        self.tail_half = nn.Conv2d(ch, 3, 3, padding=1)

    def _forward(self, x):
        f = F.relu(self.body(F.relu(self.head(x))))
        f = self.drop(f)
        return [(downscale(x) + self.tail_half(downscale(f)), 0.5), (x + self.tail(f), 1.0)]


def _write_images(folder: Path, n: int = 6, size=(40, 48), seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(n):
        img = np.stack([0.5 + 0.4 * np.sin(xx / (3 + i + c) + yy / (5 + c)) for c in range(3)], -1)
        img = img + 0.05 * rng.standard_normal(img.shape)
        Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(folder / f"im{i:02d}.png")
    return folder


def _tiny_cfg(tmp_path: Path, name: str = "run", extra: list[str] = ()) -> object:
    root = tmp_path / "sharp"
    if not root.exists():
        _write_images(root)
    return load_config(None, [
        "model.name=testnet-tiny", f"train.data.root={root}", "train.data.crop_size=16",
        "train.data.kernel_size=9", "train.data.noise_sigma=[0,0.02]", "train.data.holdout=1",
        "train.batch_size=2", "train.num_workers=0", "train.device=cpu", "train.steps=6", "train.log_every=1",
        "train.ema=0.9",
        "sched.warmup_steps=2", "val.every=3", "val.num_images=2", "val.crop_size=16", "val.batch_size=2",
        "run.ckpt_every=100", "run.tensorboard=false", "run.progress=false", f"run.dir={tmp_path / name}",
        *extra])


# ---------------------------------------------------------------------------------------------- config
def test_config_file_overrides_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  name: nafnet-tiny\ntrain:\n  data:\n    root: data/sharp\noptim:\n  lr: 1e-3\n")
    cfg = load_config(p, ["optim.lr=2e-4", "train.data.noise_sigma=[0, 0.05]", "model.args.width=8",
                          "train.amp=bf16", "run.dir=out"])
    assert cfg.optim.lr == 2e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.train.data.noise_sigma == [0.0, 0.05]
    assert cfg.model.args == {"width": 8}
    assert cfg.train.data.root == str(tmp_path / "data" / "sharp")  # relative to the CWD
    assert cfg.run.dir == str(tmp_path / "out")
    assert cfg.train.batch_size == 8 and cfg.optim.betas == [0.9, 0.9]  # defaults
    assert load_config(p).optim.lr == 1e-3  # YAML 1.1 reads "1e-3" as a string: accepted as a number


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "key 'optim.lr' must be > 0, got -1"),
    ("optim.lrr=0.1", "unknown key 'optim.lrr'; did you mean 'optim.lr'?"),
    ("train.batch_size=abc", "key 'train.batch_size' must be an integer, got 'abc'"),
    ("train.amp=fp8", "key 'train.amp' must be one of auto, off, bf16, fp16, got 'fp8'"),
    ("train.data.kernel_size=8", "key 'train.data.kernel_size' must be an odd integer >= 1, got 8"),
    ("train.data.noise_sigma=[0.2,0.1]", "key 'train.data.noise_sigma' must satisfy 0 <= low <= high"),
    ("train.ema=true", "key 'train.ema' must be a number, got True"),
    ("train.data.max_images=0", "key 'train.data.max_images' must be >= 1 or null"),
    ("train.data.aberration=1.5", "key 'train.data.aberration' must be in [0, 1], got 1.5"),
    ("lr=0.1", "unknown key 'lr'; did you mean 'optim.lr'?"),
    ("train.data.mix=[1,1]", "key 'train.data.mix' must be three weights >= 0 (frames, shake, uniform)"),
    ("train.data.mix=[0,0,0]", "key 'train.data.mix' must not be all 0"),
    ("train.data.shake_extent=[40,4]", "key 'train.data.shake_extent' must satisfy 0 <= low <= high <= 200"),
    ("train.data.kind=video", "key 'train.data.kind' must be one of synthetic, realmix,"),
    ("loss.image_max_shift=-1", "key 'loss.image_max_shift' must be >= 0"),
])
def test_config_errors_are_one_line(tmp_path, override, message):
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: nafnet-tiny}\ntrain: {data: {root: x}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, [override])
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"config {p}: ")
    assert message in text


def test_config_unknown_key_in_file_and_missing_required(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: nafnet-tiny}\ntrain: {data: {root: x}, batchsize: 4}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.batchsize'; did you mean 'train.batch_size'\?"):
        load_config(p)
    p.write_text("train: {data: {root: x}}\n")
    with pytest.raises(ConfigError, match=r"key 'model.name' is required"):
        load_config(p)


def test_shipped_configs_load():
    for p in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(p, base_dir=REPO)
        assert all(0 < b < 1 for b in cfg.optim.betas) and cfg.train.data.kind in ("synthetic", "realmix")
        create(cfg.model.name, **dict(cfg.model.args))  # the model and its arguments exist


# ---------------------------------------------------------------------------------------------- losses
def test_losses_closed_forms():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 10, generator=g)
    y = torch.rand(2, 3, 8, 10, generator=g)
    assert torch.isclose(charbonnier_loss(x, x, eps=1e-3), torch.tensor(1e-3))
    d = 0.25
    assert torch.isclose(charbonnier_loss(x + d, x, eps=0.1), torch.tensor(math.sqrt(d * d + 0.01)))
    assert torch.isclose(l1_loss(x, y), (x - y).abs().mean())
    mse = ((x - y) ** 2).flatten(1).mean(1)
    assert torch.isclose(psnr_loss(x, y), -(10 * torch.log10(1 / mse)).mean(), atol=1e-4)
    assert fft_loss(x, x) == 0
    # a constant difference c lives in the DC bin only: c*H*W out of 2*H*(W//2+1) real numbers
    c, H, W = 0.1, 8, 10
    assert torch.isclose(fft_loss(x + c, x), torch.tensor(c * H * W / (2 * H * (W // 2 + 1))), rtol=1e-4)


def test_multiscale_loss_weights_and_scales():
    g = torch.Generator().manual_seed(1)
    t = torch.rand(1, 3, 16, 16, generator=g)
    half = downscale(t, 0.5)
    loss = MultiScaleLoss("l1", fft_weight=0.0, scale_weights=[1.0, 0.5, 1.0])
    total, _ = loss([(half + 0.2, 0.5), (t + 0.1, 1.0)], t)
    assert torch.isclose(total, torch.tensor(0.5 * 0.2 + 0.1), atol=1e-6)
    only_last = MultiScaleLoss("l1", fft_weight=0.0, all_outputs=False)
    assert torch.isclose(only_last([(t + 0.3, 1.0), (t + 0.1, 1.0)], t)[0], torch.tensor(0.1), atol=1e-6)
    with_fft = MultiScaleLoss("l1", fft_weight=0.01)
    assert with_fft([(half, 0.5), (t, 1.0)], t)[0] == 0


def test_image_loss_up_to_a_shift_moves_the_target_onto_each_output(tmp_path):
    """A blind result moved by a few pixels costs nothing with ``image_max_shift`` (full scale only), a real error
    still does, and the gradient reaches the output."""
    g = torch.Generator().manual_seed(2)
    t = torch.rand(2, 3, 32, 32, generator=g)
    moved = torch.stack([t[0].roll((2, -1), (-2, -1)), t[1].roll((-3, 0), (-2, -1))]).requires_grad_(True)
    plain = MultiScaleLoss("l1", fft_weight=0.01)
    tolerant = MultiScaleLoss("l1", fft_weight=0.01, image_max_shift=3)
    assert plain([(moved, 1.0)], t)[0] > 0.1
    total, _ = tolerant([(moved, 1.0)], t)
    assert total < 1e-6
    assert tolerant([(moved + 0.1, 1.0)], t)[0].item() == pytest.approx(0.1 + 0.01 * 0.1 * 26 * 26 / (2 * 26 * 14), rel=1e-3)
    short = MultiScaleLoss("l1", fft_weight=0.0, image_max_shift=1)  # beyond its reach: not found
    assert short([(moved, 1.0)], t)[0] > 0.1
    (total + tolerant([(moved * 0.9, 1.0)], t)[0]).backward()
    assert moved.grad is not None and moved.grad.abs().sum() > 0
    p = tmp_path / "c.yaml"
    p.write_text("model: {name: gdunet-tiny}\ntrain: {data: {root: x}}\nloss: {image_max_shift: 4}\n")
    assert MultiScaleLoss.from_config(load_config(p).loss).image_max_shift == 4


def test_schedule_and_ema():
    from unblur.training.ema import ModelEMA
    from unblur.training.schedule import warmup_cosine

    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, total_steps=12, warmup_steps=4, min_lr=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[8] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] > 0.1

    m = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(m.weight)
    ema = ModelEMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(1.0)
    for _ in range(3):
        ema.update(m)
    d = [min(0.5, (1 + n) / (10 + n)) for n in range(3)]  # warm-up of the decay
    assert ema.module.weight.item() == pytest.approx(1 - d[0] * d[1] * d[2])


# ---------------------------------------------------------------------------------------------- datasets
def test_one_truncated_training_image_is_skipped_not_fatal(tmp_path):
    from unblur.data import SyntheticBlurDataset
    from unblur.errors import InputError

    root = _write_images(tmp_path / "sharp", n=3)
    files = sorted(p for p in root.iterdir() if p.is_file())
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 3])  # truncated mid-file
    ds = SyntheticBlurDataset(root, crop_size=16, kernel_size=9, seed=0, length=6)
    with pytest.warns(UserWarning, match="unreadable"):
        items = [ds[i] for i in range(6)]
    assert all(it["blurred"].shape == (3, 16, 16) and torch.isfinite(it["blurred"]).all() for it in items)
    for f in files:  # nothing readable at all: a clear error
        f.write_bytes(b"not an image")
    with pytest.raises(InputError, match="none of the 3 images"):
        SyntheticBlurDataset(root, crop_size=16, kernel_size=9)[0]


def test_synthetic_dataset_determinism_and_splits(tmp_path):
    from unblur.data import SyntheticBlurDataset

    root = _write_images(tmp_path / "sharp", n=5)
    ds = SyntheticBlurDataset(root, crop_size=16, kind="motion", kernel_size=9, noise_sigma=(0.0, 0.02), seed=3,
                              holdout=2)
    again = SyntheticBlurDataset(root, crop_size=16, kind="motion", kernel_size=9, noise_sigma=(0.0, 0.02), seed=3,
                                 holdout=2)
    a = ds[(0, 1)]
    assert a["blurred"].shape == a["sharp"].shape == (3, 16, 16)
    assert torch.equal(a["blurred"], again[(0, 1)]["blurred"]) and torch.equal(a["sharp"], again[(0, 1)]["sharp"])
    assert not torch.equal(a["blurred"], ds[(0, 2)]["blurred"])  # other index
    assert not torch.equal(a["blurred"], ds[(1, 1)]["blurred"])  # other epoch
    ds.set_epoch(1)
    assert torch.equal(ds[1]["blurred"], ds[(1, 1)]["blurred"])
    val = SyntheticBlurDataset(root, crop_size=16, kernel_size=9, seed=3, split="val", holdout=2, length=4)
    assert len(val) == 4 and torch.equal(val[3]["blurred"], val[(7, 3)]["blurred"])  # val ignores the epoch
    assert not set(ds.files) & set(val.files) and len(ds.files) == 3 and len(val.files) == 2
    few = SyntheticBlurDataset(root, crop_size=16, kernel_size=9, seed=3, holdout=2, max_images=2)
    assert few.files == ds.files[:2] and len(few) == 2  # a small-data ablation: the first N training images
    with pytest.raises(InputError, match="max_images"):
        SyntheticBlurDataset(root, crop_size=16, kernel_size=9, max_images=0)


def test_synthetic_pairs_are_aligned(tmp_path):
    """With a delta kernel and no noise the valid blur returns the sharp crop itself."""
    from unblur.data import SyntheticBlurDataset
    from unblur.physics.kernels import FileKernels
    from unblur.physics.pipeline import DegradationPipeline

    root = _write_images(tmp_path / "sharp", n=2)
    delta = torch.zeros(9, 9)
    delta[4, 4] = 1
    pipe = DegradationPipeline(FileKernels([delta]), noise=None, mode="valid")
    ds = SyntheticBlurDataset(root, crop_size=16, kernel_size=9, pipeline=pipe, return_kernel=True)
    for i in range(2):
        item = ds[(0, i)]
        assert item["blurred"].shape == (3, 16, 16)
        torch.testing.assert_close(item["blurred"], item["sharp"], atol=1e-5, rtol=0)
        assert item["kernel"].shape == (1, 9, 9)


def test_sharded_sampler_partitions_each_epoch():
    from unblur.training.distributed import ShardedSampler

    ranks = [ShardedSampler(10, batch_size=2, rank=r, world_size=2, seed=5) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    keys = [k for s in ranks for k in s]
    seen = [i for _, i in keys]
    assert all(e == 3 for e, _ in keys) and len(seen) == 8 and len(set(seen)) == 8  # 2 full batches per rank
    whole = list(ranks[0])
    ranks[0].set_position(3, 1)  # resume after one batch
    assert list(ranks[0]) == whole[2:] and len(ranks[0]) == 2
    other = ShardedSampler(10, batch_size=2, rank=0, world_size=2, seed=5)
    other.set_epoch(4)
    assert [i for _, i in other] != [i for _, i in whole]
    endless = ShardedSampler(10, batch_size=2, rank=0, world_size=2, seed=5, infinite=True)
    endless.set_position(3, 1)
    assert list(itertools.islice(endless, 6)) == whole[2:] + list(other)


def _png(path: Path, value: int, size=(12, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_paired_layouts(tmp_path):
    from unblur.data import PairedFolderDataset

    g = tmp_path / "gopro"
    for scene in ("GOPR0001", "GOPR0002"):
        for name in ("000001.png", "000002.png"):
            _png(g / "train" / scene / "blur" / name, 10)
            _png(g / "train" / scene / "blur_gamma" / name, 20)
            _png(g / "train" / scene / "sharp" / name, 200)
    ds = PairedFolderDataset(g, "gopro", "train", crop_size=8)
    assert len(ds) == 4 and all(b.parent.name == "blur" for b, _ in ds.pairs)
    item = ds[0]
    assert item["blurred"].shape == (3, 8, 8) and torch.allclose(item["sharp"], torch.full((3, 8, 8), 200 / 255))

    h = tmp_path / "hide"
    _png(h / "train" / "a.png", 10)
    _png(h / "test" / "test-close-ups" / "b.png", 10)
    _png(h / "GT" / "a.png", 200)
    _png(h / "GT" / "b.png", 200)
    assert len(PairedFolderDataset(h, "hide", "train")) == 1 and len(PairedFolderDataset(h, "hide", "test")) == 1

    r = tmp_path / "realblur"
    _png(r / "RealBlur-J_ECC" / "scene1" / "gt" / "gt_1.png", 200)
    _png(r / "RealBlur-J_ECC" / "scene1" / "blur" / "blur_1.png", 10)
    (r / "RealBlur_J_test_list.txt").write_text(
        "RealBlur-J_ECC/scene1/gt/gt_1.png RealBlur-J_ECC/scene1/blur/blur_1.png\n")
    ds = PairedFolderDataset(r, "realblur", "test")
    assert ds.pairs[0][0].name == "blur_1.png" and ds[0]["sharp"].mean() > ds[0]["blurred"].mean()

    d = tmp_path / "dpdd"
    _png(d / "test_c" / "source" / "1P0A1.png", 10)
    _png(d / "test_c" / "target" / "1P0A1.png", 200)
    assert len(PairedFolderDataset(d, "dpdd", "test")) == 1
    rs = tmp_path / "restormer-dpdd"  # the prepared test layout of Restormer's scripts
    _png(rs / "test" / "DPDD" / "inputC" / "1P0A2.png", 10)
    _png(rs / "test" / "DPDD" / "target" / "1P0A2.png", 200)
    assert PairedFolderDataset(rs / "test" / "DPDD", "dpdd", "test").pairs[0][0].parent.name == "inputC"

    rd = tmp_path / "RealDOF"
    _png(rd / "source" / "0001.png", 10)
    _png(rd / "target" / "0001.png", 200)
    ds = PairedFolderDataset(rd, "realdof", "test")
    assert len(ds) == 1 and ds[0]["sharp"].mean() > ds[0]["blurred"].mean()

    f = tmp_path / "folders"
    _png(f / "blur" / "x.png", 10)
    _png(f / "sharp" / "x.png", 200)
    assert len(PairedFolderDataset(f, "folders")) == 1

    with pytest.raises(InputError, match=r"GoPro layout: no .*/train/<scene>/blur folders found"):
        PairedFolderDataset(h, "gopro", "train")
    with pytest.raises(InputError, match="DPDD layout: missing folder"):
        PairedFolderDataset(g, "dpdd", "train")
    with pytest.raises(InputError, match="RealDOF layout: missing folder"):
        PairedFolderDataset(g, "realdof", "test")
    with pytest.raises(InputError, match="RealBlur layout: no list file"):
        PairedFolderDataset(g, "realblur", "train")
    _png(f / "blur" / "y.png", 10)
    with pytest.raises(InputError, match="no sharp image for"):
        PairedFolderDataset(f, "folders")


# ---------------------------------------------------------------------------------------------- training
def test_tiny_training_run_loss_decreases(tmp_path):
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    cfg = _tiny_cfg(tmp_path, extra=["train.steps=40", "optim.lr=3e-3", "sched.warmup_steps=1", "val.every=40",
                                     "loss.pixel=charbonnier", "train.grad_clip=1.0", "train.data.holdout=0",
                                     "train.data.length=4", "train.data.augment=false"])
    tr = Trainer(cfg, model=TinyNet)
    out = tr.fit()
    losses = [v for _, v in tr.history]
    assert len(losses) == 40 and out["step"] == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    assert (Path(cfg.run.dir) / "last.pt").is_file() and (Path(cfg.run.dir) / "metrics.jsonl").is_file()
    assert math.isfinite(out["psnr"]) and 0 < out["ssim"] <= 1


@pytest.mark.parametrize("option", ["train.channels_last=true", "train.compile=default"])
def test_channels_last_and_compile_train_the_same_model(tmp_path, option):
    """The GPU speed options change how a step runs, not what it computes: same losses, same weights."""
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    extra = ["train.steps=3", "val.every=0", "train.data.holdout=0", "train.data.length=4"]
    runs = []
    for name, opts in (("plain", []), ("fast", [option])):
        tr = Trainer(_tiny_cfg(tmp_path, name, extra=extra + opts), model=TinyNet)
        try:
            tr.fit()
        except Exception as err:  # inductor needs a C compiler; without one there is nothing to compare
            if "compile" in option:
                pytest.skip(f"torch.compile unavailable here: {str(err).splitlines()[0][:80]}")
            raise
        runs.append(tr)
    (_, a), (_, b) = runs[0].history[-1], runs[1].history[-1]
    assert abs(a - b) < 1e-4 * max(1.0, abs(a))
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
    assert runs[1].model.head.weight.is_contiguous(memory_format=torch.channels_last) == ("channels" in option)


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_stop_signal_writes_a_checkpoint_and_exits(tmp_path, signame, code):
    """A scheduler's SIGTERM or a Ctrl-C (SIGINT) during step 2: the step finishes, last.pt is written,
    the exit status says which, and the previous handler is back."""
    import os
    import signal

    from unblur.training.checkpoint import load_checkpoint
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    tr = Trainer(_tiny_cfg(tmp_path, signame.lower()), model=TinyNet)
    step = tr.train_step

    def step_then_signal(batch):
        out = step(batch)
        if tr.step == 1:
            os.kill(os.getpid(), signum)
        return out

    tr.train_step = step_then_signal
    with pytest.raises(SystemExit) as exc:
        tr.fit()
    assert exc.value.code == code
    assert load_checkpoint(Path(tr.cfg.run.dir) / "last.pt")["step"] == 2  # nothing since the last step lost
    assert signal.getsignal(signum) is before


def test_sigterm_to_loader_workers_too_still_saves(tmp_path):
    """`pkill -f` signals the DataLoader workers as well as the main process: the workers must leave the stop to
    the main process, which then saves and exits 143 (instead of crashing on a dead worker)."""
    import multiprocessing
    import signal

    from unblur.training.checkpoint import load_checkpoint
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    tr = Trainer(_tiny_cfg(tmp_path, "term-workers", extra=["train.num_workers=2"]), model=TinyNet)
    step = tr.train_step
    signalled = []

    def step_then_terminate_all(batch):
        out = step(batch)
        if tr.step == 1:
            workers = multiprocessing.active_children()
            for w in workers:
                os.kill(w.pid, signal.SIGTERM)
            for w in workers:
                w.join(timeout=0.5)  # a worker that obeyed SIGTERM is gone by now
            signalled.extend((w, w.is_alive()) for w in workers)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    tr.train_step = step_then_terminate_all
    with pytest.raises(SystemExit) as exc:
        tr.fit()
    assert len(signalled) == 2 and all(alive for _, alive in signalled)  # both signalled, both ignored it
    assert exc.value.code == 143
    assert load_checkpoint(Path(tr.cfg.run.dir) / "last.pt")["step"] == 2


def test_exact_resume_is_bit_identical(tmp_path):
    from unblur.training.checkpoint import load_checkpoint
    from unblur.training.trainer import Trainer

    torch.set_num_threads(1)
    full = Trainer(_tiny_cfg(tmp_path, "full"), model=TinyNet)
    full.fit()
    half = Trainer(_tiny_cfg(tmp_path, "half"), model=TinyNet)
    assert half.fit(stop_at=3)["step"] == 3
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = Trainer(_tiny_cfg(tmp_path, "half"), model=TinyNet, resume="auto")
    assert resumed.fit()["step"] == 6
    a, b = load_checkpoint(Path(full.cfg.run.dir) / "last.pt"), load_checkpoint(Path(resumed.cfg.run.dir) / "last.pt")
    for part in ("model",):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), k
    for k in a["ema"]["module"]:
        assert torch.equal(a["ema"]["module"][k], b["ema"]["module"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    assert a["metrics"]["psnr"] == b["metrics"]["psnr"]
    assert [h for h in full.history if h[0] > 3] == resumed.history


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from pathlib import Path
    from test_training import TinyNet, _tiny_cfg
    import unblur.training.trainer as T

    saves = []
    real_save = T.save_checkpoint
    def counting_save(path, state):
        with open(Path({tmp!r}) / f"saves_rank{{os.environ['RANK']}}.txt", "a") as f:
            f.write(str(Path(path).name) + "\\n")
        return real_save(path, state)
    T.save_checkpoint = counting_save

    tr = T.Trainer(_tiny_cfg(Path({tmp!r}), "ddp", ["run.ckpt_every=2", "train.steps=4", "val.every=2",
                                                     "train.data.holdout=0"]), model=TinyNet)
    tr.fit()
    torch.save(tr.model.state_dict(), Path({tmp!r}) / f"params_rank{{os.environ['RANK']}}.pt")
""")


def test_ddp_two_processes_gloo(tmp_path):
    _write_images(tmp_path / "sharp")
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    p0 = torch.load(tmp_path / "params_rank0.pt")
    p1 = torch.load(tmp_path / "params_rank1.pt")
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    assert (tmp_path / "saves_rank0.txt").read_text().split() == ["last.pt", "last.pt"]
    assert not (tmp_path / "saves_rank1.txt").exists()
    ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 4
    assert all(torch.equal(ckpt["model"][k], p0[k]) for k in p0)


# ---------------------------------------------------------------------------------------------- CLI + export
def test_cli_train_export_and_load(tmp_path, capsys):
    from safetensors.torch import load_file

    from unblur.cli.main import main

    root = _write_images(tmp_path / "sharp", n=3, size=(48, 48))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {{name: nafnet-tiny}}\ntrain: {{data: {{root: {root}, crop_size: 32, kernel_size: 9}}}}\n")
    common = ["train.steps=2", "train.batch_size=1", "train.num_workers=0", "val.every=0", "train.ema=0.5",
              "run.tensorboard=false", "run.progress=false", f"run.dir={tmp_path / 'run'}"]
    assert main(["train", str(cfg), "optim.lr=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"unblur: error: config {cfg}: key 'optim.lr' must be > 0, got -1"
    assert main(["train", str(cfg), *common]) == 0
    ckpt = tmp_path / "run" / "last.pt"
    capsys.readouterr()
    assert main(["train", str(cfg), *common]) == 2  # the run dir is taken
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", str(cfg), *common, "train.steps=3", "--resume", "auto"]) == 0
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    out = tmp_path / "w.safetensors"
    assert main(["export", str(ckpt), str(out)]) == 0
    model = create("nafnet-tiny")
    model.load_state_dict(load_file(str(out)))
    from unblur.training.checkpoint import load_checkpoint

    state = load_checkpoint(ckpt)
    assert all(torch.equal(v, state["ema"]["module"][k]) for k, v in model.state_dict().items())
    assert main(["export", str(ckpt), str(out)]) == 2  # exists, no --overwrite
    capsys.readouterr()
    from unblur.training.export import export_weights

    export_weights(ckpt, out, use_ema=False, overwrite=True)
    raw = load_file(str(out))
    assert all(torch.equal(raw[k], state["model"][k]) for k in raw)


def test_tensorboard_is_optional(tmp_path, monkeypatch, capsys):
    from unblur.training.trainer import _tensorboard_writer

    writer = _tensorboard_writer(tmp_path / "tb", 0)
    if writer is not None:  # tensorboard installed: events are written
        writer.add_scalar("x", 1.0, 0)
        writer.close()
        assert any((tmp_path / "tb").iterdir())
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    assert _tensorboard_writer(tmp_path / "tb2", 0) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tensorboard is not installed" in err
