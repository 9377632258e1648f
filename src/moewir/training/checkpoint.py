"""Checkpoints: safetensors weights (+ EMA) and a training-state file per saved iteration.

Weights files themselves belong to the models layer (:mod:`moewir.models.builder`); this
module owns what only training needs: the optimiser / RNG state and resuming.

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
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.io import atomic_file
from ..models import read_tensors, save_weights

__all__ = ["save_checkpoint", "latest_checkpoint", "newest_intact_checkpoint", "remove_orphans", "load_state",
           "prune_checkpoints"]

_STATE = re.compile(r"state_(\d+)\.pt$")


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
                    read_tensors(path)
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
