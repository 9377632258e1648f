"""The paper's ablations as data: each study is a list of named config overrides, run under
one budget and reported as one table of per-task PSNR / SSIM.

* ``routing``   (MOE-WIRNet Table 5): soft-MoE encoder and / or hard-MoE decoder, or neither;
* ``experts``   (Table 6): channel only, channel + spatial, channel + frequency, all three;
* ``weighting`` (Table 7, plus the UniRain and two classic baselines);
* ``topk``      (Fig. 6): the spatial expert's kept-key ratio k.

Every variant trains from the same seed on the same data for the same iterations; its
experiment folder is ``experiments/<name>_ablate_<study>/<variant>/``. A finished variant (its
``summary.yml`` at the budget) is not trained again, so an interrupted study resumes.

With ``seeds`` every variant trains once per seed (folders ``<variant>_s<seed>/``), in ``jobs``
parallel processes of one thread each; each row then holds every seed's validation, their mean
and standard deviation, and the paired difference of the mean PSNR to the paper's variant
(``PAPER_VARIANT``) with a 95% t interval over the seeds (:mod:`moewir.metrics.seeds`).
"""
from __future__ import annotations

import csv
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.io import atomic_file
from ..metrics.seeds import mean_std, paired_difference
from ..registry import Registry
from ..tables import markdown_table
from .config import apply_overrides
from .trainer import Trainer

__all__ = ["STUDIES", "PAPER_VARIANT", "run_study", "results_table"]


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
STUDIES.register("weighting", {**{name: {"weighting": {"name": name}} for name in
                                  ("equal", "rci", "ori", "unirain", "dwa", "uncertainty")},
                               "ori-smoothed": {"weighting": {"name": "ori", "smoothing": 0.95}}})
STUDIES.register("topk", {f"k={k}%": {"model.topk_ratio": k / 100} for k in (50, 60, 70, 80, 90)})
#: The variant each study's paper claim is about (MOE-WIRNet's configuration): differences are to it.
PAPER_VARIANT = {"routing": "soft-encoder+hard-decoder", "experts": "channel+spatial+frequency",
                 "weighting": "ori", "topk": "k=70%"}


def _finished(folder: Path, iterations: int) -> dict | None:
    path = folder / "summary.yml"
    if path.is_file():
        summary = yaml.safe_load(path.read_text())
        if summary.get("iterations") == iterations and summary.get("validation"):
            return summary
    return None


def _variant_config(config: dict[str, Any], group: str, variant: str, overrides: dict[str, Any],
                    iterations: int, seed: int | None) -> dict[str, Any]:
    overrides = dict(overrides)
    weighting = overrides.pop("weighting", None)
    name = f"{group}/{variant}" if seed is None else f"{group}/{variant}_s{seed}"
    cfg = apply_overrides(config, {"name": name, "schedule.iterations": iterations, **overrides,
                                   **({} if seed is None else {"seed": seed})})
    if weighting:
        cfg["weighting"] = dict(weighting)  # a fresh strategy with its own defaults
    if not cfg["val"]["every"]:
        cfg["val"]["every"] = iterations  # the table needs a final validation
    return cfg


def _train(cfg: dict[str, Any], progress: bool, threads: int | None = None) -> dict[str, Any]:
    """Train one run (resuming its checkpoints); ``threads`` for a worker process of its own."""
    if threads:
        torch.set_num_threads(threads)
    folder = Path(cfg["experiments_root"]) / cfg["name"]
    trainer = Trainer(cfg, resume=(folder / "checkpoints").is_dir(), progress=progress)
    try:
        return trainer.train()
    finally:
        trainer.close()


