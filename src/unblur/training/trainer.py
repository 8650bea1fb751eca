"""The training loop behind ``unblur train``: one code path for 1 CPU, 1 GPU and many GPUs / nodes.

``Trainer(config).fit()`` builds the model (``unblur.models.create``), AdamW with a warm-up + cosine
schedule, autocast (bf16, or fp16 with a GradScaler), gradient clipping, an EMA of the weights, the
training data (synthetic pairs or paired folders) with a seeded sharded sampler, the fixed validation
set, TensorBoard and a progress bar, then trains for ``train.steps`` optimiser steps.

Under ``torchrun`` each process trains on its shard with ``DistributedDataParallel``; only rank 0
writes checkpoints, TensorBoard events and the progress bar. ``train.batch_size`` is per process.
"""
from __future__ import annotations

import json
import math
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConfigError, InputError
from . import distributed as D
from .checkpoint import FORMAT, capture_rng, find_resume, load_checkpoint, prune_periodic, restore_rng, save_checkpoint
from .config import Config, config_from_dict, dump_config
from .ema import ModelEMA, unwrap
from .losses import TrainingLoss
from .schedule import WarmupCosine, warmup_cosine


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM/SIGINT to the main process: a `kill` or `pkill -f` that reaches the whole
    process group must not kill a worker first (the main process would crash instead of saving a checkpoint);
    the workers end when the main process shuts the loader down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _TrainForward(nn.Module):
    """Routes ``forward`` to ``forward_train`` so DDP's gradient hooks see the call (the kernel only for
    non-blind models)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = model

    def forward(self, x, kernel=None):
        return self.module.forward_train(x) if kernel is None else self.module.forward_train(x, kernel)


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _tensorboard_writer(log_dir: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard missing or broken
        print("unblur: warning: tensorboard is not installed; TensorBoard logging is off "
              "(pip install tensorboard)", file=sys.stderr)
        return None
    return SummaryWriter(str(log_dir), purge_step=purge_step)


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _fresh_acc() -> dict:
    return {"loss": 0.0, "parts": {}, "grad_norm": 0.0, "n": 0, "skipped": 0}


class Trainer:
    """Args:
        config: a :class:`~unblur.training.config.Config` (from ``load_config``) or a plain dict.
        resume: checkpoint path, ``"auto"`` (``<run.dir>/last.pt`` if present) or None.
        overwrite: start from scratch even if ``run.dir`` already holds a run (else a ConfigError).
        model: optional model, or a zero-argument factory called after seeding (so its initial
            weights follow ``train.seed``); default ``unblur.models.create(model.name, **model.args)``.

    ``history`` collects ``(step, mean training loss)`` at every ``train.log_every`` steps.
    """

    def __init__(self, config, resume: str | None = None, model=None, overwrite: bool = False):
        self.cfg: Config = config if isinstance(config, Config) else config_from_dict(config)
        self.resume_arg = resume
        self.overwrite = overwrite
        self._given_model = model
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.metrics: dict = {}
        self.history: list[tuple[int, float]] = []
        self.writer = None

    # ------------------------------------------------------------------ set-up
    def _log(self, msg: str) -> None:
        if self.dist.is_main:
            from tqdm import tqdm

            tqdm.write(f"unblur: {msg}", file=sys.stderr)

    def _build_data(self):
        cfg, t = self.cfg, self.cfg.train
        d = t.data
        from ..data import FrameAverageDataset, PairedFolderDataset, SyntheticBlurDataset, real_blur_mix

        if d.kind == "realmix":
            train_ds = real_blur_mix(d.root, d.frames_root, crop_size=d.crop_size, kernel_size=d.kernel_size,
                                     noise_sigma=d.noise_sigma, weights=d.mix, shake_extent=d.shake_extent,
                                     holdout=d.holdout, length=d.length, seed=t.seed, augment=d.augment)
        elif d.kind == "synthetic":
            train_ds = SyntheticBlurDataset(d.root, crop_size=d.crop_size, kind=d.blur, kernel_size=d.kernel_size,
                                            noise_sigma=d.noise_sigma, length=d.length, seed=t.seed,
                                            augment=d.augment, split="train", holdout=d.holdout,
                                            return_kernel=self.kernel_targets, max_images=d.max_images,
                                            aberration=d.aberration)
        else:
            train_ds = PairedFolderDataset(d.root, layout=d.kind, split=d.split, crop_size=d.crop_size,
                                           augment=d.augment, seed=t.seed, length=d.length)
        self.train_ds = train_ds
        self.sampler = D.ShardedSampler(len(train_ds), t.batch_size, self.dist.rank, self.dist.world_size,
                                        seed=t.seed, shuffle=True, drop_last=True, infinite=True)
        pin = self.device.type == "cuda"
        self.loader = torch.utils.data.DataLoader(
            train_ds, batch_size=t.batch_size, sampler=self.sampler, num_workers=t.num_workers,
            pin_memory=pin, drop_last=False, persistent_workers=t.num_workers > 0,
            generator=torch.Generator().manual_seed(t.seed),  # keeps the global RNG untouched
            prefetch_factor=4 if t.num_workers > 0 else None, worker_init_fn=_ignore_stop_signals)

        v = cfg.val
        self.val_loader = None
        if v.every <= 0:
            return
        kind = v.kind or d.kind
        root = v.root or d.root
        if kind == "realmix" and d.frames_root is not None and v.root is None:
            # the frames held out of training (121 on): real blur the model never saw
            val_ds = FrameAverageDataset(d.frames_root, crop_size=v.crop_size, split="val", length=v.num_images,
                                         seed=v.seed, augment=False)
            bs = v.batch_size if v.crop_size is not None else 1
        elif kind in ("synthetic", "realmix"):
            own = root == d.root and d.kind in ("synthetic", "realmix")  # the training photos: use the held-out ones
            val_ds = SyntheticBlurDataset(root, crop_size=v.crop_size or d.crop_size, kind=d.blur,
                                          kernel_size=d.kernel_size, noise_sigma=d.noise_sigma,
                                          length=v.num_images, seed=v.seed, augment=False, split="val",
                                          holdout=d.holdout if own else 0,
                                          return_kernel=not self.blind, aberration=d.aberration)
            bs = v.batch_size
        else:
            val_ds = PairedFolderDataset(root, layout=kind, split=v.split or "test", crop_size=v.crop_size,
                                         augment=False, seed=v.seed, limit=v.num_images)
            bs = v.batch_size if v.crop_size is not None else 1
            if not self.blind:
                raise ConfigError(f"config: model '{cfg.model.name}' is non-blind: val.kind must be synthetic "
                                  "(it needs the true kernels)")
        self.val_ds = val_ds
        shard = list(range(self.dist.rank, len(val_ds), self.dist.world_size))
        self.val_loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(val_ds, shard), batch_size=bs, shuffle=False, num_workers=0,
            pin_memory=pin)

    def setup(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        self.dist = D.init_distributed(t.device)
        self.device = dev = self.dist.device
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = t.tf32
            torch.backends.cudnn.allow_tf32 = t.tf32
        _seed_all(t.seed)  # identical initial weights on every rank
        if isinstance(self._given_model, nn.Module):
            model = self._given_model
        elif self._given_model is not None:
            model = self._given_model()
        else:
            from ..models import create, load_weights

            model = create(cfg.model.name, **dict(cfg.model.args))
            if cfg.model.get("init"):  # start from exported weights (a resumed run overrides them)
                if not Path(cfg.model.init).is_file():
                    raise ConfigError(f"config: model.init {cfg.model.init} is not a file")
                missing = load_weights(model, cfg.model.init, strict=cfg.model.init_strict)
                if missing and self.dist.is_main:
                    print(f"model.init: {len(missing)} tensors not in {cfg.model.init} start fresh: "
                          f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}", flush=True)
        if not hasattr(model, "forward_train"):
            raise ConfigError(f"config: model '{cfg.model.name}' has no forward_train; it cannot be trained")
        self.model = model.to(dev).train()
        if t.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_model: nn.Module = _TrainForward(self.model)
        if self.dist.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.train_model, device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=t.find_unused_parameters)
        if t.compile != "off":  # the forward only (after DDP, as PyTorch advises): optimiser, loss, EMA stay eager
            self.train_model = torch.compile(self.train_model, mode=t.compile)
        _seed_all(t.seed + 7919 * self.dist.rank)  # per-rank stream for stochastic layers

        o = cfg.optim
        kw = {"fused": True} if dev.type == "cuda" else {}
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay,
                                           eps=o.eps, **kw)
        self.scheduler = warmup_cosine(self.optimizer, t.steps, cfg.sched.warmup_steps, cfg.sched.min_lr)
        self.amp_dtype = _autocast_dtype(t.amp, dev)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEMA(self.model, t.ema) if t.ema > 0 else None
        self.loss_fn = TrainingLoss.from_config(cfg.loss)
        # True kernels: the input of non-blind models, the target of the kernel loss (synthetic data holds them).
        self.blind = bool(getattr(model, "blind", True))
        self.kernel_targets = not self.blind or self.loss_fn.kernel_weight > 0
        if self.kernel_targets and t.data.kind != "synthetic":
            why = "is non-blind" if not self.blind else "has loss.kernel_weight > 0"
            raise ConfigError(f"config: model '{cfg.model.name}' {why}: train.data.kind must be synthetic "
                              "(the data that holds the true kernels)")
        if self.loss_fn.uses_kernels and not getattr(model, "physical_kernels", False):
            raise ConfigError(f"config: loss.kernel_weight / loss.reblur_weight > 0 but model '{cfg.model.name}' "
                              "estimates no physical kernels")
        if self.loss_fn.map_weight > 0:  # blur-radius maps: a model that estimates them, data that holds them
            if not getattr(model, "radius_map", False):
                raise ConfigError(f"config: loss.map_weight > 0 but model '{cfg.model.name}' estimates no "
                                  "blur-radius map")
            if t.data.kind != "synthetic" or t.data.blur != "defocus-map":
                raise ConfigError("config: loss.map_weight > 0 needs the true blur-radius maps "
                                  "(train.data.kind: synthetic, train.data.blur: defocus-map)")
        if t.data.blur == "defocus-map" and self.kernel_targets:
            raise ConfigError("config: train.data.blur defocus-map has no single kernel per image (a non-blind "
                              "model or loss.kernel_weight > 0 needs one)")
        self._build_data()

        self.run_dir = Path(cfg.run.dir)
        # rank 0 decides (its file system holds the run); every rank then acts on the same decision
        resume, problem = None, None
        if self.dist.is_main:
            resume, problem = self._resolve_resume()
        resume, problem = D.broadcast_object((resume, problem), self.dist)
        if problem:
            raise ConfigError(problem)
        if resume is not None:
            self._resume(resume)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
            if resume is None and self.overwrite:
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            if cfg.run.tensorboard:  # purge_step drops events of an earlier run beyond this step
                self.writer = _tensorboard_writer(self.run_dir / "tb", self.step)
        D.barrier(self.dist)

    def _resolve_resume(self) -> tuple[str | None, str | None]:
        arg = self.resume_arg
        if arg == "auto":
            found = find_resume(self.run_dir)
            if found is None:
                self._log(f"no checkpoint in {self.run_dir}; starting from scratch")
            return (str(found) if found else None), None
        if arg is not None:
            if not Path(arg).is_file():
                return None, f"--resume: checkpoint {arg} not found"
            return str(Path(arg).resolve()), None
        if find_resume(self.run_dir) is not None and not self.overwrite:
            return None, (f"run.dir {self.run_dir} already holds a run (last.pt): continue it with --resume auto, "
                          "start over with --overwrite, or choose another run.dir")
        return None, None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        t = self.cfg.train
        return {
            "format": FORMAT,
            "model_name": self.cfg.model.name,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "batch_size": t.batch_size,
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "metrics": dict(self.metrics),
        }

    def save(self) -> Path | None:
        """Write ``last.pt`` (and a periodic ``step_*.pt`` when due); collective, rank 0 writes."""
        rngs = D.all_gather_object(capture_rng(self.device), self.dist)
        path = None
        if self.dist.is_main:
            state = self.state_dict()
            state["rng"] = rngs
            path = save_checkpoint(self.run_dir / "last.pt", state)
            r = self.cfg.run
            if r.keep_every and self.step % r.keep_every == 0:
                save_checkpoint(self.run_dir / f"step_{self.step:08d}.pt", state)
                prune_periodic(self.run_dir, r.keep or None)
        D.barrier(self.dist)
        return path

    def _load_everywhere(self, path: str) -> dict:
        """Each rank reads ``path`` if it can; if some cannot (nodes without a shared file system),
        rank 0 sends its copy to all."""
        everywhere = all(D.all_gather_object(Path(path).is_file(), self.dist))
        if everywhere:
            return load_checkpoint(path)
        return D.broadcast_object(load_checkpoint(path) if self.dist.is_main else None, self.dist)

    def _resume(self, path) -> None:
        ckpt = self._load_everywhere(path)
        cfg, t = self.cfg, self.cfg.train
        if ckpt["model_name"] != cfg.model.name:
            raise ConfigError(f"config: model.name is '{cfg.model.name}' but checkpoint {path} "
                              f"holds '{ckpt['model_name']}'")
        try:
            self.model.load_state_dict(ckpt["model"])
            if self.ema is not None and ckpt.get("ema") is not None:
                self.ema.load_state_dict(ckpt["ema"])
            elif self.ema is not None:
                self.ema = ModelEMA(self.model, t.ema)
        except RuntimeError as err:
            raise InputError(f"checkpoint {path}: weights do not fit model '{cfg.model.name}' with these "
                             f"model.args ({str(err).splitlines()[0]})") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and self.scaler.is_enabled():  # empty when the run had no fp16 scaler
            self.scaler.load_state_dict(ckpt["scaler"])
        # the current config wins for hyper-parameters (same values -> same numbers as before)
        o = cfg.optim
        self.scheduler.base_lrs = [o.lr for _ in self.optimizer.param_groups]
        self.scheduler.lr_lambdas = [WarmupCosine(t.steps, cfg.sched.warmup_steps, o.lr, cfg.sched.min_lr)
                                     for _ in self.optimizer.param_groups]
        for g, base, fn in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            g.update(initial_lr=base, betas=tuple(o.betas), weight_decay=o.weight_decay, eps=o.eps)
            g["lr"] = base * fn(self.scheduler.last_epoch)
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.step = int(ckpt["step"])
        self.metrics = dict(ckpt.get("metrics") or {})
        old = ckpt.get("config", {}).get("train", {})
        if old.get("steps") not in (None, t.steps):
            self._log(f"train.steps changed from {old.get('steps')} to {t.steps}: the cosine schedule now ends at "
                      f"step {t.steps} (lr {self.optimizer.param_groups[0]['lr']:.2e} at step {self.step})")
        same_layout = ckpt.get("world_size") == self.dist.world_size and ckpt.get("batch_size") == t.batch_size
        if same_layout:
            self.epoch, self.batch_in_epoch = int(ckpt["epoch"]), int(ckpt["batch_in_epoch"])
        else:  # another sharding: positions are not comparable, start the next epoch
            self.epoch, self.batch_in_epoch = int(ckpt["epoch"]) + 1, 0
            self._log("world size or batch size changed since the checkpoint: data order restarts at the next epoch")
        rngs = ckpt.get("rng") or []
        if len(rngs) == self.dist.world_size:
            restore_rng(rngs[self.dist.rank], self.device)
        elif rngs:
            restore_rng(rngs[0], self.device)
        self._log(f"resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ steps
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def train_step(self, batch) -> dict:
        t = self.cfg.train
        blurred = batch["blurred"].to(self.device, non_blocking=True)
        if t.channels_last:
            blurred = blurred.contiguous(memory_format=torch.channels_last)
        sharp = batch["sharp"].to(self.device, non_blocking=True)
        kernel = batch["kernel"].to(self.device, non_blocking=True) if "kernel" in batch else None
        radius = batch["radius"].to(self.device, non_blocking=True) if "radius" in batch else None
        with self._autocast():
            out = self.train_model(blurred, None if self.blind else kernel)
        loss, parts = self.loss_fn(out, sharp, blurred=blurred, kernel=kernel, radius=radius)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        gn = torch.nn.utils.clip_grad_norm_(params, t.grad_clip if t.grad_clip > 0 else float("inf"))
        gn = float(gn)  # identical on all ranks (gradients are all-reduced): a consistent skip decision
        skipped = False
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips by itself on inf/nan
            self.scaler.update()
        elif math.isfinite(gn):
            self.optimizer.step()
        else:
            skipped = True
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None and not skipped:
            self.ema.update(self.model)
        return {"loss": float(loss.detach()), "grad_norm": gn, "skipped": skipped, "parts": parts}

    @torch.no_grad()
    def validate(self) -> dict:
        from ..metrics import psnr, ssim

        net = self.ema.module if (self.ema is not None and self.cfg.val.use_ema) else self.model
        was_training = net.training
        net.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        previews = []
        for batch in self.val_loader:
            b = batch["blurred"].to(self.device)
            s = batch["sharp"].to(self.device)
            with self._autocast():
                pred = net(b) if self.blind else net(b, kernel=batch["kernel"].to(self.device))
            pred = pred.float().clamp(0, 1)
            p, q = psnr(pred, s, data_range=1.0), ssim(pred, s, data_range=1.0)
            p0 = psnr(b.clamp(0, 1), s, data_range=1.0)
            sums += torch.stack([p.sum(), q.sum(), p0.sum(), torch.tensor(float(len(p)), device=self.device)]
                                ).double()
            if self.dist.is_main and len(previews) < self.cfg.val.previews:
                for i in range(min(len(p), self.cfg.val.previews - len(previews))):
                    previews.append(torch.cat([b[i].clamp(0, 1), pred[i], s[i]], dim=-1).cpu())
        if was_training:
            net.train()
        D.all_reduce_sum(sums, self.dist)
        n = max(float(sums[3]), 1.0)
        m = {"psnr": float(sums[0]) / n, "ssim": float(sums[1]) / n, "psnr_input": float(sums[2]) / n,
             "images": int(sums[3])}
        if self.writer is not None:
            for k in ("psnr", "ssim", "psnr_input"):
                self.writer.add_scalar(f"val/{k}", m[k], self.step)
            for i, img in enumerate(previews):  # blurred | restored | sharp
                self.writer.add_image(f"val/preview_{i}", img, self.step)
        return m

    # ------------------------------------------------------------------ loop
    def fit(self, stop_at: int | None = None) -> dict:
        """Train to ``train.steps`` (or stop early after step ``stop_at``, writing a checkpoint, as an
        interrupted job would); returns the latest validation metrics and the step."""
        self.setup()
        previous = self._catch_stop_signals()
        try:
            return self._loop(stop_at)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.writer is not None:
                self.writer.close()
            D.cleanup(self.dist)

    def _catch_stop_signals(self) -> dict:
        """On SIGTERM (how schedulers and `kill` stop a job) or Ctrl-C (SIGINT) finish the current step,
        write a checkpoint and exit with status 143 / 130, instead of dying with the work since the last
        checkpoint lost. A second Ctrl-C interrupts at once. Returns the previous handlers."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):
            if signum == signal.SIGINT and self._stop_signal == signal.SIGINT:
                raise KeyboardInterrupt  # asked twice: stop now
            self._stop_signal = signum
            if signum == signal.SIGINT:
                self._log("interrupted: finishing this step and writing a checkpoint (Ctrl-C again to abort)")

        return {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}

    def _stop_requested(self) -> bool:
        """Whether any process received SIGTERM or SIGINT (agreed across processes, since saving is collective)."""
        asked = self._stop_signal is not None
        flag = torch.tensor([1.0 if asked else 0.0], device=self.device)
        return bool(D.all_reduce_sum(flag, self.dist).item() > 0) if self.dist.enabled else asked

    def _loop(self, stop_at: int | None = None) -> dict:
        from tqdm import tqdm

        cfg, t = self.cfg, self.cfg.train
        total = t.steps
        if self.dist.is_main:
            eff = t.batch_size * self.dist.world_size
            self._log(f"training {cfg.model.name} on {self.device} x{self.dist.world_size} "
                      f"(batch {t.batch_size}/process, {eff} in all), steps {self.step}->{total}, "
                      f"amp {str(self.amp_dtype).replace('torch.', '') if self.amp_dtype else 'off'}, "
                      f"run dir {self.run_dir}")
        bar = tqdm(total=total, initial=self.step, disable=not (self.dist.is_main and cfg.run.progress),
                   unit="step", dynamic_ncols=True, smoothing=0.05, file=sys.stderr)
        acc = _fresh_acc()
        t0, imgs = time.perf_counter(), 0
        self._loop_start = (self.step, t0)
        bad_streak = 0
        bpe = self.sampler.batches_per_epoch()
        if self.batch_in_epoch >= bpe:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.sampler.set_position(self.epoch, self.batch_in_epoch)
        batches = iter(self.loader) if self.step < total else iter(())
        for batch in batches:  # an endless stream of batches across epochs (seeded, resumable)
            r = self.train_step(batch)
            self.step += 1
            self.batch_in_epoch += 1
            if self.batch_in_epoch == bpe:
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            imgs += batch["blurred"].shape[0] * self.dist.world_size
            bad_streak = bad_streak + 1 if r["skipped"] else 0
            if bad_streak >= 50:
                raise InputError(f"training diverged: 50 consecutive non-finite gradients at step {self.step} "
                                 "(lower optim.lr, raise sched.warmup_steps or set train.amp=off)")
            for k in ("loss", "grad_norm"):
                acc[k] += r[k] if math.isfinite(r[k]) else 0.0
            for k, v in r["parts"].items():  # whatever named terms the loss returns
                acc["parts"][k] = acc["parts"].get(k, 0.0) + (v if math.isfinite(v) else 0.0)
            acc["n"] += 1
            acc["skipped"] += int(r["skipped"])
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == total:
                self._log_train(acc, bar, imgs / max(time.perf_counter() - t0, 1e-9))
                acc = _fresh_acc()
                t0, imgs = time.perf_counter(), 0
            if self.val_loader is not None and (self.step % cfg.val.every == 0 or self.step == total):
                self.metrics = {**self.validate(), "step": self.step}
                self._record_val(bar)
            stop = stop_at is not None and self.step >= stop_at
            terminated = self._stop_requested()
            if self.step % cfg.run.ckpt_every == 0 or self.step == total or stop or terminated:
                self.save()
            if terminated:
                bar.close()
                interrupted = self._stop_signal == signal.SIGINT
                self._log(f"stopped by {'Ctrl-C' if interrupted else 'SIGTERM'} at step {self.step}; checkpoint "
                          f"written to {self.run_dir}: continue with --resume auto")
                raise SystemExit(130 if interrupted else 143)
            if self.step >= total or stop:
                break
        bar.close()
        return {**self.metrics, "step": self.step}

    def _log_train(self, acc: dict, bar, imgs_per_s: float) -> None:
        n = max(acc["n"], 1)
        names = sorted(acc["parts"])  # the same names on every rank (they follow the config and the model)
        vals = torch.tensor([acc["loss"] / n] + [acc["parts"][k] / n for k in names], dtype=torch.float64,
                            device=self.device)
        D.all_reduce_mean(vals, self.dist)
        loss, parts = float(vals[0]), dict(zip(names, (float(v) for v in vals[1:])))
        self.history.append((self.step, loss))
        lr = self.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss:.4g}", lr=f"{lr:.2e}", refresh=False)
        if not self.cfg.run.progress:  # log files of batch jobs get a line instead of the bar
            done = self.step - self._loop_start[0]
            per_step = (time.perf_counter() - self._loop_start[1]) / done if done > 0 else float("nan")
            eta = (self.cfg.train.steps - self.step) * per_step
            self._log(f"step {self.step}/{self.cfg.train.steps}: loss {loss:.4g}, lr {lr:.2e}, "
                      f"{imgs_per_s:.1f} img/s, ETA {_hms(eta)}")
        if self.writer is not None:
            w = self.writer
            w.add_scalar("train/loss", loss, self.step)
            for k, v in parts.items():
                w.add_scalar(f"train/loss_{k}", v, self.step)
            w.add_scalar("train/lr", lr, self.step)
            w.add_scalar("train/grad_norm", acc["grad_norm"] / n, self.step)
            w.add_scalar("train/images_per_s", imgs_per_s, self.step)
            if acc["skipped"]:
                w.add_scalar("train/skipped_steps", acc["skipped"], self.step)
            if self.scaler.is_enabled():
                w.add_scalar("train/amp_scale", self.scaler.get_scale(), self.step)

    def _record_val(self, bar) -> None:
        if not self.dist.is_main:
            return
        m = self.metrics
        self._log(f"step {self.step}: val PSNR {m['psnr']:.2f} dB (input {m['psnr_input']:.2f}), "
                  f"SSIM {m['ssim']:.4f} on {m['images']} images")
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(m) + "\n")
        if self.writer is not None:
            self.writer.flush()


def train(config, resume: str | None = None, overwrite: bool = False) -> dict:
    """Convenience wrapper: ``Trainer(config, resume, overwrite=overwrite).fit()``."""
    return Trainer(config, resume=resume, overwrite=overwrite).fit()


__all__ = ["Trainer", "train"]
