"""PSNR and SSIM following BasicSR's ``calculate_psnr`` / ``calculate_ssim``.

Conventions (each one an argument, so tables can name them):

* images are ``(B, 3, H, W)`` or ``(3, H, W)`` tensors in ``[0, 1]``, measured on the 0-255 scale;
* ``quantize=True`` rounds to 8-bit levels first, as BasicSR does when it converts outputs to
  images before measuring (the numbers in papers);
* ``crop_border`` pixels are removed on every side;
* ``y_channel=True`` measures the luma of ITU-R BT.601 studio range,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (R, G, B in [0, 1]), else every RGB channel;
* SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``,
  statistics over valid windows only, mean over the map and then over channels.

Every function returns one value per image, shape ``(B,)``, in float64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "rgb_to_y"]


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range luma, ``(..., 3, H, W)`` in [0, 1] -> ``(..., 1, H, W)`` in [16/255, 235/255]."""
    r, g, b = image.unbind(-3)
    return ((65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0).unsqueeze(-3)


def _prepare(pred: torch.Tensor, target: torch.Tensor, crop_border: int, y_channel: bool,
             quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"images differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) or (3, H, W) images, got {tuple(pred.shape)}")
    pred, target = pred.detach().double().clamp(0, 1), target.detach().double().clamp(0, 1)
    if quantize:
        pred, target = torch.round(pred * 255) / 255, torch.round(target * 255) / 255
    if y_channel:
        pred, target = rgb_to_y(pred), rgb_to_y(target)
    if crop_border:
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
        if pred.shape[-1] < 1 or pred.shape[-2] < 1:
            raise ValueError(f"crop_border={crop_border} leaves nothing of the image")
    return pred * 255.0, target * 255.0


def psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True) -> torch.Tensor:
    """``10 log10(255^2 / MSE)`` per image (``inf`` for identical images)."""
    pred, target = _prepare(pred, target, crop_border, y_channel, quantize)
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(255.0 ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         quantize: bool = True) -> torch.Tensor:
    """Mean structural similarity per image."""
    pred, target = _prepare(pred, target, crop_border, y_channel, quantize)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels after cropping, got {tuple(pred.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    channels = pred.shape[1]
    window = _gaussian_window().to(pred.device).expand(channels, 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=channels)  # valid windows only

    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x ** 2
    var_y = blur(target * target) - mu_y ** 2
    cov = blur(pred * target) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(2, 3)).mean(dim=1)
