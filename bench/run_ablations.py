"""Run the four ablation studies at a small CPU budget on synthesized data; write one
Markdown file with every table and the budget used.

    python bench/run_ablations.py [--iterations 300] [--studies routing experts weighting topk]
                                  [--seeds 3] [--jobs 2] [--photos FOLDER | --debian ROOT] [--data DIR]
                                  [--out docs/ablations_results.md] [--device auto]

    python bench/run_ablations.py --debian ROOT --per-image 2   # docs/ablations_results.md as it is

(ROOT: the Debian packages of ``bench/default_weights.py`` extracted with ``dpkg-deb -x``; their
114 photos are gathered into ``experiments/ablation_photos``.)

The data is made by ``moewir synth`` from ``--photos`` (a folder of clean photos; default the
embedded ones) for haze, rain and snow: ``--per-image`` samples per photo and task, longer side
192, a quarter of the photos held out. The base experiment is ``configs/tiny_cpu_synthetic.yml``
with batch 1 per task, ``zero_init_output`` (every variant starts as the identity, so the
budget at which all of them beat the input is small) and validation on every held-out pair
every ``--val-every`` iterations. Finished runs are reused, so an interrupted run continues where
it stopped. ``--seeds N`` trains every variant with seeds 0..N-1 in ``--jobs`` processes of one
thread each (``moewir ablate --seeds``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import torch

from moewir.data import PairedImages, discover
from moewir.metrics import psnr, ssim
from moewir.metrics.seeds import paired_difference
from moewir.synth.build import build_dataset
from moewir.training.ablation import PAPER_VARIANT, STUDIES, results_table, run_study
from moewir.training.config import load_config

ROOT = Path(__file__).resolve().parent.parent

#: The papers' claims, each a list of paired comparisons ``(study, a, b, measure)`` that must all
#: hold: ``a`` above ``b`` on ``measure`` (each seed's mean or worst-task PSNR), paired by seed.
CLAIMS = {
    "T5: a soft-MoE encoder with a hard-MoE decoder is best": [
        ("routing", PAPER_VARIANT["routing"], other, "mean") for other in STUDIES.get("routing")
        if other != PAPER_VARIANT["routing"]],
    "T6: all three experts (channel, spatial, frequency) are best": [
        ("experts", PAPER_VARIANT["experts"], other, "mean") for other in STUDIES.get("experts")
        if other != PAPER_VARIANT["experts"]],
    "T7: ORI > RCI > no reweighting, and ORI raises the worst task": [
        ("weighting", "ori", "rci", "mean"), ("weighting", "rci", "equal", "mean"),
        ("weighting", "ori", "equal", "mean"), ("weighting", "ori", "equal", "worst")],
    "Fig. 6: k = 70% is best, 80% is worse": [
        ("topk", PAPER_VARIANT["topk"], other, "mean") for other in STUDIES.get("topk")
        if other != PAPER_VARIANT["topk"]],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--studies", nargs="+", default=["routing", "experts", "weighting", "topk"],
                        choices=list(STUDIES))
    parser.add_argument("--photos", default=None, help="folder of clean photos (default: the embedded ones)")
    parser.add_argument("--debian", default=None, help="gather the model card's 114 photos from this root of "
                        "extracted Debian packages (bench/default_weights.py) into --photos")
    parser.add_argument("--per-image", type=int, default=8, help="samples per photo and task")
    parser.add_argument("--data", default="experiments/ablation_data")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "docs" / "ablations_results.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "images" / "ablations_seeds.png"),
                        help="per-seed figure ('' for none; needs matplotlib)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (1: the config's seed)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes with --seeds")
    args = parser.parse_args()
    if args.plot and args.seeds > 1 and importlib.util.find_spec("matplotlib") is None:  # now, not after the training
        sys.exit("bench/run_ablations.py: the per-seed figure is drawn with matplotlib: "
                 "pip install -e '.[plots]' (or --plot '')")

    data = Path(args.data)
    if args.debian:
        from default_weights import gather_extra_photos, gather_photos

        args.photos = args.photos or str(data.parent / "ablation_photos")
        gather_photos(Path(args.debian), Path(args.photos))
        gather_extra_photos(Path(args.debian), Path(args.photos))
    if (data / "manifest.json").is_file():
        if args.photos:
            print(f"{data}: exists, so --photos {args.photos} is not used (remove it to rebuild)", file=sys.stderr)
    else:
        clean = sorted(p for p in Path(args.photos).iterdir() if p.is_file()) if args.photos else None
        build_dataset(data, ["haze", "rain", "snow"], clean, per_image=args.per_image, seed=0, split=0.75,
                      max_side=192)
    config = load_config(ROOT / "configs" / "tiny_cpu_synthetic.yml", {
        "datasets.train.root": str(data), "datasets.train.batch_per_task": 1, "datasets.val.max_per_task": None,
        "model.zero_init_output": True, "device": args.device, "log.tensorboard": False,
        "val.every": args.val_every, "log.checkpoint_every": 100})
    parallel = args.jobs > 1 and args.seeds > 1
    threads = f"{args.jobs} runs at once, one thread each" if parallel else f"{torch.get_num_threads()} threads"
    where = (torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu"
             else f"{platform.machine()} CPU, {threads}")
    seeds = list(range(args.seeds)) if args.seeds > 1 else None
    reference = input_psnr(config)
    header = (f"Measured on {where}, torch {torch.__version__}; model `{config['model']['name']}` "
              f"(`zero_init_output`: every variant starts as the identity), {args.iterations} iterations "
              f"per variant, patch {config['datasets']['train']['patch_size']}, batch 1 per task, Adam lr "
              f"{config['optim']['lr']} (warm-up {config['schedule']['warmup']}, cosine), "
              f"{f'seeds 0-{args.seeds - 1}' if seeds else 'seed ' + str(config['seed'])}; "
              f"data `{data}` ({_data_summary(config)}); validation on every held-out pair "
              f"({config['datasets']['val']['center_crop']}-px centre crops, Y, EMA weights) every "
              f"{args.val_every} iterations (runs reused from an earlier call keep the validations they were "
              f"trained with: the budget table shows where each was validated).\n\n"
              f"Reference, the degraded inputs without restoration: "
              + ", ".join(f"{t} {p:.2f} dB / {s:.4f}" for t, (p, s) in reference.items()) + ".")
    rows, tables, started = {}, [], time.perf_counter()
    for study in args.studies:
        rows[study] = run_study(config, study, args.iterations, progress=False, seeds=seeds, jobs=args.jobs)
        tables.append(results_table(rows[study], study, config) +
                      f"\n\n(training wall time per run: {min(r['seconds'] for r in rows[study]):.0f}-"
                      f"{max(r['seconds'] for r in rows[study]):.0f} s)")
        print(tables[-1], flush=True)
        runs = {s: run_folders(r, config, s) for s, r in rows.items()}
        sections = [header, budget_section(runs, {t: p for t, (p, _) in reference.items()}),
                    verdict_section(rows, args.iterations, time.perf_counter() - started), *tables]
        if args.plot and seeds:
            plot_seeds(rows, {t: p for t, (p, _) in reference.items()}, args.plot,
                       f"{args.iterations} iterations, {args.seeds} seeds, {where}")
            link = os.path.relpath(Path(args.plot).resolve(), Path(args.out).resolve().parent)
            sections.append(f"![per-seed mean PSNR of every variant]({Path(link).as_posix()})")
        Path(args.out).write_text("\n\n".join(sections) + "\n")


def input_psnr(config: dict) -> dict[str, tuple[float, float]]:
    """Per task, the mean Y PSNR / SSIM of the degraded inputs themselves on the validation crops."""
    val = config["datasets"]["val"]
    out = {}
    for task, pairs in sorted(discover(config["datasets"]["train"]["root"], val["split"]).items()):
        items = list(PairedImages(pairs[:val["max_per_task"]], val["center_crop"]))
        out[task] = (sum(psnr(i["input"], i["target"], y_channel=True).item() for i in items) / len(items),
                     sum(ssim(i["input"], i["target"], y_channel=True).item() for i in items) / len(items))
    return out


def _data_summary(config: dict) -> str:
    root = config["datasets"]["train"]["root"]
    counts = {split: {t: len(p) for t, p in discover(root, split).items()} for split in ("train", "test")}
    return ", ".join(f"{sum(c.values()) // max(len(c), 1)} {split} pairs per task" for split, c in counts.items())


def read_margins(val_log: Path, reference: dict[str, float]) -> dict[int, dict[str, float]]:
    """A run's validations as ``{iteration: {task: PSNR - input PSNR}}`` (empty if it has no log)."""
    margins: dict[int, dict[str, float]] = {}
    if val_log.is_file():
        with open(val_log, newline="") as f:
            for r in csv.DictReader(f):
                if r["task"] in reference:
                    margins.setdefault(int(r["iteration"]), {})[r["task"]] = float(r["psnr"]) - reference[r["task"]]
    return margins


