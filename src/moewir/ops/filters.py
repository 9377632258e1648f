"""Filters and windows without learned weights, on torch tensors.

Images are ``(..., H, W)`` tensors (any leading axes) unless a function says otherwise; results
keep the image's dtype and device. Kernels are float64 until applied.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["convolve", "gaussian_kernel", "gaussian_blur", "laplacian", "hann_window_2d", "line_kernel",
           "box_mean", "min_filter", "median_filter", "guided_filter"]

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_BORDERS = ("replicate", "reflect")
_METHODS = ("direct", "fft")


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'Same'-size linear convolution of the last two axes with a 2-D ``kernel``, by FFT, with a
    zero border. The kernel's centre is its element ``((kh - 1) // 2, (kw - 1) // 2)``."""
    kernel = kernel.to(image)
    h, w = image.shape[-2:]
    kh, kw = kernel.shape
    size = (h + kh - 1, w + kw - 1)
    full = torch.fft.irfft2(torch.fft.rfft2(image, s=size) * torch.fft.rfft2(kernel, s=size), s=size)
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return full[..., top:top + h, left:left + w]


def gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    """The sampled Gaussian ``exp(-x^2 / (2 sigma^2))`` at ``x = -radius .. radius``, divided by its
    sum (the separable factor of MATLAB's ``fspecial('gaussian', 2 radius + 1, sigma)``), float64.

    The 2-D kernel is ``torch.outer(g, g)``. The radius is the caller's convention (``ceil(3
    sigma)``, ``int(3 sigma)``, a fixed window). Computed with numpy, whose ``exp`` and sum give
    the taps bit for bit as NIQE's MATLAB-following code always had them.
    """
    if sigma <= 0 or radius < 0:
        raise ValueError(f"a Gaussian kernel needs sigma > 0 and radius >= 0, got sigma={sigma}, radius={radius}")
    x = np.arange(2 * radius + 1) - float(radius)
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return torch.from_numpy(g / g.sum())


def _pad(image: torch.Tensor, radius: int, border: str) -> torch.Tensor:
    """``image`` with ``radius`` pixels added on every side by ``border``."""
    h, w = image.shape[-2:]
    flat = F.pad(image.reshape(-1, h, w), (radius,) * 4, mode=border)
    return flat.reshape(*image.shape[:-2], h + 2 * radius, w + 2 * radius)


def gaussian_blur(image: torch.Tensor, sigma: float, radius: int, border: str, method: str) -> torch.Tensor:
    """Same-size Gaussian blur of the last two axes with the taps ``gaussian_kernel(sigma, radius)``.

    ``border``: ``"replicate"`` repeats the edge pixels (MATLAB ``imfilter(..., 'replicate')``),
    ``"reflect"`` mirrors about them without repeating them (numpy ``pad(mode="reflect")``; needs
    ``radius`` smaller than both sides). ``method``: ``"direct"`` sums shifted copies weighted by the
    taps in tap order, rows first, then columns (a fixed summation order, which NIQE's statistics
    of flat regions depend on; cost grows with ``radius``); ``"fft"`` is one FFT convolution with the 2-D kernel (cost
    independent of ``radius``, for large ``sigma``). The two agree to rounding.
    """
    if border not in _BORDERS or method not in _METHODS:
        raise ValueError(f"gaussian_blur: border must be one of {_BORDERS} and method one of {_METHODS}, "
                         f"got {border!r}, {method!r}")
    taps = gaussian_kernel(sigma, radius).to(image)
    h, w = image.shape[-2:]
    padded = _pad(image, radius, border)
    if method == "fft":
        return convolve(padded, torch.outer(taps, taps))[..., radius:radius + h, radius:radius + w]
    rows = sum(t * padded[..., i:i + h, :] for i, t in enumerate(taps))
    return sum(t * rows[..., j:j + w] for j, t in enumerate(taps))


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """The 5-point discrete Laplacian ``f(i-1, j) + f(i+1, j) + f(i, j-1) + f(i, j+1) - 4 f(i, j)``
    of every channel of a ``(B, C, H, W)`` tensor, edges replicated (same size as ``x``)."""
    channels = x.shape[1]
    kernel = _LAPLACIAN.to(x).expand(channels, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)


