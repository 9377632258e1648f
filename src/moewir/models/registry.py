"""Model registry: every network is registered under a name with its default
configuration, and built by :func:`build_model` (timm-style; :func:`moewir.create_model` adds
shipped weights on top, see :mod:`moewir.models.builder`).

A registered builder is a callable ``builder(**config) -> nn.Module``; the
registry stores the named configuration as plain data so that sizes such as
``moewirnet-tiny`` are data, not copied classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch.nn as nn

from ..registry import Registry

__all__ = ["register_model", "build_model", "list_models", "model_config", "recorded_config",
           "config_from_dict", "needs_weights"]


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    config: dict[str, Any] = field(default_factory=dict)
    legacy: dict[str, Any] = field(default_factory=dict)
    needs_weights: bool = True


_REGISTRY: Registry[_Entry] = Registry("model", unknown="unknown model {names}; registered models: {known}", sort=True)


def register_model(name: str, builder: Callable[..., nn.Module], config: dict[str, Any],
                   legacy: dict[str, Any] | None = None, needs_weights: bool = True) -> None:
    """Register ``builder`` under ``name`` with its default ``config``.

    ``legacy`` maps fields whose default changed to the value a config recorded before the
    field existed stands for (see :func:`recorded_config`). ``needs_weights=False`` marks a
    restorer that learns nothing (a classical method): it is ready as built, and nothing trains it.
    """
    _REGISTRY.register(name, _Entry(builder, dict(config), dict(legacy or {}), needs_weights))


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return _REGISTRY.names()


def needs_weights(name: str) -> bool:
    """Whether ``name`` restores only with learned weights (``False`` for classical methods)."""
    return _entry(name).needs_weights


def _entry(name: str) -> _Entry:
    return _REGISTRY.get(name)


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The named configuration of ``name`` with ``overrides`` applied."""
    return {**_entry(name).config, **overrides}


def recorded_config(name: str, recorded: dict[str, Any]) -> dict[str, Any]:
    """The overrides that rebuild a network from a config recorded in a weights file.

    A recorded config that lacks a field added later means that field's old behaviour, not the
    new default, so weights files written before the change rebuild the network they hold.
    """
    return {**_entry(name).legacy, **recorded}


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` (random weights); ``overrides`` replace config fields.

    The network keeps its typed config as ``network.config``; this adds ``model_name``, so the
    two together say how to rebuild it (read them with :func:`moewir.models.model_spec`).
    """
    model = _entry(name).builder(**model_config(name, **overrides))
    model.model_name = name
    return model


def config_from_dict(cls: type, config: dict[str, Any]):
    """Build the dataclass ``cls`` from ``config``, naming unknown keys in one clear error.

    Lists (as they come from YAML or JSON) are turned into tuples so configs stay hashable.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s) {', '.join(unknown)}; "
                         f"valid options: {', '.join(sorted(known))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
