"""Checkpoints: safetensors weights (+ EMA) and a training-state file per saved iteration.

``experiments/<name>/checkpoints/`` holds, for iteration ``N``:

* ``net_N.safetensors`` and ``net_ema_N.safetensors``: weights only, with the model's registry
  name and config in the metadata (``moewir restore`` needs nothing else);
* ``state_N.pt``: optimiser, scheduler, weighting state, RNG states, iteration. Loaded with
  ``torch.load(weights_only=True)``, never unpickled.

Every file is written to a temporary file and renamed; the state file is written last, so a
checkpoint counts only once it is complete and a kill mid-save leaves the previous one intact.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from ..data.io import atomic_file

__all__ = ["save_weights", "load_weights", "read_metadata", "stored_shapes", "check_fit", "save_checkpoint",
           "latest_checkpoint", "newest_intact_checkpoint", "remove_orphans", "load_state", "prune_checkpoints"]

_STATE = re.compile(r"state_(\d+)\.pt$")


def save_weights(path: str | Path, model: nn.Module, extra: dict[str, Any] | None = None) -> None:
    """Weights of ``model`` as safetensors, with ``model_name`` / ``model_config`` metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": "moewir", "model_name": str(getattr(model, "model_name", "")),
                "model_config": json.dumps(getattr(model, "model_config", {}), sort_keys=True)}
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    with atomic_file(path) as f:
        f.write(save_safetensors_bytes(tensors, metadata=metadata))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file (clear error when it is not one)."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None


def stored_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, read from its header only."""
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a safetensors weights file ({exc})") from None


def check_fit(path: str | Path, expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> None:
    """One-line error unless ``stored`` has exactly the names and shapes of ``expected``."""
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    reshaped = [f"{k} {stored[k]} vs {expected[k]}" for k in expected if k in stored and stored[k] != expected[k]]
    if missing or unexpected or reshaped:
        raise ValueError(f"{path}: weights do not fit the model ({len(missing)} missing, e.g. {missing[:3]}; "
                         f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}; {len(reshaped)} of another "
                         f"shape, e.g. {reshaped[:2]})")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors_bytes(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path}: cannot read weights ({exc})") from None


def load_weights(path: str | Path, model: nn.Module) -> None:
    """Load safetensors weights into ``model`` (strict: every key must match)."""
    path = Path(path)
    tensors = _read_tensors(path)
    check_fit(path, {k: tuple(v.shape) for k, v in model.state_dict().items()},
              {k: tuple(v.shape) for k, v in tensors.items()})
    model.load_state_dict(tensors)


def save_checkpoint(folder: str | Path, iteration: int, model: nn.Module, ema: nn.Module | None,
                    state: dict[str, Any]) -> Path:
    """Write the three files of iteration ``iteration``; returns the state file's path."""
    folder = Path(folder)
    save_weights(folder / f"net_{iteration}.safetensors", model, {"iteration": iteration})
    if ema is not None:
        save_weights(folder / f"net_ema_{iteration}.safetensors", ema, {"iteration": iteration, "ema": True})
    buffer = io.BytesIO()
    torch.save({"iteration": iteration, **state}, buffer)
    path = folder / f"state_{iteration}.pt"
    with atomic_file(path) as f:
        f.write(buffer.getvalue())
    return path


def _saved(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STATE.match(p.name)))


def latest_checkpoint(folder: str | Path) -> int | None:
    """The newest complete iteration in ``folder`` (``None`` when there is none)."""
    saved = [i for i in _saved(Path(folder)) if (Path(folder) / f"net_{i}.safetensors").is_file()]
    return saved[-1] if saved else None


def load_state(folder: str | Path, iteration: int) -> dict[str, Any]:
    path = Path(folder) / f"state_{iteration}.pt"
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{path}: cannot read the training state (empty file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        # torch's own message may advise weights_only=False, i.e. unpickling an untrusted file: never shown
        raise ValueError(f"{path}: cannot read the training state (corrupt, or not a moewir training state: "
                         f"{type(exc).__name__})") from None


def newest_intact_checkpoint(folder: str | Path) -> tuple[int | None, list[str]]:
    """The newest checkpoint whose files all read back, and why each newer one was passed over.

    A checkpoint passed over is moved aside (``*.corrupt``), so it no longer counts as the
    newest and is never pruned in place of an intact one.
    """
    folder = Path(folder)
    problems = []
    for iteration in reversed(_saved(folder)):
        files = [folder / f"state_{iteration}.pt", folder / f"net_{iteration}.safetensors",
                 folder / f"net_ema_{iteration}.safetensors"]
        try:
            if not files[1].is_file():
                raise ValueError(f"{files[1]}: missing")
            load_state(folder, iteration)
            for path in files[1:]:
                if path.is_file():
                    _read_tensors(path)
            return iteration, problems
        except ValueError as exc:
            problems.append(f"checkpoint {iteration} is unreadable and was moved aside ({exc})")
            for path in files:
                if path.is_file():
                    path.replace(path.with_name(path.name + ".corrupt"))
    return None, problems


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files a kill mid-save leaves (``.NAME.XXXX.tmp``); returns them."""
    folder = Path(folder)
    orphans = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps everything)."""
    if keep <= 0:
        return
    for iteration in _saved(Path(folder))[:-keep]:
        for name in (f"state_{iteration}.pt", f"net_{iteration}.safetensors", f"net_ema_{iteration}.safetensors"):
            (Path(folder) / name).unlink(missing_ok=True)
