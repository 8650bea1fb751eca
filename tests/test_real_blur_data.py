"""The real-blur training data: averaged video frames (linear light, splits, windows), the weighted mix, and a
training run on it."""
import numpy as np
import pytest
import torch
from PIL import Image

from unblur.data import FrameAverageDataset, MixedDataset, average_frames, real_blur_mix
from unblur.errors import InputError
from unblur.training.config import load_config
from unblur.training.trainer import Trainer


def _frames(folder, n=30, size=(24, 32), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i + 1:06d}.png")
    return folder


def _srgb_to_linear(v):  # IEC 61966-2-1, written out independently
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v):
    return np.where(v <= 0.04045 / 12.92, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def test_average_frames_is_a_linear_light_mean():
    f = torch.rand(5, 3, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = _linear_to_srgb(_srgb_to_linear(f.numpy()).mean(0))
    assert np.allclose(average_frames(f).numpy(), ref, atol=1e-12)
    assert not np.allclose(ref, f.numpy().mean(0), atol=1e-3)  # not the sRGB mean


def test_frames_dataset_pairs_windows_and_splits(tmp_path):
    root = _frames(tmp_path / "seq", n=30)
    ds = FrameAverageDataset(root, crop_size=16, window=(3, 5), split="train", frames=(1, 20), augment=False)
    item = ds[(0, 0)]
    assert item["blurred"].shape == item["sharp"].shape == (3, 16, 16) and item["frames"] in (3, 5)
    assert {ds[(0, i)]["frames"] for i in range(len(ds))} <= {3, 5}
    # the sharp target is the middle frame's crop, the blurred one the linear-light mean of the window (8-bit)
    frames = [np.asarray(Image.open(p), dtype=np.float64) / 255 for p in sorted(root.glob("*.png"))]
    n = item["frames"]
    found = False
    for s in range(20 - n + 1):  # windows inside the training frames 1-20 only
        window = np.stack(frames[s:s + n])
        for top in range(24 - 16 + 1):
            for left in range(32 - 16 + 1):
                if np.allclose(item["sharp"].permute(1, 2, 0).numpy(), window[n // 2, top:top + 16, left:left + 16]):
                    ref = _linear_to_srgb(_srgb_to_linear(window).mean(0))[top:top + 16, left:left + 16]
                    assert np.abs(item["blurred"].permute(1, 2, 0).numpy() - ref).max() <= 0.5 / 255 + 1e-6
                    found = True
    assert found
    # determinism, and epochs differ
    assert torch.equal(ds[(0, 3)]["blurred"], ds[(0, 3)]["blurred"])
    assert not torch.equal(ds[(0, 3)]["blurred"], ds[(1, 3)]["blurred"])
    # validation: fixed items from the held-out frames only
    val = FrameAverageDataset(root, crop_size=None, window=(3, 3), split="val", frames=(21, 30), length=4)
    assert torch.equal(val[1]["sharp"], val[1]["sharp"]) and val[0]["sharp"].shape == (3, 24, 32)
    held = [torch.from_numpy(f).permute(2, 0, 1).float() for f in frames[20:]]
    assert any(torch.allclose(val[0]["sharp"], h, atol=1e-6) for h in held[1:-1])


def test_frames_dataset_reads_sequence_folders_and_reports_bad_input(tmp_path):
    _frames(tmp_path / "all" / "a", n=12)
    _frames(tmp_path / "all" / "b", n=12, seed=1)
    ds = FrameAverageDataset(tmp_path / "all", crop_size=8, window=(3, 5), frames=(1, 12))
    assert len(ds.sequences) == 2
    with pytest.raises(InputError, match="not a folder"):
        FrameAverageDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frames"):
        FrameAverageDataset(tmp_path / "empty")
    with pytest.raises(InputError, match="odd"):
        FrameAverageDataset(tmp_path / "all", window=(4, 4))
    with pytest.raises(InputError, match="has 3 frames within frames 121-end"):
        FrameAverageDataset(tmp_path / "all", window=(3, 5), split="val")
    with pytest.raises(InputError, match="crop_size 64 exceeds"):
        FrameAverageDataset(tmp_path / "all", crop_size=64, window=(3, 3), frames=(1, 12))[0]


class _Const(torch.utils.data.Dataset):
    def __init__(self, value, n=5):
        self.value, self.n = value, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        return {"blurred": torch.full((1, 2, 2), float(self.value)), "sharp": torch.zeros(1, 2, 2), "extra": 1}


def test_mixed_dataset_follows_its_weights_and_seed():
    mix = MixedDataset([_Const(0), _Const(1), _Const(2)], [0.5, 0.0, 0.5], length=400, seed=3)
    parts = [mix[(0, i)]["part"] for i in range(400)]
    assert 1 not in parts and 150 < parts.count(0) < 250
    assert set(mix[(0, 0)]) == {"blurred", "sharp", "index", "part"}  # keys every part shares
    assert [mix[(0, i)]["part"] for i in range(20)] == parts[:20]
    assert [mix[(1, i)]["part"] for i in range(20)] != parts[:20]
    with pytest.raises(InputError, match="weights"):
        MixedDataset([_Const(0)], [-1.0], length=3)


def test_real_blur_mix_and_a_training_run_on_it(tmp_path):
    from test_training import _write_images

    sharp = _write_images(tmp_path / "sharp", n=4, size=(60, 64))
    frames = _frames(tmp_path / "frames", n=134, size=(20, 24))  # 121-134 validate
    ds = real_blur_mix(sharp, frames, crop_size=16, kernel_size=9, noise_sigma=(0, 0.01), shake_extent=(2, 6),
                       length=12)
    assert {ds[(0, i)]["blurred"].shape for i in range(12)} == {(3, 16, 16)}
    assert {ds[(0, i)]["part"] for i in range(12)} == {0, 1, 2}
    cfg = load_config(None, [
        "model.name=nafnet-tiny", "model.args.width=8", f"train.data.root={sharp}", "train.data.kind=realmix",
        f"train.data.frames_root={frames}", "train.data.shake_extent=[2,6]", "train.data.crop_size=16",
        "train.data.kernel_size=9", "train.batch_size=2", "train.num_workers=0", "train.device=cpu",
        "train.steps=2", "sched.warmup_steps=1", "val.every=2", "val.num_images=2", "val.crop_size=16",
        "val.batch_size=2", "val.previews=0", "run.tensorboard=false", "run.progress=false",
        f"run.dir={tmp_path / 'run'}"])
    trainer = Trainer(cfg)
    trainer.fit()
    assert type(trainer.val_ds).__name__ == "FrameAverageDataset" and trainer.val_ds.split == "val"
    assert (tmp_path / "run" / "last.pt").is_file()