def run_budget(margins: dict[int, dict[str, float]], tasks: list[str]) -> int | None:
    """The first validated iteration from which the run beats the input on every task at every
    later validation too; ``None`` when its last validation does not (or it has none)."""
    first = None
    for iteration in sorted(margins, reverse=True):
        if not all(margins[iteration].get(t, float("-inf")) > 0 for t in tasks):
            break
        first = iteration
    return first


def first_budget(val_logs: list[Path], reference: dict[str, float]) -> tuple[list[dict], int | None]:
    """Over the runs whose ``val_log.csv`` are given: per validated iteration, how many runs were
    validated there, how many of them beat the input on every task, and the smallest margin per
    task; and the budget, the largest :func:`run_budget` of any run (``None`` if a run has none).
    Runs validated on different schedules count at the iterations they were validated."""
    tasks = sorted(reference)
    runs = [read_margins(path, reference) for path in val_logs]
    rows = []
    for it in sorted({i for run in runs for i in run}):
        here = [run[it] for run in runs if it in run]
        rows.append({"iteration": it, "validated": len(here),
                     "beat": sum(all(m.get(t, float("-inf")) > 0 for t in tasks) for m in here),
                     "margin": {t: min(m[t] for m in here if t in m) for t in tasks if any(t in m for m in here)}})
    budgets = [run_budget(run, tasks) for run in runs]
    first = None if not budgets or None in budgets else max(budgets)
    return rows, first


