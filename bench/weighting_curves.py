"""Task-weight curves of the ``weighting`` ablation: how each reweighting moved the per-task
loss weights during training, next to the PSNR each one reached.

    python bench/run_ablations.py --studies weighting     # trains the variants (once)
    python bench/weighting_curves.py [--study experiments/tiny_cpu_synthetic_ablate_weighting]

Reads every variant's ``train_log.csv`` (the weight of every task at every iteration) and the
study's ``results.json``; prints, per method, the final weights, the widest spread of weights
(max / min at any iteration), mean and worst-task PSNR; writes
``docs/images/weighting_curves.png`` (one panel per method). A study run with ``--seeds`` has one
folder per variant and seed (``ori_s0``, ``ori_s1``, ...): the PSNR columns are then the mean ±
std over seeds (of each seed's mean and worst task), the spread the widest of any seed, and the
weights and panels those of the lowest seed.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import yaml

from moewir.tables import markdown_header, markdown_row
from plots import grid, line_plot

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["equal", "rci", "ori", "ori-smoothed", "unirain", "dwa", "uncertainty"]


def runs(study: Path, method: str) -> list[Path]:
    """The method's run folders: ``study/method`` (one run), else ``study/method_s<seed>`` by seed."""
    if (study / method / "train_log.csv").is_file():
        return [study / method]
    seeded = [p for p in study.glob(f"{method}_s*") if p.name[len(method) + 2:].isdigit()
              and (p / "train_log.csv").is_file()]
    return sorted(seeded, key=lambda p: int(p.name[len(method) + 2:]))


def _mean_std_text(mean_std: list[float], seeds: int) -> str:
    mean, std = mean_std
    return f"{mean:.2f}" if seeds == 1 else f"{mean:.2f} ± {std:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "experiments" / "tiny_cpu_synthetic_ablate_weighting"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "images" / "weighting_curves.png"))
    ap.add_argument("--machine", default="x86_64 CPU, 2 threads (docs/ablations_results.md)",
                    help="where the study was trained, for the figure's title")
    args = ap.parse_args()
    study = Path(args.study)
    rows = {row["variant"]: row for row in json.loads((study / "results.json").read_text())}
    found = {m: folders for m in METHODS if (folders := runs(study, m))}
    if not found:
        sys.exit(f"{study}: no variant of {', '.join(METHODS)} with a train_log.csv")
    config = yaml.safe_load((next(iter(found.values()))[0] / "config.yml").read_text())
    iterations = config["schedule"]["iterations"]
    budget = (f"{config['model']['name']}, {iterations} iterations, patch {config['datasets']['train']['patch_size']}, "
              f"batch {config['datasets']['train']['batch_per_task']} per task")
    print(f"study: {study.name}; {budget}\n")
    print(markdown_header(["method", "final weights", "widest spread (max/min)", "mean PSNR", "worst-task PSNR"],
                          align="llrrr"))
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for method, folders in found.items():
            logs = []
            for folder in folders:
                with open(folder / "train_log.csv") as f:
                    logs.append(list(csv.DictReader(f)))
            tasks = [k.split("/", 1)[1] for k in logs[0][0] if k.startswith("weight/")]
            curves = {t: [(int(r["iteration"]), float(r[f"weight/{t}"])) for r in logs[0]] for t in tasks}
            spread = max(max(float(r[f"weight/{t}"]) for t in tasks) / max(min(float(r[f"weight/{t}"]) for t in tasks), 1e-9)
                         for rows in logs for r in rows)
            final = ", ".join(f"{t} {curves[t][-1][1]:.2f}" for t in tasks)
            row = rows.get(method)
            scores = ([_mean_std_text(row[k], len(row["seeds"])) for k in ("mean_psnr", "worst_psnr")]
                      if row else ["n/a", "n/a"])
            print(markdown_row([method, final, f"{spread:.2f}", *scores]))
            panel = Path(tmp) / f"{method}.png"
            seed = "" if len(folders) == 1 and folders[0].name == method else f" ({folders[0].name})"
            line_plot(panel, curves, "iteration", "task weight", f"{method}{seed}", size=(450, 300))
            panels.append(panel)
        grid(panels, args.plot, cols=3, title=f"Task weights during training (bench/run_ablations.py): {budget}; "
                                             f"{args.machine}")
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
