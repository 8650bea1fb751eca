"""`unblur blur SHARP_DIR -o OUTDIR --kind motion ...`: synthesise (blurred, sharp, kernel) triplets.

Writes ``OUTDIR/blurred/<stem>.png``, ``OUTDIR/sharp/<stem>.png`` (the crop of the sharp image
aligned with the ``valid`` blurred one, same size) and ``OUTDIR/kernels/<stem>.png`` + ``.npy``.
Output ``i`` uses the seed ``(seed, i)``: the same arguments give identical files.
"""
from __future__ import annotations

from pathlib import Path

from .arguments import check_output_folder, output_folder, seed_value

KINDS = ("motion", "defocus", "gaussian", "mixed")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "blur",
        help="blur sharp photos into (blurred, sharp, kernel) triplets",
        description="Blur sharp photos with seeded random kernels (valid convolution + Gaussian noise) and write "
        "blurred/, sharp/ (aligned crop) and kernels/ (.png and .npy) with the same file stems.",
    )
    p.add_argument("sharp_dir", metavar="SHARP_DIR", help="folder (or file or glob) of sharp images")
    p.add_argument("-o", "--output", required=True, type=output_folder, metavar="OUTDIR", help="output folder")
    p.add_argument("--kind", choices=KINDS, default="motion", help="kernel family (default motion)")
    p.add_argument("--kernel-size", type=int, default=31, metavar="K", help="kernel size in pixels (default 31)")
    p.add_argument("--noise", type=float, default=0.01, metavar="SIGMA", help="Gaussian noise std (default 0.01)")
    p.add_argument("--seed", type=seed_value, default=0, help="random seed, 0 to 2**64-1 (default 0)")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="number of triplets (default: one per image; more cycle over the images)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from ..errors import InputError
    from ..io import expand_inputs, read_image, write_image, write_kernel
    from ..physics.pipeline import DegradationPipeline
    from .main import error

    if args.kernel_size < 1:
        raise InputError(f"--kernel-size must be positive, got {args.kernel_size}")
    if args.noise < 0:
        raise InputError(f"--noise must be >= 0, got {args.noise}")
    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be positive, got {args.count}")
    paths, errors = expand_inputs([args.sharp_dir])
    for message in errors:
        error(message)
    if not paths:
        if not errors:
            error(f"no images found in {args.sharp_dir}")
        return 1
    paths = sorted(paths)
    count = len(paths) if args.count is None else args.count
    repeat = count > len(paths)
    out = Path(args.output)
    check_output_folder(out)
    dirs = {name: out / name for name in ("blurred", "sharp", "kernels")}
    pipe = DegradationPipeline.from_name(args.kind, kernel_size=args.kernel_size, noise_sigma=args.noise, mode="valid")

    failed = written = skipped = 0
    bar = tqdm(range(count), desc="blur", unit="image", disable=True if args.quiet or count < 2 else None,
               leave=False)
    for i in bar:
        src = paths[i % len(paths)]
        stem = f"{src.stem}_{i // len(paths):03d}" if repeat else src.stem
        targets = {
            "blurred": dirs["blurred"] / f"{stem}.png",
            "sharp": dirs["sharp"] / f"{stem}.png",
            "kernel_png": dirs["kernels"] / f"{stem}.png",
            "kernel_npy": dirs["kernels"] / f"{stem}.npy",
        }
        present = [t.exists() for t in targets.values()]
        if all(present) and not args.overwrite:  # a complete set from an earlier (interrupted) run: keep it
            skipped += 1
            continue
        made: list[Path] = []  # files of this set written by this run: removed if the set cannot be completed
        try:
            for t in targets.values():
                if t.exists() and not args.overwrite:
                    raise InputError(f"{t} already exists (use --overwrite to replace it)")
            image = read_image(src)
            sharp = image.data[None].float()
            if min(sharp.shape[-2:]) < args.kernel_size:
                raise InputError(f"{src}: image {sharp.shape[-2]}x{sharp.shape[-1]} is smaller than the kernel")
            g = torch.Generator().manual_seed((args.seed * 1_000_003 + i) % 2 ** 64)
            res = pipe(sharp, generator=g)
            blurred, kernel = res["blurred"], res["kernel"]
            sharp_c = res["sharp"]  # the crop aligned pixel for pixel with the valid blurred image
            k2 = kernel.reshape(-1, *kernel.shape[-2:])[0].float().cpu()
            for d in dirs.values():
                d.mkdir(parents=True, exist_ok=True)
            bits = image.bit_depth
            for key, write in (
                ("blurred", lambda t: write_image(t, blurred[0].clamp(0, 1).cpu(), bit_depth=bits, overwrite=args.overwrite)),
                ("sharp", lambda t: write_image(t, sharp_c[0].clamp(0, 1).cpu(), bit_depth=bits, overwrite=args.overwrite)),
                ("kernel_png", lambda t: write_kernel(t, k2, overwrite=args.overwrite)),
                ("kernel_npy", lambda t: write_kernel(t, k2, overwrite=args.overwrite)),
            ):
                write(targets[key])
                made.append(targets[key])
            written += 1
        except KeyboardInterrupt:
            _remove(made)  # no incomplete set is left behind
            raise
        except Exception as err:
            _remove(made)
            failed += 1
            from .restore import _file_message

            error(_file_message(src, err))
    bar.close()
    if not args.quiet:
        print(f"wrote {written} triplet(s) into {out}"
              + (f"; kept {skipped} complete triplet(s) already there (--overwrite redoes them)" if skipped else ""))
    return 1 if failed or errors else 0


def _remove(paths) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass

