"""Training configuration: YAML file + dotted ``key=value`` overrides, checked against a schema.

Every known key has a default (see ``configs/README.md``), so a config file only states what it
changes. Unknown keys, wrong types and out-of-range values raise :class:`unblur.errors.ConfigError`
with a one-line message naming the file and the key, e.g.::

    config configs/x.yaml: key 'optim.lr' must be > 0, got -1

Paths (``train.data.root``, ``val.root``, ``run.dir``) are resolved relative to the current working
directory, so the same command works from the repository root with the shipped configs.

Example:
    >>> cfg = load_config(None, ["model.name=nafnet-tiny", "train.data.root=/data/CBSD432"])
    >>> cfg.optim.lr, cfg.train.data.crop_size
    (0.001, 256)
"""
from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import ConfigError

_MISSING = object()


@dataclass(frozen=True)
class Key:
    """One schema entry: default value, accepted type(s) and an optional check returning an error text."""

    default: Any
    types: tuple
    check: Callable[[Any], str | None] | None = None
    path: bool = False  # resolve relative to the CWD
    free: bool = False  # a free-form mapping (any sub-keys)


def _gt(lo):
    return lambda v: None if v > lo else f"must be > {lo}"


def _ge(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}"


def _in(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def _unit(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _betas(v):
    if len(v) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in v):
        return "must be a list of two numbers"
    return None if all(0 <= b < 1 for b in v) else "must be two numbers in [0, 1)"


def _sigma(v):
    if isinstance(v, list):
        if len(v) != 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in v):
            return "must be a number or a [low, high] pair"
        if not 0 <= v[0] <= v[1]:
            return "must satisfy 0 <= low <= high"
        return None
    return None if v >= 0 else "must be >= 0"


def _odd_pos(v):
    return None if v >= 1 and v % 2 == 1 else "must be an odd integer >= 1"


def _scale_weights(v):
    if len(v) != 3 or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in v):
        return "must be a list of three weights >= 0 (scales 1, 1/2, 1/4)"
    return None


INT, FLOAT, STR, BOOL, LIST = (int,), (float, int), (str,), (bool,), (list,)
OPT_STR, OPT_INT = (str, type(None)), (int, type(None))

DATA_KINDS = ("synthetic", "realmix", "gopro", "hide", "realblur", "realblur_j", "realblur_r", "dpdd", "realdof",
              "folders")
BLUR_KINDS = ("motion", "defocus", "gaussian", "mixed", "defocus-map")

def _mix_weights(v):
    if len(v) != 3 or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in v):
        return "must be three weights >= 0 (frames, shake, uniform)"
    return None if sum(v) > 0 else "must not be all 0"


def _extent(v):
    if len(v) != 2 or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in v):
        return "must be a [low, high] pair of pixels"
    return None if 0 <= v[0] <= v[1] <= 200 else "must satisfy 0 <= low <= high <= 200"


