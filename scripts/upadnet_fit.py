"""Fit UPADNet's LMMSE steps stage by stage on the trajectory of the shared GDUNet modules (how the shipped
``upadnet-tiny.motion`` and the ablation rows of ``benchmarks/upadnet_ablation.md`` were trained).

UPADNet (the L0-initialised design, ``docs/models/upadnet.md``) shares every module with GDUNet and adds per stage
an LMMSE refinement of the HQS image through a gate that starts at 0: ``u_t = v_t + g_t (x^_t - v_t)``. With the
gates closed the network *is* ``gdunet-tiny.motion``. This script

1. makes ``--crops`` training pairs from the training photos (``--data``, sorted, the 16 that the training configs
   hold out are skipped; one seeded crop per photo, camera shake of up to 31 px, ``valid`` blur, Gaussian noise
   drawn uniformly in ``--noise``, 8-bit), and runs the network on each with its gates closed and the inference
   schedule (the full L0 estimate, 13 HQS steps of 8 CG steps), recording every stage's HQS image ``v_t`` and
   kernel ``k_t`` (cached in ``--out``/pairs.pt: the slow part, about 1.5 s a crop on 2 cores);
2. fits each stage's LMMSE parameters (gate, radial prior profiles, noise scale: 18 numbers a stage, 10 for the
   image-domain twin) by Adam on the L1 error of ``v_t + g_t (x^_t - v_t)`` against the sharp crop moved onto
   ``v_t`` (best integer shift within 4 px: a blind estimate is defined up to a translation), every other
   module frozen; ``--photos N`` uses the pairs of the first N photos only (the ablation's little-data rows);
3. with ``--prox-steps N``, trains the last stage's proximal net (GDUNet's, whose gate the shipped GDUNet keeps
   closed) with its gate opened to 1, on that stage's refined image against the sharp crop (:func:`fit_prox`; the
   shipped ``upadnet-tiny.motion``: 800 steps);
4. writes the network (GDUNet's weights plus the fitted parameters) to ``--out``/``--name``.safetensors.

The fit sees the kernels and images of the closed-gate trajectory; at inference an opened gate also changes the
next stage's kernel refit (a small shift for the gates found here, which stay well below 1).

    python scripts/upadnet_fit.py --data ../shared/data/train/CBSD432 --out runs/upadnet-fit
    python scripts/upadnet_fit.py --out runs/upadnet-fit --decomposition image --photos 50 --name twin-50
    python scripts/upadnet_fit.py --out runs/upadnet-fit --name amplitude-phase-all-prox --prox-steps 800
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from unblur.data import holdout_split
from unblur.io import read_image
from unblur.metrics import moved_onto
from unblur.models import create
from unblur.models.gdunet import GATE_SCALE
from unblur.physics.pipeline import DegradationPipeline

HOLDOUT = 16  # as configs/upadnet-tiny-motion.yaml: these photos are never trained on
SIZE = 128  # blurred crop size (the sharp crop is SIZE + 30 for the 31 px 'valid' blur)
BORDER = 8  # the loss ignores this band (the extension's guess lives beyond the frame)


def make_pairs(data: Path, n: int, noise: tuple[float, float], seed: int, base: str) -> dict:
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif"))
    train, _ = holdout_split(len(files), HOLDOUT)
    files = [files[i] for i in train][:n]
    net = create(base, pretrained=True).eval()
    torch.manual_seed(seed)
    records = {"blurred": [], "sharp": [], "v": [], "k": [], "photo": []}
    pipe = DegradationPipeline.from_name("motion", kernel_size=31, noise_sigma=tuple(noise), mode="valid")
    g = torch.Generator().manual_seed(seed)
    big = SIZE + 30
    for i, path in enumerate(files):
        img = read_image(path).data[None]
        H, W = img.shape[-2:]
        top = int(torch.randint(0, H - big + 1, (1,), generator=g))
        left = int(torch.randint(0, W - big + 1, (1,), generator=g))
        out = pipe(img[..., top:top + big, left:left + big], generator=g)
        y = (out["blurred"].clamp(0, 1) * 255).round() / 255
        stages = _trajectory(net, y)
        records["blurred"].append(y[0])
        records["sharp"].append(out["sharp"][0])
        records["v"].append(torch.stack([v[0] for v, _ in stages]))
        records["k"].append(torch.stack([k[0] for _, k in stages]))
        records["photo"].append(i)
        print(f"\rpairs {i + 1}/{len(files)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {k: torch.stack(v) if k != "photo" else torch.tensor(v) for k, v in records.items()}


def _trajectory(net, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each stage's (HQS image, kernel) of ``net`` (a GDUNet with kernel_init l0) on ``y``."""
    seen = []
    hqs = net._hqs_step

    def record(t, yy, k, sigma):
        v = hqs(t, yy, k, sigma)
        seen.append((v.detach(), k.detach()))
        return v

    net._hqs_step = record
    try:
        with torch.inference_mode():
            net(y)
    finally:
        del net._hqs_step
    return seen


