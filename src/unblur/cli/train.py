"""`unblur train CONFIG.yaml [key=value ...] [--resume PATH|auto] [--overwrite]`
and `unblur export CHECKPOINT OUT.safetensors [--no-ema] [--overwrite]`.

Multi-GPU / multi-node: run the same command under torchrun, e.g.
``torchrun --nproc_per_node=8 -m unblur train configs/deeprftv2-tiny-motion.yaml``.
"""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML config",
        description="Train a model from a YAML config (see configs/README.md). Any key can be overridden "
                    "as key=value, e.g. optim.lr=5e-4 train.batch_size=16 run.dir=runs/try2. "
                    "Under torchrun every process runs the same command (DDP).")
    p.add_argument("config", help="YAML config file (e.g. configs/nafnet-tiny-motion.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (values parsed as YAML)")
    p.add_argument("--resume", metavar="PATH|auto",
                   help="resume from a checkpoint; 'auto' uses <run.dir>/last.pt when it exists")
    p.add_argument("--overwrite", action="store_true",
                   help="start from scratch even if run.dir already holds a run (its last.pt is replaced)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..training.config import dump_config, load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    from ..training.trainer import Trainer

    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite cannot be used together")
    Trainer(cfg, resume=args.resume, overwrite=args.overwrite).fit()
    return 0


def register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="save the (EMA) weights of a training checkpoint as .safetensors, or a network as ONNX",
        description="Write the weights of a training checkpoint as .safetensors, loadable with "
                    "unblur.models.create(name) + load_state_dict (the EMA weights unless --no-ema); or, with "
                    "--onnx, a shipped network as an ONNX file (FFTs as ONNX DFT, opset 18; height and width free) "
                    "that `unblur restore --backend onnx --model FILE.onnx` runs with onnxruntime.")
    p.add_argument("checkpoint", help="training checkpoint (e.g. runs/x/last.pt); with --onnx: a shipped weight set "
                                      "(e.g. nafnet-tiny.motion, see `unblur models`)")
    p.add_argument("output", help="output .safetensors file (.onnx with --onnx)")
    p.add_argument("--onnx", action="store_true", help="export the network as ONNX (needs unblur[onnx])")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA weights")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    if args.onnx:
        from ..inference.onnx import export_onnx

        print(export_onnx(args.checkpoint, args.output, overwrite=args.overwrite))
        return 0
    from ..training.export import export_weights

    out = export_weights(args.checkpoint, args.output, use_ema=not args.no_ema, overwrite=args.overwrite)
    print(out)
    return 0