def hann_window_2d(h: int, w: int) -> torch.Tensor:
    """``h x w`` float32 product of two symmetric Hann windows,
    ``w[n] = 0.5 - 0.5 cos(2 pi n / (N - 1))`` for ``n = 0 .. N - 1`` (numpy's ``hanning``,
    ``torch.hann_window(N, periodic=False)``): zero at both ends, for tapering before an FFT."""
    return torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None]


def line_kernel(length: float, angle_deg: float) -> torch.Tensor:
    """Anti-aliased line of ``length`` pixels at ``angle_deg`` from vertical; float64, odd size,
    peak value 1.

    Convolving point seeds with it draws motion-blurred streaks (a drop falling during the
    exposure); correlating with it detects such lines.
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
    return torch.from_numpy(kernel / kernel.max())


def box_mean(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2 radius + 1)``-square window around each pixel of the last two axes,
    counting only the pixels inside the image (the normalised box filter of He et al.'s guided
    filter). By integral images, in float64: the cost does not grow with ``radius``."""
    if radius < 0:
        raise ValueError(f"box_mean needs radius >= 0, got {radius}")
    h, w = image.shape[-2:]

    def window(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[lo, hi)``: the part of each pixel's window inside an axis of ``n`` pixels."""
        i = torch.arange(n, device=image.device)
        return (i - radius).clamp(min=0), (i + radius + 1).clamp(max=n)

    def window_sums(x: torch.Tensor, axis: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        c = F.pad(torch.cumsum(x, axis), (1, 0) if axis == -1 else (0, 0, 1, 0))
        return c.index_select(axis, hi) - c.index_select(axis, lo)

    (top, bottom), (left, right) = window(h), window(w)
    total = window_sums(window_sums(image.double(), -2, top, bottom), -1, left, right)
    count = ((bottom - top)[:, None] * (right - left)[None]).double()
    return (total / count).to(image.dtype)


def min_filter(image: torch.Tensor, size: int) -> torch.Tensor:
    """Minimum over the ``size x size`` window (odd ``size``) around each pixel of the last two
    axes; the window is cut at the image border. Separable: rows, then columns."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"min_filter needs an odd size >= 1, got {size}")
    h, w = image.shape[-2:]
    flat = -image.reshape(-1, 1, h, w)
    r = size // 2
    flat = F.max_pool2d(flat, (size, 1), stride=1, padding=(r, 0)) if r else flat
    flat = F.max_pool2d(flat, (1, size), stride=1, padding=(0, r)) if r else flat
    return (-flat).reshape(image.shape)


def median_filter(image: torch.Tensor, size: int) -> torch.Tensor:
    """Median over the ``size x size`` window (odd ``size``) around each pixel of the last two
    axes, the image reflected at its border (repeated when it is too small to reflect). Memory:
    ``size**2`` copies of the image; callers tile large photos."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median_filter needs an odd size >= 1, got {size}")
    if size == 1:
        return image
    h, w = image.shape[-2:]
    r = size // 2
    padded = _pad(image.reshape(-1, h, w), r, "reflect" if r < min(h, w) else "replicate")
    windows = padded.unfold(-2, size, 1).unfold(-2, size, 1)        # (N, H, W, size, size)
    return windows.reshape(*windows.shape[:3], size * size).median(dim=-1).values.reshape(image.shape)


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He, Sun and Tang's guided filter (ECCV 2010, Algorithm 1) of ``source`` by a one-channel
    ``guide`` of the same ``(..., H, W)`` shape: per window ``q = a I + b`` with
    ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``, and the output averages the
    ``(a, b)`` of every window that covers a pixel: ``q = mean(a) I + mean(b)``."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)
