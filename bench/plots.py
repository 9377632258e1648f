"""Line plots for the benchmark scripts, drawn with matplotlib (``pip install -e '.[plots]'``).

``line_plot(path, curves, xlabel, ylabel, title)`` draws ``{name: [(x, y), ...]}`` with axes,
ticks, a legend, and the title (the machine and budget the numbers come from) on top;
``bands={name: [(x, lo, hi), ...]}`` shades a spread (e.g. mean ± std over seeds) under the
curve of the same name, and ``hlines={label: y}`` draws dashed reference levels. ``grid``
pastes finished images into one sheet (Pillow).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

try:
    from matplotlib.figure import Figure
except ImportError:  # checked when a bench script starts, not after its measurements
    sys.exit("bench/plots.py: the benchmark plots are drawn with matplotlib: pip install -e '.[plots]'")

DPI = 100


def line_plot(path: str | Path, curves: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
              title: str, size: tuple[int, int] = (900, 520), log_x: bool = False,
              bands: dict[str, list[tuple[float, float, float]]] | None = None,
              hlines: dict[str, float] | None = None) -> None:
    """A ``size`` pixels PNG of ``curves`` (points marked when there are fewer than 40)."""
    bands, hlines = bands or {}, hlines or {}
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        band = sorted(bands.get(name, []))
        if len(band) > 1:
            ax.fill_between([x for x, _, _ in band], [lo for _, lo, _ in band], [hi for _, _, hi in band],
                            color=colour, alpha=0.2, linewidth=0)
        points = sorted(curve)
        ax.plot([x for x, _ in points], [y for _, y in points], color=colour, linewidth=1.8, label=name,
                marker="o" if len(points) < 40 else None, markersize=3.5)
    for label, y in hlines.items():
        ax.axhline(y, color="0.35", linestyle="--", linewidth=1)
        ax.annotate(label, (0.01, y), xycoords=("axes fraction", "data"), xytext=(0, 2), textcoords="offset points",
                    color="0.35", fontsize=8, va="bottom")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title("\n".join(title.split("\n")[:2]), loc="left", fontsize=9)
    if curves:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def grid(paths: list[str | Path], out: str | Path, cols: int = 2, title: str = "") -> None:
    """Paste the images at ``paths`` into one image, ``cols`` per row, under ``title``."""
    images = [Image.open(p).convert("RGB") for p in paths]
    w, h = max(i.width for i in images), max(i.height for i in images)
    rows = math.ceil(len(images) / cols)
    head = 30 if title else 0
    sheet = Image.new("RGB", (cols * w, rows * h + head), "white")
    if title:
        ImageDraw.Draw(sheet).text((10, 8), title, fill="black", font=ImageFont.load_default())
    for k, img in enumerate(images):
        sheet.paste(img, ((k % cols) * w, head + (k // cols) * h))
    sheet.save(out)