def fit(pairs: dict, decomposition: str, photos: int | None, steps: int, lr: float, batch: int, seed: int, base: str):
    net = create("upadnet-tiny", init_from=base, decomposition=decomposition).train()
    keep = pairs["photo"] < photos if photos else torch.ones(len(pairs["photo"]), dtype=torch.bool)
    idx = keep.nonzero().flatten()
    names = ["lmmse_gates", "log_amp_var", "log_noise"] + (["log_phase_var"] if decomposition != "image" else [])
    for n, p in net.named_parameters():
        p.requires_grad_(n in names)
    g = torch.Generator().manual_seed(seed)
    y_all = pairs["blurred"]
    for t in range(net.stages):
        s_all = moved_onto(pairs["sharp"], pairs["v"][:, t], 4)  # a blind estimate is defined up to a translation
        # a fresh optimiser per stage: only stage t's entries get gradients, and no momentum moves the others; the
        # gate is stored divided by GATE_SCALE, so its learning rate is divided by it too
        opt = torch.optim.Adam([{"params": [net.lmmse_gates], "lr": lr / GATE_SCALE},
                                {"params": [p for n, p in net.named_parameters() if n in names[1:]], "lr": lr}])
        for step in range(steps):
            b = idx[torch.randperm(len(idx), generator=g)[:batch]]
            y, sharp, v, k = y_all[b], s_all[b], pairs["v"][b, t], pairs["k"][b, t]
            # the network's own refinement (the LMMSE steps estimate the noise from y themselves: no sigma needed)
            u = net.lmmse_refine(t, v, k, net._l0_step_inputs(y, None))
            gate = net.lmmse_gates[t] * GATE_SCALE
            c = BORDER
            loss = (u - sharp)[..., c:-c, c:-c].abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == steps - 1:
                base_loss = (v - sharp)[..., c:-c, c:-c].abs().mean()
                print(f"stage {t} step {step}: L1 {loss.item():.5f} (closed gate {base_loss.item():.5f}), "
                      f"gate {gate.item():.3f}", file=sys.stderr, flush=True)
    return net.eval()


def fit_prox(net, pairs: dict, photos: int | None, steps: int, lr: float, batch: int, seed: int):
    """Train the last stage's proximal net with its gate open (1) to map that stage's refined image
    ``u_T = v_T + g_T (x^_T - v_T)`` (the fitted LMMSE step on the recorded HQS image) to the sharp crop moved onto
    it (best integer shift within 4 px): L1 loss, random flips and quarter turns, AdamW with a cosine schedule; every
    other module frozen. The earlier stages' proximal nets stay closed (their images feed the kernel refits, which
    the recorded pairs cannot follow)."""
    T = net.stages - 1
    keep = pairs["photo"] < photos if photos else torch.ones(len(pairs["photo"]), dtype=torch.bool)
    idx = keep.nonzero().flatten()
    with torch.no_grad():
        net.eval()
        u_all = torch.cat([net.lmmse_refine(T, pairs["v"][b, T], pairs["k"][b, T],
                                            net._l0_step_inputs(pairs["blurred"][b], None))
                           for b in idx.split(32)])
        net.prox_gates[T] = 1.0 / GATE_SCALE
    s_all = moved_onto(pairs["sharp"][idx], u_all, 4)  # inside the loss's border
    prox = net.proxes[T].train()
    for p in net.parameters():
        p.requires_grad_(False)
    for p in prox.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(prox.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    c = BORDER
    for step in range(steps):
        b = torch.randperm(len(idx), generator=g)[:batch]
        u, sharp = u_all[b], s_all[b]
        turns = int(torch.randint(0, 4, (1,), generator=g))
        u, sharp = torch.rot90(u, turns, (2, 3)), torch.rot90(sharp, turns, (2, 3))
        if bool(torch.rand(1, generator=g) < 0.5):
            u, sharp = u.flip(3), sharp.flip(3)
        out, _ = net._apply_prox(prox, u, 1.0)
        loss = (out - sharp)[..., c:-c, c:-c].abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            base_loss = (u - sharp)[..., c:-c, c:-c].abs().mean()
            print(f"proximal net {T} step {step}: L1 {loss.item():.5f} (closed gate {base_loss.item():.5f})",
                  file=sys.stderr, flush=True)
    return net.eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train/CBSD432"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", default="gdunet-tiny.motion", help="the GDUNet weights the network shares")
    ap.add_argument("--crops", type=int, default=416, help="training pairs (one per photo)")
    ap.add_argument("--noise", type=float, nargs=2, default=(0.0, 0.05))
    ap.add_argument("--decomposition", default="amplitude-phase", choices=("amplitude-phase", "image"))
    ap.add_argument("--photos", type=int, default=None, help="fit on the pairs of the first N photos only")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps per stage")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prox-steps", type=int, default=0,
                    help="then train the last stage's proximal net this many steps with its gate open (0: closed)")
    ap.add_argument("--prox-lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="upadnet", help="output file stem")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "pairs.pt"
    if cache.exists():
        pairs = torch.load(cache)
    else:
        if not args.data.is_dir():
            print(f"error: no training photos at {args.data}", file=sys.stderr)
            return 2
        pairs = make_pairs(args.data, args.crops, tuple(args.noise), args.seed, args.base)
        tmp = cache.with_suffix(".tmp")
        torch.save(pairs, tmp)
        tmp.replace(cache)
    net = fit(pairs, args.decomposition, args.photos, args.steps, args.lr, args.batch, args.seed, args.base)
    if args.prox_steps:
        net = fit_prox(net, pairs, args.photos, args.prox_steps, args.prox_lr, args.batch, args.seed)
    from safetensors.torch import save_file

    path = args.out / f"{args.name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    fitted = {n: p.detach().tolist() for n, p in net.named_parameters() if n in ("lmmse_gates", "log_noise")}
    print(f"wrote {path}: gates {[round(GATE_SCALE * g, 3) for g in fitted['lmmse_gates']]}, "
          f"log noise scales {[round(v, 3) for v in fitted['log_noise']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
