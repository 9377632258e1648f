"""The paper's ablations as data: each study is a list of named config overrides, run under
one budget and reported as one table of per-task PSNR / SSIM.

* ``routing``   (MOE-WIRNet Table 5): soft-MoE encoder and / or hard-MoE decoder, or neither;
* ``experts``   (Table 6): channel only, channel + spatial, channel + frequency, all three;
* ``weighting`` (Table 7, plus the UniRain and two classic baselines);
* ``topk``      (Fig. 6): the spatial expert's kept-key ratio k.

Every variant trains from the same seed on the same data for the same iterations; its
experiment folder is ``experiments/<name>_ablate_<study>/<variant>/``. A finished variant (its
``summary.yml`` at the budget) is not trained again, so an interrupted study resumes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from ..data.io import atomic_file
from ..registry import Registry
from ..tables import markdown_table
from .config import apply_overrides
from .trainer import Trainer

__all__ = ["STUDIES", "run_study", "results_table"]


def _routing(encoder: str, decoder: str) -> dict[str, str]:
    return {"model.encoder_routing": encoder, "model.bottleneck_routing": encoder,
            "model.decoder_routing": decoder, "model.refinement_routing": decoder}


#: Study name -> its variants: variant name -> config overrides (dotted keys).
STUDIES: Registry[dict[str, dict[str, Any]]] = Registry("ablation study")
STUDIES.register("routing", {
    "no-moe": _routing("none", "none"),
    "soft-encoder": _routing("soft", "none"),
    "hard-decoder": _routing("none", "hard"),
    "soft-encoder+hard-decoder": _routing("soft", "hard"),
})
STUDIES.register("experts", {
    "channel": {"model.experts": ["channel"]},
    "channel+spatial": {"model.experts": ["channel", "spatial"]},
    "channel+frequency": {"model.experts": ["channel", "frequency"]},
    "channel+spatial+frequency": {"model.experts": ["channel", "spatial", "frequency"]},
})
STUDIES.register("weighting", {name: {"weighting": {"name": name}} for name in
                               ("equal", "rci", "ori", "unirain", "dwa", "uncertainty")})
STUDIES.register("topk", {f"k={k}%": {"model.topk_ratio": k / 100} for k in (50, 60, 70, 80, 90)})


def _finished(folder: Path, iterations: int) -> dict | None:
    path = folder / "summary.yml"
    if path.is_file():
        summary = yaml.safe_load(path.read_text())
        if summary.get("iterations") == iterations and summary.get("validation"):
            return summary
    return None


def run_study(config: dict[str, Any], study: str, iterations: int | None = None,
              variants: list[str] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Train every variant of ``study``; returns one row per variant (validation per task)."""
    known_variants = STUDIES.get(study)
    chosen = variants or list(known_variants)
    unknown = [v for v in chosen if v not in known_variants]
    if unknown:
        raise ValueError(f"study {study!r} has no variant(s) {', '.join(unknown)}; known: {', '.join(known_variants)}")
    iterations = iterations or config["schedule"]["iterations"]
    group = f"{config['name']}_ablate_{study}"
    rows = []
    for variant in chosen:
        overrides = dict(known_variants[variant])
        weighting = overrides.pop("weighting", None)
        cfg = apply_overrides(config, {"name": f"{group}/{variant}", "schedule.iterations": iterations, **overrides})
        if weighting:
            cfg["weighting"] = dict(weighting)  # a fresh strategy with its own defaults
        if not cfg["val"]["every"]:
            cfg["val"]["every"] = iterations  # the table needs a final validation
        folder = Path(cfg["experiments_root"]) / cfg["name"]
        summary = _finished(folder, iterations)
        if summary is None:
            trainer = Trainer(cfg, resume=(folder / "checkpoints").is_dir(), progress=progress)
            try:
                summary = trainer.train()
            finally:
                trainer.close()
        rows.append({"variant": variant, "iterations": iterations, "seconds": summary["seconds"],
                     "validation": summary["validation"]})
    out = Path(config["experiments_root"]) / group
    table = results_table(rows, study, config)
    with atomic_file(out / "results.md", "w") as f:
        f.write(table + "\n")
    with atomic_file(out / "results.json", "w") as f:
        json.dump(rows, f, indent=1)
    with atomic_file(out / "results.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "task", "psnr", "ssim", "images", "iterations"])
        for row in rows:
            for task, r in row["validation"].items():
                writer.writerow([row["variant"], task, f"{r['psnr']:.4f}", f"{r['ssim']:.5f}", r["images"],
                                 row["iterations"]])
    return rows


def results_table(rows: list[dict[str, Any]], study: str, config: dict[str, Any]) -> str:
    """Markdown: one row per variant, PSNR / SSIM per task, mean and worst-task PSNR."""
    tasks = sorted({t for row in rows for t in row["validation"]})
    val = config["val"]
    convention = f"{'Y' if val['y_channel'] else 'RGB'}, crop {val['crop_border']}"
    body = []
    for row in rows:
        v = row["validation"]
        cells = [f"{v[t]['psnr']:.2f} / {v[t]['ssim']:.4f}" if t in v else "-" for t in tasks]
        values = [v[t]["psnr"] for t in tasks if t in v]
        body.append([row["variant"], *cells, f"{sum(values) / max(len(values), 1):.2f}",
                     f"{min(values, default=float('nan')):.2f}"])
    title = (f"Ablation `{study}` ({rows[0]['iterations'] if rows else 0} iterations each; "
             f"PSNR dB / SSIM on {convention})")
    table = markdown_table(["variant", *tasks, "mean PSNR", "worst PSNR"], body, align="l" + "r" * (len(tasks) + 2))
    return title + "\n\n" + table
