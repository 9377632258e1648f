"""Line plots for the benchmark scripts, drawn with Pillow (no plotting library needed).

``line_plot(path, curves, xlabel, ylabel, title)`` draws ``{name: [(x, y), ...]}`` with axes,
ticks, a legend, and the title (the machine and budget the numbers come from) on top;
``bands={name: [(x, lo, hi), ...]}`` shades a spread (e.g. mean ± std over seeds) under the
curve of the same name, and ``hlines={label: y}`` draws dashed reference levels.
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.floor(lo / step) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step)) + 1)]


def _label(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


def line_plot(path: str | Path, curves: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str,
              title: str, size: tuple[int, int] = (900, 520), log_x: bool = False,
              bands: dict[str, list[tuple[float, float, float]]] | None = None,
              hlines: dict[str, float] | None = None) -> None:
    bands, hlines = bands or {}, hlines or {}
    width, height = size
    left, top, bottom = 70, 70, 60
    right = min(200, width // 4)
    font = ImageFont.load_default()
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    points = [p for c in curves.values() for p in c]
    points += [(x, y) for b in bands.values() for x, lo, hi in b for y in (lo, hi)]
    points += [(points[0][0], y) for y in hlines.values()] if points else []
    fx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
    xs, ys = [fx(p[0]) for p in points], [p[1] for p in points]
    xt, yt = _ticks(min(xs), max(xs)), _ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (fx(x) - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for t in xt:
        px = left + (t - x0) / (x1 - x0) * (width - left - right)
        draw.line([px, height - bottom, px, height - bottom + 5], fill="black")
        draw.text((px - 12, height - bottom + 8), _label(10 ** t if log_x else t), fill="black", font=font)
    for t in yt:
        py = height - bottom - (t - y0) / (y1 - y0) * (height - top - bottom)
        draw.line([left - 5, py, left, py], fill="black")
        draw.line([left, py, width - right, py], fill=(230, 230, 230))
        draw.text((left - 45, py - 6), _label(t), fill="black", font=font)
    draw.text((left + (width - left - right) // 2 - 30, height - 25), xlabel, fill="black", font=font)
    draw.text((10, top - 16), ylabel, fill="black", font=font)
    for i, line in enumerate(title.split("\n")[:2]):
        draw.text((10, 8 + 14 * i), line, fill="black", font=font)
    img = img.convert("RGBA")
    for i, name in enumerate(curves):
        if len(bands.get(name, [])) > 1:
            shade = Image.new("RGBA", size, (0, 0, 0, 0))
            band = sorted(bands[name])
            outline = [to_px(x, hi) for x, _, hi in band] + [to_px(x, lo) for x, lo, _ in reversed(band)]
            ImageDraw.Draw(shade).polygon(outline, fill=COLOURS[i % len(COLOURS)] + (50,))
            img = Image.alpha_composite(img, shade)
    img = img.convert("RGB")
    draw = ImageDraw.Draw(img)
    for label, y in hlines.items():
        _, py = to_px(x0 if not log_x else 10 ** x0, y)
        for px in range(left, width - right, 12):
            draw.line([px, py, min(px + 6, width - right), py], fill=(90, 90, 90), width=1)
        draw.text((left + 6, py - 13), label, fill=(90, 90, 90), font=font)
    for i, (name, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = [to_px(x, y) for x, y in sorted(curve)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for px, py in pts if len(pts) < 40 else []:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = top + 10 + 18 * i
        draw.line([width - right + 15, ly + 6, width - right + 40, ly + 6], fill=colour, width=3)
        draw.text((width - right + 45, ly), name, fill="black", font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


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
