"""Experiment files: YAML over documented defaults, dotted ``--set`` overrides, clear errors.

Every key has a default below; a YAML file or an override may only set known keys (an unknown
key is an error naming it, not a silent no-op). ``model`` takes any option of the chosen
registered model and ``weighting`` any option of the chosen strategy; those are checked
when the model / strategy is built.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..yamlfiles import read_yaml_mapping

__all__ = ["DEFAULTS", "load_config", "apply_overrides", "check_values"]


#: Sections whose contents are options of something chosen by name (checked by its builder).
OPEN_SECTIONS = ("model", "weighting")

DEFAULTS: dict[str, Any] = {
    "name": None,                   # experiment name: experiments/<name>/ (default: the file's stem)
    "experiments_root": "experiments",
    "seed": 0,
    "device": "auto",               # auto | cpu | cuda | cuda:N | mps
    "model": {"name": "moewirnet"},
    "datasets": {
        "train": {
            "root": None,               # any layout moewir.data knows
            "split": "train",           # split folder for layouts that have one
            "tasks": None,              # restrict to these tasks (default: all found)
            "patch_size": 128,
            "batch_per_task": 1,        # int or {task: size}
            "patch_schedule": None,     # [[start_iteration, patch_size], ...] (progressive)
            "flip": True,
            "rotate": True,
            "workers": 0,
            "skip_bad": False,
        },
        "val": {
            "root": None,               # default: the train root
            "split": "test",
            "tasks": None,
            "center_crop": 256,         # null keeps full images
            "max_per_task": None,       # first N images of each task
        },
    },
    "loss": {"char_weight": 1.0, "edge_weight": 0.05, "freq_weight": 0.01, "scales": 3, "eps": 1e-3,
             "freq_norm": "backward"},
    "weighting": {"name": "ori"},
    "optim": {"type": "adam", "lr": 2e-4, "betas": [0.9, 0.999], "weight_decay": 0.0},
    "schedule": {"iterations": 300000, "warmup": 0, "min_lr": 1e-6},  # linear warm-up, then cosine
    "train": {"grad_clip": 0.0, "ema": 0.999, "amp": "none"},          # amp: none | bf16 | fp16 (CUDA)
    "val": {"every": 5000, "at_start": False, "crop_border": 0, "y_channel": True, "use_ema": True,
            "tile": None, "tile_overlap": 32},  # tile: restore large validation images window by window
    "log": {"every": 100, "tensorboard": True, "checkpoint_every": 5000, "keep_checkpoints": 3},
    "distributed": {"find_unused_parameters": False},
}


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: Values the trainer cannot use, caught here with the key's name instead of deep inside torch.
_CHECKS: list[tuple[str, Any, str]] = [
    ("seed", _count, "a non-negative integer"),
    ("datasets.train.patch_size", _positive_int, "a positive integer"),
    ("datasets.train.batch_per_task",
     lambda v: _positive_int(v) or (isinstance(v, dict) and bool(v) and all(_positive_int(n) for n in v.values())),
     "a positive integer or a mapping of task to positive integer"),
    ("datasets.train.workers", _count, "a non-negative integer"),
    ("datasets.val.center_crop", lambda v: v is None or _positive_int(v), "null or a positive integer"),
    ("datasets.val.max_per_task", lambda v: v is None or _positive_int(v), "null or a positive integer"),
    ("optim.lr", lambda v: _number(v) and v > 0, "a positive number"),
    ("optim.weight_decay", lambda v: _number(v) and v >= 0, "a non-negative number"),
    ("optim.betas", lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v),
     "two numbers in [0, 1)"),
    ("schedule.iterations", _positive_int, "a positive integer"),
    ("schedule.warmup", _count, "a non-negative integer"),
    ("schedule.min_lr", lambda v: _number(v) and v >= 0, "a non-negative number"),
    ("train.grad_clip", lambda v: _number(v) and v >= 0, "a non-negative number"),
    ("train.ema", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("val.every", _count, "a non-negative integer"),
    ("val.crop_border", _count, "a non-negative integer"),
    ("log.every", _count, "a non-negative integer"),
    ("log.checkpoint_every", _count, "a non-negative integer"),
    ("log.keep_checkpoints", _count, "a non-negative integer"),
]


def check_values(config: dict) -> None:
    """One error naming the first key whose value the trainer cannot use."""
    for dotted, ok, what in _CHECKS:
        value: Any = config
        for part in dotted.split("."):
            value = value[part]
        if not ok(value):
            raise ValueError(f"config key {dotted!r} must be {what}, got {value!r}")


def _merge(base: dict, update: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        where = f"{path}{key}"
        if key not in base and path.rstrip(".") not in OPEN_SECTIONS:
            raise ValueError(f"unknown config key {where!r}")
        if isinstance(base.get(key), dict) and path.rstrip(".") not in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"config key {where!r} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{where}.")
        else:
            default = base.get(key)
            if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, (str, bool)):
                raise ValueError(f"config key {where!r} must be a number, got {value!r}")
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """``{"optim.lr": 1e-3}`` -> the config with that key replaced (checked like the YAML).

    Setting ``weighting.name`` to another strategy drops the options the file gave the old one
    (``kappa`` belongs to ``ori``, not to ``equal``); options set alongside it are kept.
    """
    for dotted, value in overrides.items():
        nested: Any = value
        for part in reversed(dotted.split(".")):
            nested = {part: nested}
        section = nested.get("weighting")
        if isinstance(section, dict) and section.get("name", config["weighting"].get("name")) != config["weighting"].get("name"):
            config = {**config, "weighting": {}}
        config = _merge(config, nested)
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Read ``path`` over :data:`DEFAULTS`, then apply ``overrides``."""
    path = Path(path)
    data = read_yaml_mapping(path)
    try:
        config = apply_overrides(_merge(DEFAULTS, data), overrides or {})
        check_values(config)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if config["name"] is None:
        config["name"] = path.stem
    if not config["datasets"]["train"]["root"]:
        raise ValueError(f"{path}: datasets.train.root is required")
    return config
