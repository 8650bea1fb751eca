"""End-to-end command line: `unblur restore|blur|eval|models|train` through main() and one real subprocess."""
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from unblur.cli.main import main
from unblur.physics.conv import conv2d

SUBCOMMANDS = ["restore", "blur", "eval", "train", "models", "serve"]


def _scene(h, w, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.5 + 0.3 * torch.sin(6 * xx + 4 * yy * (i + 1) + float(torch.rand(1, generator=g)) * 6)
                       for i in range(c)])
    img += 0.15 * ((xx > 0.35) & (xx < 0.65)).float()
    return img.clamp(0, 1)


def _save_rgb(path, img):
    arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(path)


def _kernel(k=5):
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1
    return kernel / kernel.sum()


@pytest.fixture
def photos(tmp_path):
    """A folder with two 48x48 blurred photos and their (shared) kernel as .npy."""
    d = tmp_path / "in"
    d.mkdir()
    k = _kernel()
    for i, name in enumerate(["a.png", "b.png"]):
        sharp = _scene(52, 52, seed=i)[None]
        _save_rgb(d / name, conv2d(sharp, torch.from_numpy(k), mode="valid")[0])
    np.save(tmp_path / "k.npy", k)
    return d


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_python_m_unblur_help():
    r = subprocess.run([sys.executable, "-m", "unblur", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for name in SUBCOMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help(name, capsys):
    assert main([name, "--help"]) == 0
    assert "usage: unblur " + name in capsys.readouterr().out


def test_usage_errors_exit_2(capsys, tmp_path):
    assert main([]) == 2
    assert main(["restore", "x.png"]) == 2  # -o missing
    assert main(["restore", "x.png", "-o", str(tmp_path), "--method", "wiener", "--model", "m"]) == 2
    assert main(["restore", "x.png", "-o", str(tmp_path), "--method", "nope"]) == 2
    assert main(["restore", "x.png", "-o", str(tmp_path), "--method", "wiener"]) == 2  # non-blind needs --kernel
    assert main(["restore", "x.png", "-o", str(tmp_path), "--method", "blind-l0", "--kernel", "k.npy"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nope'" in err and "--kernel" in err and "Traceback" not in err


@pytest.mark.parametrize("method", ["wiener", "hqs-tv", "hqs-hl", "richardson-lucy", "blind-l0"])
def test_restore_each_method(method, photos, tmp_path):
    out = tmp_path / "out"
    kernel = ["--kernel-size", "7"] if method == "blind-l0" else ["--kernel", str(tmp_path / "k.npy")]
    code = main(["restore", str(photos / "a.png"), "-o", str(out), "--method", method, "--quiet",
                 "--save-kernel", "--device", "cpu"] + kernel)
    assert code == 0
    assert Image.open(out / "a.png").size == (48, 48)
    assert (out / "a_kernel.png").is_file()


def test_blind_method_writes_its_kernel_by_default(photos, tmp_path):
    common = ["restore", str(photos / "a.png"), "--method", "blind-l0", "--kernel-size", "5", "--quiet", "--device", "cpu"]
    assert main(common + ["-o", str(tmp_path / "on")]) == 0
    assert (tmp_path / "on" / "a_kernel.png").is_file()
    assert main(common + ["-o", str(tmp_path / "off"), "--no-save-kernel"]) == 0
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["a.png"]


def test_folder_glob_and_side_by_side(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["restore", str(photos / "*.png"), "-o", str(out), "--method", "wiener",
                 "--kernel", str(tmp_path / "k.npy"), "--side-by-side"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_before_after.png", "b.png", "b_before_after.png"]
    assert "restored 2 of 2" in capsys.readouterr().out
    # Kernel folder matched by stem: one kernel missing -> that file fails, the other is written.
    kdir = tmp_path / "kernels"
    kdir.mkdir()
    np.save(kdir / "a.npy", _kernel())
    out2 = tmp_path / "out2"
    assert main(["restore", str(photos), "-o", str(out2), "--method", "wiener", "--kernel", str(kdir), "--quiet"]) == 1
    assert (out2 / "a.png").is_file() and not (out2 / "b.png").exists()
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("unblur: error:") and "b" in err[0]


def test_corrupt_file_in_batch(photos, tmp_path, capsys):
    bad = photos / "broken.png"
    bad.write_bytes(b"this is not a png")
    out = tmp_path / "out"
    code = main(["restore", str(bad), str(photos / "a.png"), "-o", str(out), "--method", "wiener",
                 "--kernel", str(tmp_path / "k.npy"), "--quiet"])
    assert code == 1
    assert (out / "a.png").is_file() and not (out / "broken.png").exists()
    err = capsys.readouterr().err
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("unblur: error:") and "broken.png" in lines[0]
    assert "Traceback" not in err


def test_missing_input(tmp_path, capsys):
    code = main(["restore", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "nope.png" in err and err.startswith("unblur: error:") and "Traceback" not in err


def test_wrong_kernel_shape(photos, tmp_path, capsys):
    np.save(tmp_path / "k3.npy", np.ones((2, 5, 5), np.float32))
    np.save(tmp_path / "huge.npy", np.ones((61, 61), np.float32))
    for k in ["k3.npy", "huge.npy"]:
        code = main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "out"), "--method", "wiener",
                     "--kernel", str(tmp_path / k), "--quiet"])
        assert code in (1, 2)
        err = capsys.readouterr().err
        assert len(_lines(err)) == 1 and err.startswith("unblur: error:") and "Traceback" not in err
        assert not (tmp_path / "out" / "a.png").exists()


def test_overwrite_and_never_the_input(photos, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["restore", str(photos / "a.png"), "-o", str(out), "--method", "wiener", "--kernel",
            str(tmp_path / "k.npy"), "--quiet"]
    assert main(args) == 0
    (out / "a.png").write_bytes(b"old contents")
    assert main(args) == 1
    assert (out / "a.png").read_bytes() == b"old contents"
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert (out / "a.png").read_bytes() != b"old contents"
    # Output folder = input folder: refused even with --overwrite, input untouched.
    before = (photos / "a.png").read_bytes()
    code = main(["restore", str(photos / "a.png"), "-o", str(photos), "--method", "wiener", "--kernel",
                 str(tmp_path / "k.npy"), "--quiet", "--overwrite"])
    assert code == 1 and (photos / "a.png").read_bytes() == before
    assert "input" in capsys.readouterr().err


def test_16bit_in_16bit_out(tmp_path):
    img = _scene(48, 48, c=1)[0]
    src = tmp_path / "in16.png"
    Image.fromarray((img.numpy() * 65535).round().astype(np.uint16)).save(src)
    assert Image.open(src).mode.startswith("I")
    np.save(tmp_path / "k.npy", _kernel(3))
    assert main(["restore", str(src), "-o", str(tmp_path / "out"), "--method", "wiener",
                 "--kernel", str(tmp_path / "k.npy"), "--quiet"]) == 0
    out = Image.open(tmp_path / "out" / "in16.png")
    assert out.mode.startswith("I") and out.size == (48, 48)
    arr = np.asarray(out)
    assert arr.max() > 255  # really 16-bit values


def test_rgba_alpha_passthrough(tmp_path):
    rgb = (_scene(48, 48).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    alpha = np.tile(np.linspace(0, 255, 48).round().astype(np.uint8), (48, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    np.save(tmp_path / "k.npy", _kernel(3))
    assert main(["restore", str(tmp_path / "rgba.png"), "-o", str(tmp_path / "out"), "--method", "hqs-tv",
                 "--kernel", str(tmp_path / "k.npy"), "--quiet"]) == 0
    out = Image.open(tmp_path / "out" / "rgba.png")
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def _blur_args(src, out, seed=0, extra=()):
    return ["blur", str(src), "-o", str(out), "--kind", "motion", "--kernel-size", "9", "--seed", str(seed),
            "--quiet", *extra]


@pytest.fixture
def sharp_dir(tmp_path):
    d = tmp_path / "sharp_src"
    d.mkdir()
    for i in range(2):
        _save_rgb(d / f"img{i}.png", _scene(40, 44, seed=i))
    return d


def test_blur_reproducible(sharp_dir, tmp_path):
    assert main(_blur_args(sharp_dir, tmp_path / "o1", seed=3)) == 0
    assert main(_blur_args(sharp_dir, tmp_path / "o2", seed=3)) == 0
    assert main(_blur_args(sharp_dir, tmp_path / "o3", seed=4)) == 0
    files = sorted(p.relative_to(tmp_path / "o1") for p in (tmp_path / "o1").rglob("*") if p.is_file())
    assert [str(f) for f in files] == [
        "blurred/img0.png", "blurred/img1.png", "kernels/img0.npy", "kernels/img0.png",
        "kernels/img1.npy", "kernels/img1.png", "sharp/img0.png", "sharp/img1.png",
    ]
    for f in files:
        assert (tmp_path / "o1" / f).read_bytes() == (tmp_path / "o2" / f).read_bytes()
    assert (tmp_path / "o1/kernels/img0.npy").read_bytes() != (tmp_path / "o3/kernels/img0.npy").read_bytes()
    # --count cycles over the images with distinct stems.
    assert main(_blur_args(sharp_dir, tmp_path / "o4", extra=["--count", "3"])) == 0
    assert sorted(p.stem for p in (tmp_path / "o4" / "blurred").iterdir()) == ["img0_000", "img0_001", "img1_000"]


def test_blur_alignment(sharp_dir, tmp_path):
    assert main(_blur_args(sharp_dir, tmp_path / "o", extra=["--noise", "0"])) == 0
    src = torch.from_numpy(np.asarray(Image.open(sharp_dir / "img0.png"), np.float32) / 255).permute(2, 0, 1)
    k = torch.from_numpy(np.load(tmp_path / "o/kernels/img0.npy"))
    assert k.shape == (9, 9) and abs(float(k.sum()) - 1) < 1e-5
    blurred = np.asarray(Image.open(tmp_path / "o/blurred/img0.png"), np.float32) / 255
    sharp = np.asarray(Image.open(tmp_path / "o/sharp/img0.png"), np.float32) / 255
    assert blurred.shape == sharp.shape == (32, 36, 3)
    # The sharp crop is the part of the source under the kernel centre of each blurred pixel.
    assert np.array_equal(sharp, src[:, 4:36, 4:40].permute(1, 2, 0).numpy())
    expected = conv2d(src[None], k, mode="valid")[0].permute(1, 2, 0).numpy()
    assert np.abs(blurred - expected).max() <= 0.5 / 255 + 1e-4


def test_eval_matches_metrics(tmp_path, capsys):
    from unblur.io import read_image
    from unblur.metrics import mae, psnr, ssim

    res, ref = tmp_path / "res", tmp_path / "ref"
    res.mkdir()
    ref.mkdir()
    for i in range(2):
        clean = _scene(40, 40, seed=i)
        noisy = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(i))).clamp(0, 1)
        _save_rgb(ref / f"x{i}.png", clean)
        _save_rgb(res / f"x{i}.png", noisy)
    _save_rgb(res / "extra.png", _scene(40, 40))
    code = main(["eval", str(res), str(ref), "--border", "2", "--ssim", "gaussian", "--csv", str(tmp_path / "m.csv")])
    assert code == 0
    out = capsys.readouterr().out
    assert "extra.png" in out and "unmatched" in out
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert [r["image"] for r in rows] == ["x0.png", "x1.png", "mean"]
    for r in rows[:2]:
        x = read_image(res / r["image"]).data[None]
        y = read_image(ref / r["image"]).data[None]
        p = float(psnr(x, y, border=2)[0])
        s = float(ssim(x, y, border=2, variant="gaussian")[0])
        assert float(r["psnr"]) == pytest.approx(p, rel=1e-6)
        assert float(r["ssim"]) == pytest.approx(s, rel=1e-6)
        assert f"{p:.2f}" in out and f"{s:.4f}" in out
        assert float(r["mae"]) == pytest.approx(float(mae(x[..., 2:-2, 2:-2], y[..., 2:-2, 2:-2])[0]), rel=1e-5)
    assert float(rows[2]["psnr"]) == pytest.approx((float(rows[0]["psnr"]) + float(rows[1]["psnr"])) / 2)
    # Existing CSV is not replaced without --overwrite.
    assert main(["eval", str(res), str(ref), "--csv", str(tmp_path / "m.csv")]) == 2


def test_models_lists_names(capsys):
    from unblur.classical import METHODS
    from unblur.models import list_models

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list(METHODS) + list_models():
        assert name in out


# ---------------------------------------------------------------------------------------------
# two inputs never share an output; eval never writes over an image; seeds in range (issue 14)


def test_restore_refuses_inputs_that_share_an_output(tmp_path, capsys):
    cam1, cam2, out = tmp_path / "cam1", tmp_path / "cam2", tmp_path / "out"
    cam1.mkdir()
    cam2.mkdir()
    _save_rgb(cam1 / "IMG_0001.png", _scene(40, 40, seed=1))
    _save_rgb(cam2 / "IMG_0001.png", _scene(40, 40, seed=2))
    k = tmp_path / "k.npy"
    np.save(k, _kernel())
    code = main(["restore", str(cam1 / "IMG_0001.png"), str(cam2 / "IMG_0001.png"), "-o", str(out),
                 "--kernel", str(k), "--method", "wiener", "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(_lines(err)) == 1 and "cam2" in err and "also the output of" in err
    first = np.asarray(Image.open(out / "IMG_0001.png"))
    # the first input's result is kept: a re-run restoring only cam1 writes the same picture
    main(["restore", str(cam1 / "IMG_0001.png"), "-o", str(tmp_path / "again"), "--kernel", str(k),
          "--method", "wiener", "--quiet"])
    np.testing.assert_array_equal(first, np.asarray(Image.open(tmp_path / "again" / "IMG_0001.png")))


def test_restore_refuses_shared_kernel_file_and_outputs_named_like_inputs(tmp_path, capsys):
    d, out = tmp_path / "in", tmp_path / "out"
    d.mkdir()
    _save_rgb(d / "p.png", _scene(40, 40, seed=1))
    _save_rgb(d / "p.jpg", _scene(40, 40, seed=2))
    code = main(["restore", str(d / "p.png"), str(d / "p.jpg"), "-o", str(out), "--method", "blind-l0",
                 "--kernel-size", "5", "--quiet"])
    assert code == 1 and "p_kernel.png" in capsys.readouterr().err
    assert sorted(f.name for f in out.iterdir()) == ["p.png", "p_kernel.png"]
    # an input named like another input's side-by-side picture, restored into its own folder
    _save_rgb(d / "p_before_after.png", _scene(40, 40, seed=3))
    code = main(["restore", str(d / "p.png"), str(d / "p_before_after.png"), "-o", str(tmp_path / "o2"),
                 "--method", "blind-l0", "--kernel-size", "5", "--side-by-side", "--quiet"])
    assert code == 1 and "p_before_after.png" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", "abc"])
def test_out_of_range_seed_is_a_usage_error(tmp_path, photos, capsys, seed):
    for cmd in (["restore", str(photos), "-o", str(tmp_path / "o")], ["blur", str(photos), "-o", str(tmp_path / "b")]):
        assert main(cmd + ["--seed", seed]) == 2
        err = capsys.readouterr().err
        assert "seed" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()


def test_eval_csv_never_replaces_an_image_and_mean_psnr_stays_finite(tmp_path, capsys):
    res, ref = tmp_path / "res", tmp_path / "ref"
    res.mkdir()
    ref.mkdir()
    _save_rgb(res / "a.png", _scene(32, 32, seed=1))
    _save_rgb(ref / "a.png", _scene(32, 32, seed=1))  # identical pair: PSNR inf
    _save_rgb(res / "b.png", _scene(32, 32, seed=2))
    _save_rgb(ref / "b.png", _scene(32, 32, seed=3))
    before = (res / "a.png").read_bytes()
    for target in (res / "a.png", tmp_path / "table.png"):
        assert main(["eval", str(res), str(ref), "--csv", str(target), "--overwrite"]) == 2
        assert "--csv" in capsys.readouterr().err
    assert (res / "a.png").read_bytes() == before and not (tmp_path / "table.png").exists()
    assert main(["eval", str(res), str(ref), "--csv", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    mean = [line for line in out.splitlines() if line.startswith("mean")][0]
    assert "inf" not in mean and "left out of the mean PSNR" in out
    rows = list(csv.reader(open(tmp_path / "t.csv")))
    assert rows[-1][0] == "mean" and np.isfinite(float(rows[-1][1]))


def test_empty_output_folder_and_unsupported_device_are_refused_up_front(tmp_path, photos, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cmd in (["restore", str(photos), "-o", ""], ["blur", str(photos), "-o", " "]):
        assert main(cmd) == 2
        assert "empty output folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "k.npy"]  # nothing written here
    assert main(["restore", str(photos), "-o", str(tmp_path / "o"), "--device", "meta"]) == 2
    assert "not supported" in capsys.readouterr().err


def test_a_photo_given_as_kernel_is_refused(tmp_path, photos, capsys):
    # a colour photo, and a grey one (its border is bright): neither is a blur kernel
    _save_rgb(tmp_path / "photo.png", _scene(96, 128))
    _save_rgb(tmp_path / "grey.png", _scene(96, 128, c=1))
    for bad in ("photo.png", "grey.png"):
        code = main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "o"), "--method", "wiener",
                     "--kernel", str(tmp_path / bad)])
        assert code != 0
        err = capsys.readouterr().err
        assert bad in err and ("colour picture" in err or "looks like a photo" in err)
    # a real kernel PNG still works, a small box that fills its support included
    box = np.full((5, 5), 255, np.uint8)
    Image.fromarray(box).save(tmp_path / "box.png")
    assert main(["restore", str(photos / "a.png"), "-o", str(tmp_path / "o2"), "--method", "wiener",
                 "--kernel", str(tmp_path / "box.png"), "--quiet"]) == 0


def test_unwritable_output_folders_are_refused_before_the_work(tmp_path, photos, capsys):
    link = tmp_path / "gone"
    link.symlink_to(tmp_path / "missing-target")
    assert main(["restore", str(photos), "-o", str(link), "--method", "blind-l0", "--kernel-size", "5"]) == 2
    assert "broken symbolic link" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["restore", str(photos), "-o", str(blocker / "sub"), "--method", "blind-l0"]) == 2
    assert "cannot be created" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_interrupted_blur_leaves_no_incomplete_set_and_a_rerun_completes_it(sharp_dir, tmp_path, monkeypatch, capsys):
    import unblur.io as uio

    real = uio.write_kernel
    calls = {"n": 0}

    def write_then_interrupt(path, *a, **k):  # Ctrl-C while the second set's .npy kernel is written
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(uio, "write_kernel", write_then_interrupt)
    assert main(_blur_args(sharp_dir, tmp_path / "o", seed=3)) == 130
    left = sorted(str(p.relative_to(tmp_path / "o")) for p in (tmp_path / "o").rglob("*") if p.is_file())
    assert left == ["blurred/img0.png", "kernels/img0.npy", "kernels/img0.png", "sharp/img0.png"]
    monkeypatch.setattr(uio, "write_kernel", real)
    capsys.readouterr()
    # the re-run keeps the complete set and makes the missing one: same files as one uninterrupted run
    assert main(_blur_args(sharp_dir, tmp_path / "o", seed=3)) == 0
    assert main(_blur_args(sharp_dir, tmp_path / "ref", seed=3)) == 0
    for f in (tmp_path / "ref").rglob("*"):
        if f.is_file():
            assert (tmp_path / "o" / f.relative_to(tmp_path / "ref")).read_bytes() == f.read_bytes()


def test_restore_gdunet_writes_its_kernel_by_default_at_the_kernel_size_asked(tmp_path, capsys):
    """A network that estimates a physical kernel writes it by default (like blind methods); ``--kernel-size``
    sets its size for such a network and is refused for one without a kernel."""
    d = tmp_path / "in"
    d.mkdir()
    _save_rgb(d / "p.png", _scene(48, 40, seed=1))
    assert main(["restore", str(d / "p.png"), "-o", str(tmp_path / "a"), "--model", "gdunet-tiny.motion",
                 "--kernel-size", "41", "--quiet", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "a" / "p_kernel.png").size == (65, 65)  # reported on the common 65 px canvas
    assert main(["restore", str(d / "p.png"), "-o", str(tmp_path / "b"), "--model", "gdunet-tiny.motion",
                 "--kernel-size", "67", "--quiet", "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "b" / "p_kernel.png").size == (67, 67)
    assert main(["restore", str(d / "p.png"), "-o", str(tmp_path / "c"), "--model", "nafnet-tiny.motion",
                 "--kernel-size", "41", "--quiet"]) == 2
    assert "estimates none" in capsys.readouterr().err
