"""The closed form of the learning-rate schedule, the reference the trainer's torch schedulers
are checked against (and the ``LambdaLR`` the versions before them kept in checkpoints)."""
from __future__ import annotations

import math


def cosine_with_warmup(iterations: int, warmup: int, base_lr: float, min_lr: float):
    """LR multiplier: linear from ``1/warmup`` to 1 over ``warmup`` steps, then cosine to
    ``min_lr / base_lr`` at ``iterations``: the closed form ``moewir.training.optim.build_scheduler`` follows."""
    floor = min_lr / base_lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, iterations - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