SCHEMA: dict[str, Any] = {
    "model": {
        "name": Key(_MISSING, STR),
        "args": Key({}, (dict,), free=True),
        "init": Key(None, OPT_STR, path=True),  # .safetensors weights to start from (fine-tuning)
        "init_strict": Key(True, BOOL),  # false: parameters the file lacks keep their initial values
    },
    "train": {
        "data": {
            "kind": Key("synthetic", STR, _in(*DATA_KINDS)),
            "root": Key(_MISSING, STR, path=True),
            "split": Key("train", STR),
            "crop_size": Key(256, INT, _ge(8)),
            "blur": Key("motion", STR, _in(*BLUR_KINDS)),
            "kernel_size": Key(31, INT, _odd_pos),
            "noise_sigma": Key([0.0, 0.02], (float, int, list), _sigma),
            "holdout": Key(0, INT, _ge(0)),
            "max_images": Key(None, OPT_INT, lambda v: None if v is None or v >= 1 else "must be >= 1 or null"),
            "length": Key(None, OPT_INT, lambda v: None if v is None or v >= 1 else "must be >= 1 or null"),
            "augment": Key(True, BOOL),
            "aberration": Key(0.0, FLOAT, lambda v: None if 0 <= v <= 1 else "must be in [0, 1]"),
            # kind realmix: averaged video frames (frames_root), non-uniform shake and uniform kernels on root
            "frames_root": Key(None, OPT_STR, path=True),
            "mix": Key([0.4, 0.4, 0.2], LIST, _mix_weights),
            "shake_extent": Key([4.0, 48.0], LIST, _extent),
        },
        "steps": Key(100_000, INT, _ge(1)),
        "batch_size": Key(8, INT, _ge(1)),
        "num_workers": Key(2, INT, _ge(0)),
        "seed": Key(0, INT, _ge(0)),
        "device": Key("auto", STR, lambda v: None if v in ("auto", "cpu", "cuda") or v.startswith("cuda:")
                      else "must be auto, cpu, cuda or cuda:N"),
        "amp": Key("auto", STR, _in("auto", "off", "bf16", "fp16")),
        "tf32": Key(True, BOOL),
        "grad_clip": Key(0.01, FLOAT, _ge(0)),
        "ema": Key(0.999, FLOAT, _unit),
        "log_every": Key(50, INT, _ge(1)),
        "find_unused_parameters": Key(False, BOOL),
        # GPU speed: channels-last activations, and torch.compile of the training forward (off, default,
        # reduce-overhead: CUDA graphs, max-autotune); launch-bound steps gain most (benchmarks/train_throughput*)
        "channels_last": Key(False, BOOL),
        "compile": Key("off", STR, _in("off", "default", "reduce-overhead", "max-autotune")),
    },
    "loss": {
        "pixel": Key("l1", STR, _in("l1", "charbonnier", "psnr", "mse")),
        "pixel_weight": Key(1.0, FLOAT, _ge(0)),
        "fft_weight": Key(0.01, FLOAT, _ge(0)),
        "charbonnier_eps": Key(1e-3, FLOAT, _gt(0)),
        "image_max_shift": Key(0, INT, _ge(0)),
        "scale_weights": Key([1.0, 1.0, 1.0], LIST, _scale_weights),
        "all_outputs": Key(True, BOOL),
        "kernel_weight": Key(0.0, FLOAT, _ge(0)),
        "kernel_max_shift": Key(2, INT, _ge(0)),
        "kernel_norm": Key("l1", STR, _in("l1", "l2")),
        "reblur_weight": Key(0.0, FLOAT, _ge(0)),
        "map_weight": Key(0.0, FLOAT, _ge(0)),
    },
    "optim": {
        "lr": Key(1e-3, FLOAT, _gt(0)),
        "betas": Key([0.9, 0.9], LIST, _betas),
        "weight_decay": Key(1e-3, FLOAT, _ge(0)),
        "eps": Key(1e-8, FLOAT, _gt(0)),
    },
    "sched": {
        "warmup_steps": Key(1000, INT, _ge(0)),
        "min_lr": Key(1e-7, FLOAT, _ge(0)),
    },
    "val": {
        "every": Key(5000, INT, _ge(0)),
        "kind": Key(None, OPT_STR, lambda v: None if v is None or v in DATA_KINDS else
                    f"must be null or one of {', '.join(DATA_KINDS)}"),
        "root": Key(None, OPT_STR, path=True),
        "split": Key(None, OPT_STR),
        "num_images": Key(16, INT, _ge(1)),
        "crop_size": Key(256, OPT_INT, lambda v: None if v is None or v >= 8 else "must be >= 8 or null"),
        "seed": Key(1234, INT, _ge(0)),
        "batch_size": Key(4, INT, _ge(1)),
        "use_ema": Key(True, BOOL),
        "previews": Key(4, INT, _ge(0)),
    },
    "run": {
        "dir": Key("runs/default", STR, path=True),
        "ckpt_every": Key(1000, INT, _ge(1)),
        "keep_every": Key(0, INT, _ge(0)),
        "keep": Key(0, INT, _ge(0)),
        "tensorboard": Key(True, BOOL),
        "progress": Key(True, BOOL),
    },
}


