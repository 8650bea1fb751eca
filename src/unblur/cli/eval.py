"""`unblur eval RESULTS_DIR REFERENCE_DIR`: PSNR / SSIM / MAE of results against references.

Files are matched by stem (``a.png`` in one folder with ``a.tif`` in the other); a table with one
row per matched pair and the mean is printed, files without a partner are listed. ``--csv`` also
writes the numbers (full precision) to a CSV file.
"""
from __future__ import annotations

import csv
import io as _stdio
import math
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="PSNR/SSIM/MAE of restored images against references",
        description="Compare restored images with references matched by file stem; print a table "
        "(per image and mean) of PSNR (dB), SSIM and MAE, and list unmatched files.",
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="folder of restored images")
    p.add_argument("reference", metavar="REFERENCE_DIR", help="folder of reference (sharp) images")
    p.add_argument("--border", type=int, default=0, metavar="N", help="ignore N pixels at every edge (default 0)")
    p.add_argument("--ssim", choices=("gaussian", "matlab3d", "skimage"), default="gaussian",
                   help="SSIM variant: gaussian (per channel, 11x11 window, sigma 1.5; default), matlab3d "
                   "(MATLAB's ssim on the RGB volume, as in the GoPro/HIDE scripts) or skimage (scikit-image's "
                   "defaults: 7x7 uniform window, as in the DPDD defocus protocol)")
    p.add_argument("--csv", metavar="FILE", help="also write the table to a CSV file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    p.set_defaults(func=run)


def _by_stem(folder: str, expand_inputs, error) -> tuple[dict[str, Path], int]:
    paths, errors = expand_inputs([folder])
    for message in errors:
        error(message)
    found: dict[str, Path] = {}
    for p in sorted(paths):
        if p.stem in found:
            error(f"{p}: another file with stem {p.stem!r} in {folder} ({found[p.stem].name}); using the first")
            continue
        found[p.stem] = p
    return found, len(errors)


def compare(result_path: Path, reference_path: Path, border: int = 0, ssim_variant: str = "gaussian") -> dict:
    """PSNR, SSIM and MAE of one pair of image files (RGB or grayscale, alpha ignored)."""
    from ..errors import InputError
    from ..io import read_image
    from ..metrics import mae, psnr, ssim

    x, y = read_image(result_path).data[None], read_image(reference_path).data[None]
    if x.shape != y.shape:
        raise InputError(
            f"{result_path}: size {tuple(x.shape[1:])} differs from reference {reference_path} {tuple(y.shape[1:])}"
        )
    if min(x.shape[-2:]) <= 2 * border:
        raise InputError(f"{result_path}: --border {border} leaves no pixels of a {x.shape[-2]}x{x.shape[-1]} image")
    return {
        "psnr": float(psnr(x, y, data_range=1.0, border=border)[0]),
        "ssim": float(ssim(x, y, data_range=1.0, border=border, variant=ssim_variant)[0]),
        "mae": float(mae(x, y, border=border)[0]),
    }


def format_table(rows: list[tuple[str, dict]]) -> str:
    """Plain-text table: name, PSNR (2 decimals), SSIM (4), MAE (4), then the mean row."""
    width = max([len("image"), len("mean")] + [len(n) for n, _ in rows])
    lines = [f"{'image':<{width}}  {'PSNR':>8}  {'SSIM':>7}  {'MAE':>7}"]
    lines.append("-" * len(lines[0]))
    for name, m in rows:
        lines.append(f"{name:<{width}}  {m['psnr']:>8.2f}  {m['ssim']:>7.4f}  {m['mae']:>7.4f}")
    if rows:
        mean = _mean(rows)
        lines.append("-" * len(lines[0]))
        lines.append(f"{'mean':<{width}}  {mean['psnr']:>8.2f}  {mean['ssim']:>7.4f}  {mean['mae']:>7.4f}")
    identical = sum(1 for _, m in rows if not math.isfinite(m["psnr"]))
    if identical and identical < len(rows):
        lines.append(f"({identical} identical pair(s), PSNR inf, left out of the mean PSNR)")
    return "\n".join(lines)


def _check_csv_target(csv_path: Path, scored: list[Path]) -> None:
    """The CSV must not replace an image, least of all one this run scores."""
    from ..errors import InputError
    from ..io.paths import IMAGE_EXTENSIONS

    target = csv_path.resolve()
    for p in scored:
        if p.resolve() == target:
            raise InputError(f"--csv {csv_path} is one of the images being scored; choose another file name")
    if csv_path.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"--csv {csv_path} has an image file extension; give the CSV file a .csv name")


def _mean(rows: list[tuple[str, dict]]) -> dict:
    """Mean of each metric; PSNR over the pairs where it is finite (an identical pair has PSNR inf,
    which would make the mean inf and hide every other pair)."""
    mean = {k: sum(m[k] for _, m in rows) / len(rows) for k in ("ssim", "mae")}
    finite = [m["psnr"] for _, m in rows if math.isfinite(m["psnr"])]
    mean["psnr"] = sum(finite) / len(finite) if finite else float("inf")
    return mean


def run(args) -> int:
    from ..errors import InputError
    from ..io import atomic_open, expand_inputs
    from .main import error
    from .restore import _file_message

    if args.border < 0:
        raise InputError(f"--border must be >= 0, got {args.border}")
    for folder in (args.results, args.reference):
        if not Path(folder).is_dir():
            raise InputError(f"{folder} is not a folder")
    if args.csv and Path(args.csv).exists() and not args.overwrite:
        raise InputError(f"{args.csv} already exists (use --overwrite to replace it)")
    results, bad_r = _by_stem(args.results, expand_inputs, error)
    references, bad_ref = _by_stem(args.reference, expand_inputs, error)
    if args.csv:
        _check_csv_target(Path(args.csv), list(results.values()) + list(references.values()))
    failed = bad_r + bad_ref
    rows = []
    for stem in sorted(results.keys() & references.keys()):
        try:
            rows.append((results[stem].name, compare(results[stem], references[stem], args.border, args.ssim)))
        except Exception as err:
            failed += 1
            error(_file_message(results[stem], err))
    print(format_table(rows))
    only_r = sorted(results.keys() - references.keys())
    only_ref = sorted(references.keys() - results.keys())
    if only_r:
        print(f"unmatched in {args.results}: {', '.join(results[s].name for s in only_r)}")
    if only_ref:
        print(f"unmatched in {args.reference}: {', '.join(references[s].name for s in only_ref)}")
    if args.csv:
        buf = _stdio.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "psnr", "ssim", "mae"])
        for name, m in rows:
            w.writerow([name, repr(m["psnr"]), repr(m["ssim"]), repr(m["mae"])])
        if rows:
            mean = _mean(rows)
            w.writerow(["mean"] + [repr(mean[k]) for k in ("psnr", "ssim", "mae")])
        with atomic_open(args.csv, "w", overwrite=args.overwrite, newline="") as f:
            f.write(buf.getvalue())
    if not rows:
        error(f"no files with matching stems in {args.results} and {args.reference}")
        return 1
    return 1 if failed else 0
