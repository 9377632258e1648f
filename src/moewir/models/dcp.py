"""The dark channel prior (He, Sun and Tang, "Single Image Haze Removal Using Dark Channel
Prior", CVPR 2009 / TPAMI 2011), with the guided-filter refinement of the transmission (He, Sun
and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013): a classical dehazing baseline that
learns nothing, registered as the model ``dcp`` so every command that restores or scores takes
it (``moewir restore --model dcp``, ``moewir eval --weights dcp``).

Haze is ``I = J t + A (1 - t)``. In haze-free outdoor photos most windows hold a pixel that is
dark in some channel, so ``dark(J) = min_window min_c J ~ 0`` and

    t~ = 1 - omega * dark(I / A)                                   (He 2009, Eq. 12)
    J  = (I - A) / max(t, t0) + A                                  (He 2009, Eq. 22)

with the airlight ``A`` read at the haziest pixels: among the ``top_fraction`` brightest pixels
of ``dark(I)``, the one of highest intensity in ``I`` (He 2009, Sec. 4.4). ``t`` is ``t~``
smoothed by a guided filter with the grey image as guide (radius ``guided_radius``, ``eps``;
``guided_radius: 0`` keeps the raw ``t~``).

``A`` is one colour for the whole photo, so the restorer never tiles this model
(``whole_image``): a tile would see a different haziest pixel.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import torch
import torch.nn as nn

from ..ops.color import luma
from ..ops.filters import guided_filter, min_filter
from .registry import config_from_dict, register_model

__all__ = ["DCPConfig", "DarkChannelPrior", "dark_channel", "estimate_airlight"]


@dataclass(frozen=True)
class DCPConfig:
    window: int = 15          # the dark channel's square window, pixels (odd)
    omega: float = 0.95       # keeps a little haze, so far objects still look far
    t0: float = 0.1           # lower bound of the transmission
    top_fraction: float = 0.001  # share of the brightest dark-channel pixels searched for A
    guided_radius: int = 60   # guided filter of t (0: none)
    eps: float = 1e-4         # its regulariser

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"dcp window must be an odd number of pixels >= 1, got {self.window}")
        if not 0 < self.omega <= 1 or not 0 < self.t0 <= 1 or not 0 < self.top_fraction <= 1:
            raise ValueError(f"dcp needs 0 < omega, t0, top_fraction <= 1, got {self.omega}, {self.t0}, "
                             f"{self.top_fraction}")
        if self.guided_radius < 0 or self.eps <= 0:
            raise ValueError(f"dcp needs guided_radius >= 0 and eps > 0, got {self.guided_radius}, {self.eps}")


def dark_channel(image: torch.Tensor, window: int) -> torch.Tensor:
    """``min over the window of min over channels``: ``(B, C, H, W)`` -> ``(B, H, W)``."""
    return min_filter(image.amin(dim=1), window)


def estimate_airlight(image: torch.Tensor, dark: torch.Tensor, top_fraction: float) -> torch.Tensor:
    """``(B, 3)``: per image, the colour of the highest-intensity (RGB mean) pixel among the
    ``top_fraction`` of pixels (at least one) whose dark channel is brightest."""
    b, c, h, w = image.shape
    # round(top_fraction * h * w) in integers (halves up), so an exported graph keeps h, w symbolic
    share = Fraction(top_fraction).limit_denominator(1_000_000)
    count = torch.sym_max(1, (h * w * share.numerator + share.denominator // 2) // share.denominator)
    top = dark.reshape(b, h * w).topk(count, dim=1).indices                      # (B, count)
    pixels = image.reshape(b, c, h * w).gather(2, top[:, None].expand(b, c, count))  # (B, C, count)
    brightest = pixels.mean(dim=1).argmax(dim=1)                                  # (B,)
    return pixels[torch.arange(b), :, brightest]


class DarkChannelPrior(nn.Module):
    """``(B, 3, H, W)`` hazy images in ``[0, 1]`` -> dehazed (not clamped), no learned weights."""

    whole_image = True

    def __init__(self, config: DCPConfig):
        super().__init__()
        self.config = config

    def transmission(self, image: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
        """``t`` of every pixel, ``(B, 1, H, W)``: Eq. 12, then the guided filter."""
        cfg = self.config
        t = 1.0 - cfg.omega * dark_channel(image / airlight.clamp(min=1e-3)[..., None, None], cfg.window)
        if cfg.guided_radius:
            t = guided_filter(luma(image, "bt601-full"), t, cfg.guided_radius, cfg.eps)
        return t[:, None]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        airlight = estimate_airlight(image, dark_channel(image, cfg.window), cfg.top_fraction)
        t = self.transmission(image, airlight)
        a = airlight[..., None, None]
        return (image - a) / t.clamp(min=cfg.t0) + a


def _build(**config) -> DarkChannelPrior:
    return DarkChannelPrior(config_from_dict(DCPConfig, config))


register_model("dcp", _build, asdict(DCPConfig()), needs_weights=False)
