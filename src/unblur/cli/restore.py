"""`unblur restore INPUT... -o OUTDIR [--method NAME | --model NAME] ...`: deblur photos.

Inputs are files, folders or glob patterns; every output keeps its input's file name in OUTDIR.
A file that fails prints one line ``unblur: error: <message>`` and the batch goes on; the exit
code is 1 when any file failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .arguments import check_output_folder, output_folder, seed_value


def _tile(value: str):
    if value in ("auto", "none"):
        return None if value == "none" else "auto"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tile size, 'auto' or 'none', got {value!r}") from None
    if n < 16:
        raise argparse.ArgumentTypeError(f"tile size must be at least 16, got {n}")
    return n


def register(subparsers) -> None:
    from ..inference.defaults import DEFAULT_METHOD, NON_BLIND_DEFAULT

    p = subparsers.add_parser(
        "restore",
        help="deblur photos with a classical method or a network",
        description="Deblur photos. Outputs keep the input's file name, bit depth, alpha channel and colour profile. "
        f"Without --method or --model: {DEFAULT_METHOD} (blind; README.md says why), or {NON_BLIND_DEFAULT} when "
        "--kernel is given.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, type=output_folder, metavar="OUTDIR",
                   help="output folder (created if missing)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--method", metavar="NAME",
                       help="classical method: wiener, hqs-tv, hqs-hl, richardson-lucy, blind-l0 (see `unblur models`)")
    which.add_argument("--model", metavar="NAME[.TAG]",
                       help="network with shipped weights, e.g. deeprftv2-tiny or deeprftv2-tiny.motion (a weight "
                            "tag; default: the first tag), see `unblur models`; auto: per photo, motion or defocus "
                            "weights, by the shape of the blur the classical estimator finds (it says which and why)")
    p.add_argument("--kernel", metavar="FILE_OR_DIR",
                   help="blur kernel (.png/.npy) for all inputs, or a folder of kernels matched by file stem")
    p.add_argument("--kernel-size", type=int, metavar="K",
                   help="blind methods and gdunet: odd side of the kernel to estimate (must cover the blur; default 31; "
                        "blind-l0 scales it up for photos above 2048 px: 61 at 4000 px)")
    p.add_argument("--save-kernel", action=argparse.BooleanOptionalAction, default=None,
                   help="also write <stem>_kernel.png (the physical kernel used or estimated), or for a defocus "
                        "network with a blur-radius map (fdikp) <stem>_defocus.png (16-bit grey, white = 16 px "
                        "radius); default: on for blind methods and networks that estimate either, off otherwise; "
                        "a network with neither writes none")
    p.add_argument("--save-filters", action="store_true",
                   help="networks: also write <stem>_filters.png, the filters the network applies to its features "
                        "(e.g. DeepRFTv2's FKE); they are not blur kernels")
    p.add_argument("--side-by-side", action="store_true", help="also write <stem>_before_after.png")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default), or onnx: --model is then an ONNX file from `unblur export --onnx`, run "
                        "by onnxruntime on the CPU (needs unblur[onnx])")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--tile", type=_tile, default="auto", metavar="N|auto|none",
                   help="networks: tile size for large images (default auto: by free memory)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="networks on CUDA: autocast precision (default fp32)")
    p.add_argument("--seed", type=seed_value, default=0, help="random seed, 0 to 2**64-1 (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from ..errors import InputError
    from ..inference.restore import (AUTO, default_choice, estimates_blur, load_model, resolve_device,
                                     restore_file)
    from ..inference.tiling import tile_progress
    from ..io import expand_inputs, match_kernels
    from .main import error

    out_dir = Path(args.output)
    check_output_folder(out_dir)
    device = resolve_device(args.device)
    if device.type == "cpu":  # freed feature maps are reused instead of mapped afresh (inference/cpu.py)
        from ..inference.cpu import reuse_freed_memory

        reuse_freed_memory()
    options, method, model_name = {}, None, args.model
    if args.model is None and args.method is None:
        method, model_name = default_choice(args.kernel is not None)
    if model_name is None:
        from ..classical import METHODS

        method = method or args.method
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
        if METHODS[method].blind and args.kernel is not None:
            raise InputError(f"method {method!r} is blind (it estimates the kernel); --kernel needs a non-blind method")
        if not METHODS[method].blind and args.kernel is None:
            raise InputError(f"method {method!r} is non-blind: give the blur kernel with --kernel FILE_OR_DIR")
        if args.kernel_size is not None:
            if not METHODS[method].blind:
                raise InputError("--kernel-size sets the size of the kernel a blind method estimates")
            options["kernel_size"] = args.kernel_size
    if args.backend == "onnx":
        if model_name is None or args.method is not None:
            raise InputError("--backend onnx runs a network exported with `unblur export --onnx`: give --model FILE.onnx")
        if args.kernel is not None or args.kernel_size is not None:
            raise InputError("--backend onnx runs blind networks: --kernel and --kernel-size do not apply")
        from ..inference.onnx import OnnxNet

        model_name, device = None, resolve_device("cpu")
        onnx_net = OnnxNet(args.model)
    auto = model_name == AUTO
    if auto and args.kernel is not None:
        raise InputError("--model auto picks blind weights; --kernel needs a non-blind method or network")
    if auto and args.kernel_size is not None:
        raise InputError("--kernel-size does not apply to --model auto")
    model = AUTO if auto else (load_model(model_name) if model_name is not None else None)
    if args.backend == "onnx":
        model, model_name = onnx_net, onnx_net.model_name
    if model is not None and not auto and args.kernel_size is not None:
        if not hasattr(model, "kernel_size"):
            raise InputError(f"--kernel-size sets the size of the kernel a blind method or a kernel-estimating "
                             f"network (gdunet) estimates; {model_name!r} estimates none")
        if args.kernel_size < 3 or args.kernel_size % 2 == 0:
            raise InputError(f"--kernel-size must be odd and >= 3, got {args.kernel_size}")
        from ..models import create

        model = create(model_name, pretrained=True, kernel_size=args.kernel_size)  # same weights, larger kernels
    if model is not None and getattr(model, "blind", True) and args.kernel is not None:
        raise InputError(f"network {model_name!r} is blind (it estimates the blur itself); --kernel needs a "
                         "non-blind method or network")
    if model is not None and not getattr(model, "blind", True) and args.kernel is None:
        raise InputError(f"network {model_name!r} is non-blind: give the blur kernel with --kernel FILE_OR_DIR")

    paths, errors = expand_inputs(args.inputs)
    failed = 0
    for message in errors:
        error(message)
        failed += 1
    if not paths:
        if not errors:
            error(f"no images found in {' '.join(args.inputs)}")
        return 1
    kernels = match_kernels(paths, args.kernel) if args.kernel is not None else {p: None for p in paths}

    # The kernel a blind method or network estimates is part of its result: write it unless told not to.
    radius_map = model is not None and bool(getattr(model, "radius_map", False))  # defocus map instead of a kernel
    estimates = estimates_blur(method, model)
    save_kernel = args.save_kernel if args.save_kernel is not None else estimates
    if args.save_filters and model is None:
        raise InputError("--save-filters applies to networks (--model)")
    no_kernel = (model is not None and not auto and getattr(model, "blind", True) and not radius_map
                 and not getattr(model, "physical_kernels", False))
    if save_kernel and no_kernel:
        if not args.quiet:
            print(f"unblur: note: {model_name} estimates no physical blur kernel; no _kernel.png is written"
                  f"{' (its feature filters: --save-filters)' if _has_filters(model) else ''}", file=sys.stderr)
        save_kernel = False

    conflicts = output_conflicts(paths, out_dir, save_kernel, args.side_by_side, args.save_filters, radius_map)
    if auto:  # either kind may be chosen: its output names must be free too
        conflicts = {**output_conflicts(paths, out_dir, save_kernel, args.side_by_side, args.save_filters, True),
                     **conflicts}

    # Progress bar on terminals only, for batches.
    bar = tqdm(paths, desc="restore", unit="image", disable=True if args.quiet or len(paths) < 2 else None, leave=False)
    written = 0
    for path in bar:
        if path in conflicts:  # two inputs must never write one file: the later one is refused
            failed += 1
            error(conflicts[path])
            continue
        torch.manual_seed(args.seed)
        try:
            kernel = kernels.get(path)
            if args.kernel is not None and kernel is None:
                raise InputError(f"{path}: no kernel with stem {path.stem!r} in {args.kernel}")
            with tile_progress(path.name, enabled=not args.quiet):  # big photos: a bar over the tiles
                restore_file(
                    path, out_dir, method=method, model=model, kernel=kernel, device=device, tile=args.tile,
                    precision=args.precision, options=options or None, overwrite=args.overwrite,
                    save_kernel=save_kernel, side_by_side=args.side_by_side, save_filters=args.save_filters,
                    report=None if args.quiet else (lambda line: print(f"unblur: {line}", file=sys.stderr)),
                )
            written += 1
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one line per failed file, the batch goes on
            failed += 1
            error(_file_message(path, err))
    bar.close()
    if not args.quiet:
        print(f"restored {written} of {written + failed} image(s) into {out_dir}")
    return 1 if failed else 0


def _has_filters(model) -> bool:
    from ..models.base import RestorationModel

    own = getattr(type(model), "estimate_filters", None)
    return own is not None and own is not RestorationModel.estimate_filters


def _file_message(path: Path, err: Exception) -> str:
    from ..errors import UnblurError

    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, (UnblurError, OSError)):
        text = f"{type(err).__name__}: {text}"
    return text if str(path) in text else f"{path}: {text}"


def output_conflicts(paths, out_dir, save_kernel: bool, side_by_side: bool, save_filters: bool,
                     radius_map: bool = False) -> dict:
    """Inputs whose outputs another input of the batch already claims, or that would land on another
    input, with the one-line error for each (the first input to claim a file keeps it)."""
    from ..inference.restore import output_paths

    inputs = {Path(p).resolve(): Path(p) for p in paths}
    claimed: dict[Path, Path] = {}
    conflicts: dict[Path, str] = {}
    for p in paths:
        outs = {Path(o).resolve(): o
                for o in output_paths(p, out_dir, save_kernel, side_by_side, save_filters, radius_map).values()}
        for key, out in outs.items():
            if key in claimed:
                conflicts[p] = (f"{p}: its output {out} is also the output of {claimed[key]}; restore them into "
                                "different folders (nothing written for this file)")
                break
            if key in inputs and inputs[key] != Path(p):
                conflicts[p] = f"{p}: its output {out} is another input of this run; choose another output folder"
                break
        else:
            claimed.update(dict.fromkeys(outs, Path(p)))
    return conflicts

