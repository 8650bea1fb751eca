"""Model registry (timm style): architectures register named sizes; ``create`` builds them.

Example:
    >>> from unblur.models import create, list_models
    >>> "nafnet-tiny" in list_models()
    True
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..errors import InputError

SIZES = ("tiny", "small", "paper")


@dataclass
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    config: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(arch: str, configs: dict[str, dict]):
    """Class decorator registering ``f"{arch}-{size}"`` for every size in ``configs``."""

    def wrap(cls):
        for size, cfg in configs.items():
            name = f"{arch}-{size}"
            _REGISTRY[name] = ModelSpec(name, cls, dict(cfg))
        return cls

    return wrap


def weights_path(name: str) -> Path:
    return Path(str(resources.files("unblur") / "weights" / f"{name}.safetensors"))


def list_models(pretrained: bool = False) -> list[str]:
    names = sorted(_REGISTRY)
    return [n for n in names if weights_path(n).is_file()] if pretrained else names


def model_config(name: str) -> dict:
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return copy.deepcopy(_REGISTRY[name].config)


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a safetensors state dict (``unblur export`` output) into ``model``; one-line errors for a missing file
    or weights of another architecture."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} not found")
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as err:
        raise InputError(f"weights {path} do not fit model {getattr(model, 'model_name', type(model).__name__)!r} "
                         f"({str(err).splitlines()[0]})") from None
    return model


def create(name: str, pretrained: bool = False, weights=None, **overrides) -> nn.Module:
    """Build model ``name`` (e.g. ``"deeprftv2-tiny"``); ``pretrained=True`` loads the shipped weights,
    ``weights=PATH`` a safetensors file of your own (e.g. a training run's export). Either returns it in eval mode."""
    if pretrained and weights is not None:
        raise InputError("give pretrained=True or weights=PATH, not both")
    cfg = model_config(name)
    cfg.update(overrides)
    model = _REGISTRY[name].builder(**cfg)
    model.model_name = name
    if pretrained:
        weights = weights_path(name)
        if not weights.is_file():
            shipped = ", ".join(list_models(pretrained=True)) or "none"
            raise InputError(f"no shipped weights for model {name!r} (models with weights: {shipped})")
    if weights is None:
        return model
    return load_weights(model, weights).eval()
