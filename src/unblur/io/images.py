"""Reading and writing photos: PNG, JPEG, TIFF, WebP (and BMP), 8 and 16 bits, gray or RGB, alpha kept aside.

Loaded images are float32 ``(C, H, W)`` tensors in ``[0, 1]`` with ``C = 1`` (gray) or ``3`` (RGB); an
alpha channel is returned separately so that restoration never sees it and it can be written back.

Choices (where formats leave room):

- EXIF orientation is applied on reading (the array is what a viewer shows), and never written.
- Palette images become RGB (RGBA when the palette has transparency); ``1``-bit becomes gray;
  CMYK, YCbCr, HSV become RGB with Pillow's conversion (no colour management).
- 32-bit integer gray images are accepted when their values fit in 16 bits; float TIFFs (mode ``F``)
  are read as ``[0, 1]`` (overshoots up to 0.5 clipped; values further out, e.g. 0..255 floats, refused). Both report ``bit_depth=16``.
- Pillow decodes 16-bit RGB(A) PNG and TIFF only to 8 bits. The full 16 bits are recovered by
  decoding the file twice with Pillow's own decoder (which undoes PNG filtering, interlacing and
  TIFF compression on the raw bytes), once keeping the high and once the low byte of every sample.
  16-bit TIFF layouts that Pillow cannot open or decodes wrongly (gray + alpha, planar RGB) are read
  with ``tifffile`` when it is installed, and refused with a clear message otherwise.
- Writing: 8-bit output goes through Pillow. 16-bit PNG and TIFF are encoded here (PNG with the
  usual per-row adaptive filter and zlib; TIFF baseline, deflate with horizontal predictor) because
  Pillow cannot write 16-bit RGB. JPEG, WebP and BMP are always 8-bit; JPEG and BMP drop alpha; WebP
  stores gray as RGB; WebP is lossless when ``quality >= 100``; JPEG uses 4:4:4 chroma.
- Quantisation rounds to nearest (``round(x * 255)``), never truncates.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import InputError
from .atomic import atomic_write

__all__ = ["LoadedImage", "read_image", "write_image", "FORMATS"]

FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
    ".bmp": "BMP",
}


@dataclass
class LoadedImage:
    """An image file in memory: ``data`` (C, H, W) float32 in [0, 1], ``alpha`` (1, H, W) or None, and the
    file's ICC colour profile (``None`` when it has none): results are written with it, so that colour-managed
    viewers show them in the photo's colour space."""

    data: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    path: Path
    format: str
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return tuple(self.data.shape[-2:])


