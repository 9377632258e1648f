"""Building blocks shared by every network in :mod:`moewir.models`.

Restormer-style pieces (channel LayerNorm, gated-Dconv feed-forward, pixel-(un)shuffle
resampling) and the padding helper used wherever an operator needs a size multiple.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LayerNorm2d", "GatedFeedForward", "Downsample", "Upsample", "pad_to_multiple"]


def _exporting() -> bool:
    """True while ``torch.export`` (the ONNX exporter's front end) traces the model."""
    is_exporting = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect",
                    before: int = 0) -> torch.Tensor:
    """Pad the last two dims of ``x`` so that ``before + size + after`` is a multiple of ``multiple``.

    ``before`` pixels are added at the top and left (used for shifted windows), the rest at the
    bottom and right. ``mode`` is ``"reflect"`` (falls back to ``"replicate"`` where the image is
    too small to reflect) or ``"constant"`` (zeros). Crop back with ``out[..., before:before+H,
    before:before+W]``.
    """
    h, w = x.shape[-2:]
    # ceil(n / m) * m - n rather than (-n) % m: the same integers, but while torch.export traces
    # with symbolic sizes this form keeps them simple (8 * k): the ONNX export of moewirnet-tiny
    # takes 40 s instead of 65 s.
    pad_h = (h + before + multiple - 1) // multiple * multiple - (h + before)
    pad_w = (w + before + multiple - 1) // multiple * multiple - (w + before)
    # The no-op shortcut is skipped while exporting: testing ``pad == 0`` would bake the example
    # input's answer into the graph, which would then be wrong for other sizes (F.pad by 0 is exact).
    if not _exporting() and before == 0 and pad_h == 0 and pad_w == 0:
        return x
    pad = (before, pad_w, before, pad_h)
    if mode == "reflect" and (max(before, pad_w) >= w or max(before, pad_h) >= h):
        mode = "replicate"  # reflect needs padding smaller than the size it mirrors
    if mode == "constant":
        return F.pad(x, pad, mode="constant", value=0.0)
    return F.pad(x, pad, mode=mode)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a ``(B, C, H, W)`` tensor.

    ``bias=True`` is Restormer's ``WithBias`` norm, ``(x - mean) / sqrt(var + eps) * w + b``;
    ``bias=False`` is its ``BiasFree`` norm, ``x / sqrt(var + eps) * w``, which divides by the
    standard deviation about the mean but does not subtract the mean (Restormer's denoising
    releases use it).
    """

    def __init__(self, channels: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.register_parameter("bias", nn.Parameter(torch.zeros(channels)) if bias else None)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            var = x.var(dim=1, keepdim=True, unbiased=False)
            return x * torch.rsqrt(var + self.eps) * self.weight[:, None, None]
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GatedFeedForward(nn.Module):
    """Gated-Dconv feed-forward network (Restormer, Eq. 6):
    ``Y = W_p^0 (GELU(W_d^1 W_p^1 X) * W_d^2 W_p^2 X)``."""

    def __init__(self, dim: int, expansion: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv to ``C/2`` then pixel-unshuffle(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False),
                                  nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv to ``2C`` then pixel-shuffle(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False),
                                  nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
