"""ONNX export of the FFT networks and the onnxruntime backend: onnxruntime's output matches PyTorch's on odd sizes
(free height and width, or fixed 384 px tiles for the scan and unfolded networks), the CLI exports and restores with
it, bad files are one-line errors.
Skipped when the optional packages are absent."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import unblur.models as M  # noqa: E402
from unblur.errors import InputError  # noqa: E402
from unblur.inference.onnx import OnnxNet, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def free_onnx(tmp_path_factory):
    """NAFNet-tiny: a graph with free height and width (channel attention, pixel shuffles)."""
    torch.manual_seed(0)
    net = M.create("nafnet-tiny").eval()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / "nafnet.onnx")
    return net, path


def test_onnxruntime_matches_pytorch_on_odd_sizes(free_onnx):
    net, path = free_onnx
    ort_net = OnnxNet(path)
    assert ort_net.size_multiple == net.size_multiple and ort_net.model_name == "nafnet-tiny" and not ort_net.tile
    for shape in ((1, 3, 67, 45), (2, 3, 41, 90)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = net(x)
        torch.testing.assert_close(ort_net(x), ref, atol=1e-4, rtol=1e-4)


def test_restore_runs_the_onnx_backend_and_tiles_big_photos(free_onnx):
    from unblur.inference.restore import restore

    net, path = free_onnx
    x = torch.rand(3, 120, 150, generator=torch.Generator().manual_seed(3))
    got = restore(x, model=OnnxNet(path), tile=None).image
    with torch.no_grad():
        want = net(x[None]).clamp(0, 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_cli_export_and_restore_with_onnx(tmp_path, capsys):
    from PIL import Image

    from unblur.cli.main import main

    out = tmp_path / "naf.onnx"
    assert main(["export", "--onnx", "nafnet-tiny.motion", str(out)]) == 0
    assert main(["export", "--onnx", "nafnet-tiny.motion", str(out)]) == 2  # exists: never overwritten
    img = (torch.rand(45, 61, 3, generator=torch.Generator().manual_seed(4)) * 255).byte().numpy()
    Image.fromarray(img).save(tmp_path / "p.png")
    assert main(["restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--backend", "onnx",
                 "--model", str(out)]) == 0
    assert main(["restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "o2"), "--model", "nafnet-tiny.motion"]) == 0
    a, b = (torch.tensor(np.array(Image.open(tmp_path / d / "p.png")), dtype=torch.float32) for d in ("o", "o2"))
    assert (a - b).abs().max() <= 1  # the same photo to 8-bit rounding
    capsys.readouterr()
    assert main(["restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "o3"), "--backend", "onnx",
                 "--model", str(tmp_path / "p.png")]) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err


def test_bad_export_requests_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"\.onnx"):
        export_onnx("nafnet-tiny.motion", tmp_path / "x.bin")
    with pytest.raises(InputError, match="not found"):
        OnnxNet(tmp_path / "missing.onnx")


@pytest.mark.parametrize("name, reason", [("fdikp-tiny", "NaN"), ("gdunet-tiny", "L0 kernel initialisation")])
def test_unexportable_networks_are_refused_with_their_reason(tmp_path, name, reason):
    with pytest.raises(InputError, match=reason):
        export_onnx(M.create(name), tmp_path / "f.onnx")
    assert not (tmp_path / "f.onnx").exists()


def test_an_architecture_marked_unsupported_is_refused_at_once(tmp_path):
    net = M.create("nafnet-tiny")
    net.onnx_unsupported = "a reason"
    with pytest.raises(InputError, match="does not export to ONNX yet: a reason"):
        export_onnx(net, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


# Networks whose graphs are too long for free sizes (unrolled scans, unfolded stages) export for fixed 384 px tiles.
# Smaller configurations of the same architectures keep the test's export short.
FIXED = {
    "deeprftv2": dict(name="deeprftv2-tiny", args=dict(num_columns=1, fke_levels=1), atol=1e-4),
    # GDUNet's kernel least squares divides by small spectral energies: float32 differences between onnxruntime's
    # DFT and PyTorch's FFT grow through the unfolded stages (still far below one 8-bit level).
    # (the blind-start design: the shipped L0-initialised one does not export)
    "gdunet": dict(name="gdunet-tiny", args=dict(stages=2, kernel_init="start", start_width=12,
                                                 start_blocks=(1, 1, 1, 2)), atol=2e-3),
}


@pytest.fixture(scope="module", params=sorted(FIXED))
def fixed_onnx(request, tmp_path_factory):
    spec = FIXED[request.param]
    torch.manual_seed(0)
    net = M.create(spec["name"], **spec["args"]).eval()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return net, OnnxNet(path), spec["atol"]


def test_fixed_tile_graphs_match_pytorch_on_tiles_and_odd_sizes(fixed_onnx):
    from unblur.inference.onnx import ONNX_TILE, _pad_to
    from unblur.inference.restore import restore

    net, ort_net, atol = fixed_onnx
    assert ort_net.tile == ONNX_TILE == 384
    x = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(ort_net(x), net(x), atol=atol, rtol=0)
        # a small photo is padded to the tile: the same as PyTorch's network on the padded tile, cropped
        small = torch.rand(1, 3, 101, 77, generator=torch.Generator().manual_seed(6))
        want = net(_pad_to(small, 384)[0])[..., :101, :77]
        torch.testing.assert_close(ort_net(small), want, atol=atol, rtol=0)
        # an odd size above the tile: restore tiles both the same way
        big = torch.rand(3, 401, 389, generator=torch.Generator().manual_seed(7))
        got = restore(big, model=ort_net, estimate_kernel=False).image
        want = restore(big, model=net, tile=384, estimate_kernel=False).image
    torch.testing.assert_close(got, want, atol=atol, rtol=0)
    with pytest.raises(InputError, match="at most 384 x 384"):
        _pad_to(torch.rand(1, 3, 385, 10), 384)
