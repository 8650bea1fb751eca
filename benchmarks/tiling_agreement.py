"""How far a tiled network result is from the whole-image one, with and without local statistics (TLC).

A 480x480 crop of scikit-image's astronaut photo (no blur added: the question is the tiler, not deblurring) goes
through each shipped network whole and in tiles (``unblur.inference.tiled_apply``); the table gives the PSNR
between the two results (higher = closer; identical = inf), with global channel statistics and with
``stats_window`` = 128 (the shipped default is 384 px; 128 puts this small photo in the regime of a big one).

    python benchmarks/tiling_agreement.py [--out benchmarks/tiling_agreement.md]
"""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

from unblur.inference.tiling import tiled_apply
from unblur.metrics import psnr
from unblur.models import create, list_models

from _common import cpu_model, emit  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

TILES = [(160, 20), (256, 32)]  # (tile, overlap): the overlap unblur restore uses (tile // 8, at least 16)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from skimage import data

    img = torch.from_numpy(data.astronaut()[:480, :480].copy()).permute(2, 0, 1).float()[None] / 255
    rows = []
    for name in list_models(pretrained=True):
        net = create(name, pretrained=True)
        cells = []
        for window in (None, 128):
            net.stats_window = window
            with torch.inference_mode():
                whole = net(img).clamp(0, 1)
                for tile, overlap in TILES:
                    tiled = tiled_apply(net, img, tile=tile, overlap=overlap, multiple=net.size_multiple).clamp(0, 1)
                    cells.append(f"{psnr(tiled, whole).item():.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    heads = [f"{w}, tile {t}" for w in ("global", "TLC 128") for t, _ in TILES]
    md = "\n".join([
        "# Tiled vs whole-image results (PSNR between them, dB)",
        "",
        f"- latest run: {datetime.date.today()}; machine: {cpu_model()}, {args.threads} threads; "
        "480x480 astronaut crop; overlaps " + ", ".join(f"{o} px at tile {t}" for t, o in TILES),
        "",
        "| weights | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
        *rows,
    ]) + "\n"
    emit(md.splitlines(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
