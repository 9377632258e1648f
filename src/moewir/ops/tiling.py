"""Tiled inference: bounded memory on images of any size.

The image is cut into ``tile x tile`` windows that overlap by ``overlap`` pixels; each window is
restored on its own and the results are blended with weights that ramp linearly across the
middle of every overlap (and stay 1 at the image border), so no seam shows. Windows start on multiples of
``align`` where possible, which keeps the network's 8x8 attention windows and FFT patches on
the same grid as in untiled inference.

A network whose receptive field reaches at most ``overlap / 4`` pixels gives exactly the
untiled result (pixels nearer a cut than that get weight 0).
MOE-WIRNet's channel expert attends over the whole input (transposed attention), so its tiled
output is close to, not equal to, the untiled one (``docs/inference.md`` has measurements).
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["tile_starts", "blend_window", "check_tiling", "tiled_forward"]


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``tile`` overlapping by at least
    ``overlap``; starts are multiples of ``align`` except the last, which ends at ``length``."""
    if tile >= length:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(size: int, start: int, tile: int, length: int, overlap: int) -> torch.Tensor:
    """1-D weights of one window. Where it overlaps a neighbour, the weight is 0 over the first
    quarter of the overlap (the pixels nearest the cut, which saw padding instead of the
    image), ramps linearly over the middle half, and is 1 beyond; elsewhere it is 1."""
    weight = torch.ones(size)
    if overlap > 0:
        i = torch.arange(overlap, dtype=torch.float32)
        ramp = ((i + 0.5 - overlap / 4) / (overlap / 2)).clamp(0, 1)
        if start > 0:
            weight[:overlap] = ramp
        if start + tile < length:
            weight[-overlap:] = torch.minimum(weight[-overlap:], ramp.flip(0))
    return weight


def check_tiling(tile: int | None, overlap: int) -> None:
    """Tiles of at least 16 pixels overlapping by less than half a tile (``None``: no tiling)."""
    if tile is not None and (tile < 16 or not 0 <= overlap < tile // 2):
        raise ValueError(f"tile must be >= 16 and the overlap in [0, tile/2), got tile={tile}, overlap={overlap}")


@torch.no_grad()
def tiled_forward(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int | None = 512,
                  overlap: int = 32, align: int = 8) -> torch.Tensor:
    """``model(image)`` computed window by window (``tile=None`` or a small image: one pass).

    ``image`` is ``(B, C, H, W)``; the result has the same shape, on the image's device.
    """
    if image.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(image)
    check_tiling(tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    columns = [(x, blend_window(tw, x, tile, w, overlap)) for x in tile_starts(w, tile, overlap, align)]
    out = weights = None
    for y in tile_starts(h, tile, overlap, align):
        wy = blend_window(th, y, tile, h, overlap)
        for x, wx in columns:
            restored = model(image[..., y:y + th, x:x + tw])
            if out is None:
                out = image.new_zeros(image.shape[:1] + restored.shape[1:2] + image.shape[2:], dtype=restored.dtype)
                weights = image.new_zeros((h, w), dtype=restored.dtype)
            window = (wy[:, None] * wx[None]).to(restored)
            out[..., y:y + th, x:x + tw] += restored * window
            weights[y:y + th, x:x + tw] += window
    return out / weights
