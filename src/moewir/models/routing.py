"""Routers: how the MoE module weights its experts (MOE-WIRNet Sec. 3.2).

A router owns the gating parameters ``G = {g_c, g_s, g_f}`` of one MoE module and returns the
mixing weights ``w`` and the experts that must be computed.

* ``soft``: ``w_i = exp(g_i) / sum_j exp(g_j)``; every expert is computed.
* ``hard`` with ``hard_mode``:

  - ``uniform``: ``w_i = 1/n`` (Sec. 3.1 and the Table 5 ablation; no gates);
  - ``top1``: ``i* = argmax_i g_i`` and only ``F_i*`` reaches the fusion (Sec. 3.2);
  - ``topk``: the ``top_k`` largest gates, their softmax renormalised over the chosen
    experts (the introduction's "Top-K routing").

  In ``top1``/``topk`` the unchosen experts are not computed in eval mode. In training every
  expert is computed and the weights use a straight-through estimator,
  ``w = w_hard + softmax(g) - stopgrad(softmax(g))``: the forward value is ``w_hard`` while
  every gate receives the gradient of the softmax relaxation, including the evidence from the
  experts that are currently not chosen. There is no sampling noise, so eval is deterministic.
* ``none``: ``w_i = 1``, plain concatenation (the "no routing" rows of Table 5).
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["Router", "ROUTING_MODES", "HARD_MODES"]

ROUTING_MODES = ("soft", "hard", "none")
HARD_MODES = ("uniform", "top1", "topk")


class Router(nn.Module):
    def __init__(self, num_experts: int, mode: str = "soft", hard_mode: str = "uniform",
                 top_k: int = 2):
        super().__init__()
        if mode not in ROUTING_MODES:
            raise ValueError(f"routing mode {mode!r} is not one of {ROUTING_MODES}")
        if mode == "hard" and hard_mode not in HARD_MODES:
            raise ValueError(f"hard_mode {hard_mode!r} is not one of {HARD_MODES}")
        self.num_experts = num_experts
        self.mode = mode
        self.hard_mode = hard_mode if mode == "hard" else None
        self.top_k = {"top1": 1, "topk": top_k}.get(self.hard_mode, num_experts)
        if not 1 <= self.top_k <= num_experts:
            raise ValueError(f"hard_top_k={top_k} must be between 1 and the {num_experts} experts")
        if self.learns_gates:
            self.gates = nn.Parameter(torch.zeros(num_experts))
        else:
            fixed = 1.0 / num_experts if self.hard_mode == "uniform" else 1.0
            self.register_buffer("fixed", torch.full((num_experts,), fixed), persistent=False)

    @property
    def learns_gates(self) -> bool:
        return self.mode == "soft" or self.hard_mode in ("top1", "topk")

    @property
    def selects(self) -> bool:
        """True when only some experts reach the fusion (top-1 / top-K hard routing)."""
        return self.hard_mode in ("top1", "topk")

    def chosen(self) -> list[int]:
        """Indices of the experts that reach the fusion stage, in ascending order."""
        if not self.selects:
            return list(range(self.num_experts))
        return sorted(self.gates.detach().topk(self.top_k).indices.tolist())

    def active(self) -> list[int]:
        """Experts that must be computed in the current mode (all of them while training)."""
        return list(range(self.num_experts)) if self.training else self.chosen()

    def forward(self) -> torch.Tensor:
        """Mixing weights ``w`` (shape ``(num_experts,)``)."""
        if not self.learns_gates:
            return self.fixed
        soft = self.gates.softmax(dim=0)
        if not self.selects:
            return soft
        mask = torch.zeros_like(soft)
        mask[self.chosen()] = 1.0
        hard = (soft * mask / (soft * mask).sum()).detach()
        return hard + soft - soft.detach() if self.training else hard

    def extra_repr(self) -> str:
        return f"experts={self.num_experts}, mode={self.mode}, hard_mode={self.hard_mode}, top_k={self.top_k}"
