"""unblur.io: image and kernel files, atomic writes, input expansion."""
import dataclasses
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from unblur.errors import InputError
from unblur.io import (
    atomic_open, atomic_write, expand_inputs, match_kernels, read_image, read_kernel, write_image, write_kernel,
)


def _rand(c, h=9, w=13, seed=0):
    return torch.rand(c, h, w, generator=torch.Generator().manual_seed(seed))


def _levels(c, h, w, top, seed=0):
    """Exactly representable values k / top."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, size=(c, h, w))


def _assert_one_line_error(excinfo, path):
    msg = str(excinfo.value)
    assert str(path) in msg and "\n" not in msg, msg


# ---------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_lossless_round_trip(tmp_path, ext, bits, channels, with_alpha):
    if (ext, bits, channels, with_alpha) == ("tif", 16, 1, True):
        pytest.importorskip("tifffile")  # Pillow cannot open 16-bit gray+alpha TIFF; read through tifffile
    top = 255 if bits == 8 else 65535
    q = _levels(channels, 7, 11, top, seed=bits + channels)
    qa = _levels(1, 7, 11, top, seed=5) if with_alpha else None
    p = tmp_path / f"x.{ext}"
    write_image(p, torch.from_numpy(q / top), bit_depth=bits,
                alpha=None if qa is None else torch.from_numpy(qa / top))
    im = read_image(p)
    assert im.bit_depth == bits and im.data.dtype == torch.float32
    assert im.data.shape == (channels, 7, 11)
    np.testing.assert_array_equal(np.rint(im.data.numpy() * top), q)
    if with_alpha:
        np.testing.assert_array_equal(np.rint(im.alpha.numpy() * top), qa)
    else:
        assert im.alpha is None
    assert im.format == {"png": "PNG", "tif": "TIFF"}[ext]


def test_rounding_not_truncation(tmp_path):
    x = torch.tensor([[[10.4, 10.6, 254.7, 300.0, -5.0]]]) / 255
    write_image(tmp_path / "r.png", x)
    assert np.asarray(Image.open(tmp_path / "r.png")).tolist() == [[10, 11, 255, 255, 0]]


def test_16bit_png_is_standard(tmp_path):
    """Our 16-bit RGB PNG, read by Pillow (8-bit: the high byte) and by read_image (all 16 bits)."""
    q = _levels(3, 20, 30, 65535, seed=1)
    p = tmp_path / "w.png"
    write_image(p, torch.from_numpy(q / 65535), bit_depth=16)
    pil = np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(pil, q >> 8)
    gray = _levels(1, 20, 30, 65535, seed=2)
    write_image(tmp_path / "g.png", torch.from_numpy(gray / 65535), bit_depth=16)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(im), gray[0])


def test_16bit_tiff_read_by_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    q = _levels(3, 20, 30, 65535, seed=3)
    qa = _levels(1, 20, 30, 65535, seed=4)
    p = tmp_path / "w.tif"
    write_image(p, torch.from_numpy(q / 65535), bit_depth=16, alpha=torch.from_numpy(qa / 65535))
    np.testing.assert_array_equal(tifffile.imread(p), np.concatenate([q, qa]).transpose(1, 2, 0))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png16(samples: np.ndarray, ftype: int, exif: bytes | None = None) -> bytes:
    """Independent 16-bit PNG encoder: one filter type for all rows."""
    chunk = _chunk
    h, w, c = samples.shape
    raw = samples.astype(">u2").reshape(h, w * c).view(np.uint8).astype(np.int32)
    bpp = 2 * c
    up = np.vstack([np.zeros((1, raw.shape[1]), np.int32), raw[:-1]])
    left = np.hstack([np.zeros((h, bpp), np.int32), raw[:, :-bpp]])
    upleft = np.hstack([np.zeros((h, bpp), np.int32), up[:, :-bpp]])
    if ftype == 0:
        f = raw
    elif ftype == 1:
        f = raw - left
    elif ftype == 2:
        f = raw - up
    elif ftype == 3:
        f = raw - (left + up) // 2
    else:
        p = left + up - upleft
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
        f = raw - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    body = np.hstack([np.full((h, 1), ftype), f % 256]).astype(np.uint8).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    extra = chunk(b"eXIf", exif) if exif else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(body))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_read_foreign_16bit_png_all_filters(tmp_path, channels):
    rng = np.random.default_rng(channels)
    q = rng.integers(0, 65536, size=(6, 9, channels), dtype=np.uint16)
    for ftype in range(5):
        p = tmp_path / f"f{ftype}.png"
        p.write_bytes(_png16(q, ftype))
        im = read_image(p)
        assert im.bit_depth == 16
        got = np.rint(im.data.numpy() * 65535).astype(np.int64)
        colour = q[..., :-1] if channels in (2, 4) else q
        np.testing.assert_array_equal(got, colour.transpose(2, 0, 1))
        if channels in (2, 4):
            np.testing.assert_array_equal(np.rint(im.alpha.numpy()[0] * 65535), q[..., -1])


def test_read_foreign_16bit_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(7)
    q = rng.integers(0, 65536, size=(8, 10, 3), dtype=np.uint16)
    variants = {
        "plain.tif": {}, "zlib.tif": {"compression": "zlib", "predictor": True}, "bigendian.tif": {"byteorder": ">"},
        "planar.tif": {"planarconfig": "separate"},
    }
    for name, kw in variants.items():
        data = q.transpose(2, 0, 1) if name == "planar.tif" else q  # separate planes: samples first
        tifffile.imwrite(tmp_path / name, data, photometric="rgb", **kw)
        im = read_image(tmp_path / name)
        assert im.bit_depth == 16, name
        np.testing.assert_array_equal(np.rint(im.data.numpy() * 65535), q.transpose(2, 0, 1), err_msg=name)


def test_jpeg_webp_bmp(tmp_path):
    x = torch.from_numpy(np.linspace(0, 1, 3 * 16 * 16).reshape(3, 16, 16)).float()
    a = _rand(1, 16, 16, seed=1)
    write_image(tmp_path / "x.jpg", x, bit_depth=16, alpha=a, quality=95)  # 8-bit, alpha dropped
    im = read_image(tmp_path / "x.jpg")
    assert im.bit_depth == 8 and im.alpha is None and im.format == "JPEG"
    assert (im.data - x).abs().mean() < 0.01
    write_image(tmp_path / "g.jpeg", x[:1])
    assert read_image(tmp_path / "g.jpeg").data.shape == (1, 16, 16)
    # WebP lossless (quality 100), alpha kept
    q = _levels(3, 16, 16, 255, seed=3)
    qa = _levels(1, 16, 16, 255, seed=4)
    write_image(tmp_path / "x.webp", torch.from_numpy(q / 255), alpha=torch.from_numpy(qa / 255), quality=100)
    im = read_image(tmp_path / "x.webp")
    np.testing.assert_array_equal(np.rint(im.data.numpy() * 255), q)
    np.testing.assert_array_equal(np.rint(im.alpha.numpy() * 255), qa)
    write_image(tmp_path / "x.bmp", torch.from_numpy(q / 255))
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / "x.bmp").data.numpy() * 255), q)


def test_palette_and_other_modes(tmp_path):
    rgb = (_levels(3, 8, 8, 255, seed=9).transpose(1, 2, 0)).astype(np.uint8)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    im = read_image(tmp_path / "p.png")
    assert im.data.shape == (3, 8, 8) and im.alpha is None
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    im = read_image(tmp_path / "la.png")
    assert im.data.shape == (1, 8, 8) and im.alpha is not None
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").data.shape == (3, 8, 8)
    Image.fromarray(rgb[..., 0] > 128).save(tmp_path / "b.png")
    im = read_image(tmp_path / "b.png")
    assert im.data.shape == (1, 8, 8) and set(im.data.unique().tolist()) <= {0.0, 1.0}


def _quadrants(h=6, w=10):
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    a[h // 2:, w // 2:] = (255, 255, 255)
    return a


def test_exif_orientation_jpeg(tmp_path):
    a = _quadrants(16, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(a).save(tmp_path / "o.jpg", exif=exif, quality=100, subsampling=0)
    im = read_image(tmp_path / "o.jpg")
    expected = np.rot90(a, k=-1).transpose(2, 0, 1) / 255
    assert im.data.shape == (3, 32, 16)
    assert np.abs(im.data.numpy() - expected).mean() < 0.02


def test_exif_orientation_16bit_png(tmp_path):
    a = _quadrants().astype(np.uint16) * 257
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    (tmp_path / "o.png").write_bytes(_png16(a, 0, exif=exif.tobytes()[6:]))
    im = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(np.rint(im.data.numpy() * 65535), np.rot90(a, k=1).transpose(2, 0, 1))


# ---------------------------------------------------------------------------------- bad images

def _good_png(path, size=(64, 64)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(path)
    return path


def _bad_image_files(tmp_path):
    files = {}
    files["missing"] = tmp_path / "missing.png"
    (tmp_path / "folder.png").mkdir()
    files["folder"] = tmp_path / "folder.png"
    files["text"] = tmp_path / "text.png"
    files["text"].write_text("hello, I am not a picture\n")
    files["empty"] = tmp_path / "empty.png"
    files["empty"].write_bytes(b"")
    good = _good_png(tmp_path / "good.png").read_bytes()
    files["truncated_png"] = tmp_path / "trunc.png"
    files["truncated_png"].write_bytes(good[: len(good) // 2])
    corrupt = bytearray(good)
    corrupt[len(good) // 2: len(good) // 2 + 64] = bytes(64)
    files["corrupt_png"] = tmp_path / "corrupt.png"
    files["corrupt_png"].write_bytes(bytes(corrupt))
    Image.open(tmp_path / "good.png").save(tmp_path / "good.jpg", quality=90)
    jpg = (tmp_path / "good.jpg").read_bytes()
    files["truncated_jpeg"] = tmp_path / "trunc.jpg"
    files["truncated_jpeg"].write_bytes(jpg[: len(jpg) // 2])
    files["zero_size"] = tmp_path / "zero.png"
    ihdr = struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)  # width 0, with valid CRCs
    files["zero_size"].write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
                                   + _chunk(b"IEND", b""))
    return files


def test_bad_images_raise_input_error(tmp_path):
    for kind, path in _bad_image_files(tmp_path).items():
        with pytest.raises(InputError) as excinfo:
            read_image(path)
        _assert_one_line_error(excinfo, path)
        assert str(excinfo.value).startswith(f"cannot read image {path}: "), kind


def test_truncated_raises_even_if_pillow_allows_it(tmp_path, monkeypatch):
    files = _bad_image_files(tmp_path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    for kind in ("truncated_png", "truncated_jpeg"):
        with pytest.raises(InputError):
            read_image(files[kind])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


# ---------------------------------------------------------------------------------- writing safety

def test_write_refuses_to_overwrite(tmp_path):
    p = tmp_path / "out.png"
    p.write_bytes(b"precious")
    with pytest.raises(InputError) as excinfo:
        write_image(p, _rand(3))
    _assert_one_line_error(excinfo, p)
    assert p.read_bytes() == b"precious"
    write_image(p, _rand(3), overwrite=True)
    assert read_image(p).data.shape == (3, 9, 13)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_write_errors(tmp_path):
    with pytest.raises(InputError):
        write_image(tmp_path / "x.gif", _rand(3))
    with pytest.raises(InputError):
        write_image(tmp_path / "x.png", _rand(2))
    with pytest.raises(InputError):
        write_image(tmp_path / "x.png", torch.full((1, 4, 4), float("nan")))
    with pytest.raises(InputError):
        write_image(tmp_path / "x.png", _rand(3), alpha=_rand(1, 4, 4))
    assert os.listdir(tmp_path) == []


def test_write_creates_folders(tmp_path):
    p = tmp_path / "a" / "b" / "x.png"
    write_image(p, _rand(1))
    assert p.is_file()


def test_atomic_write_cleans_up_on_failure(tmp_path):
    target = tmp_path / "t.png"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".png"
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # failure of the writer itself (an exception while writing the image)
    with pytest.raises(Exception):
        with atomic_write(target) as tmp:
            Image.new("RGB", (4, 4)).save(tmp, format="NOPE")
    assert os.listdir(tmp_path) == []


def test_atomic_write_does_not_clobber(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(InputError):
        with atomic_write(target) as tmp:
            tmp.write_text("new")
    assert target.read_text() == "old"
    # a file appearing while we write is not replaced either
    other = tmp_path / "u.txt"
    with pytest.raises(InputError):
        with atomic_write(other) as tmp:
            tmp.write_text("new")
            other.write_text("someone else")
    assert other.read_text() == "someone else"
    assert sorted(os.listdir(tmp_path)) == ["t.txt", "u.txt"]
    with atomic_write(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    with atomic_open(tmp_path / "c.csv") as f:
        f.write("a,b\n")
    assert (tmp_path / "c.csv").read_text() == "a,b\n"


# ---------------------------------------------------------------------------------- kernels

def test_kernel_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    k = rng.random((7, 9)) ** 3
    k /= k.sum()
    write_kernel(tmp_path / "k.npy", torch.from_numpy(k))
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), k.astype(np.float32))
    got = read_kernel(tmp_path / "k.npy")
    assert got.dtype == torch.float32 and got.shape == (7, 9)
    assert float(got.sum()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(got.numpy(), k, rtol=1e-6)
    write_kernel(tmp_path / "k.png", k)  # 16-bit by default
    with Image.open(tmp_path / "k.png") as im:
        assert im.mode.startswith("I;16") and np.asarray(im).max() == 65535
    np.testing.assert_allclose(read_kernel(tmp_path / "k.png").numpy(), k, atol=k.max() / 65535)
    write_kernel(tmp_path / "k8.png", k, bit_depth=8)
    with Image.open(tmp_path / "k8.png") as im:
        assert im.mode == "L" and np.asarray(im).max() == 255
    np.testing.assert_allclose(read_kernel(tmp_path / "k8.png").numpy(), k, atol=k.max() / 255)
    with pytest.raises(InputError):
        write_kernel(tmp_path / "k.npy", k)  # exists
    # RGB picture: channels averaged; 4-D tensors accepted by write_kernel
    rgb = np.stack([k, k, k], -1) / k.max() * 255
    Image.fromarray(np.rint(rgb).astype(np.uint8)).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(read_kernel(tmp_path / "rgb.png").numpy(), k, atol=k.max() / 255)
    write_kernel(tmp_path / "k4.npy", torch.from_numpy(k)[None, None])
    assert np.load(tmp_path / "k4.npy").shape == (7, 9)
    # tiny negative noise is clipped, not an error
    noisy = k.copy()
    noisy[0, 0] = -1e-9
    np.save(tmp_path / "noisy.npy", noisy)
    assert float(read_kernel(tmp_path / "noisy.npy").min()) >= 0


def test_bad_kernels(tmp_path):
    bad = {
        "3d.npy": np.ones((3, 3, 3)),
        "1d.npy": np.ones(5),
        "empty.npy": np.ones((0, 5)),
        "negative.npy": np.array([[0.5, -0.2], [0.4, 0.3]]),
        "nan.npy": np.array([[np.nan, 1.0], [1.0, 1.0]]),
        "inf.npy": np.array([[np.inf, 1.0], [1.0, 1.0]]),
        "zero.npy": np.zeros((5, 5)),
        "huge.npy": np.ones((300, 3)),
        "complex.npy": np.ones((3, 3), complex),
    }
    for name, arr in bad.items():
        np.save(tmp_path / name, arr)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not numpy")
    (tmp_path / "text.png").write_text("not png")
    (tmp_path / "k.txt").write_text("1 2 3")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "black.png")
    _good_png(tmp_path / "huge.png", size=(300, 300))
    names = [*bad, "objects.npy", "text.npy", "text.png", "k.txt", "black.png", "huge.png", "missing.npy"]
    for name in names:
        p = tmp_path / name
        with pytest.raises(InputError) as excinfo:
            read_kernel(p)
        _assert_one_line_error(excinfo, p)
        assert str(excinfo.value).startswith("cannot read kernel"), name
    with pytest.raises(InputError):
        write_kernel(tmp_path / "z.png", np.zeros((3, 3)))
    with pytest.raises(InputError):
        write_kernel(tmp_path / "z.jpg", np.ones((3, 3)))
    with pytest.raises(InputError):
        write_kernel(tmp_path / "z.npy", np.ones((3, 3, 3)))


# ---------------------------------------------------------------------------------- paths

def _tree(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for name in ["b.png", "a.JPG", "c.tif", "notes.txt", ".hidden.png", "sub/deep.png"]:
        (d / name).write_bytes(b"x")
    return d


def test_expand_inputs(tmp_path):
    d = _tree(tmp_path)
    paths, errors = expand_inputs([str(d)])
    assert [p.name for p in paths] == ["a.JPG", "b.png", "c.tif"] and errors == []
    # explicit files (any extension), globs, duplicates, missing
    items = [str(d / "notes.txt"), str(d / "b.png"), str(d / "*.png"), str(d), str(tmp_path / "nope.png"),
             str(tmp_path / "*.webp"), str(d / "**" / "*.png")]
    paths, errors = expand_inputs(items)
    assert [p.name for p in paths] == ["notes.txt", "b.png", "a.JPG", "c.tif", "deep.png"]
    assert len(errors) == 2
    assert "nope.png" in errors[0] and "no such file" in errors[0]
    assert "*.webp" in errors[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    paths, errors = expand_inputs([str(empty)])
    assert paths == [] and len(errors) == 1 and str(empty) in errors[0]


def test_match_kernels(tmp_path):
    d = _tree(tmp_path)
    inputs, _ = expand_inputs([str(d)])
    kd = tmp_path / "kernels"
    kd.mkdir()
    for name in ["a.png", "b.npy", "b.png", "zzz.npy", "c.txt"]:
        (kd / name).write_bytes(b"k")
    m = match_kernels(inputs, str(kd))
    assert m == {d / "a.JPG": kd / "a.png", d / "b.png": kd / "b.npy", d / "c.tif": None}
    assert match_kernels(inputs, str(kd / "zzz.npy")) == {p: kd / "zzz.npy" for p in inputs}
    assert match_kernels(inputs, None) == {p: None for p in inputs}
    with pytest.raises(InputError):
        match_kernels(inputs, str(tmp_path / "nothing"))


def test_atomic_write_gives_default_permissions(tmp_path):
    import os
    import stat

    from unblur.io import atomic_write

    target = tmp_path / "out.bin"
    with atomic_write(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # a writer that creates a private file
        os.write(fd, b"x")
        os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_float_tiff_with_0_255_values_is_refused_not_whitened(tmp_path):
    from PIL import Image

    from unblur.errors import InputError
    from unblur.io import read_image

    arr = (np.linspace(0, 255, 32 * 24, dtype=np.float32)).reshape(24, 32)
    Image.fromarray(arr, mode="F").save(tmp_path / "f255.tif")
    with pytest.raises(InputError, match="0 to 255"):
        read_image(tmp_path / "f255.tif")
    ok = arr / 255 * 1.02 - 0.01  # a [0, 1] image with small overshoots: clipped
    Image.fromarray(ok.astype(np.float32), mode="F").save(tmp_path / "f1.tif")
    data = read_image(tmp_path / "f1.tif").data
    assert float(data.min()) == 0.0 and float(data.max()) == 1.0


def test_restore_api_refuses_0_255_and_non_finite_images():
    import torch

    from unblur.errors import InputError
    from unblur import restore

    x = torch.rand(3, 32, 32)
    with pytest.raises(InputError, match="expects \\[0, 1\\]"):
        restore(x * 255, method="wiener", kernel=torch.ones(3, 3))
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[0, 3, 3] = bad
        with pytest.raises(InputError, match="NaN or infinite"):
            restore(y, model="nafnet-tiny")


def test_long_output_names_are_written_or_refused_before_the_work(tmp_path, monkeypatch):
    import torch

    from unblur.errors import InputError
    from unblur.inference import restore as restore_mod
    from unblur.io import atomic_write

    # a 250-byte name: the temporary sibling used to add 21 bytes and could never be created
    long = tmp_path / ("x" * 246 + ".png")
    with atomic_write(long) as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"ok")
    assert long.read_bytes() == b"ok"
    # an input whose output (e.g. <stem>_before_after.png) cannot exist is refused before any computing
    src = tmp_path / ("y" * 245 + ".png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(src)
    monkeypatch.setattr(restore_mod, "restore", lambda *a, **k: pytest.fail("computed before the name check"))
    with pytest.raises(InputError, match="longer than the 255"):
        restore_mod.restore_file(src, tmp_path / "out", method="wiener", kernel=torch.ones(3, 3), side_by_side=True)


def test_an_input_whose_format_cannot_be_written_is_refused_before_the_work(tmp_path, monkeypatch):
    import torch

    from unblur.errors import InputError
    from unblur.inference import restore as restore_mod

    src = tmp_path / "anim.gif"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src)
    monkeypatch.setattr(restore_mod, "restore", lambda *a, **k: pytest.fail("computed before the format check"))
    with pytest.raises(InputError, match="'.gif' files cannot be written"):
        restore_mod.restore_file(src, tmp_path / "out", method="wiener", kernel=torch.ones(3, 3))
    assert not (tmp_path / "out").exists()


def test_multipage_tiff_is_refused_not_cut_to_its_first_page(tmp_path):
    from unblur.errors import InputError
    from unblur.io import read_image

    pages = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (10, 200)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match="2 pages"):
        read_image(tmp_path / "stack.tif")
    pages[0].save(tmp_path / "one.tif")
    assert read_image(tmp_path / "one.tif").data.shape == (1, 16, 16)


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 8), (".tif", 16),
                                         (".webp", 8)])
def test_icc_profile_round_trips(tmp_path, suffix, bits):
    icc = _srgb_profile()
    img = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0))
    path = write_image(tmp_path / f"a{suffix}", img, bit_depth=bits, icc_profile=icc)
    loaded = read_image(path)
    assert loaded.icc_profile == icc
    with Image.open(path) as im:  # readable by other software too
        assert im.info.get("icc_profile") == icc
    assert read_image(write_image(tmp_path / f"b{suffix}", img, bit_depth=bits)).icc_profile is None


def test_restore_keeps_the_icc_profile_and_refuses_a_format_that_cannot_hold_it(tmp_path, monkeypatch):
    """A colour profile was dropped silently: the result must carry the input's profile (and the before/after
    picture too); a BMP cannot hold one, so such an input is refused before the work."""
    import unblur.inference.restore as R

    icc = _srgb_profile()
    src = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(src, icc_profile=icc)
    k = torch.ones(3, 3) / 9
    R.restore_file(src, tmp_path / "out", method="wiener", kernel=k, side_by_side=True)
    assert read_image(tmp_path / "out" / "p.png").icc_profile == icc
    assert read_image(tmp_path / "out" / "p_before_after.png").icc_profile == icc
    with pytest.raises(InputError, match="ICC colour profile"):
        write_image(tmp_path / "x.bmp", torch.rand(3, 4, 4), icc_profile=icc)
    bmp = tmp_path / "q.bmp"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bmp)
    import unblur.io

    monkeypatch.setattr(unblur.io, "read_image", lambda p: dataclasses.replace(read_image(p), icc_profile=icc))
    calls = []
    monkeypatch.setattr(R, "restore", lambda *a, **kw: calls.append(1))
    with pytest.raises(InputError, match="cannot hold one"):
        R.restore_file(bmp, tmp_path / "out2", method="wiener", kernel=k)
    assert calls == [] and not (tmp_path / "out2" / "q.bmp").exists()
