"""Image filters the weather generators are built from, on ``H x W (x C)`` float32 numpy arrays.

The filters themselves are :mod:`moewir.ops.filters`; here they get synthesis's conventions
(Gaussian radius ``ceil(3 sigma)``, reflected borders, FFT, float32 results).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..ops import filters

__all__ = ["convolve", "gaussian_blur", "gaussian_kernel", "lowfreq_noise", "screen"]


def _tensor(image: np.ndarray) -> torch.Tensor:
    """``C x H x W`` (or ``H x W``) float64 view of an ``H x W x C`` (or ``H x W``) image."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))
    return x.permute(2, 0, 1) if x.dim() == 3 else x


def _image(x: torch.Tensor) -> np.ndarray:
    """Back to an ``H x W x C`` (or ``H x W``) float32 array."""
    return (x.permute(1, 2, 0) if x.dim() == 3 else x).numpy().astype(np.float32)


def _radius(sigma: float) -> int:
    """Synthesis's Gaussian radius, ``ceil(3 sigma)`` (at least 1)."""
    return max(1, int(math.ceil(3 * sigma)))


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Same'-size linear convolution of an ``H x W`` or ``H x W x C`` image (``moewir.ops.filters.convolve``:
    FFT, zero border; float64 inside, float32 out)."""
    return _image(filters.convolve(_tensor(image), torch.from_numpy(np.asarray(kernel, dtype=np.float64))))


def gaussian_kernel(sigma: float) -> np.ndarray:
    """2-D Gaussian of radius ``ceil(3 sigma)``, summing to 1."""
    g = filters.gaussian_kernel(sigma, _radius(sigma))
    return torch.outer(g, g).numpy()


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders (so image edges do not darken; repeated where the image
    is not larger than the radius), radius ``ceil(3 sigma)``, by FFT (sigmas reach tens of pixels)."""
    if sigma <= 0:
        return image.astype(np.float32)
    r = _radius(sigma)
    border = "reflect" if min(image.shape[:2]) > r else "replicate"
    return _image(filters.gaussian_blur(_tensor(image), sigma, r, border, "fft"))


def lowfreq_noise(h: int, w: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth random field in ``[0, 1]``, features of about ``scale`` pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = torch.from_numpy(rng.random((1, 1, gh, gw)))
    field = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)[0, 0].numpy()
    field -= field.min()
    return (field / max(field.max(), 1e-8)).astype(np.float32)


def screen(base: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Screen blend: light adds to the scene and saturates at 1, ``1 - (1 - a)(1 - b)``."""
    return 1.0 - (1.0 - base) * (1.0 - light)
