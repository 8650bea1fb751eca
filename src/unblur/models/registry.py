"""Model registry (timm style): architectures register named sizes; weight sets register tags; ``create`` builds.

Names: ``arch-size`` (an architecture at one size, e.g. ``deeprftv2-tiny``) and ``arch-size.tag`` (one weight set
of it, e.g. ``deeprftv2-tiny.motion``). A size may have several weight sets (``.motion``, ``.defocus``, ...),
each with its own metadata (:class:`WeightSpec`: file, blind or not, blur kinds, training data, steps, measured
scores). The first tag registered for a size is its default, loaded by ``create("deeprftv2-tiny", pretrained=True)``.

Example:
    >>> from unblur.models import create, list_models
    >>> "nafnet-tiny" in list_models()
    True
    >>> "nafnet-tiny.motion" in list_models(pretrained=True)
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


@dataclass(frozen=True)
class WeightSpec:
    """One shipped weight set of a model size (``name.tag``).

    ``file``: file name in ``unblur/weights/``; ``blind``: restores without being given the kernel; ``blur``:
    blur kinds it was trained on (``"motion"``, ``"defocus"``, ...); ``data``: training data; ``steps``:
    optimiser steps; ``scores``: measured scores and where they come from (e.g. ``"Kodak24 motion 24.67 dB /
    0.643 SSIM, benchmarks/motion_kodak24.md"``).
    """

    model: str
    tag: str
    file: str
    blind: bool = True
    blur: tuple[str, ...] = ()
    data: str = ""
    steps: str = ""
    scores: str = ""

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def path(self) -> Path:
        return Path(str(resources.files("unblur") / "weights" / self.file))


_REGISTRY: dict[str, ModelSpec] = {}
_WEIGHTS: dict[str, dict[str, WeightSpec]] = {}  # model size -> tag -> spec (insertion order: default first)


def register_model(arch: str, configs: dict[str, dict]):
    """Class decorator registering ``f"{arch}-{size}"`` for every size in ``configs``."""

    def wrap(cls):
        for size, cfg in configs.items():
            name = f"{arch}-{size}"
            _REGISTRY[name] = ModelSpec(name, cls, dict(cfg))
        return cls

    return wrap


def register_weights(model: str, tag: str, file: str | None = None, **meta) -> WeightSpec:
    """Register the weight set ``model.tag`` (``file`` defaults to ``model.tag.safetensors``); the first tag
    registered for ``model`` is its default. ``meta``: the other :class:`WeightSpec` fields."""
    if "." in tag or not tag:
        raise ValueError(f"weight tag must be a non-empty name without '.', got {tag!r}")
    if "blur" in meta:
        meta["blur"] = tuple(meta["blur"])
    spec = WeightSpec(model, tag, file or f"{model}.{tag}.safetensors", **meta)
    _WEIGHTS.setdefault(model, {})[tag] = spec
    return spec


def split_name(name: str) -> tuple[str, str | None]:
    """``"deeprftv2-tiny.motion"`` -> ``("deeprftv2-tiny", "motion")``; ``"deeprftv2-tiny"`` -> (name, None)."""
    model, _, tag = str(name).partition(".")
    return model, (tag or None)


def _check_model(model: str) -> None:
    if model not in _REGISTRY:
        raise InputError(f"unknown model {model!r}; available: {', '.join(list_models())}")


def weight_specs(name: str) -> dict[str, WeightSpec]:
    """The registered weight sets of a model size (tag -> spec, default first); ``{}`` when none."""
    model, _ = split_name(name)
    _check_model(model)
    return dict(_WEIGHTS.get(model, {}))


def weight_spec(name: str) -> WeightSpec | None:
    """The weight set ``name`` (``arch-size.tag``) or the default one of ``arch-size`` (``None`` if it has none).
    An unknown tag is a one-line :class:`InputError` listing the tags."""
    model, tag = split_name(name)
    specs = weight_specs(model)
    if tag is None:
        return next(iter(specs.values()), None)
    if tag not in specs:
        tags = ", ".join(f"{model}.{t}" for t in specs) or "none"
        raise InputError(f"unknown weights {name!r}; weight tags of {model!r}: {tags}")
    return specs[tag]


def weights_path(name: str) -> Path | None:
    """File of the weight set ``name`` (or of the default tag of a size); ``None`` when none is registered."""
    spec = weight_spec(name)
    return spec.path if spec is not None else None


def list_models(pretrained: bool = False) -> list[str]:
    """Registered sizes (``arch-size``), or with ``pretrained=True`` the weight sets whose file is shipped
    (``arch-size.tag``)."""
    if not pretrained:
        return sorted(_REGISTRY)
    return sorted(s.name for model in _REGISTRY for s in _WEIGHTS.get(model, {}).values() if s.path.is_file())


def model_config(name: str) -> dict:
    model, _ = split_name(name)
    _check_model(model)
    return copy.deepcopy(_REGISTRY[model].config)


def model_class(name: str) -> type:
    """The class that builds ``name`` (without building it)."""
    model, _ = split_name(name)
    _check_model(model)
    return _REGISTRY[model].builder


def load_weights(model: nn.Module, path, strict: bool = True) -> list[str]:
    """Load a safetensors state dict (``unblur export`` output) into ``model``; one-line errors for a missing file
    or weights of another architecture. ``strict=False`` lets the model have parameters the file lacks (they keep
    their initial values: warm-starting a grown architecture); extra or mis-shaped tensors are still errors.
    Returns the names of the parameters the file did not have."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file {path} not found")
    name = getattr(model, "model_name", type(model).__name__)
    try:
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=strict)
    except RuntimeError as err:
        raise InputError(f"weights {path} do not fit model {name!r} ({str(err).splitlines()[0]})") from None
    if unexpected:
        raise InputError(f"weights {path} do not fit model {name!r} (unexpected keys: {', '.join(unexpected[:5])})")
    return list(missing)


def create(name: str, pretrained: bool = False, weights=None, **overrides) -> nn.Module:
    """Build model ``name``: ``"deeprftv2-tiny"`` or a weight set ``"deeprftv2-tiny.motion"``.

    ``pretrained=True`` loads the shipped weights (the given tag, else the size's default tag), ``weights=PATH``
    a safetensors file of your own (e.g. a training run's export); either returns the model in eval mode. Without
    them the model is freshly initialised (a tag is then only checked). ``model.model_name`` is the size,
    ``model.weight_spec`` the loaded :class:`WeightSpec` (or ``None``)."""
    if pretrained and weights is not None:
        raise InputError("give pretrained=True or weights=PATH, not both")
    arch, tag = split_name(name)
    cfg = model_config(arch)
    spec = weight_spec(name) if (tag is not None or pretrained) else None
    if pretrained and spec is None:
        shipped = ", ".join(list_models(pretrained=True)) or "none"
        raise InputError(f"no shipped weights for model {arch!r} (weight sets: {shipped})")
    cfg.update(overrides)
    model = _REGISTRY[arch].builder(**cfg)
    model.model_name = arch
    model.weight_spec = spec if pretrained else None
    if pretrained:
        if not spec.path.is_file():
            raise InputError(f"weights file {spec.path} of {spec.name!r} is not installed")
        weights = spec.path
    if weights is None:
        return model
    load_weights(model, weights)
    return model.eval()