def run_folders(rows: list[dict], config: dict, study: str) -> list[Path]:
    """The folders of the runs behind ``rows`` (one per variant and seed) of ``study``."""
    group = Path(config["experiments_root"]) / f"{config['name']}_ablate_{study}"
    return [group / (row["variant"] if seed == "config" else f"{row['variant']}_s{seed}")
            for row in rows for seed in row["seeds"]]


def budget_section(runs: dict[str, list[Path]], reference: dict[str, float]) -> str:
    """Markdown: at each validated iteration, the runs of all studies that beat the input on
    every task and the smallest margin per task; the budget with signal, overall and per study."""
    logs = {study: [folder / "val_log.csv" for folder in folders] for study, folders in runs.items()}
    every = [p for paths in logs.values() for p in paths]
    rows, first = first_budget(every, reference)
    tasks = sorted(reference)
    lines = ["## The budget",
             "How it was found: each run's validations (`val_log.csv`) give the first validated iteration from "
             "which it beats the input on every task at every later validation; the budget with signal is the "
             f"largest of these over all {len(every)} runs. Where a study validated only at the end, its runs count "
             "only there:", "",
             "| iteration | runs validated | of those, above the input on every task | "
             + " | ".join(f"smallest margin, {t} (dB)" for t in tasks) + " |",
             "|---:|---:|---:|" + "---:|" * len(tasks)]
    for r in rows:
        lines.append(f"| {r['iteration']} | {r['validated']} / {len(every)} | {r['beat']} | "
                     + " | ".join(f"{r['margin'][t]:+.2f}" if t in r["margin"] else "-" for t in tasks) + " |")
    per_study = []
    for study, paths in logs.items():
        study_first = first_budget(paths, reference)[1]
        per_study.append(f"{study} {study_first if study_first is not None else 'none'}")
    lines += ["", (f"**Every run is above the input on every task from iteration {first} on** "
                   if first is not None else "**Some run ends below the input: this budget has no signal** ")
              + f"(per study: {', '.join(per_study)})."]
    return "\n".join(lines)


def verdict(comparisons: list[dict]) -> str:
    """*confirmed* when every comparison's 95% interval lies above 0, *refuted* when one lies
    below 0, else *inconclusive*."""
    if any(c["high"] is not None and c["high"] < 0 for c in comparisons):
        return "refuted"
    if comparisons and all(c["low"] is not None and c["low"] > 0 for c in comparisons):
        return "confirmed"
    return "inconclusive at this budget"


def compare(rows: dict[str, list[dict]], study: str, a: str, b: str, measure: str) -> dict | None:
    """``a − b`` of each seed's mean (or worst-task) PSNR, paired by seed, with a 95% t interval."""
    by_name = {r["variant"]: r for r in rows.get(study, [])}
    if a not in by_name or b not in by_name:
        return None
    seeds = sorted(set(by_name[a]["seeds"]) & set(by_name[b]["seeds"]), key=str)  # the pairs

    def score(variant: str, seed) -> float:
        psnrs = [v["psnr"] for v in by_name[variant]["seeds"][seed]["validation"].values()]
        return sum(psnrs) / len(psnrs) if measure == "mean" else min(psnrs)

    values = {n: [score(n, seed) for seed in seeds] for n in (a, b)}
    d = paired_difference(values[a], values[b])
    nan = d["low"] != d["low"]
    return {"study": study, "a": a, "b": b, "measure": measure, "mean": d["mean"],
            "low": None if nan else d["low"], "high": None if nan else d["high"], "n": d["n"]}


def verdict_section(rows: dict[str, list[dict]], iterations: int, seconds: float) -> str:
    """Markdown: one verdict per claim whose study ran, with every paired difference behind it."""
    runs = [run for study_rows in rows.values() for row in study_rows for run in row["seeds"].values()]
    lines = ["## Verdicts", f"At {iterations} iterations per run; {len(runs)} runs of {sum(r['seconds'] for r in runs) / 60:.0f} "
             f"min of training in all (a run's own wall time; this call took {seconds / 60:.0f} min, finished runs "
             "being reused). Each difference is paired by seed, with a 95% t "
             "interval over the seeds both variants ran. A claim is *confirmed* when every difference below has "
             "its interval above 0, *refuted* when one has it below 0 (with several differences, one such "
             "interval refutes more easily than all of them confirm), and *inconclusive* otherwise.", ""]
    for claim, parts in CLAIMS.items():
        comparisons = [c for part in parts if (c := compare(rows, *part)) is not None]
        if not comparisons:
            continue
        lines.append(f"* **{claim}: {verdict(comparisons)}.** " + "; ".join(
            f"{c['a']} − {c['b']} ({c['measure']}) {c['mean']:+.2f} dB"
            + (f" [{c['low']:+.2f}, {c['high']:+.2f}]" if c["low"] is not None else " (one seed)")
            for c in comparisons) + ".")
    return "\n".join(lines)


def plot_seeds(rows: dict[str, list[dict]], reference: dict[str, float], path: str, title: str) -> None:
    """One panel per study: each seed's mean PSNR per variant (dots) and their mean (bar)."""
    from plots import strip_plot

    panels = {study: {r["variant"]: list(r["mean_psnr_per_seed"]) for r in study_rows}
              for study, study_rows in rows.items()}
    strip_plot(path, panels, "mean PSNR over tasks (dB, Y)", title,
               hline=("input", sum(reference.values()) / len(reference)))


if __name__ == "__main__":
    main()
