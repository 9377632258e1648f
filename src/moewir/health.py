"""Training health of a network: how its residual stream and gradients are distributed.

For one restoration pair (by default a bundled clean photo and a synthesized rainy copy),
:func:`health` runs one forward and one backward pass of the L1 loss and reports, per
transformer block (every module with a ``norm2`` and an ``ffn``, i.e. MoE and Restormer
blocks):

* ``stream_rms``: RMS of the residual stream entering the block;
* ``mix_ratio``: RMS of what the token-mixing half (MoE or MDTA) changes in the stream, over
  ``stream_rms``; ``ffn_ratio``: the same for the feed-forward half;
* ``expert_share`` (MoE blocks): each expert's share of its MoE module's squared gradient norm
  (the rest goes to the input projections, the fusion conv and, in some block forms, the
  output LayerNorm; shares of all the module's parameters sum to 1).

and for the whole network the RMS of the stream entering the output conv and the gradient
norm (what ``train.grad_clip`` compares against). ``moewir profile --health`` prints it.
A network whose output conv is zero (``zero_init_output``) passes no gradient upstream at
its first step; its ``expert_share`` values are NaN.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.io import read_image
from .synth.build import default_photos
from .synth.tasks import synthesize
from .tables import markdown_table

__all__ = ["BlockHealth", "HealthReport", "health", "default_pair", "format_health"]


@dataclass
class BlockHealth:
    name: str
    stream_rms: float
    mix_ratio: float
    ffn_ratio: float
    expert_share: dict[str, float] = field(default_factory=dict)


@dataclass
class HealthReport:
    blocks: list[BlockHealth]
    output_stream_rms: float
    grad_norm: float
    output_grad_norm: float
    loss: float

    def as_dict(self) -> dict:
        return asdict(self)


def default_pair(size: int = 128, task: str = "rain", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input, target)``, ``(1, 3, size, size)``: the centre of a bundled photo and ``task`` on it."""
    clean = read_image(default_photos()[0])
    h, w = clean.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = torch.from_numpy(np.ascontiguousarray(clean[top:top + side, left:left + side])).permute(2, 0, 1)
    clean = F.interpolate(crop[None], size=(size, size), mode="area")[0].permute(1, 2, 0).numpy()
    degraded, target, _ = synthesize(clean, task, seed, severity=0.6)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    return as_tensor(degraded), as_tensor(target)


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def _sq_grad(module: nn.Module) -> float:
    return sum(float(p.grad.detach().float().pow(2).sum()) for p in module.parameters() if p.grad is not None)


def health(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> HealthReport:
    """One forward/backward pass of ``L1(model(inputs), target)``; the model's gradients are
    cleared before and after, its mode is restored."""
    blocks = [(name, m) for name, m in model.named_modules() if hasattr(m, "norm2") and hasattr(m, "ffn")]
    seen: dict[str, dict[str, torch.Tensor]] = {name: {} for name, _ in blocks}
    hooks = []
    for name, block in blocks:
        record = seen[name]
        hooks.append(block.register_forward_pre_hook(lambda m, args, r=record: r.__setitem__("in", args[0])))
        hooks.append(block.register_forward_hook(lambda m, args, out, r=record: r.__setitem__("out", out)))
        hooks.append(block.ffn.register_forward_hook(lambda m, args, out, r=record: r.__setitem__("ffn", out)))
    entering: dict[str, torch.Tensor] = {}
    output = getattr(model, "output", None)
    if output is not None:
        hooks.append(output.register_forward_pre_hook(lambda m, args: entering.__setitem__("x", args[0])))
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        loss = F.l1_loss(model(inputs), target)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    rows = []
    for name, block in blocks:
        r = seen[name]
        stream = _rms(r["in"])
        mixed = r["out"] - r["ffn"]
        row = BlockHealth(name, stream, _rms(mixed - r["in"]) / stream, _rms(r["ffn"]) / _rms(mixed))
        moe = getattr(block, "moe", None)
        if moe is not None and hasattr(moe, "experts"):
            total = _sq_grad(moe)
            row.expert_share = {expert: (_sq_grad(module) / total if total > 0 else math.nan)
                                for expert, module in zip(moe.expert_names, moe.experts)}
        rows.append(row)
    report = HealthReport(
        rows, _rms(entering["x"]) if "x" in entering else math.nan,
        math.sqrt(_sq_grad(model)), math.sqrt(_sq_grad(output)) if output is not None else math.nan,
        float(loss.detach()))
    model.zero_grad(set_to_none=True)
    return report


def format_health(report: HealthReport) -> str:
    """A Markdown table, one row per block, then the network-wide numbers."""
    experts = sorted({e for b in report.blocks for e in b.expert_share}, key=("channel", "spatial", "frequency").index)
    rows = [[b.name, f"{b.stream_rms:.3f}", f"{b.mix_ratio:.3f}", f"{b.ffn_ratio:.3f}",
             *(f"{100 * b.expert_share[e]:.1f}%" if e in b.expert_share else "" for e in experts)]
            for b in report.blocks]
    lines = [markdown_table(["block", "stream RMS", "mix / stream", "FFN / stream",
                             *(f"{e} grad share" for e in experts)], rows, align="lrrr" + "r" * len(experts))]
    lines += ["", f"stream RMS entering the output conv: {report.output_stream_rms:.3f}",
              f"gradient norm: {report.grad_norm:.3g} (output conv {report.output_grad_norm:.3g}); "
              f"L1 loss {report.loss:.4f}"]
    return "\n".join(lines)
