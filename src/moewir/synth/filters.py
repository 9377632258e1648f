"""Image filters the weather generators are built from (FFT convolution, blurs, line kernels)."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["convolve", "gaussian_blur", "line_kernel", "gaussian_kernel", "lowfreq_noise", "luma", "screen"]


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Same'-size linear convolution of an ``H x W`` or ``H x W x C`` image (FFT, zero border)."""
    squeeze = image.ndim == 2
    img = torch.from_numpy(np.ascontiguousarray(image if not squeeze else image[..., None], dtype=np.float64))
    img = img.permute(2, 0, 1)
    k = torch.from_numpy(np.asarray(kernel, dtype=np.float64))
    h, w = img.shape[-2:]
    kh, kw = k.shape
    fh, fw = h + kh - 1, w + kw - 1
    out = torch.fft.irfft2(torch.fft.rfft2(img, s=(fh, fw)) * torch.fft.rfft2(k, s=(fh, fw)), s=(fh, fw))
    top, left = (kh - 1) // 2, (kw - 1) // 2
    out = out[:, top:top + h, left:left + w].permute(1, 2, 0).numpy().astype(np.float32)
    return out[..., 0] if squeeze else out


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    g2 = np.outer(g, g)
    return g2 / g2.sum()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders (so image edges do not darken)."""
    if sigma <= 0:
        return image.astype(np.float32)
    kernel = gaussian_kernel(sigma)
    r = kernel.shape[0] // 2
    pad = [(r, r), (r, r)] + [(0, 0)] * (image.ndim - 2)
    mode = "reflect" if min(image.shape[:2]) > r else "edge"
    return convolve(np.pad(image, pad, mode=mode), kernel)[r:-r, r:-r]


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased line of ``length`` pixels at ``angle_deg`` from vertical; peak value 1.

    Convolving point seeds with it draws motion-blurred streaks (a drop falling during the
    exposure).
    """
    length = max(1.0, length)
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size))
    c = (size - 1) / 2
    theta = math.radians(angle_deg)
    dy, dx = math.cos(theta), math.sin(theta)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, int(length * 3) + 1):
        y, x = c + t * dy, c + t * dx
        y0, x0 = int(math.floor(y)), int(math.floor(x))
        fy, fx = y - y0, x - x0
        for yy, xx, wgt in ((y0, x0, (1 - fy) * (1 - fx)), (y0 + 1, x0, fy * (1 - fx)),
                            (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0 + 1, fy * fx)):
            if 0 <= yy < size and 0 <= xx < size:
                kernel[yy, xx] += wgt
    return kernel / kernel.max()


def lowfreq_noise(h: int, w: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth random field in ``[0, 1]``, features of about ``scale`` pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = torch.from_numpy(rng.random((1, 1, gh, gw)))
    field = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)[0, 0].numpy()
    field -= field.min()
    return (field / max(field.max(), 1e-8)).astype(np.float32)


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB image in ``[0, 1]``."""
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def screen(base: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen blend: light adds to the scene and saturates at 1, ``1 - (1 - a)(1 - b)``."""
    return 1.0 - (1.0 - base) * (1.0 - light)
