"""Luma of RGB images, with the convention an argument.

``Y = (wR R + wG G + wB B + offset * peak) / divisor`` on the scale of the input (``peak`` is the
value of full-scale white: 1 for images in [0, 1], 255 for 8-bit levels):

===================  ===========================  ======  =======  ===========================
convention           (wR, wG, wB)                 offset  divisor  Y of black .. white
===================  ===========================  ======  =======  ===========================
``bt601-studio``     (65.481, 128.553, 24.966)    16      255      16/255 peak .. 235/255 peak
``bt601-full``       (0.299, 0.587, 0.114)        0       1        0 .. peak
``matlab-rgb2gray``  (0.2989..., 0.5870..., ...)  0       1        0 .. peak
===================  ===========================  ======  =======  ===========================

``bt601-studio`` is the Y of ITU-R BT.601 Y'CbCr in studio swing (8-bit levels 16-235), MATLAB's
``rgb2ycbcr`` and BasicSR's ``rgb2ycbcr(y_only=True)``: the luma restoration papers measure.
``bt601-full`` is the full-range BT.601 luma ``E'Y = 0.299 E'R + 0.587 E'G + 0.114 E'B`` (as in
JPEG/JFIF). ``matlab-rgb2gray`` is MATLAB's ``rgb2gray``: the Y row of the inverse of MATLAB's NTSC
YIQ -> RGB matrix, documented as ``0.2989, 0.5870, 0.1140`` (full digits in LUMA_CONVENTIONS).
"""
from __future__ import annotations

from typing import TypeVar

from ..registry import Registry

__all__ = ["LUMA_CONVENTIONS", "luma"]

#: convention -> ((wR, wG, wB), offset, divisor); see the module docstring.
LUMA_CONVENTIONS: Registry[tuple[tuple[float, float, float], float, float]] = Registry("luma convention")
LUMA_CONVENTIONS.register("bt601-studio", ((65.481, 128.553, 24.966), 16.0, 255.0))
LUMA_CONVENTIONS.register("bt601-full", ((0.299, 0.587, 0.114), 0.0, 1.0))
LUMA_CONVENTIONS.register("matlab-rgb2gray", ((0.298936021293775, 0.587043074451121, 0.114020904255103), 0.0, 1.0))

Image = TypeVar("Image")  # a torch tensor or a numpy array; the result has the same type


def luma(image: Image, convention: str, *, channel_axis: int = -3, peak: float = 1.0) -> Image:
    """Luma of the RGB ``image`` (R, G, B along ``channel_axis``) without that axis, same scale.

    ``channel_axis=-3`` for ``(..., 3, H, W)`` tensors, ``-1`` for ``H x W x 3`` arrays; works on
    numpy arrays and torch tensors alike, in their own dtype. Conventions: module docstring.
    """
    (wr, wg, wb), offset, divisor = LUMA_CONVENTIONS.get(convention)
    if image.shape[channel_axis] != 3:
        raise ValueError(f"luma needs 3 channels on axis {channel_axis}, got shape {tuple(image.shape)}")
    lead = (slice(None),) * (channel_axis % image.ndim)
    r, g, b = (image[lead + (c,)] for c in range(3))
    return (wr * r + wg * g + wb * b + offset * peak) / divisor
