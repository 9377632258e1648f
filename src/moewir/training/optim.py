"""The optimiser and the learning-rate schedule of a training run, built from ``optim`` and
``schedule`` (``OPTIMIZERS`` is the table ``optim.type`` picks from)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from ..registry import Registry

if TYPE_CHECKING:
    from .config import OptimConfig, ScheduleConfig

__all__ = ["OPTIMIZERS", "build_optimizer", "build_scheduler", "load_scheduler_state"]

#: ``optim.type`` -> a torch optimiser taking ``lr``, ``betas`` and ``weight_decay``.
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adamw", torch.optim.AdamW)


def build_optimizer(model: nn.Module, optim: OptimConfig, extra: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """``optim.type`` over ``model``'s parameters and ``extra``: one group at ``optim.lr``, and
    one per ``optim.lr_scale`` entry at its multiple (the parameters of that submodule)."""
    scaled: dict[str, list[nn.Parameter]] = {name: [] for name in optim.lr_scale}
    rest = []
    for name, param in model.named_parameters():
        owner = next((m for m in optim.lr_scale if name.startswith(m + ".")), None)
        (rest if owner is None else scaled[owner]).append(param)
    if empty := [m for m, params in scaled.items() if not params]:
        raise ValueError(f"config key 'optim.lr_scale': the model has no parameters under {', '.join(empty)} "
                         f"(its modules: {', '.join(dict(model.named_children()))})")
    groups = [{"params": rest + list(extra)}] + [
        {"params": params, "lr": optim.lr * optim.lr_scale[m]} for m, params in scaled.items()]
    return OPTIMIZERS.get(optim.type)(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig) -> LRScheduler:
    """Linear warm-up from ``lr / warmup`` to ``lr`` over ``warmup`` steps, then cosine to
    ``min_lr`` at ``iterations`` (torch's ``LinearLR`` and ``CosineAnnealingLR`` in a
    ``SequentialLR``; the closed form of tests/schedules.py to rounding)."""
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, schedule.iterations - schedule.warmup), eta_min=schedule.min_lr)
    if not schedule.warmup:
        return cosine
    warmup = LinearLR(optimizer, start_factor=1 / schedule.warmup, total_iters=max(1, schedule.warmup - 1))
    return SequentialLR(optimizer, [warmup, cosine], milestones=[schedule.warmup])


def _curve(state: dict) -> dict:
    """The numbers of a scheduler's state that fix its curve (lengths, floors, milestones), not
    where on the curve it is."""
    keys = ("T_max", "eta_min", "total_iters", "start_factor", "end_factor", "_milestones")
    return {"own": {k: state[k] for k in keys if k in state},
            "parts": [_curve(part) for part in state.get("_schedulers", [])]}


def load_scheduler_state(scheduler: LRScheduler, state: dict, optimizer: torch.optim.Optimizer,
                         schedule: ScheduleConfig) -> LRScheduler:
    """``scheduler`` at a checkpoint's state. Where the checkpoint's curve differs from
    ``schedule`` (a run resumed with ``--set schedule.iterations=...`` to stretch it), or the
    checkpoint is of the versions that kept the schedule in a ``LambdaLR``, the new curve is
    replayed: a fresh scheduler stepped to the checkpoint's iteration, so the learning rate
    continues on ``schedule``'s closed form. Loading the state as it is would keep the old
    ``T_max`` and, past it, climb the cosine back up from ``min_lr``."""
    if "lr_lambdas" not in state and _curve(state) == _curve(scheduler.state_dict()):
        scheduler.load_state_dict(state)
        return scheduler
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]
    scheduler = build_scheduler(optimizer, schedule)
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": on purpose
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(state["last_epoch"]):
            scheduler.step()
    return scheduler
