"""The composite restoration loss of MOE-WIRNet (paper section 3.4).

``L_total = w_char * L_char + w_edge * L_edge + w_freq * L_freq`` with, summed over scales
``i = 1..S`` (the full image and its 2x, 4x, ... average-pooled versions):

* ``L_char = sum_i mean sqrt((T^_i - T_i)^2 + eps^2)``            (Charbonnier, eps = 1e-3)
* ``L_edge = sum_i mean sqrt((Lap(T^_i) - Lap(T_i))^2 + eps^2)``  (Laplacian edges)
* ``L_freq = sum_i mean |FFT(T^_i) - FFT(T_i)|_1``                (real and imaginary parts)

Defaults ``w = (1, 0.05, 0.01)`` and three scales, as in the paper. The network has one output,
so the paper's ``T^_i`` at scales 2 and 3 are the output downsampled (choice documented in
``docs/training.md``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.filters import laplacian

__all__ = ["charbonnier", "fourier_l1", "CompositeLoss", "TaskClassifier"]


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((x - y)^2 + eps^2))``."""
    return torch.sqrt((x - y) ** 2 + eps * eps).mean()


def fourier_l1(x: torch.Tensor, y: torch.Tensor, norm: str = "backward") -> torch.Tensor:
    """Mean absolute difference of the real and imaginary parts of the 2-D FFTs.

    ``norm="backward"`` (unnormalised, the usual choice with weight 0.01) grows with the patch
    side; ``"ortho"`` is independent of the patch size.
    """
    diff = torch.fft.rfft2(x.float(), norm=norm) - torch.fft.rfft2(y.float(), norm=norm)
    return torch.view_as_real(diff).abs().mean()


class CompositeLoss(nn.Module):
    """Multi-scale Charbonnier + Laplacian-edge Charbonnier + Fourier L1 (paper eq. in 3.4).

    ``forward(pred, target)`` returns the total; :meth:`terms` returns each unweighted term.
    """

    def __init__(self, char_weight: float = 1.0, edge_weight: float = 0.05, freq_weight: float = 0.01,
                 scales: int = 3, eps: float = 1e-3, freq_norm: str = "backward"):
        super().__init__()
        if scales < 1:
            raise ValueError(f"loss scales must be >= 1, got {scales}")
        if freq_norm not in ("backward", "ortho", "forward"):
            raise ValueError(f"loss freq_norm must be backward, ortho or forward, got {freq_norm!r}")
        self.weights = {"char": float(char_weight), "edge": float(edge_weight), "freq": float(freq_weight)}
        self.scales, self.eps, self.freq_norm = scales, eps, freq_norm

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        pred, target = pred.float(), target.float()
        total = {"char": pred.new_zeros(()), "edge": pred.new_zeros(()), "freq": pred.new_zeros(())}
        for i in range(self.scales):
            if i:
                if min(pred.shape[-2:]) < 2:
                    break  # no smaller scale of a 1-pixel image
                pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
            total["char"] = total["char"] + charbonnier(pred, target, self.eps)
            total["edge"] = total["edge"] + charbonnier(laplacian(pred), laplacian(target), self.eps)
            total["freq"] = total["freq"] + fourier_l1(pred, target, self.freq_norm)
        return total

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = self.terms(pred, target)
        return sum(self.weights[k] * value for k, value in terms.items())


class TaskClassifier(nn.Module):
    """An auxiliary degradation classifier (not in the papers; ``train.task_head``).

    A linear layer on the global mean of the network's ``bottleneck`` output predicts which task
    each patch of the step's batch came from; its cross-entropy, added to the restoration loss,
    gives the encoder a direct signal to tell the weathers apart (a restoration loss alone
    teaches it slowly: docs/benchmarks.md). The features are read by a forward hook, so the
    network is unchanged and its weights files do not hold the head.
    """

    def __init__(self, network: nn.Module, tasks: int):
        super().__init__()
        bottleneck = getattr(network, "bottleneck", None)
        if not isinstance(bottleneck, nn.Module):
            raise ValueError(f"train.task_head needs a network with a bottleneck stage; "
                             f"{type(network).__name__} has none")
        width = next(m for m in reversed(list(bottleneck.modules())) if isinstance(m, nn.Conv2d)).out_channels
        self.linear = nn.Linear(width, tasks)
        self._features: torch.Tensor | None = None
        self._hook = bottleneck.register_forward_hook(lambda module, args, out: setattr(self, "_features", out))

    def forward(self, sizes: list[int]) -> tuple[torch.Tensor, float]:
        """``(cross-entropy, accuracy)`` of the last forward's batch, made of ``sizes[i]`` patches of task ``i``."""
        if self._features is None:
            raise RuntimeError("TaskClassifier: the network has not run a forward pass yet")
        logits = self.linear(self._features.float().mean(dim=(2, 3)))
        labels = torch.repeat_interleave(torch.arange(len(sizes), device=logits.device),
                                         torch.tensor(sizes, device=logits.device))
        self._features = None
        return F.cross_entropy(logits, labels), float((logits.argmax(1) == labels).float().mean())
