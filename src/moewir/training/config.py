"""Experiment files: YAML over documented defaults, dotted ``--set`` overrides, typed sections.

The sections are frozen dataclasses below; each field's annotation is its type and its default
the default of the key (:data:`DEFAULTS` is read off them). :func:`load_config` merges a YAML
file and ``--set`` overrides over the defaults (an unknown key is an error naming it, not a
silent no-op) and builds :class:`TrainingConfig` from the result, so a value of the wrong type
or out of range (``schedule.iterations: "5k"``, ``val.at_start: "no"``, ``optim.lr: 0``) stops
with one line naming the key when the file is loaded, not deep inside torch at iteration 5000.
``model`` takes any option of the chosen registered model and ``weighting`` any option of the
chosen strategy; those two stay open mappings, checked when the model / strategy is built.
"""
from __future__ import annotations

import copy
import dataclasses
import types
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

from ..data.datasets import is_zoom_range
from ..models.registry import config_from_dict
from ..yamlfiles import read_yaml_mapping
from .optim import OPTIMIZERS

__all__ = ["TrainingConfig", "DatasetsConfig", "TrainDataConfig", "ValDataConfig", "LossConfig", "OptimConfig",
           "ScheduleConfig", "TrainOptions", "ValConfig", "LogConfig", "DistributedConfig", "DEFAULTS",
           "load_config", "apply_overrides", "training_config", "config_dict"]


#: Sections whose contents are options of something chosen by name (checked by its builder), or
#: keyed by names of the model (`optim.lr_scale`: its modules, checked by build_optimizer).
OPEN_SECTIONS = ("model", "weighting", "optim.lr_scale")


def _key(default: Any, ok: Callable[[Any], bool] | None = None, what: str | None = None):
    """A config field: ``ok`` checks the (well-typed) value's range and ``what`` says in the
    error what the key must be (default: read off the annotation)."""
    return field(default=default, metadata={"ok": ok, "what": what})


def _positive(v) -> bool:
    return v >= 1


def _count(v) -> bool:
    return v >= 0


@dataclass(frozen=True)
class TrainDataConfig:
    """``datasets.train``."""
    root: str | None = None                  # any layout moewir.data knows (required)
    split: str = "train"                     # split folder for layouts that have one
    tasks: tuple[str, ...] | None = _key(None, what="null or a list of task names")  # default: all found
    patch_size: int = _key(128, _positive, "a positive integer")
    batch_per_task: int | dict[str, int] = _key(
        1, lambda v: v >= 1 if isinstance(v, int) else bool(v) and all(n >= 1 for n in v.values()),
        "a positive integer or a mapping of task to positive integer")
    patch_schedule: tuple[tuple[int, int], ...] | None = _key(      # progressive patch sizes
        None, lambda v: v is None or all(s >= 1 and i >= 0 for i, s in v),
        "null or a list of [start_iteration, patch_size] pairs")
    #: Patches cut at a random scale: ``[lo, hi]``, each patch covering ``patch_size / z`` pixels
    #: of the photo (``z`` log-uniform in the range) resized to ``patch_size``; null: no zoom.
    zoom: tuple[float, float] | None = _key(
        None, lambda v: v is None or is_zoom_range(v), "null or [lo, hi] with 0 < lo <= hi <= 1")
    #: Adds the task ``clean``: every training target as its own input (a photo without weather
    #: comes back unchanged), sampled and weighted as the other tasks.
    clean_task: bool = False
    flip: bool = True
    rotate: bool = True
    workers: int = _key(0, _count, "a non-negative integer")
    skip_bad: bool = False
    #: A folder where each training photo is kept decoded after its first draw (``moewir.data.cache``:
    #: the same patches, about a fifth less CPU per step); null: decode every draw.
    cache: str | None = None