class _Unreadable(Exception):
    """Internal: why a file could not be decoded (the public functions add the path)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------------------- reading

_TRUNCATED_LOCK = threading.Lock()


@contextlib.contextmanager
def _strict_decoding():
    """Make sure truncated files raise, even if someone enabled ``LOAD_TRUNCATED_IMAGES``."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _TRUNCATED_LOCK:
        old = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise _Unreadable("no such file")
    if path.is_dir():
        raise _Unreadable("it is a folder, not a file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _Unreadable(err.strerror or str(err)) from None
    if not data:
        raise _Unreadable("empty file")
    return data


_WIDE_RAW = re.compile(r"^(RGB|RGBA|RGBX|LA);16([LBN])$")


def _rawmode(tile) -> str | None:
    args = tile.args if hasattr(tile, "args") else tile[3]
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else None


def _decode_with(data: bytes, rawmode_for) -> Image.Image:
    """Open ``data`` again and decode it with the raw mode ``rawmode_for(original)``."""
    im = Image.open(io.BytesIO(data))
    tiles = []
    for t in im.tile:
        args = t.args
        raw = rawmode_for(_rawmode(t))
        args = (raw, *args[1:]) if isinstance(args, tuple) else raw
        tiles.append(t._replace(args=args))
    im.tile = tiles
    im.load()
    return im


def _wide_samples(data: bytes, im: Image.Image) -> np.ndarray | None:
    """Full 16-bit samples (H, W, C) of a 16-bit multi-channel PNG/TIFF that Pillow reads as 8-bit.

    Returns None when the file is not of that kind or Pillow's decoder refuses the raw modes.
    """
    raws = {_rawmode(t) for t in im.tile}
    if len(raws) != 1:
        return None
    raw = raws.pop()
    m = raw and _WIDE_RAW.match(raw)
    if not m:
        return None
    base, order = m.groups()
    if order == "N":
        order = "L" if sys.byteorder == "little" else "B"
    other = "B" if order == "L" else "L"
    try:
        if base == "LA":  # no low-byte unpacker for LA;16: read the 4 bytes of a pixel as RGBA
            if order != "B":
                return None
            quad = ImageOps.exif_transpose(_decode_with(data, lambda r: "RGBA"))
            quad = np.asarray(quad).astype(np.uint16)
            hi, lo = quad[..., 0::2], quad[..., 1::2]
        else:
            hi_im = ImageOps.exif_transpose(_decode_with(data, lambda r: f"{base};16{order}"))
            lo_im = ImageOps.exif_transpose(_decode_with(data, lambda r: f"{base};16{other}"))
            hi, lo = np.asarray(hi_im).astype(np.uint16), np.asarray(lo_im).astype(np.uint16)
    except ValueError:  # "unknown raw mode": let the caller fall back
        return None
    arr = (hi << 8) | lo
    return arr[..., :3] if base == "RGBX" else arr


def _tiff_needs_tifffile(im: Image.Image) -> bool:
    """A TIFF with more than 8 bits per sample that Pillow would decode wrongly (e.g. planar 16-bit RGB)."""
    try:
        bps = im.tag_v2.get(258, (8,))
    except AttributeError:
        return False
    bps = bps if isinstance(bps, tuple) else (bps,)
    return max(bps, default=8) > 8 and not (im.mode.startswith("I") or im.mode == "F")


def _tifffile_samples(data: bytes) -> np.ndarray | None:
    """First page of a TIFF as (H, W[, C]) with ``tifffile`` (if installed), or None."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            arr, axes = page.asarray(), page.axes
    except Exception as err:
        raise _Unreadable(_one_line(err) or type(err).__name__) from None
    if axes.startswith("S") and arr.ndim == 3:  # planar (samples first)
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _pil_to_array(im: Image.Image) -> tuple[np.ndarray, int]:
    """Pixel array (H, W) or (H, W, C in {2, 3, 4}) and bit depth of a decoded Pillow image."""
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), 16
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise _Unreadable("32-bit integer image with values outside the 16-bit range")
        return arr.astype(np.uint16), 16
    if mode == "F":
        return _float_samples(np.asarray(im, dtype=np.float32)), 16
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.asarray(im), 8
    raise _Unreadable(f"unsupported image mode {mode}")


def _samples_to_bit_depth(arr: np.ndarray) -> int:
    return 16 if arr.dtype.itemsize >= 2 or arr.dtype.kind == "f" else 8


def _load_pixels(path: Path) -> tuple[np.ndarray, int, str]:
    """Decode ``path`` into (array (H, W, C) uint8/uint16/float32, bit_depth, format).

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
    """
    data = _read_bytes(path)
    try:
        with _strict_decoding():
            try:
                im = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                arr = _tifffile_samples(data) if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+") else None
                if arr is None:
                    raise _Unreadable("not an image file (unknown or unsupported format)") from None
                fmt = "TIFF"
                bits = _samples_to_bit_depth(arr)
            else:
                fmt = im.format or "unknown"
                if im.width == 0 or im.height == 0:
                    raise _Unreadable("zero-size image")
                pages = getattr(im, "n_frames", 1)
                if pages > 1:  # reading page 1 only would silently drop the rest under the same name
                    raise _Unreadable(f"multi-page image ({pages} pages); unblur reads single images: split the "
                                      "pages into separate files first")
                arr = _wide_samples(data, im)
                if arr is not None:
                    bits = 16
                elif fmt == "TIFF" and _tiff_needs_tifffile(im):
                    arr = _tifffile_samples(data)
                    if arr is None:
                        raise _Unreadable("this 16-bit TIFF layout needs the 'tifffile' package")
                    bits = _samples_to_bit_depth(arr)
                else:
                    im.load()
                    arr, bits = _pil_to_array(im)
    except _Unreadable:
        raise
    except Image.DecompressionBombError as err:
        raise _Unreadable(_one_line(err)) from None
    except MemoryError:
        raise _Unreadable("not enough memory to decode it") from None
    except Exception as err:  # Pillow plugins raise many kinds (OSError, SyntaxError, ValueError, ...)
        raise _Unreadable(_one_line(err) or type(err).__name__) from None
    return _as_hwc(arr, bits), bits, fmt


FLOAT_RANGE = (-0.5, 1.5)  # floats beyond this are not a [0, 1] image with overshoots (e.g. 0..255 data)


def _float_samples(arr: np.ndarray) -> np.ndarray:
    """Floating-point samples as float32 in [0, 1]: small overshoots are clipped; NaN/inf, or values
    far outside [0, 1] (a 0..255 float TIFF would otherwise become all white), are refused."""
    if not np.isfinite(arr).all():
        raise _Unreadable("floating-point image with NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo < FLOAT_RANGE[0] or hi > FLOAT_RANGE[1]:
        raise _Unreadable(f"floating-point image with values from {lo:g} to {hi:g}; unblur reads float images "
                          "as [0, 1] (save it scaled to [0, 1], or as 8/16-bit integers)")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _as_hwc(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise _Unreadable(f"unsupported sample layout {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise _Unreadable("zero-size image")
    if arr.dtype.kind == "f":
        return _float_samples(arr)
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind not in "ui":
        raise _Unreadable(f"unsupported sample type {arr.dtype}")
    if bits == 8 and arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    if bits == 16 and arr.dtype != np.uint16:
        if arr.min() < 0 or arr.max() > 65535:
            raise _Unreadable("integer samples outside the 16-bit range")
        arr = arr.astype(np.uint16)
    return arr


def _normalised(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    return arr.astype(np.float32)


def _load_normalised(path: Path) -> tuple[np.ndarray, int, str]:
    """(array (H, W, C) float32 in [0, 1] with the alpha channel last if any, bit depth, format)."""
    arr, bits, fmt = _load_pixels(path)
    return _normalised(arr), bits, fmt


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read a PNG / JPEG / TIFF / WebP / BMP file into a :class:`LoadedImage`.

    Raises :class:`InputError` ``"cannot read image <path>: <reason>"`` (one line) for a missing file,
    a folder, an empty, truncated, corrupt or non-image file.
    """
    path = Path(path)
    try:
        arr, bits, fmt = _load_normalised(path)
    except _Unreadable as err:
        raise InputError(f"cannot read image {path}: {err}") from None
    c = arr.shape[-1]
    alpha = None
    if c in (2, 4):
        alpha = torch.from_numpy(np.ascontiguousarray(arr[..., -1][None]))
        arr = arr[..., :-1]
    data = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return LoadedImage(data=data, alpha=alpha, bit_depth=bits, path=path, format=fmt, icc_profile=_icc_profile(path))


def _icc_profile(path: Path) -> bytes | None:
    """The embedded ICC profile (the header only is parsed; the pixels were decoded already)."""
    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile")
    except Exception:  # e.g. a TIFF layout only tifffile reads: no profile carried
        return None
    return bytes(icc) if icc else None


ICC_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")  # formats that hold an ICC profile (not BMP)


def check_profile_writable(path: str | os.PathLike, icc_profile: bytes | None) -> None:
    """One-line :class:`InputError` when ``path``'s format cannot hold the ICC profile (colours would silently
    change meaning); callers check before the work, :func:`write_image` again when writing."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if icc_profile and fmt is not None and fmt not in ICC_FORMATS:
        raise InputError(f"cannot write image {path}: the photo has an ICC colour profile and {fmt} files cannot "
                         "hold one; convert the input to PNG or TIFF first")


# ----------------------------------------------------------------------------------------- writing

def _chw_array(t, what: str, path: Path) -> np.ndarray:
    """(C, H, W) / (1, C, H, W) / (H, W) tensor or array -> float64 (H, W, C)."""
    if torch.is_tensor(t):
        t = t.detach().to("cpu")
        t = t.double() if t.is_floating_point() or t.dtype == torch.bool else t.to(torch.float64)
        a = t.numpy()
    else:
        a = np.asarray(t, dtype=np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"cannot write image {path}: {what} must have shape (C, H, W), got {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise InputError(f"cannot write image {path}: {what} contains NaN or infinite values")
    return a.transpose(1, 2, 0)


def _quantise(a: np.ndarray, bits: int) -> np.ndarray:
    top = 255 if bits == 8 else 65535
    q = np.rint(np.clip(a, 0.0, 1.0) * top)
    return q.astype(np.uint8 if bits == 8 else np.uint16)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_filter_rows(raw: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter rows of bytes ``raw`` (n, L) (``prev`` = the row above each) with the PNG adaptive heuristic.

    Returns (n, L + 1) uint8: filter type byte then filtered bytes. The filter of each row is the one
    minimising the sum of absolute values of the filtered bytes read as signed (as libpng does).
    """
    x = raw.astype(np.int16)
    b = prev.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]).astype(np.uint8)
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(-1)  # (5, n)
    best = cost.argmin(0)
    rows = candidates[best, np.arange(x.shape[0])]
    return np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1)


