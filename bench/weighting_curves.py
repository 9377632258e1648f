"""Task-weight curves of the ``weighting`` ablation: how each reweighting moved the per-task
loss weights during training, next to the PSNR each one reached.

    python bench/run_ablations.py --studies weighting     # trains the variants (once)
    python bench/weighting_curves.py [--study experiments/tiny_cpu_synthetic_ablate_weighting]

Reads every variant's ``train_log.csv`` (the weight of every task at every iteration) and the
study's ``results.csv``; prints, per method, the final weights, the widest spread of weights
(max / min at any iteration), mean and worst-task PSNR; writes
``docs/images/weighting_curves.png`` (one panel per method).
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import yaml

from moewir.tables import markdown_header, markdown_row
from plots import grid, line_plot

ROOT = Path(__file__).resolve().parent.parent
METHODS = ["equal", "rci", "ori", "unirain", "dwa", "uncertainty"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "experiments" / "tiny_cpu_synthetic_ablate_weighting"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "images" / "weighting_curves.png"))
    ap.add_argument("--machine", default="x86_64 CPU, 2 threads (docs/ablations_results.md)",
                    help="where the study was trained, for the figure's title")
    args = ap.parse_args()
    study = Path(args.study)
    psnr: dict[str, list[float]] = {}
    with open(study / "results.csv") as f:
        for r in csv.DictReader(f):
            psnr.setdefault(r["variant"], []).append(float(r["psnr"]))
    config = yaml.safe_load((study / METHODS[0] / "config.yml").read_text())
    iterations = config["schedule"]["iterations"]
    budget = (f"{config['model']['name']}, {iterations} iterations, patch {config['datasets']['train']['patch_size']}, "
              f"batch {config['datasets']['train']['batch_per_task']} per task")
    print(f"study: {study.name}; {budget}\n")
    print(markdown_header(["method", "final weights", "widest spread (max/min)", "mean PSNR", "worst-task PSNR"],
                          align="llrrr"))
    panels = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in [m for m in METHODS if (study / m / "train_log.csv").is_file()]:
            with open(study / method / "train_log.csv") as f:
                rows = list(csv.DictReader(f))
            tasks = [k.split("/", 1)[1] for k in rows[0] if k.startswith("weight/")]
            curves = {t: [(int(r["iteration"]), float(r[f"weight/{t}"])) for r in rows] for t in tasks}
            spread = max(max(float(r[f"weight/{t}"]) for t in tasks) / max(min(float(r[f"weight/{t}"]) for t in tasks), 1e-9)
                         for r in rows)
            final = ", ".join(f"{t} {curves[t][-1][1]:.2f}" for t in tasks)
            p = psnr.get(method, [float("nan")])
            print(markdown_row([method, final, f"{spread:.2f}", f"{sum(p) / len(p):.2f}", f"{min(p):.2f}"]))
            panel = Path(tmp) / f"{method}.png"
            line_plot(panel, curves, "iteration", "task weight", f"{method}", size=(450, 300))
            panels.append(panel)
        grid(panels, args.plot, cols=3, title=f"Task weights during training (bench/run_ablations.py): {budget}; "
                                             f"{args.machine}")
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
