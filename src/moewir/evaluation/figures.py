"""Side-by-side comparison sheets with a zoomed inset, like MOE-WIRNet's Figures 2-5.

A sheet is one row of panels (input, each model, ground truth), each labelled underneath. The
same square region is outlined on every panel and shown enlarged in the panel's lower-right
corner. By default the region is where the input differs most from the target, i.e. where the
weather is heaviest and the models' differences show.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.io import atomic_file, to_uint8

__all__ = ["choose_inset", "comparison_sheet", "stack_sheets", "save_sheet"]

_BOX = (230, 40, 40)
_LABEL_HEIGHT = 22


def choose_inset(degraded: np.ndarray, reference: np.ndarray, size: int) -> tuple[int, int, int]:
    """``(x, y, size)`` of the square where ``|degraded - reference|`` has the largest mean,
    searched on a grid of half-window steps (summed-area table, so any image size is cheap)."""
    h, w = degraded.shape[:2]
    size = max(1, min(size, h, w))
    error = np.abs(degraded.astype(np.float64) - reference).mean(axis=2)
    sat = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 2)
    ys = sorted({*range(0, h - size + 1, step), h - size})
    xs = sorted({*range(0, w - size + 1, step), w - size})
    y, x = np.array(ys)[:, None], np.array(xs)[None, :]
    sums = sat[y + size, x + size] - sat[y, x + size] - sat[y + size, x] + sat[y, x]
    iy, ix = np.unravel_index(np.argmax(sums), sums.shape)
    return int(xs[ix]), int(ys[iy]), size


def _panel(image: np.ndarray, label: str, inset: tuple[int, int, int], width: int, zoom: float,
           font: ImageFont.ImageFont) -> Image.Image:
    h, w = image.shape[:2]
    scale = width / w
    full = Image.fromarray(to_uint8(image)).resize((width, max(1, round(h * scale))), Image.Resampling.LANCZOS)
    x, y, s = inset
    side = max(8, min(round(s * scale * zoom), full.width // 2, full.height // 2))
    crop = Image.fromarray(to_uint8(image[y:y + s, x:x + s])).resize((side, side), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(full)
    draw.rectangle([x * scale, y * scale, (x + s) * scale - 1, (y + s) * scale - 1], outline=_BOX, width=2)
    corner = (full.width - side - 2, full.height - side - 2)
    full.paste(crop, corner)
    draw.rectangle([corner[0] - 1, corner[1] - 1, corner[0] + side, corner[1] + side], outline=_BOX, width=2)
    panel = Image.new("RGB", (full.width, full.height + _LABEL_HEIGHT), "white")
    panel.paste(full, (0, 0))
    ImageDraw.Draw(panel).text((4, full.height + 4), label, fill="black", font=font)
    return panel


def comparison_sheet(panels: Sequence[tuple[str, np.ndarray]], inset: tuple[int, int, int] | None = None,
                     panel_width: int = 320, zoom: float = 2.5, gap: int = 4) -> Image.Image:
    """One row of labelled ``(label, H x W x 3 image)`` panels, all the same size, sharing one
    inset ``(x, y, size)`` (default: chosen from the first and last panel, input and target)."""
    if not panels:
        raise ValueError("a comparison sheet needs at least one image")
    shapes = {p[1].shape for p in panels}
    if len(shapes) != 1:
        raise ValueError(f"all panels must have one size, got {sorted(shapes)}")
    h, w = panels[0][1].shape[:2]
    inset = inset or choose_inset(panels[0][1], panels[-1][1], max(8, min(h, w) // 5))
    font = ImageFont.load_default()
    tiles = [_panel(image, label, inset, panel_width, zoom, font) for label, image in panels]
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (i * (tile.width + gap), 0))
    return sheet


def stack_sheets(sheets: Sequence[Image.Image], gap: int = 8) -> Image.Image:
    """Sheets one above the other (left-aligned, white between)."""
    grid = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets) + gap * (len(sheets) - 1)),
                     "white")
    y = 0
    for sheet in sheets:
        grid.paste(sheet, (0, y))
        y += sheet.height + gap
    return grid


def save_sheet(path: str | Path, sheet: Image.Image) -> None:
    """Write a sheet atomically (PNG unless the extension says otherwise)."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    with atomic_file(path) as f:
        sheet.save(f, format=fmt)
