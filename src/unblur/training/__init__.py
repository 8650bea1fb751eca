"""Training: config, losses, EMA, schedule, checkpoints, distributed helpers and the trainer.

Example:
    >>> from unblur.training import load_config, Trainer  # doctest: +SKIP
    >>> Trainer(load_config("configs/nafnet-tiny-motion.yaml", ["train.steps=100"])).fit()  # doctest: +SKIP
"""
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: F401
from .config import Config, load_config  # noqa: F401
from .ema import ModelEMA  # noqa: F401
from .export import export_weights  # noqa: F401
from .losses import (  # noqa: F401
    MultiScaleLoss, TrainingLoss, charbonnier_loss, fft_loss, kernel_loss, l1_loss, psnr_loss, reblur_loss,
)
from .schedule import warmup_cosine  # noqa: F401
from .trainer import Trainer, train  # noqa: F401
