"""Contract of every registered restoration model (DEVELOPERS.md, "Models").

Behaviour tests run on every ``-tiny`` size in the registry, so a new architecture is covered as soon as it
registers. Larger sizes are only built on the ``meta`` device (no memory) to check parameter counts.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import unblur.models as M
from unblur.errors import InputError
from unblur.models.registry import SIZES

TINY = [n for n in M.list_models() if n.endswith("-tiny")]
LARGE = [n for n in M.list_models() if not n.endswith("-tiny")]
ARCHS = sorted({n.rsplit("-", 1)[0] for n in M.list_models()})

# Published parameter counts (millions): NAFNet-width32 / -width64 (Chen et al. 2022, GoPro models) and
# DeepRFT+ (Mao et al. 2021).
PUBLISHED_PARAMS_M = {"nafnet-small": 17.11, "nafnet-paper": 67.89, "deeprft-paper": 23.0}


def _build(name: str, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return M.create(name)


def _image(b: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_covers_all_sizes():
    assert {"nafnet", "deeprft"} <= set(ARCHS)
    for arch in ARCHS:
        for size in SIZES:
            assert f"{arch}-{size}" in M.list_models(), f"{arch} does not register size {size!r}"


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("shape", [(1, 37, 45), (2, 64, 64)])
def test_output_shape_any_size(name, shape):
    model = _build(name).eval()
    x = _image(*shape)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", TINY)
def test_forward_train_outputs(name):
    model = _build(name).eval()
    H, W = 37, 45
    x = _image(1, H, W)
    with torch.inference_mode():
        outs = model.forward_train(x)["outputs"]
        y = model(x)
    assert len(outs) >= 1
    scales = [s for _, s in outs]
    assert 1.0 in scales, f"{name}: no full-scale output in {scales}"
    for img, s in outs:
        assert 0 < s <= 1 and math.log2(1 / s) == int(math.log2(1 / s)), f"{name}: odd scale {s}"
        assert img.shape == (1, 3, math.ceil(H * s), math.ceil(W * s)), (name, s, tuple(img.shape))
        assert torch.isfinite(img).all()
    last_full = [img for img, s in outs if s == 1.0][-1]
    assert torch.equal(last_full, y)


@pytest.mark.parametrize("name", TINY)
def test_gradients_reach_every_parameter(name):
    model = _build(name).train()
    # Residual scales initialised to zero (NAFNet beta/gamma, ...) block gradients to the layers before them
    # at initialisation; give them small random values so that every path is exercised.
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        for p in model.parameters():
            if p.numel() and not p.any():
                p.normal_(0.0, 0.1)
    m = model.size_multiple
    side = m * math.ceil(24 / m)
    # piecewise-constant patches: strong edges survive the sparse-gradient shrinkage of unrolled image steps (on
    # white noise every shrunk gradient is zero and a learned prior after the shrinkage would see nothing)
    blocks = _image(1, math.ceil(side / 6), math.ceil(side / 6))
    x = F.interpolate(blocks, scale_factor=6, mode="nearest")[..., :side - 3, :side - 1]
    x = (x + 0.02 * _image(1, side - 3, side - 1, seed=2)).requires_grad_(True)  # padding path included
    out = model.forward_train(x)
    loss = sum(img.mean() for img, _ in out["outputs"])
    if "radius_map" in out:  # a defocus model's second output (its own head)
        loss = loss + out["radius_map"].mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: parameters outside the graph: {missing[:10]}"
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradients: {bad[:10]}"
    dead = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.any()]
    assert not dead, f"{name}: zero gradients: {dead[:10]}"


@pytest.mark.parametrize("name", TINY)
def test_eval_is_deterministic_and_batch_independent(name):
    model = _build(name).eval()
    x = _image(2, 40, 36)
    with torch.inference_mode():
        a, b = model(x), model(x)
        single = model(x[1:])
    assert torch.equal(a, b)
    torch.testing.assert_close(single, a[1:], atol=1e-4, rtol=1e-4)
    # Same seed -> same weights.
    other = _build(name)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), other.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1


@pytest.mark.parametrize("name", TINY)
def test_estimate_kernels(name):
    model = _build(name).eval()
    x = _image(2, 48, 40)
    with torch.inference_mode():
        k = model.estimate_kernels(x, size=15)
    if k is None:
        return
    # zero-padded to the size asked for; a model that estimates larger kernels (gdunet: 31) keeps its own size
    side = max(15, getattr(model, "kernel_size", 15))
    assert k.ndim == 4 and k.shape[0] == 2 and k.shape[1] >= 1 and k.shape[-2:] == (side, side), tuple(k.shape)
    assert torch.isfinite(k).all() and (k >= 0).all()
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(k.shape[:2]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", TINY)
def test_autocast_bfloat16(name):
    model = _build(name).eval()
    x = _image(1, 29, 35)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y.float()).all()


def test_pretrained_without_weights_is_an_input_error():
    missing = [n for n in M.list_models() if M.weights_path(n) is None]
    if not missing:
        pytest.skip("every model ships weights")
    missing.sort(key=lambda n: not n.endswith("-tiny"))  # cheapest to build first
    with pytest.raises(InputError, match=rf"no shipped weights for model '{missing[0]}'"):
        M.create(missing[0], pretrained=True)
    with pytest.raises(InputError, match="unknown model 'nafnet-huge'"):
        M.create("nafnet-huge")


@pytest.mark.parametrize("name", LARGE)
def test_parameter_counts_meta(name):
    with torch.device("meta"):
        model = M.create(name)
    assert all(p.device.type == "meta" for p in model.parameters())
    n = _n_params(model)
    arch, size = name.rsplit("-", 1)
    with torch.device("meta"):
        smaller = M.create(f"{arch}-{SIZES[SIZES.index(size) - 1]}")
    assert n > _n_params(smaller), f"{name} ({n}) is not larger than the size below it"
    if name in PUBLISHED_PARAMS_M:
        ref = PUBLISHED_PARAMS_M[name] * 1e6
        assert abs(n - ref) / ref < 0.05, f"{name}: {n / 1e6:.2f}M parameters, published {ref / 1e6:.2f}M"


def test_fft_relu_block_is_float16_safe():
    """Fourier coefficients of large feature maps exceed the float16 range; the branch must stay finite."""
    from unblur.models.blocks import ResFFTReLUBlock

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = ResFFTReLUBlock(4)
        x = 40 * torch.rand(1, 4, 64, 64)  # DC coefficient ~ 82000 > 65504
    with torch.autocast("cpu", dtype=torch.float16):
        y16 = block(x)
    y32 = block(x)
    assert torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, atol=0.5, rtol=2e-2)


@pytest.mark.parametrize("name", M.list_models(pretrained=True))
def test_shipped_weights_load(name):
    model = M.create(name, pretrained=True)
    assert not model.training
    x = _image(1, 33, 40)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def _skimage_crops() -> list[torch.Tensor]:
    """Six 192 px RGB crops of photos scikit-image ships (none of them in any training set used here)."""
    data = pytest.importorskip("skimage.data")
    boxes = [("astronaut", 100, 150), ("chelsea", 60, 100), ("coffee", 100, 200), ("rocket", 150, 100),
             ("astronaut", 250, 250), ("chelsea", 0, 200)]
    return [torch.from_numpy(getattr(data, n)()[y:y + 192, x:x + 192].copy()).permute(2, 0, 1).float() / 255
            for n, y, x in boxes]


@pytest.mark.parametrize("name", M.list_models(pretrained=True))
def test_shipped_weights_deblur_unseen_photos(name):
    """Shipped weights must sharpen on average the blur they were trained for: seeded camera shake (21 px) or
    defocus disks (radius up to 8 px) + noise 0.01 on photos never trained on; mean PSNR gain over the blurred
    input above 0.1 dB (measured on motion: nafnet-tiny 0.39 dB, deeprftv2-tiny 1.48 dB with the GPU-trained
    weights, gdunet-tiny 0.14 dB; untrained weights lose 5 to 11 dB: the bar catches broken or untrained weights,
    the benchmarks rank the working ones)."""
    from unblur.metrics import psnr
    from unblur.physics.pipeline import DegradationPipeline

    model = M.create(name, pretrained=True)
    kind = "defocus" if "defocus" in model.weight_spec.blur else "motion"
    pipe = DegradationPipeline.from_name(kind, kernel_size=21 if kind == "motion" else 17, noise_sigma=0.01,
                                         mode="valid")
    gains = []
    for i, img in enumerate(_skimage_crops()):
        pair = pipe(img[None], generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            out = model(pair["blurred"]).clamp(0, 1)
        gains.append((psnr(out, pair["sharp"]) - psnr(pair["blurred"], pair["sharp"])).item())
    assert sum(gains) / len(gains) > 0.1, gains


def test_create_with_weights_file_round_trip_and_errors(tmp_path):
    """create(name, weights=PATH) loads a training run's export exactly; a missing file, another architecture's
    weights, or both pretrained and weights give one-line InputErrors."""
    from safetensors.torch import save_file

    src = M.create("nafnet-tiny")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the initial values, so a silent no-op load would fail below
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    loaded = M.create("nafnet-tiny", weights=path)
    assert not loaded.training
    for (k, a), b in zip(src.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(InputError, match="not found"):
        M.create("nafnet-tiny", weights=tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="do not fit model 'deeprftv2-tiny'"):
        M.create("deeprftv2-tiny", weights=path)
    with pytest.raises(InputError, match="not both"):
        M.create("nafnet-tiny", pretrained=True, weights=path)


def test_non_strict_loading_warm_starts_a_grown_model_and_still_refuses_foreign_tensors(tmp_path):
    """load_weights(strict=False): parameters the file lacks keep their values and are returned by name; the
    loaded ones are exact; a tensor the model does not have, or one of another shape, is still an error."""
    from safetensors.torch import save_file

    small = M.create("nafnet-tiny")
    state = {k: v.contiguous() + 0.5 for k, v in small.state_dict().items()}
    dropped = sorted(state)[:2]
    path = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in state.items() if k not in dropped}, str(path))
    grown = M.create("nafnet-tiny")
    before = {k: v.clone() for k, v in grown.state_dict().items()}
    with pytest.raises(InputError, match="do not fit"):
        M.load_weights(grown, path)  # strict by default
    missing = M.load_weights(grown, path, strict=False)
    assert sorted(missing) == dropped
    after = grown.state_dict()
    for k in state:
        assert torch.equal(after[k], before[k] if k in dropped else state[k]), k
    save_file({**state, "extra.weight": torch.zeros(2)}, str(path))
    with pytest.raises(InputError, match="unexpected keys: extra.weight"):
        M.load_weights(M.create("nafnet-tiny"), path, strict=False)
    first = sorted(state)[0]
    save_file({**state, first: torch.zeros(3, 3, 3)}, str(path))
    with pytest.raises(InputError, match="do not fit"):
        M.load_weights(M.create("nafnet-tiny"), path, strict=False)
