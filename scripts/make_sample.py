"""Make the bundled demo sample: a motion-blurred photo, its true kernel and the aligned sharp crop.

Source: ``skimage.data.chelsea()`` (Chelsea the cat, CC0 by the photographer Stefan van der Walt,
shipped with scikit-image). A centre crop is blurred by ``valid`` convolution with a seeded
camera-shake kernel (``unblur.physics.kernels.motion_kernel``) and Gaussian noise (sigma 0.01),
so the blurred image (256 x 384) is exactly what a camera would record of the larger scene.

Writes into ``src/unblur/samples/`` (or ``--out``): ``blurred_camera.png`` (8-bit RGB),
``true_kernel.png`` (normalised for display; ``true_kernel.npy`` holds the exact values) and
``sharp.png`` (the sharp pixels aligned with the blurred ones, same size).

Run: ``.venv/bin/python scripts/make_sample.py [--overwrite]`` (needs scikit-image, a test extra).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unblur.io import write_image, write_kernel
from unblur.physics.conv import conv2d
from unblur.physics.kernels import motion_kernel

HEIGHT, WIDTH = 256, 384  # size of the blurred sample
KERNEL_SIZE = 25
KERNEL_LENGTH = 17.0  # bounding-box side of the camera path, pixels
NOISE = 0.01
SEED = 3


def make(out: Path, overwrite: bool = False) -> dict[str, Path]:
    from skimage import data

    photo = torch.from_numpy(np.ascontiguousarray(data.chelsea())).permute(2, 0, 1).float() / 255.0
    H, W = HEIGHT + KERNEL_SIZE - 1, WIDTH + KERNEL_SIZE - 1  # scene seen by the valid convolution
    y0, x0 = (photo.shape[1] - H) // 2, (photo.shape[2] - W) // 2
    scene = photo[None, :, y0:y0 + H, x0:x0 + W]

    g = torch.Generator().manual_seed(SEED)
    kernel = motion_kernel(KERNEL_SIZE, generator=g, length=KERNEL_LENGTH)
    blurred = conv2d(scene, kernel, mode="valid")
    blurred = (blurred + NOISE * torch.randn(blurred.shape, generator=g)).clamp(0, 1)
    c = KERNEL_SIZE // 2  # valid output pixel (i, j) has the kernel centre over scene pixel (i + c, j + c)
    sharp = scene[..., c:c + HEIGHT, c:c + WIDTH]

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "blurred": out / "blurred_camera.png",
        "sharp": out / "sharp.png",
        "kernel": out / "true_kernel.png",
        "kernel_npy": out / "true_kernel.npy",
    }
    write_image(paths["blurred"], blurred[0], bit_depth=8, overwrite=overwrite)
    write_image(paths["sharp"], sharp[0], bit_depth=8, overwrite=overwrite)
    write_kernel(paths["kernel"], kernel, overwrite=overwrite)
    write_kernel(paths["kernel_npy"], kernel, overwrite=overwrite)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "unblur" / "samples"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    for name, path in make(Path(args.out), args.overwrite).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