@dataclass(frozen=True)
class ValDataConfig:
    """``datasets.val``."""
    root: str | None = None                  # default: the train root
    split: str = "test"
    tasks: tuple[str, ...] | None = _key(None, what="null or a list of task names")
    center_crop: int | None = _key(256, lambda v: v is None or v >= 1, "null or a positive integer")  # null: full
    max_per_task: int | None = _key(None, lambda v: v is None or v >= 1, "null or a positive integer")
    #: Which ``max_per_task`` pairs: the ``first`` N by name, or N ``spread`` evenly over the sorted
    #: list (a test split sorted by name holds each source photo's variants side by side, so the
    #: first N can all be one photo).
    pick: Literal["first", "spread"] = "first"


@dataclass(frozen=True)
class DatasetsConfig:
    train: TrainDataConfig = field(default_factory=TrainDataConfig)
    val: ValDataConfig = field(default_factory=ValDataConfig)


@dataclass(frozen=True)
class LossConfig:
    """Options of :class:`moewir.training.losses.CompositeLoss`."""
    char_weight: float = _key(1.0, _count, "a non-negative number")
    edge_weight: float = _key(0.05, _count, "a non-negative number")
    freq_weight: float = _key(0.01, _count, "a non-negative number")
    scales: int = _key(3, _positive, "a positive integer")
    eps: float = _key(1e-3, lambda v: v > 0, "a positive number")
    freq_norm: Literal["backward", "ortho", "forward"] = "backward"