def encode_png16(samples: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """16-bit PNG of ``samples`` (H, W, C) uint16 with C = 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA), with an
    ``iCCP`` chunk when ``icc_profile`` is given."""
    h, w, c = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = samples.astype(">u2").reshape(h, w * c).view(np.uint8)  # big-endian bytes, (h, 2*w*c)
    bpp = 2 * c
    comp = zlib.compressobj(6)
    parts = []
    block = max(1, (1 << 22) // max(1, rows.shape[1]))  # bound the temporary memory
    for start in range(0, h, block):
        raw = rows[start:start + block]
        prev = np.empty_like(raw)
        prev[0] = rows[start - 1] if start > 0 else 0
        prev[1:] = raw[:-1]
        parts.append(comp.compress(_png_filter_rows(raw, prev, bpp).tobytes()))
    parts.append(comp.flush())
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    iccp = _png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)) if icc_profile else b""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + iccp + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def encode_tiff16(samples: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """Baseline little-endian 16-bit TIFF (deflate, horizontal predictor) of ``samples`` (H, W, C), C in 1..4,
    with the ICC profile tag (34675) when ``icc_profile`` is given."""
    h, w, c = samples.shape
    diff = samples.astype(np.uint16).copy()
    diff[:, 1:] = samples[:, 1:] - samples[:, :-1]  # uint16 wrap-around = predictor 2
    rowbytes = w * c * 2
    rows_per_strip = max(1, min(h, (1 << 20) // max(1, rowbytes)))
    strips = [zlib.compress(diff[i:i + rows_per_strip].astype("<u2").tobytes(), 6)
              for i in range(0, h, rows_per_strip)]
    photometric = 2 if c >= 3 else 1
    extra = c - (3 if c >= 3 else 1)
    # tag: (type, values); types: 3 SHORT, 4 LONG, 7 UNDEFINED (bytes)
    tags = {
        256: (4, [w]), 257: (4, [h]), 258: (3, [16] * c), 259: (3, [8]), 262: (3, [photometric]),
        273: (4, [0] * len(strips)), 277: (3, [c]), 278: (4, [rows_per_strip]),
        279: (4, [len(s) for s in strips]), 284: (3, [1]), 317: (3, [2]), 339: (3, [1] * c),
    }
    if extra:
        tags[338] = (3, [2] * extra)  # unassociated alpha
    if icc_profile:
        tags[34675] = (7, list(icc_profile))
    n = len(tags)
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * n + 4
    out_of_line = {}
    for tag, (typ, values) in sorted(tags.items()):
        size = {3: 2, 4: 4, 7: 1}[typ] * len(values)
        if size > 4:
            out_of_line[tag] = data_offset
            data_offset += size + (size & 1)
    offsets, pos = [], data_offset
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    tags[273] = (4, offsets)
    ifd = struct.pack("<H", n)
    extra_bytes = b""
    for tag, (typ, values) in sorted(tags.items()):
        fmt = "<" + {3: "H", 4: "I", 7: "B"}[typ] * len(values)
        packed = struct.pack(fmt, *values)
        if tag in out_of_line:
            ifd += struct.pack("<HHII", tag, typ, len(values), out_of_line[tag])
            extra_bytes += packed + (b"\0" if len(packed) & 1 else b"")
        else:
            ifd += struct.pack("<HHI", tag, typ, len(values)) + packed.ljust(4, b"\0")
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_offset) + ifd + extra_bytes + b"".join(strips)


def write_image(
    path: str | os.PathLike,
    data,
    bit_depth: int = 8,
    alpha=None,
    overwrite: bool = False,
    quality: int = 95,
    icc_profile: bytes | None = None,
) -> Path:
    """Write ``data`` (C, H, W) in [0, 1] (C = 1 or 3) to ``path``; the extension picks the format.

    ``bit_depth`` 8 or 16 applies to PNG and TIFF (JPEG, WebP and BMP are 8-bit). ``alpha`` (1, H, W)
    is stored where the format allows (not JPEG or BMP). Values are clipped to [0, 1] and rounded. The file
    is written atomically; an existing file raises :class:`InputError` unless ``overwrite``. ``icc_profile`` is
    embedded (PNG, JPEG, TIFF, WebP; a BMP cannot hold one: :class:`InputError`, so colours are never silently
    reinterpreted). Returns ``path``.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"cannot write image {path}: unsupported extension {path.suffix!r} (use one of {known})")
    if bit_depth not in (8, 16):
        raise InputError(f"cannot write image {path}: bit_depth must be 8 or 16, got {bit_depth}")
    check_profile_writable(path, icc_profile)
    arr = _chw_array(data, "image", path)
    if arr.shape[-1] not in (1, 3):
        raise InputError(f"cannot write image {path}: expected 1 or 3 channels, got {arr.shape[-1]}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"cannot write image {path}: zero-size image {arr.shape[1]}x{arr.shape[0]}")
    if alpha is not None and fmt not in ("JPEG", "BMP"):
        a = _chw_array(alpha, "alpha", path)
        if a.shape[-1] != 1 or a.shape[:2] != arr.shape[:2]:
            raise InputError(
                f"cannot write image {path}: alpha of shape {tuple(a.shape[::-1])} does not match the image "
                f"{arr.shape[1]}x{arr.shape[0]}"
            )
        arr = np.concatenate([arr, a], axis=-1)
    if fmt not in ("PNG", "TIFF"):
        bit_depth = 8
    q = _quantise(arr, bit_depth)
    with atomic_write(path, overwrite=overwrite) as tmp:
        try:
            if bit_depth == 16:
                tmp.write_bytes(encode_png16(q, icc_profile) if fmt == "PNG" else encode_tiff16(q, icc_profile))
            else:
                _save_8bit(q, tmp, fmt, quality, icc_profile)
        except InputError:
            raise
        except OSError as err:
            raise InputError(f"cannot write image {path}: {_one_line(err.strerror or err)}") from None
    return path


def _save_8bit(q: np.ndarray, tmp: Path, fmt: str, quality: int, icc_profile: bytes | None = None) -> None:
    c = q.shape[-1]
    if fmt == "WEBP" and c in (1, 2):  # WebP has no gray: store as RGB(A)
        q = np.concatenate([np.repeat(q[..., :1], 3, -1), q[..., 1:]], -1)
        c = q.shape[-1]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
    im = Image.fromarray(np.ascontiguousarray(q if c > 1 else q[..., 0]), mode=mode)
    options = {}
    if fmt == "JPEG":
        options = {"quality": int(quality), "subsampling": 0}
    elif fmt == "WEBP":
        options = {"lossless": True, "quality": 100} if quality >= 100 else {"quality": int(quality)}
        options["exact"] = True  # keep colour under fully transparent pixels
    elif fmt == "PNG":
        options = {"compress_level": 6}
    elif fmt == "TIFF":
        options = {"compression": "tiff_deflate"}
    if icc_profile:
        options["icc_profile"] = icc_profile
    im.save(tmp, format=fmt, **options)
