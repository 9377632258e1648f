"""Networks and their weights files (as timm's ``_builder.py``): the models layer owns both.

A weights file is safetensors whose metadata says which registered network it holds
(``model_name``) and how it was configured (``model_config``, JSON). From that alone
:func:`build_from_weights` rebuilds the network; the metadata is checked against the file's
tensors on a skeleton without memory before anything real is built, so a hostile or corrupt
header costs nothing. ``create_model(name, pretrained=True)`` loads the weights shipped in the
package for ``name``.

:func:`build_from_weights` also takes the baselines' official releases (a ``torch.save`` file:
Restormer's ``.pth``, PromptIR's Lightning ``.ckpt``), read safely and renamed by
:mod:`moewir.models.official`; :func:`convert_weights` writes one as a weights file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from ..data.io import atomic_file
from . import official
from .registry import build_model, list_models, needs_weights, recorded_config

__all__ = ["create_model", "model_spec", "save_weights", "read_metadata", "stored_shapes", "check_fit",
           "read_tensors", "load_weights", "shipped_weights", "build_from_weights", "convert_weights"]


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; keyword ``overrides`` replace config fields.

    ``pretrained=True`` loads the weights shipped with the package for ``name``; ``overrides``
    then apply over the config recorded with them (an error when none are shipped, or when an
    override changes the architecture they fit). A model that learns nothing (``dcp``) is
    ready as built either way.
    """
    if not pretrained or not needs_weights(name):
        return build_model(name, **overrides)
    path = shipped_weights(name)
    if path is None:
        raise ValueError(f"no weights are shipped for {name!r}; pass a .safetensors file written by "
                         f"`moewir train` (or pretrained=False for random weights)")
    return build_from_weights(path, name, overrides)


