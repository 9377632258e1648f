"""PSNR and SSIM following BasicSR's ``calculate_psnr`` / ``calculate_ssim``.

Conventions (each one an argument, so tables can name them; the defaults are BasicSR's):

* images are ``(B, C, H, W)`` or ``(C, H, W)`` tensors in ``[0, 1]`` (``C = 3``, or 1 for grey
  images without ``y_channel``), clamped to ``[0, 1]`` and measured on the 0-255 scale;
* ``quantize=True`` rounds to 8-bit levels first, as BasicSR does when it converts outputs to
  images before measuring (the numbers in papers);
* ``crop_border`` pixels are removed on every side;
* ``y_channel=True`` measures the luma ``moewir.ops.color.luma(..., luma_convention)``: by default
  ``"bt601-studio"``, ITU-R BT.601 studio range, ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``
  (R, G, B in [0, 1]); else every channel;
* ``dtype``: the precision of the computation and of the result (float64 by default);
* SSIM (Wang et al. 2004): ``window="gaussian"``, 11x11 Gaussian window, sigma 1.5 (or
  ``"uniform"``, a ``window_size`` box), ``K1 = 0.01``, ``K2 = 0.03``, statistics over valid
  windows only, mean over the map and then over channels.

Every function returns one value per image, shape ``(B,)``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..ops.color import luma
from ..ops.filters import gaussian_kernel

__all__ = ["psnr", "ssim"]

_SSIM_SIGMA = 1.5  # Wang et al. 2004


def _prepare(pred: torch.Tensor, target: torch.Tensor, crop_border: int, y_channel: bool, quantize: bool,
             luma_convention: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"images differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    channels = (3,) if y_channel else (1, 3)
    if pred.dim() != 4 or pred.shape[1] not in channels:
        raise ValueError(f"expected (B, C, H, W) or (C, H, W) images with C = {' or '.join(map(str, channels))}, "
                         f"got {tuple(pred.shape)}")
    pred, target = pred.detach().to(dtype).clamp(0, 1), target.detach().to(dtype).clamp(0, 1)
    if quantize:
        pred, target = torch.round(pred * 255) / 255, torch.round(target * 255) / 255
    if y_channel:
        pred, target = luma(pred, luma_convention).unsqueeze(-3), luma(target, luma_convention).unsqueeze(-3)
    if crop_border:
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
        if pred.shape[-1] < 1 or pred.shape[-2] < 1:
            raise ValueError(f"crop_border={crop_border} leaves nothing of the image")
    return pred * 255.0, target * 255.0


def psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True, *, luma_convention: str = "bt601-studio", dtype: torch.dtype = torch.float64,
         max_db: float | None = None) -> torch.Tensor:
    """``10 log10(255^2 / MSE)`` per image: ``inf`` for identical images, or at most ``max_db``."""
    pred, target = _prepare(pred, target, crop_border, y_channel, quantize, luma_convention, dtype)
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    value = 10.0 * torch.log10(255.0 ** 2 / mse)
    return value if max_db is None else value.clamp(max=max_db)


def _window(window: str, size: int, channels: int, like: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The local mean of SSIM's statistics over the valid windows of a ``(B, C, H, W)`` tensor."""
    if window == "uniform":
        return lambda x: F.avg_pool2d(x, size, stride=1)
    if window != "gaussian" or size % 2 == 0:
        raise ValueError(f"SSIM window must be gaussian (odd size) or uniform, got {window!r} of size {size}")
    g = gaussian_kernel(_SSIM_SIGMA, (size - 1) // 2)
    kernel = torch.outer(g, g).to(like).expand(channels, 1, size, size)
    return lambda x: F.conv2d(x, kernel, groups=channels)


def ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True, *, luma_convention: str = "bt601-studio", dtype: torch.dtype = torch.float64,
         window: str = "gaussian", window_size: int = 11) -> torch.Tensor:
    """Mean structural similarity per image (window: module docstring; ``window_size`` odd)."""
    pred, target = _prepare(pred, target, crop_border, y_channel, quantize, luma_convention, dtype)
    n = window_size
    if min(pred.shape[-2:]) < n:
        raise ValueError(f"SSIM needs images of at least {n}x{n} pixels after cropping, got {tuple(pred.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = _window(window, n, pred.shape[1], pred)
    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x ** 2
    var_y = blur(target * target) - mu_y ** 2
    cov = blur(pred * target) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)
