"""moewirnet vs Restormer at the same size and training budget, on the same synthesized data.

    python bench/arch_comparison.py [--models moewirnet-tiny restormer-tiny] [--iterations 1500]
                                    [--data data/default] [--threads 1]

Each model is trained with the shipped-weights recipe (``configs/default_weights.yml``: five
tasks, 64-px patches, one per task per step, equal weighting, EMA) for the same number of
iterations, as ``experiments/bench_arch_<model>``; a finished run is not trained again, an
interrupted one resumes. The models train one after the other, each on ``--threads`` threads
(``--parallel`` runs them at once). Then prints the held-out validation table (PSNR / SSIM on
Y per task, mean, worst) at the last iteration and writes ``docs/images/arch_comparison.png``
(mean validation PSNR against iteration).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

import moewir
from plots import line_plot

ROOT = Path(__file__).resolve().parent.parent


def val_table(experiment: Path) -> dict[int, dict[str, tuple[float, float]]]:
    out: dict[int, dict[str, tuple[float, float]]] = {}
    with open(experiment / "val_log.csv") as f:
        for row in csv.DictReader(f):
            out.setdefault(int(row["iteration"]), {})[row["task"]] = (float(row["psnr"]), float(row["ssim"]))
    return out


def train(model: str, iterations: int, data: str, threads: int) -> subprocess.Popen:
    name = f"bench_arch_{model}"
    done = ROOT / "experiments" / name / "val_log.csv"
    if done.is_file() and max(val_table(done.parent), default=0) >= iterations:
        return None
    args = [sys.executable, "-m", "moewir.cli.main", "train", str(ROOT / "configs" / "default_weights.yml"),
            "--no-progress", "--set", f"name={name}", "--set", f"model.name={model}",
            "--set", f"schedule.iterations={iterations}", "--set", f"datasets.train.root={data}",
            "--set", f"datasets.val.root={data}", "--set", "log.tensorboard=false"]
    if (ROOT / "experiments" / name / "checkpoints").is_dir():
        args.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = open(ROOT / "experiments" / f"{name}.out", "w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["moewirnet-tiny", "restormer-tiny"])
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parallel", action="store_true", help="train the models at the same time")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "images" / "arch_comparison.png"))
    args = ap.parse_args()
    running = []
    for model in args.models:
        proc = train(model, args.iterations, args.data, args.threads)
        if proc is not None:
            running.append((model, proc))
            if not args.parallel and proc.wait() != 0:
                print(f"{model}: training failed, see experiments/bench_arch_{model}.out", file=sys.stderr)
                return 1
    for model, proc in running:
        if proc.wait() != 0:
            print(f"{model}: training failed, see experiments/bench_arch_{model}.out", file=sys.stderr)
            return 1

    machine = f"{platform.machine()} CPU, {args.threads} thread(s) per run, torch {torch.__version__}"
    budget = f"{args.iterations} iterations x 5 tasks x one 64-px patch, equal weighting"
    print(f"{machine}; {budget}; validation: held-out photos, 6 x 256-px centre crops per task, Y\n")
    curves, tasks = {}, None
    rows = []
    for model in args.models:
        experiment = ROOT / "experiments" / f"bench_arch_{model}"
        table = val_table(experiment)
        last = table[max(table)]
        tasks = tasks or sorted(last)
        psnr = [last[t][0] for t in tasks]
        params = sum(p.numel() for p in moewir.create_model(model).parameters()) / 1e6
        with open(experiment / "train_log.csv") as f:
            seconds = sum(float(r["seconds"]) for r in csv.DictReader(f))
        rows.append(f"| {model} | {params:.2f} | " + " | ".join(f"{last[t][0]:.2f} / {last[t][1]:.4f}" for t in tasks)
                    + f" | {sum(psnr) / len(psnr):.2f} | {min(psnr):.2f} | {seconds / 60:.0f} |")
        curves[model] = [(it, sum(v[0] for v in row.values()) / len(row)) for it, row in sorted(table.items())]
    print("| model | params (M) | " + " | ".join(tasks) + " | mean PSNR | worst PSNR | train min |")
    print("|---|---:|" + "---:|" * len(tasks) + "---:|---:|---:|")
    print("\n".join(rows))
    line_plot(args.plot, curves, "iteration", "mean validation PSNR (dB)",
              f"moewirnet vs Restormer, same recipe: {budget}\n{machine}")
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
