"""Median-guided filtering: a classical rain and snow baseline that learns nothing, after
"Weighted median guided filtering method for single image rain removal" (EURASIP Journal on
Image and Video Processing 2018:35, doi:10.1186/s13640-018-0275-9), registered as the model
``mgf`` (``moewir restore --model mgf``, ``moewir eval --weights mgf``).

Streaks and flakes are thin and bright, so a median over a window a little wider than they are
gives a coarse image without them but with blunted detail; a guided filter of the rainy image,
guided by that coarse image, then keeps what the rainy image shares with it (the scene's edges)
and averages away what it does not (the streaks), per colour channel:

    C = median_window(I)                                            (coarse, rain-free)
    J = guided_filter(guide=C, source=I, radius, eps)               (He et al. 2010, Alg. 1)

The paper weighs the median by a range kernel; this is the plain median (``window``), which the
paper's own comparison puts close to the weighted one. The defaults were chosen on the 256-px
centre crops of 10 training pairs each of rain and snow of ``data/default`` (PSNR on Y), over
window 3 and 5, radius 1, 2 and 4, eps 1e-3 and 1e-2: **every setting scores below the
unrestored input** there (rain 22.61 dB in, 21.74-22.14 out; snow 23.01 in, 22.29-22.69 out), and
the defaults are the least harmful. ``moewir synth``'s rain and snow also veil the photo and
blur their streaks wider than a small median removes, and a larger window or radius blurs the
scene more than it cleans it (`bench/results/mgf_defaults.json`; docs/evaluation.md, the
median-guided filter).

It is local, so the restorer tiles it. Tiles agree with the whole image while
``window // 2 + 2 * radius`` stays within a quarter of the overlap (8 px at the default 32); the
defaults reach 3.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ..ops.filters import guided_filter, median_filter
from .registry import config_from_dict, register_model

__all__ = ["MGFConfig", "MedianGuidedFilter"]


@dataclass(frozen=True)
class MGFConfig:
    window: int = 3           # the median's square window, pixels (odd)
    radius: int = 1           # the guided filter's window radius
    eps: float = 1e-3         # its regulariser

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"mgf window must be an odd number of pixels >= 1, got {self.window}")
        if self.radius < 0 or self.eps <= 0:
            raise ValueError(f"mgf needs radius >= 0 and eps > 0, got {self.radius}, {self.eps}")


class MedianGuidedFilter(nn.Module):
    """``(B, 3, H, W)`` rainy or snowy images in ``[0, 1]`` -> filtered (not clamped), no learned weights."""

    def __init__(self, config: MGFConfig):
        super().__init__()
        self.config = config

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        coarse = median_filter(image, cfg.window)
        return guided_filter(coarse, image, cfg.radius, cfg.eps)


def _build(**config) -> MedianGuidedFilter:
    return MedianGuidedFilter(config_from_dict(MGFConfig, config))


register_model("mgf", _build, asdict(MGFConfig()), needs_weights=False)
