"""``--model auto``: the spectral features, the classifier (fit, save/load, the shipped one on clear cases), and the
command line picking weights per photo and saying why."""
from __future__ import annotations

import pytest
import torch

from unblur.inference.auto import AUTO_WEIGHTS, BlurKindClassifier, blur_features, choose_kind
from unblur.models import create, list_models
from unblur.physics import conv2d, defocus_kernel
from unblur.physics.noise import GaussianNoise


def _photo():
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.astronaut().copy()).permute(2, 0, 1).float()[None] / 255


def _blurred(kernel):
    return GaussianNoise(0.01)(conv2d(_photo(), kernel, "reflect"), generator=torch.Generator().manual_seed(0))


def _line(n=21):
    k = torch.zeros(n, n)
    k[n // 2] = 1.0 / n
    return k


def test_features_are_deterministic_and_see_the_direction_of_a_blur():
    f = blur_features(_blurred(_line()))
    assert f.shape == (106,) and torch.equal(f, blur_features(_blurred(_line())))
    # the spread over orientations of the mid bands is larger for a directional blur than for a disk
    mid = slice(8, 24)  # bands 1 and 2 of the textured windows, 8 orientations each
    assert f[mid].std() > 2 * blur_features(_blurred(defocus_kernel(4.0, 17)))[mid].std()


def test_classifier_fit_save_load(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    clf = BlurKindClassifier.fit(x, y)
    assert float(((clf.probability(x) >= 0.5).long() == y).float().mean()) > 0.95
    clf.save(tmp_path / "c.safetensors")
    again = BlurKindClassifier.load(tmp_path / "c.safetensors")
    torch.testing.assert_close(again.probability(x), clf.probability(x))


def test_shipped_classifier_on_clear_cases():
    kind, why = choose_kind(_blurred(defocus_kernel(6.0, 17)))
    assert kind == "defocus" and "p = " in why
    kind, why = choose_kind(_blurred(_line()))
    assert kind == "motion" and "direction" in why


@pytest.mark.skipif(AUTO_WEIGHTS["defocus"] not in list_models(pretrained=True), reason="no defocus weights shipped")
def test_cli_auto_picks_weights_per_photo_and_says_why(tmp_path, capsys):
    from PIL import Image

    from unblur.cli.main import main

    for name, k in (("disk", defocus_kernel(6.0, 17)), ("line", _line())):
        y = _blurred(k)[0, :, 50:306, 100:356].clamp(0, 1)  # 256 px: enough windows for the spectra
        Image.fromarray((y.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(tmp_path / f"{name}.png")
    rc = main(["restore", str(tmp_path / "disk.png"), str(tmp_path / "line.png"), "-o", str(tmp_path / "out"),
               "--model", "auto"])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"disk.png: auto chose {AUTO_WEIGHTS['defocus']}" in err
    assert (tmp_path / "out" / "disk.png").is_file()
    # what the chosen defocus network estimates is written next to it: a radius map (FDIKP) or nothing (DeepRFTv2)
    writes_map = bool(getattr(create(AUTO_WEIGHTS["defocus"]), "radius_map", False))
    assert (tmp_path / "out" / "disk_defocus.png").is_file() == writes_map
    assert not (tmp_path / "out" / "disk_kernel.png").exists()
    assert (tmp_path / "out" / "line.png").is_file()
    assert main(["restore", str(tmp_path / "disk.png"), "-o", str(tmp_path / "o2"), "--model", "auto",
                 "--kernel", str(tmp_path / "disk.png")]) == 2