def model_spec(network: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(registered name, config dict)`` of a network; a foreign module gives its class name."""
    name = getattr(network, "model_name", type(network).__name__)
    config = getattr(network, "config", None)
    return name, (asdict(config) if is_dataclass(config) else {})


def save_weights(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
    """Weights of ``model`` as safetensors, with ``model_name`` / ``model_config`` metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    name, config = model_spec(model)
    metadata = {"format": "moewir", "model_name": name if name in list_models() else "",
                "model_config": json.dumps(config, sort_keys=True)}
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    with atomic_file(path) as f:
        f.write(save_safetensors_bytes(tensors, metadata=metadata))


def _header(path: Path, read):
    try:
        with safe_open(str(path), "pt") as f:
            return read(f)
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file (clear error when it is not one)."""
    return _header(Path(path), lambda f: dict(f.metadata() or {}))


def stored_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, read from its header only."""
    return _header(Path(path), lambda f: {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()})


def check_fit(path: str | Path, expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> None:
    """One-line error unless ``stored`` has exactly the names and shapes of ``expected``."""
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    reshaped = [f"{k} {stored[k]} vs {expected[k]}" for k in expected if k in stored and stored[k] != expected[k]]
    if missing or unexpected or reshaped:
        raise ValueError(f"{path}: weights do not fit the model ({len(missing)} missing, e.g. {missing[:3]}; "
                         f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}; {len(reshaped)} of another "
                         f"shape, e.g. {reshaped[:2]})")


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (one-line error when it does not read)."""
    path = Path(path)
    try:
        return load_safetensors_bytes(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: cannot read weights ({exc})") from None


def load_weights(path: str | Path, model: nn.Module) -> None:
    """Load safetensors weights into ``model`` (strict: every key must match)."""
    tensors = read_tensors(path)
    check_fit(path, {k: tuple(v.shape) for k, v in model.state_dict().items()},
              {k: tuple(v.shape) for k, v in tensors.items()})
    model.load_state_dict(tensors)


#: The shipped weights a user should take, so the ones ``moewir restore``, ``moewir demo`` and the
#: web page use when none are named: the best mean on the model card's held-out photos
#: (``docs/model_card.md``: restormer-tiny-matched 28.07 dB, moewirnet-tiny 27.17, input 25.12).
DEFAULT_MODEL = "restormer-tiny-matched"
#: The modules a network with a prior has and one without lacks (``models/unet.py``); they start
#: at zero, so a file without them loads as the network it was.
PRIOR_MODULES = ("prior_embed", "prior_mix")


def shipped_weights(name: str) -> Path | None:
    """The weights file shipped in the package for model ``name`` (``None`` when there is none)."""
    path = resources.files("moewir") / "pretrained" / f"{name}.safetensors"
    return Path(str(path)) if path.is_file() else None


def _recorded(path: Path, name: str, text: str | None) -> dict[str, Any]:
    """The config overrides that ``model_config`` metadata asks for, validated."""
    if name not in list_models():
        raise ValueError(f"{path}: holds an unknown model {name!r}; registered models: {', '.join(list_models())}")
    if not text:  # a bare file: today's defaults
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: model_config metadata is not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: model_config metadata must be a JSON object, got {type(config).__name__}")
    # a recorded config means what it meant when it was written (fields added since: old values)
    return recorded_config(name, config)


def build_from_weights(path: str | Path, model: str | None = None,
                       overrides: dict[str, Any] | None = None) -> nn.Module:
    """The network stored in the safetensors file ``path``, weights loaded.

    The architecture comes from the file's ``model_name`` / ``model_config`` metadata; ``model``
    (a registered name, built with its default config) is needed only for files without it.
    ``overrides`` replace recorded config fields (those that leave the weights' shapes alone, and
    ``prior``: a file without one keeps the zeros its prior's modules start with).
    An official Restormer or PromptIR release names its family itself (``model`` then picks a
    size of that family; by default the release's, ``restormer`` / ``promptir``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    if official.is_pytorch_file(path):
        return _build_from_release(path, model, overrides)
    meta = read_metadata(path)
    name = meta.get("model_name") or model
    if not name:
        raise ValueError(f"{path}: the file does not say which network it holds; "
                         f"pass the model name (one of {', '.join(list_models())})")
    if model and meta.get("model_name") and model != meta["model_name"]:
        raise ValueError(f"{path}: holds {meta['model_name']!r} weights, not {model!r}")
    recorded = _recorded(path, name, meta.get("model_config"))
    config = {**recorded, **(overrides or {})}
    skeleton = _skeleton(path, name, config, "its model_config")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    # a file trained without (this use of) a prior, built with it: the prior's modules keep their zeros
    stored = stored_shapes(path)
    added = {k for k in expected if k.split(".")[0] in PRIOR_MODULES and k not in stored} \
        if recorded.get("prior", "none") != config.get("prior", "none") else set()
    check_fit(path, {k: v for k, v in expected.items() if k not in added}, stored)
    network = build_model(name, **config)
    missing, _ = network.load_state_dict(read_tensors(path), strict=not added)
    if set(missing) != added:  # check_fit has compared every other key
        raise ValueError(f"{path}: weights do not fit the model: missing {', '.join(sorted(missing))}")
    return network


def _skeleton(path: Path, name: str, config: dict[str, Any], what: str) -> nn.Module:
    """``name`` built with ``config`` without memory (``what`` names the config in errors)."""
    try:
        with torch.device("meta"):
            return build_model(name, **config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: {what} does not build a {name!r} network ({exc})") from None


def _build_from_release(path: Path, model: str | None, overrides: dict[str, Any] | None) -> nn.Module:
    """The network of an official release, its tensors fitted by their official names."""
    tensors = official.read_checkpoint(path)
    layout = official.layout_of(path, tensors)
    name = model or layout.family
    if name not in list_models():
        raise ValueError(f"{path}: unknown model {name!r}; registered models: {', '.join(list_models())}")
    if not isinstance(_skeleton(path, name, {}, "the default config"), layout.network):
        raise ValueError(f"{path}: holds official {layout.title} weights, not {name!r} ones")
    config = {**official.release_config(tensors), **(overrides or {})}
    skeleton = _skeleton(path, name, config, f"the release's config {config}")
    stored = {k: tuple(v.shape) for k, v in tensors.items() if not layout.is_unused(k)}
    expected = {layout.to_official(k): layout.official_shape(k, tuple(v.shape))
                for k, v in skeleton.state_dict().items()}
    check_fit(path, expected, stored)
    network = build_model(name, **config)
    renamed = {key: layout.to_moewir(key) for key in stored}
    network.load_state_dict({ours: layout.to_moewir_tensor(ours, tensors[key]) for key, ours in renamed.items()})
    return network


def convert_weights(source: str | Path, target: str | Path, model: str | None = None) -> nn.Module:
    """Write the weights in ``source`` (an official release, or any file :func:`build_from_weights`
    reads) as a moewir weights file ``target``; its metadata also names the source file and its
    SHA-256. Returns the network."""
    source, target = Path(source), Path(target)
    if target.suffix != ".safetensors":
        raise ValueError(f"{target}: the converted weights file must end in .safetensors")
    network = build_from_weights(source, model)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    save_weights(target, network, extra={"converted_from": source.name, "source_sha256": digest})
    return network
