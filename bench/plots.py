"""Line plots for the benchmark scripts, drawn with matplotlib (``pip install -e '.[plots]'``).

``line_plot(path, curves, xlabel, ylabel, title)`` draws ``{name: [(x, y), ...]}`` with axes,
ticks, a legend, and the title (the machine and budget the numbers come from) on top;
``bands={name: [(x, lo, hi), ...]}`` shades a spread (e.g. mean ± std over seeds) under the
curve of the same name, and ``hlines={label: y}`` draws dashed reference levels.
``strip_plot(path, panels, ylabel, title)`` draws one panel per group, each seed's value of every
variant as a dot beside their mean. ``grid`` pastes finished images into one sheet (Pillow).
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


def strip_plot(path: str | Path, panels: dict[str, dict[str, list[float]]], ylabel: str, title: str,
               hline: tuple[str, float] | None = None, panel_size: tuple[int, int] = (460, 420)) -> None:
    """``panels = {panel: {variant: [value per seed]}}``: one panel per key (shared y axis), a
    dot per value, a short bar at each variant's mean, and ``hline`` as a dashed reference."""
    fig = Figure(figsize=(panel_size[0] * len(panels) / DPI, panel_size[1] / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, variants) in zip(axes, panels.items()):
        for x, (variant, values) in enumerate(variants.items()):
            offsets = [(k - (len(values) - 1) / 2) * 0.08 for k in range(len(values))]
            ax.plot([x + o for o in offsets], values, "o", color=f"C{x % 10}", markersize=5, alpha=0.8)
            if values:
                mean = sum(values) / len(values)
                ax.plot([x - 0.25, x + 0.25], [mean, mean], color="black", linewidth=2)
        if hline:
            ax.axhline(hline[1], color="0.35", linestyle="--", linewidth=1)
            ax.annotate(hline[0], (0.01, hline[1]), xycoords=("axes fraction", "data"), xytext=(0, 2),
                        textcoords="offset points", color="0.35", fontsize=8, va="bottom")
        ax.set_xticks(range(len(variants)), list(variants), rotation=35, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
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