class Config(dict):
    """A ``dict`` whose keys can also be read as attributes (``cfg.optim.lr``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else copy.deepcopy(v) for k, v in self.items()}


def _wrap(d: dict) -> Config:
    return Config({k: _wrap(v) if isinstance(v, dict) else v for k, v in d.items()})


def _all_keys(schema: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in schema.items():
        name = f"{prefix}{k}"
        out += _all_keys(v, name + ".") if isinstance(v, dict) else [name]
    return out


ALL_KEYS = _all_keys(SCHEMA)


def _type_name(types: tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    uniq = []
    for t in types:
        if names[t] not in uniq and not (t is int and float in types):
            uniq.append(names[t])
    return " or ".join(uniq)


def _coerce(value, key: Key):
    """Accept what YAML gives for numbers it reads as strings (``1e-3`` is a string in YAML 1.1)."""
    if isinstance(value, str) and float in key.types and str not in key.types:
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool) and key.types == FLOAT:
        return float(value)
    return value


def _check_type(value, key: Key) -> bool:
    if isinstance(value, bool) and bool not in key.types:
        return False
    return isinstance(value, key.types)


def _unknown(where: str, name: str) -> ConfigError:
    close = difflib.get_close_matches(name, ALL_KEYS, n=1, cutoff=0.6)
    if not close:  # try the last component alone ("lr" -> "optim.lr")
        last = {k.rsplit(".", 1)[-1]: k for k in ALL_KEYS}
        hit = difflib.get_close_matches(name.rsplit(".", 1)[-1], list(last), n=1, cutoff=0.75)
        close = [last[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"{where}: unknown key '{name}'{hint}")


def _merge(base: dict, new: dict, schema: dict, where: str, prefix: str = "") -> None:
    """Merge ``new`` into ``base`` (both raw dicts), rejecting keys absent from ``schema``."""
    if not isinstance(new, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {new!r}")
    for k, v in new.items():
        name = f"{prefix}{k}"
        if not isinstance(k, str) or k not in schema:
            raise _unknown(where, name)
        sub = schema[k]
        if isinstance(sub, dict):
            if v is None:
                continue
            _merge(base.setdefault(k, {}), v, sub, where, name + ".")
        else:
            base[k] = copy.deepcopy(v)


def _set_dotted(raw: dict, dotted: str, value, where: str) -> None:
    parts = dotted.split(".")
    schema, node = SCHEMA, raw
    for i, p in enumerate(parts):
        if not isinstance(schema, dict) or p not in schema:
            raise _unknown(where, dotted)
        entry = schema[p]
        if isinstance(entry, Key) and entry.free and i < len(parts) - 1:
            sub = node.setdefault(p, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"{where}: key '{'.'.join(parts[:i + 1])}' is not a mapping")
            for q in parts[i + 1:-1]:
                sub = sub.setdefault(q, {})
            sub[parts[-1]] = value
            return
        if i == len(parts) - 1:
            if isinstance(entry, dict):
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: key '{dotted}' is a section; set one of its keys, "
                                      f"e.g. '{dotted}.{next(iter(entry))}=...'")
                _merge(node.setdefault(p, {}), value, entry, where, dotted + ".")
            else:
                node[p] = value
            return
        if isinstance(entry, Key):
            raise _unknown(where, dotted)
        schema, node = entry, node.setdefault(p, {})


def _validate(raw: dict, schema: dict, where: str, base_dir: Path, prefix: str = "") -> dict:
    out = {}
    for k, entry in schema.items():
        name = f"{prefix}{k}"
        if isinstance(entry, dict):
            out[k] = _validate(raw.get(k, {}) or {}, entry, where, base_dir, name + ".")
            continue
        value = raw.get(k, entry.default)
        if value is _MISSING:
            raise ConfigError(f"{where}: key '{name}' is required")
        given = value
        value = _coerce(value, entry)
        if not _check_type(value, entry):
            raise ConfigError(f"{where}: key '{name}' must be {_type_name(entry.types)}, got {given!r}")
        if entry.check is not None and value is not None:
            msg = entry.check(value)
            if msg:
                raise ConfigError(f"{where}: key '{name}' {msg}, got {given!r}")
        if isinstance(value, list):  # every list key holds numbers
            value = [float(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in value]
        if entry.path and value is not None:
            value = str((base_dir / os.path.expanduser(value)).resolve())
        out[k] = copy.deepcopy(value)
    return out


def parse_override(text: str, where: str = "command line") -> tuple[str, Any]:
    """``"optim.lr=2e-4"`` -> ``("optim.lr", 0.0002)``; values are parsed as YAML (types preserved)."""
    if "=" not in text:
        raise ConfigError(f"{where}: override {text!r} must look like key=value (e.g. optim.lr=2e-4)")
    key, _, val = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"{where}: override {text!r} has an empty key")
    try:
        value = yaml.safe_load(val) if val.strip() else None
    except yaml.YAMLError:
        value = val
    return key, value


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None,
                base_dir: str | os.PathLike | None = None) -> Config:
    """Read ``path`` (YAML, may be ``None``), apply ``overrides`` and return the validated :class:`Config`.

    Relative paths are resolved against ``base_dir`` (default: the current working directory).
    """
    where = f"config {path}" if path is not None else "config"
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{where}: file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"{where}: not valid YAML{at}") from None
        if data is not None:
            _merge(raw, data, SCHEMA, where)
    for text in overrides or []:
        key, value = parse_override(text, where)
        _set_dotted(raw, key, value, where)
    cfg = _validate(raw, SCHEMA, where, Path(base_dir) if base_dir is not None else Path.cwd())
    return _wrap(cfg)


def config_from_dict(d: dict, where: str = "config") -> Config:
    """Validate an already-resolved config dictionary (e.g. the one stored in a checkpoint)."""
    raw: dict = {}
    _merge(raw, d, SCHEMA, where)
    return _wrap(_validate(raw, SCHEMA, where, Path.cwd()))


def dump_config(cfg: dict) -> str:
    plain = cfg.to_dict() if isinstance(cfg, Config) else cfg
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=None)