@dataclass(frozen=True)
class OptimConfig:
    type: str = _key("adam", lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS.names())}")
    lr: float = _key(2e-4, lambda v: v > 0, "a positive number")
    betas: tuple[float, float] = _key((0.9, 0.999), lambda v: all(0 <= b < 1 for b in v), "two numbers in [0, 1)")
    weight_decay: float = _key(0.0, _count, "a non-negative number")
    #: ``{module: factor}``: the parameters of ``model.<module>`` (its dotted name, e.g.
    #: ``prior_embed``) learn at ``factor`` times ``lr``, on the same schedule.
    lr_scale: dict[str, float] = field(default_factory=dict, metadata={
        "ok": lambda v: all(f > 0 for f in v.values()), "what": "a mapping of module name to positive number"})


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear warm-up over ``warmup`` iterations, then cosine to ``min_lr`` at ``iterations``."""
    iterations: int = _key(300000, _positive, "a positive integer")
    warmup: int = _key(0, _count, "a non-negative integer")
    min_lr: float = _key(1e-6, _count, "a non-negative number")


@dataclass(frozen=True)
class TrainOptions:
    """``train``."""
    grad_clip: float = _key(0.0, _count, "a non-negative number")   # global norm; 0 = off
    ema: float = _key(0.999, lambda v: 0 <= v < 1, "a number in [0, 1)")  # decay; 0 = no EMA
    amp: Literal["none", "bf16", "fp16"] = "none"                   # fp16: CUDA only
    #: Weight of an auxiliary cross-entropy that classifies each patch's task from the global mean
    #: of the network's bottleneck features (:class:`moewir.training.losses.TaskClassifier`); 0 = off.
    task_head: float = _key(0.0, _count, "a non-negative number")


@dataclass(frozen=True)
class ValConfig:
    """``val``."""
    every: int = _key(5000, _count, "a non-negative integer")       # 0 = never
    at_start: bool = False                                           # also validate the untrained network
    crop_border: int = _key(0, _count, "a non-negative integer")
    y_channel: bool = True
    use_ema: bool = True
    tile: int | None = _key(None, lambda v: v is None or v >= 1, "null or a positive integer")  # window size
    tile_overlap: int = _key(32, _count, "a non-negative integer")


@dataclass(frozen=True)
class LogConfig:
    every: int = _key(100, _count, "a non-negative integer")
    tensorboard: bool = True
    checkpoint_every: int = _key(5000, _count, "a non-negative integer")
    keep_checkpoints: int = _key(3, _count, "a non-negative integer")  # 0 keeps all


@dataclass(frozen=True)
class DistributedConfig:
    find_unused_parameters: bool = False


@dataclass(frozen=True)
class TrainingConfig:
    """A whole experiment file. ``model`` and ``weighting`` are open mappings (``name`` + options)."""
    name: str | None = None                  # experiment name: experiments/<name>/ (default: the file's stem)
    experiments_root: str = "experiments"
    seed: int = _key(0, _count, "a non-negative integer")
    device: str = "auto"                     # auto | cpu | cuda | cuda:N | mps
    model: dict[str, Any] = field(default_factory=lambda: {"name": "moewirnet"})
    datasets: DatasetsConfig = field(default_factory=DatasetsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    weighting: dict[str, Any] = field(default_factory=lambda: {"name": "ori"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainOptions = field(default_factory=TrainOptions)
    val: ValConfig = field(default_factory=ValConfig)
    log: LogConfig = field(default_factory=LogConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


# --- typed sections from plain mappings ----------------------------------------------------------
def _conforms(value: Any, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is Literal:
        return isinstance(value, str) and value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(_conforms, value, args))
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1])
                                               for k, v in value.items())
    raise TypeError(f"no type check for {hint!r}")


def _convert(value: Any, hint: Any) -> Any:
    """``value`` (known to conform) as the annotation says: lists -> tuples, ints -> floats."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return _convert(value, next(a for a in args if _conforms(value, a)))
    if hint is float:
        return float(value)
    if origin is tuple:
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        return tuple(_convert(v, a) for v, a in zip(value, items))
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in sorted(args, key=lambda a: a is not type(None)))
    if origin is Literal:
        return "one of " + ", ".join(args)
    if origin is dict:
        return "a mapping"
    return {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(hint, str(hint))


def _section(cls: type, data: Any, where: str = ""):
    """``cls`` from the mapping ``data`` (the config at dotted path ``where``), every value
    checked against its field's annotation and range; nested sections are built the same way."""
    if not isinstance(data, dict):
        raise ValueError(f"config key {where.rstrip('.')!r} must be a mapping, got {data!r}")
    hints = get_type_hints(cls)
    values = dict(data)
    for f in fields(cls):
        if f.name not in data:
            continue
        value, hint, key = data[f.name], hints[f.name], f"{where}{f.name}"
        if dataclasses.is_dataclass(hint):
            values[f.name] = _section(hint, value, f"{key}.")
            continue
        ok, what = f.metadata.get("ok"), f.metadata.get("what") or _describe(hint)
        if not _conforms(value, hint) or (ok is not None and not ok(value)):
            raise ValueError(f"config key {key!r} must be {what}, got {value!r}")
        values[f.name] = _convert(value, hint)
    try:
        return config_from_dict(cls, values)  # the models' strict loader: unknown keys named
    except ValueError as exc:
        raise ValueError(f"config section {where.rstrip('.') or 'top'!r}: {exc}") from None


def training_config(config: dict[str, Any] | TrainingConfig) -> TrainingConfig:
    """The typed config of a merged mapping (as :func:`load_config` returns); the first key
    whose value the trainer cannot use is one ``ValueError`` naming it."""
    return config if isinstance(config, TrainingConfig) else _section(TrainingConfig, config)


def config_dict(config: TrainingConfig) -> dict[str, Any]:
    """The plain mapping of ``config`` (lists, not tuples): what ``config.yml`` and checkpoints hold."""
    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(config))


#: Every key with its default, as a plain mapping (read off :class:`TrainingConfig`).
DEFAULTS: dict[str, Any] = config_dict(TrainingConfig())


# --- merging YAML files and overrides --------------------------------------------------------------
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
    """Read ``path`` over :data:`DEFAULTS`, then apply ``overrides``; every value is checked
    here (:func:`training_config`). Returns the plain merged mapping (``--set`` and the
    ablations edit it); the trainer builds the typed config from it."""
    path = Path(path)
    data = read_yaml_mapping(path)
    try:
        config = apply_overrides(_merge(DEFAULTS, data), overrides or {})
        training_config(config)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if config["name"] is None:
        config["name"] = path.stem
    if not config["datasets"]["train"]["root"]:
        raise ValueError(f"{path}: datasets.train.root is required")
    return config
