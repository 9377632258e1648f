"""Tables of evaluation results: per-task means, the task average, Markdown, CSV and JSON.

The average row of a model is the mean of its per-task means (every task counts equally, as in
all-in-one papers' tables), not the mean over images.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

from .. import tables
from ..data.io import atomic_file
from .runner import Metric

__all__ = ["aggregate", "markdown_table", "write_csv", "write_json", "AVERAGE"]

AVERAGE = "average"


def aggregate(rows: Sequence[dict], metrics: Sequence[Metric]) -> list[dict]:
    """Per (model, task) means of every metric plus an ``average`` row per model."""
    names = [m.name for m in metrics]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["task"]), []).append(row)
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        per_task = [{"model": model, "task": task, "images": len(g),
                     **{n: sum(r[n] for r in g) / len(g) for n in names}}
                    for (m, task), g in groups.items() if m == model]
        table += per_task
        if len(per_task) > 1:
            table.append({"model": model, "task": AVERAGE, "images": sum(r["images"] for r in per_task),
                          **{n: sum(r[n] for r in per_task) / len(per_task) for n in names}})
    return table


def _column(metric: Metric, convention: str) -> str:
    arrow = "↑" if metric.higher_is_better else "↓"
    label = {"psnr": "PSNR (dB)", "ssim": "SSIM"}.get(metric.name, metric.name.upper())
    return f"{label} {arrow}" + (f" [{convention}]" if metric.name in ("psnr", "ssim") else "")


def _best(table: list[dict], metric: Metric) -> dict[str, float]:
    """Best value per task over models (only meaningful with several models)."""
    best: dict[str, float] = {}
    for row in table:
        value = row[metric.name]
        if math.isfinite(value):
            old = best.get(row["task"])
            better = old is None or (value > old if metric.higher_is_better else value < old)
            best[row["task"]] = value if better else old
    return best


def markdown_table(table: list[dict], metrics: Sequence[Metric], convention: str) -> str:
    """Rows grouped by task (models side by side); the best model per task in bold."""
    several = len({r["model"] for r in table}) > 1
    best = {m.name: _best(table, m) for m in metrics}
    rows = []
    tasks = list(dict.fromkeys(r["task"] for r in table if r["task"] != AVERAGE)) + [AVERAGE]
    for task in tasks:
        for row in (r for r in table if r["task"] == task):
            cells = []
            for m in metrics:
                text = f"{row[m.name]:.4f}" if m.name == "ssim" else f"{row[m.name]:.2f}"
                cells.append(f"**{text}**" if several and row[m.name] == best[m.name][task] else text)
            rows.append([task, row["model"], row["images"], *cells])
    return tables.markdown_table(["task", "model", "images", *(_column(m, convention) for m in metrics)], rows,
                                 align="llr" + "r" * len(metrics))


def write_csv(path: str | Path, rows: Sequence[dict]) -> None:
    with atomic_file(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: str | Path, payload: dict) -> None:
    with atomic_file(path, "w") as f:
        json.dump(payload, f, indent=2, allow_nan=True)