def run_study(config: dict[str, Any], study: str, iterations: int | None = None,
              variants: list[str] | None = None, progress: bool = True,
              seeds: list[int] | None = None, jobs: int = 1) -> list[dict[str, Any]]:
    """Train every variant of ``study`` (once, or once per seed of ``seeds`` in ``jobs``
    processes); returns one row per variant (validation per task, mean over seeds)."""
    known_variants = STUDIES.get(study)
    chosen = variants or list(known_variants)
    unknown = [v for v in chosen if v not in known_variants]
    if unknown:
        raise ValueError(f"study {study!r} has no variant(s) {', '.join(unknown)}; known: {', '.join(known_variants)}")
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    iterations = iterations or config["schedule"]["iterations"]
    group = f"{config['name']}_ablate_{study}"
    # seed-major: all variants of the first seed finish before the second seed starts
    runs = [(variant, seed) for seed in (seeds or [None]) for variant in chosen]
    configs = {run: _variant_config(config, group, run[0], known_variants[run[0]], iterations, run[1]) for run in runs}
    summaries = {run: _finished(Path(cfg["experiments_root"]) / cfg["name"], iterations) for run, cfg in configs.items()}
    pending = [run for run in runs if summaries[run] is None]
    if jobs > 1 and len(pending) > 1:
        # spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock
        pool = ProcessPoolExecutor(min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn"))
        futures = {pool.submit(_train, configs[run], False, 1): run for run in pending}
        try:
            for future in as_completed(futures):
                summaries[futures[future]] = future.result()
        finally:  # a failed run stops the study: the runs not started yet are cancelled
            pool.shutdown(cancel_futures=True)
    else:
        for run in pending:
            summaries[run] = _train(configs[run], progress)
    rows = [_row(variant, iterations, {seed: summaries[(v, seed)] for v, seed in runs if v == variant})
            for variant in chosen]
    if seeds is not None and PAPER_VARIANT.get(study) in chosen:
        paper = next(r for r in rows if r["variant"] == PAPER_VARIANT[study])
        for row in rows:
            d = paired_difference(row["mean_psnr_per_seed"], paper["mean_psnr_per_seed"])
            # JSON has no NaN: one seed gives no interval
            row["vs_paper"] = {"variant": paper["variant"], **{k: None if v != v else v for k, v in d.items()}}
    out = Path(config["experiments_root"]) / group
    table = results_table(rows, study, config)
    with atomic_file(out / "results.md", "w") as f:
        f.write(table + "\n")
    with atomic_file(out / "results.json", "w") as f:
        json.dump(rows, f, indent=1)
    with atomic_file(out / "results.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "task", "psnr", "ssim", "images", "iterations"])
        for row in rows:
            for seed, run in row["seeds"].items():
                for task, r in run["validation"].items():
                    writer.writerow([row["variant"], seed, task, f"{r['psnr']:.4f}", f"{r['ssim']:.5f}", r["images"],
                                     row["iterations"]])
    return rows


def _row(variant: str, iterations: int, summaries: dict[int | None, dict[str, Any]]) -> dict[str, Any]:
    """One variant's row: each seed's validation, and per task the mean and std over seeds."""
    runs = {("config" if seed is None else seed): {"seconds": s["seconds"], "validation": s["validation"]}
            for seed, s in summaries.items()}
    tasks = sorted({t for run in runs.values() for t in run["validation"]})
    if not tasks:
        raise ValueError(f"{variant}: the runs have no validation (does the dataset have a test split?)")
    validation = {}
    for task in tasks:
        psnrs = [run["validation"][task]["psnr"] for run in runs.values()]
        ssims = [run["validation"][task]["ssim"] for run in runs.values()]
        (psnr, psnr_std), (ssim, ssim_std) = mean_std(psnrs), mean_std(ssims)
        validation[task] = {"psnr": psnr, "psnr_std": psnr_std, "ssim": ssim, "ssim_std": ssim_std,
                            "images": next(iter(runs.values()))["validation"][task]["images"]}
    per_seed = [sum(run["validation"][t]["psnr"] for t in tasks) / len(tasks) for run in runs.values()]
    worst = [min(run["validation"][t]["psnr"] for t in tasks) for run in runs.values()]
    return {"variant": variant, "iterations": iterations,
            "seconds": sum(r["seconds"] for r in runs.values()) / len(runs), "validation": validation,
            "seeds": runs, "mean_psnr_per_seed": per_seed, "mean_psnr": mean_std(per_seed),
            "worst_psnr": mean_std(worst)}


def results_table(rows: list[dict[str, Any]], study: str, config: dict[str, Any]) -> str:
    """Markdown: one row per variant, PSNR / SSIM per task (mean ± std over seeds where there are
    several), mean and worst-task PSNR, and the paired difference to the paper's variant."""
    tasks = sorted({t for row in rows for t in row["validation"]})
    val = config["val"]
    convention = f"{'Y' if val['y_channel'] else 'RGB'}, crop {val['crop_border']}"
    seeds = max((len(row["seeds"]) for row in rows), default=1)
    paired = seeds > 1 and any("vs_paper" in row for row in rows)

    def pm(value: float, std: float, digits: int = 2) -> str:
        return f"{value:.{digits}f} ± {std:.{digits}f}" if seeds > 1 else f"{value:.{digits}f}"

    body = []
    for row in rows:
        v = row["validation"]
        cells = [f"{pm(v[t]['psnr'], v[t]['psnr_std'])} / {v[t]['ssim']:.4f}" if t in v else "-" for t in tasks]
        cells += [pm(*row["mean_psnr"]), pm(*row["worst_psnr"])]
        if paired:
            d = row["vs_paper"]
            cells.append("-" if row["variant"] == d["variant"] or d["low"] is None
                         else f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
        body.append([row["variant"], *cells])
    headers = ["variant", *tasks, "mean PSNR", "worst PSNR"]
    if paired:
        headers.append(f"mean − {PAPER_VARIANT[study]} (95% CI)")
    title = (f"Ablation `{study}` ({rows[0]['iterations'] if rows else 0} iterations each"
             f"{f', {seeds} seeds, mean ± std' if seeds > 1 else ''}; PSNR dB / SSIM on {convention})")
    table = markdown_table(headers, body, align="l" + "r" * (len(headers) - 1))
    return title + "\n\n" + table
