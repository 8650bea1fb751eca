"""ONNX export of a network and an onnxruntime backend for :func:`unblur.restore`.

:func:`export_onnx` traces the network's core (``_forward`` on inputs whose sides are multiples of its
``size_multiple``; the last full-resolution image) with PyTorch's dynamo exporter, which lowers ``rfft2``/``irfft2``
to ONNX ``DFT`` (opset 18 and later), with the height and width free (dynamic, multiples of ``size_multiple``). The
file records the model name and the multiple in its metadata. Channel statistics are global in the export (TLC's
windows depend on the input size, which the graph does not branch on); :class:`OnnxNet` therefore runs photos
larger than the training statistics window (384 px) in 384 px tiles, like the PyTorch path's local statistics.

:class:`OnnxNet` is a drop-in for a blind network in :func:`unblur.restore` (``model=OnnxNet(path)``, or
``unblur restore --backend onnx --model FILE.onnx``): it pads to the multiple (reflect), runs onnxruntime on the
CPU, and crops. ``onnx``, ``onnxscript`` and ``onnxruntime`` are optional (``pip install unblur[onnx]``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import InputError
from ..models.base import pad_to_multiple

__all__ = ["OnnxNet", "export_onnx", "ONNX_OPSET"]

ONNX_OPSET = 18  # the first opset with DFT as the dynamo exporter writes it
ONNX_TILE = 384  # = RestorationModel.stats_window: tiles see statistics like the training crops


class _Core(nn.Module):
    """``x -> the last full-resolution image of net._forward(x)`` for sides that are multiples of the net's."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net._forward(x)
        outs = out["outputs"] if isinstance(out, dict) else out
        return [img for img, scale in outs if scale == 1.0][-1]


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"ONNX support needs the optional package {module!r}: pip install 'unblur[onnx]'") from None


def export_onnx(model: str | nn.Module, path, *, sample_size: int = 4, overwrite: bool = False,
                optimize: bool | None = None) -> Path:
    """Write ``model`` (a weight set name such as ``"nafnet-tiny.motion"`` or a module) to ``path`` (.onnx).

    ``sample_size``: the traced example is ``sample_size`` multiples of the model's ``size_multiple`` a side (the
    graph stays dynamic). Blind networks only (the graph takes one image)."""
    _need("onnxscript")
    onnx = _need("onnx")
    from ..io.atomic import atomic_write

    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError(f"{path}: the output must end with .onnx")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists (use --overwrite to replace it)")
    name = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
    if isinstance(model, str):
        from ..models import create

        model = create(model, pretrained=True)
    if not getattr(model, "blind", True):
        raise InputError(f"{name}: only blind networks export to ONNX (the graph takes one image)")
    if getattr(model, "onnx_unsupported", None):
        raise InputError(f"{name} does not export to ONNX yet: {model.onnx_unsupported}")
    model = model.eval().float()
    if optimize is None:  # onnxscript's rewriting ran 10+ minutes on the unrolled scan: onnxruntime optimises instead
        optimize = getattr(model, "onnx_optimize", True)
    m = int(getattr(model, "size_multiple", 1) or 1)
    # Free height and width where the exporter can reason about them symbolically; a fixed tile for networks whose
    # graphs are too long for that (unrolled scans, unfolded stages: the symbolic shape work did not end), run by
    # OnnxNet in tiles of that size (smaller photos padded).
    tile = getattr(model, "onnx_tile", None)
    side = -(-ONNX_TILE // m) * m if tile else max(m, 8) * sample_size
    example = torch.rand(1, 3, side, side)
    dim_h, dim_w = torch.export.Dim("h", min=1, max=4096), torch.export.Dim("w", min=1, max=4096)
    dynamic = None if tile else ({2: m * dim_h, 3: m * dim_w},)
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the exporter's notes (optional torchvision ops, deprecations) are not ours
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            # _forward outside local_statistics(): global channel statistics in the graph (module doc)
            program = torch.onnx.export(_Core(model), (example,), dynamo=True, opset_version=ONNX_OPSET,
                                        input_names=["image"], output_names=["restored"],
                                        dynamic_shapes=dynamic, verbose=False,
                                        optimize=optimize)
    except Exception as err:  # the exporter's own errors are many and long: one line
        raise InputError(f"{name}: ONNX export failed: {str(err).strip().splitlines()[0][:300]}") from None
    finally:
        logger.setLevel(level)
    proto = program.model_proto
    meta = {"model": name, "size_multiple": str(m), "format": "unblur-onnx-1"}
    if tile:
        meta["tile"] = str(side)
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    with atomic_write(path, overwrite=overwrite) as tmp:
        onnx.save(proto, str(tmp))
    return path


def _pad_to(x: torch.Tensor, side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` padded at the bottom and right to ``side`` x ``side`` (reflection, or edge copies where the image is
    too small to reflect), for a fixed-size graph; a larger side is an error (the tiler keeps tiles at ``side``)."""
    H, W = x.shape[-2:]
    if H > side or W > side:
        raise InputError(f"this ONNX graph takes tiles of at most {side} x {side} px, got {H} x {W}")
    pad = (0, side - W, 0, side - H)
    mode = "reflect" if side - H < H and side - W < W else "replicate"
    return (torch.nn.functional.pad(x, pad, mode=mode) if any(pad) else x), (H, W)


class OnnxNet(nn.Module):
    """A blind network exported by :func:`export_onnx`, run by onnxruntime (CPU): ``net(x)`` on (B, 3, H, W)."""

    blind = True
    physical_kernels = False
    radius_map = False

    def __init__(self, path, threads: int | None = None):
        super().__init__()
        ort = _need("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"ONNX model {path} not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: its notes on nodes it cannot constant-fold are not the user's
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise InputError(f"{path}: not a loadable ONNX model ({str(err).strip().splitlines()[0][:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.model_name = meta.get("model", path.stem)
        self.size_multiple = int(meta.get("size_multiple", 1))
        self.tile = int(meta["tile"]) if "tile" in meta else None  # a fixed-size graph (see export_onnx)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"ONNX network {self.model_name}: expected (B, 3, H, W), got {tuple(x.shape)}")
        if self.tile is not None:
            xp, (H, W) = _pad_to(x.float().cpu(), self.tile)
        else:
            xp, (H, W) = pad_to_multiple(x.float().cpu(), self.size_multiple)
        # the graph takes one image (the batch is fixed at export): a batch runs image by image
        outs = [self.session.run(None, {self.input_name: np.ascontiguousarray(xp[i:i + 1].numpy())})[0]
                for i in range(xp.shape[0])]
        return torch.from_numpy(np.concatenate(outs))[..., :H, :W].to(x.device)
