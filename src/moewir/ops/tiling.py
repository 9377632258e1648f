"""Tiled inference: bounded memory on images of any size.

Along each axis the image is cut into the fewest windows of at most ``tile`` pixels that
overlap by at least ``overlap`` pixels, and the windows are made as small as that allows, with
evenly spread starts (:func:`plan_tiles`): a 1024-px side with ``tile=512`` gets three 368-px
windows, not three 512-px ones. Each window is restored on its own and the results are
blended with weights that cross-fade linearly across an ``overlap``-wide band in the middle of
every shared span (and stay 1 at the image border), so no seam shows. Window starts and sizes
are multiples of ``align`` where possible, which keeps the network's 8x8 attention windows and
FFT patches on the same grid as in untiled inference.

A network whose receptive field reaches at most ``overlap / 4`` pixels gives exactly the
untiled result (pixels nearer a cut than that get weight 0).
MOE-WIRNet's channel expert attends over the whole input (transposed attention), so its tiled
output is close to, not equal to, the untiled one (``docs/inference.md`` has measurements).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["TilePlan", "plan_tiles", "tile_starts", "blend_weights", "check_tiling", "tiled_forward",
           "forward_planned"]


@dataclass(frozen=True)
class TilePlan:
    """Windows of ``size`` pixels along one axis of ``length`` pixels, starting at ``starts``."""

    length: int
    size: int
    starts: tuple[int, ...]

    @property
    def covered(self) -> int:
        """Pixels computed along this axis (``len(starts) * size``; ``length`` when untiled)."""
        return len(self.starts) * self.size


def _spread(length: int, size: int, count: int, align: int) -> list[int]:
    """``count`` starts from 0 to ``length - size``, evenly spread, rounded to multiples of ``align``
    (the last one ends exactly at ``length``)."""
    last = length - size
    return [align * math.floor(i * last / (count - 1) / align + 0.5) for i in range(count - 1)] + [last]


def plan_tiles(length: int, tile: int, overlap: int, align: int = 1) -> TilePlan:
    """The fewest windows of at most ``tile`` pixels that cover ``[0, length)`` with neighbours
    overlapping by at least ``overlap``, then the smallest window that does it.

    The window size is a multiple of ``align`` when one fits (at most ``tile``), the starts are
    spread evenly over ``[0, length - size]``, multiples of ``align`` except the last, which
    ends at ``length``. A length of at most ``tile`` is one window of ``length``. Where ``align``
    exceeds ``tile - overlap`` no aligned plan exists and starts are not aligned.
    """
    if length <= tile:
        return TilePlan(length, length, (0,))
    check_tiling(tile, overlap)
    align = align if 1 <= align <= tile - overlap else 1
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    while True:
        smallest = math.ceil((length + (count - 1) * overlap) / count)  # count * size - (count - 1) * overlap >= length
        aligned = range(math.ceil(smallest / align) * align, tile + 1, align)
        for size in [*aligned, *(s for s in range(smallest, tile + 1) if s % align)]:
            starts = _spread(length, size, count, align)
            if all(b - a <= size - overlap for a, b in zip(starts, starts[1:])):
                return TilePlan(length, size, tuple(starts))
        count += 1


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of :func:`plan_tiles` (its window size is ``plan_tiles(...).size``)."""
    return list(plan_tiles(length, tile, overlap, align).starts)


def blend_weights(plan: TilePlan, overlap: int) -> list[torch.Tensor]:
    """1-D weights of every window of ``plan``; at every pixel they sum to 1.

    Where two windows overlap, the cross-fade takes ``overlap`` pixels in the middle of the
    shared span: before that band the window being entered has weight 0, after it the window
    being left has weight 0. Inside the band the entered window's weight is 0 over the first
    quarter (pixels near its cut, which saw padding instead of the image), ramps linearly over
    the middle half and is 1 over the last quarter; the left window's weight is 1 minus that.
    Pixels within ``overlap / 4`` of a cut therefore never count, and away from the cuts and
    along the image border weights are 1. (Only if a window's two bands overlapped, with an
    overlap close to half a window, would the sum differ from 1; :func:`tiled_forward` divides
    by the sum, so the blend stays a convex combination even then.)
    """
    n = plan.size
    rise = [torch.ones(n, dtype=torch.float64) for _ in plan.starts]
    fall = [torch.ones(n, dtype=torch.float64) for _ in plan.starts]
    i = torch.arange(overlap, dtype=torch.float64)
    ramp = ((i + 0.5 - overlap / 4) / (overlap / 2)).clamp(0, 1)  # empty for overlap 0: a hard cut
    for k, (a, b) in enumerate(zip(plan.starts, plan.starts[1:])):
        band = b + (a + n - b - overlap) // 2  # absolute start of the band in the shared span
        entered, left = band - b, band - a
        rise[k + 1][:entered] = 0
        rise[k + 1][entered:entered + overlap] = ramp
        fall[k][left:left + overlap] = 1 - ramp
        fall[k][left + overlap:] = 0
    return [(r * f).float() for r, f in zip(rise, fall)]


def check_tiling(tile: int | None, overlap: int) -> None:
    """Tiles of at least 16 pixels overlapping by less than half a tile (``None``: no tiling)."""
    if tile is not None and (tile < 16 or not 0 <= overlap < tile // 2):
        raise ValueError(f"tile must be >= 16 and the overlap in [0, tile/2), got tile={tile}, overlap={overlap}")


@torch.no_grad()
def tiled_forward(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int | None = 512,
                  overlap: int = 32, align: int = 8) -> torch.Tensor:
    """``model(image)`` computed window by window (``tile=None`` or a small image: one pass).

    ``image`` is ``(B, C, H, W)``; the result has the same shape, on the image's device. The
    windows along each axis are :func:`plan_tiles`'s: at most ``tile`` pixels, as few as cover
    the image with ``overlap``, as small as that allows.
    """
    if image.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(image)
    check_tiling(tile, overlap)
    return forward_planned(model, image, plan_tiles(h, tile, overlap, align), plan_tiles(w, tile, overlap, align),
                           overlap)


@torch.no_grad()
def forward_planned(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, rows: TilePlan,
                    columns: TilePlan, overlap: int) -> torch.Tensor:
    """``model(image)`` over the windows ``rows x columns``, blended by :func:`blend_weights`."""
    h, w = image.shape[-2:]
    if (rows.length, columns.length) != (h, w):
        raise ValueError(f"plans for {rows.length}x{columns.length} do not fit a {h}x{w} image")
    th, tw = rows.size, columns.size
    column_weights = list(zip(columns.starts, blend_weights(columns, overlap)))
    out = weights = None
    for y, wy in zip(rows.starts, blend_weights(rows, overlap)):
        for x, wx in column_weights:
            restored = model(image[..., y:y + th, x:x + tw])
            if out is None:
                out = image.new_zeros(image.shape[:1] + restored.shape[1:2] + image.shape[2:], dtype=restored.dtype)
                weights = image.new_zeros((h, w), dtype=restored.dtype)
            window = (wy[:, None] * wx[None]).to(restored)
            out[..., y:y + th, x:x + tw] += restored * window
            weights[y:y + th, x:x + tw] += window
    return out / weights
