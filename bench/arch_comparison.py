"""Variants of the shipped-weights recipe trained with several seeds, compared with mean ± std.

    python bench/arch_comparison.py [--variants moewirnet-tiny restormer-tiny-matched]
                                    [--seeds 0 1 2] [--iterations 1500] [--val-every 250]
                                    [--jobs 2] [--tag arch] [--results NAME] [--set KEY=VALUE ...]

Each variant is ``configs/default_weights.yml`` (five tasks, 64-px patches, one per task per
step, equal weighting, EMA, started as the identity) with the overrides in ``VARIANTS``; each
(variant, seed) trains as ``experiments/bench_<tag>/<variant>_s<seed>`` in its own process on
one thread (``--threads``), ``--jobs`` at a time. Finished runs are not trained again,
interrupted ones resume. Validation (held-out photos, 6 x 256-px centre crops per task, PSNR /
SSIM on Y) runs at iteration 0 (the identity, i.e. the unrestored input) and every
``--val-every`` iterations. Prints per task mean ± std over seeds at the last iteration,
writes ``bench/results/<results>.json`` (every run's curve) and ``docs/images/<results>.png``
(mean validation PSNR against iteration over seeds, and mean + 1 std). Variants that share a
tag share runs: ``moewirnet-tiny`` trained for the architecture comparison is the ``equal``
row of the weighting comparison.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from moewir.metrics.seeds import mean_std
from moewir.tables import markdown_table
from plots import line_plot

ROOT = Path(__file__).resolve().parent.parent

#: Variant name -> ``--set`` overrides of configs/default_weights.yml.
VARIANTS: dict[str, list[str]] = {
    "moewirnet-tiny": ["model.name=moewirnet-tiny"],
    "moewirnet-tiny-literal": ["model.name=moewirnet-tiny", "model.block_form=literal"],
    "moewirnet-tiny-postnorm": ["model.name=moewirnet-tiny", "model.block_form=postnorm"],
    "moewirnet-tiny-layerscale": ["model.name=moewirnet-tiny", "model.block_form=layerscale"],
    "restormer-tiny-matched": ["model.name=restormer-tiny-matched"],
    "restormer-tiny": ["model.name=restormer-tiny"],
    # Item-4 hypotheses for the gap to Restormer: the decoder's uniform hard router, the narrow FFN
    # (Restormer's 2.66 costs 11.2 GMACs @256 here, against 7.7: not a same-compute variant).
    "moewirnet-tiny-softdec": ["model.name=moewirnet-tiny", "model.decoder_routing=soft",
                               "model.refinement_routing=soft"],
    "moewirnet-tiny-ffn2.66": ["model.name=moewirnet-tiny", "model.ffn_expansion=2.66"],
    # The FFN's share at the same compute: narrower (dim 18) with a 3.5x FFN, 7.5 GMACs @256.
    "moewirnet-tiny-d18-ffn3.5": ["model.name=moewirnet-tiny", "model.dim=18", "model.ffn_expansion=3.5"],
    # Which expert makes the early dips (global offsets): without the frequency expert (8.3 GMACs),
    # channel attention alone (9.4 GMACs: it costs more per channel than the others).
    "moewirnet-tiny-nofreq": ["model.name=moewirnet-tiny", "model.experts=[channel,spatial]"],
    "moewirnet-tiny-channel": ["model.name=moewirnet-tiny", "model.experts=[channel]"],
    "moewirnet-tiny-ori": ["model.name=moewirnet-tiny", "weighting.name=ori"],
    "moewirnet-tiny-ori-smoothed": ["model.name=moewirnet-tiny", "weighting.name=ori",
                                    "weighting.smoothing=0.95"],
}


def run_dir(tag: str, variant: str, seed: int) -> Path:
    return ROOT / "experiments" / f"bench_{tag}" / f"{variant}_s{seed}"


def val_table(experiment: Path) -> dict[int, dict[str, tuple[float, float]]]:
    out: dict[int, dict[str, tuple[float, float]]] = {}
    path = experiment / "val_log.csv"
    if path.is_file():
        with open(path) as f:
            for row in csv.DictReader(f):
                out.setdefault(int(row["iteration"]), {})[row["task"]] = (float(row["psnr"]), float(row["ssim"]))
    return out


def command(tag: str, variant: str, seed: int, args: argparse.Namespace) -> list[str] | None:
    """The ``moewir train`` command of one run, or ``None`` when it has finished."""
    out = run_dir(tag, variant, seed)
    if max(val_table(out), default=-1) >= args.iterations:
        return None
    sets = VARIANTS[variant] + [
        f"name={out.name}", f"experiments_root={out.parent}", f"seed={seed}",
        f"schedule.iterations={args.iterations}", f"datasets.train.root={args.data}",
        f"datasets.val.root={args.data}", f"val.every={args.val_every}", "val.at_start=true",
        f"log.checkpoint_every={args.val_every}", "log.tensorboard=false"] + args.set
    cmd = [sys.executable, "-m", "moewir.cli.main", "train", str(ROOT / "configs" / "default_weights.yml"),
           "--no-progress"] + [x for s in sets for x in ("--set", s)]
    return cmd + (["--resume"] if (out / "checkpoints").is_dir() else [])


def reused_runs(paths: list[str], args: argparse.Namespace) -> dict[tuple[str, int], dict]:
    """(variant, seed) -> run record, from earlier results files of the same recipe and budget."""
    found: dict[tuple[str, int], dict] = {}
    for path in paths:
        earlier = json.loads(Path(path).read_text())
        if earlier["overrides"] != args.set:
            raise SystemExit(f"{path}: trained with --set {earlier['overrides']}, not {args.set}")
        for variant, data in earlier["variants"].items():
            if data["overrides"] != VARIANTS.get(variant):
                raise SystemExit(f"{path}: variant {variant} was trained with other overrides")
            for seed, run in data["runs"].items():
                if str(args.iterations) in run["curve"]:
                    found.setdefault((variant, int(seed)), {**run, "reused_from": Path(path).name})
    return found


def train_all(runs: list[tuple[str, int]], args: argparse.Namespace) -> bool:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    pending = [(v, s, c) for v, s in runs if (v, s) not in args.reused and (c := command(args.tag, v, s, args))]
    running: list[tuple[str, int, subprocess.Popen]] = []
    ok = True
    while pending or running:
        while pending and len(running) < args.jobs:
            variant, seed, cmd = pending.pop(0)
            out = run_dir(args.tag, variant, seed)
            out.parent.mkdir(parents=True, exist_ok=True)
            log = open(out.parent / f"{out.name}.out", "a")
            print(f"train {out.name}", flush=True)
            running.append((variant, seed, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                                            stderr=subprocess.STDOUT)))
        time.sleep(2)
        for item in list(running):
            variant, seed, proc = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode:
                    ok = False
                    print(f"{variant} seed {seed}: training failed, see "
                          f"{run_dir(args.tag, variant, seed)}.out", file=sys.stderr)
    return ok


def patch_side(overrides: list[str]) -> str:
    """The training patch side the runs use: the recipe's 64 unless ``--set`` changes it."""
    sides = [o.split("=", 1)[1] for o in overrides if o.startswith("datasets.train.patch_size=")]
    return sides[-1] if sides else "64"


def summarise(args: argparse.Namespace) -> dict:
    """Per variant: final per-task PSNR/SSIM per seed, mean curve, minutes; plus the input row."""
    result = {"machine": f"{platform.machine()} CPU, {args.threads} thread(s) per run, {args.jobs} runs at "
                         f"once, torch {torch.__version__}",
              "budget": f"{args.iterations} iterations x 5 tasks x one {patch_side(args.set)}-px patch "
                        "(configs/default_weights.yml)",
              "overrides": args.set, "seeds": args.seeds, "variants": {}}
    for variant in args.variants:
        runs = {}
        for seed in args.seeds:
            out = run_dir(args.tag, variant, seed)
            if (variant, seed) in args.reused and not (out / "val_log.csv").is_file():
                runs[seed] = args.reused[(variant, seed)]
                result["input"] = {t: tuple(v) for t, v in runs[seed]["curve"]["0"].items()}
                continue
            table = val_table(out)
            with open(out / "train_log.csv") as f:
                log = list(csv.DictReader(f))
            seconds = sum(float(r["seconds"]) for r in log)
            weights = [[float(v) for k, v in r.items() if k.startswith("weight/")] for r in log]
            spread = statistics.median(max(w) / max(min(w), 1e-12) for w in weights)
            runs[seed] = {"curve": {str(it): row for it, row in sorted(table.items())}, "train_seconds": seconds,
                          "weight_spread": spread}
            if 0 in table:
                result["input"] = table[0]  # the identity network returns its input
        result["variants"][variant] = {"overrides": VARIANTS[variant], "runs": runs}
    return result


def report(result: dict, iterations: int) -> str:
    first = next(iter(result["variants"].values()))["runs"]
    tasks = sorted(next(iter(first.values()))["curve"][str(iterations)])
    rows = []
    if "input" in result:
        inp = result["input"]
        means = [inp[t][0] for t in tasks]
        rows.append(["input (no restoration)", *(f"{inp[t][0]:.2f}" for t in tasks), f"{statistics.fmean(means):.2f}",
                     f"{min(means):.2f}", "", "", ""])
    for variant, data in result["variants"].items():
        finals = [run["curve"][str(iterations)] for run in data["runs"].values()]
        cells = [mean_std([f[t][0] for f in finals]) for t in tasks]
        mean = mean_std([statistics.fmean(f[t][0] for t in tasks) for f in finals])
        worst = mean_std([min(f[t][0] for t in tasks) for f in finals])
        below = "" if "input" not in result else \
            f"{statistics.fmean(sum(f[t][0] < result['input'][t][0] for t in tasks) for f in finals):.1f}"
        minutes = statistics.fmean(run["train_seconds"] for run in data["runs"].values()) / 60
        spread = statistics.fmean(run["weight_spread"] for run in data["runs"].values())
        rows.append([variant, *(f"{m:.2f} ± {s:.2f}" for m, s in cells), f"**{mean[0]:.2f} ± {mean[1]:.2f}**",
                     f"{worst[0]:.2f} ± {worst[1]:.2f}", below, f"{spread:.2f}", f"{minutes:.0f}"])
    return markdown_table(["variant", *tasks, "mean PSNR", "worst task", "below input (tasks)",
                           "task weights max/min (median step)", "train min"], rows, align="l" + "r" * (len(tasks) + 5))


def curves(result: dict) -> tuple[dict, dict]:
    """Mean validation PSNR against iteration per variant (mean over seeds), and mean ± std bands."""
    lines, bands = {}, {}
    for variant, data in result["variants"].items():
        points: dict[int, list[float]] = {}
        for run in data["runs"].values():
            for it, row in run["curve"].items():
                points.setdefault(int(it), []).append(statistics.fmean(v[0] for v in row.values()))
        stats = [(it, *mean_std(v)) for it, v in sorted(points.items())]
        lines[variant] = [(it, m) for it, m, _ in stats]
        bands[variant] = [(it, m - s, m + s) for it, m, s in stats]
    return lines, bands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["moewirnet-tiny", "restormer-tiny-matched"],
                    choices=sorted(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at the same time")
    ap.add_argument("--tag", default="arch", help="names experiments/bench_TAG")
    ap.add_argument("--results", metavar="NAME", help="bench/results/NAME.json and docs/images/NAME.png "
                    "(default: the tag)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra override for every run (repeatable)")
    ap.add_argument("--reuse", nargs="+", default=[], metavar="RESULTS.json",
                    help="take (variant, seed) runs found in these earlier results files (same recipe, "
                         "same --iterations) instead of training them again")
    ap.add_argument("--report-only", action="store_true", help="do not train; summarise what exists")
    args = ap.parse_args()
    args.reused = reused_runs(args.reuse, args)
    runs = [(v, s) for s in args.seeds for v in args.variants]
    if not args.report_only and not train_all(runs, args):
        return 1
    result = summarise(args)
    results = ROOT / "bench" / "results" / f"{args.results or args.tag}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=1))
    print(f"{result['machine']}; {result['budget']}; overrides {args.set}; seeds {args.seeds}; "
          f"validation: held-out photos, 6 x 256-px centre crops per task, PSNR on Y, mean ± std over seeds\n")
    print(report(result, args.iterations))
    print("\nbelow input: tasks under the unrestored input at the last iteration, mean over seeds; "
          "train min: training time per run (validation excluded), mean over seeds")
    plot = ROOT / "docs" / "images" / f"{args.results or args.tag}.png"
    lines, bands = curves(result)
    reference = {"input": statistics.fmean(v[0] for v in result["input"].values())} if "input" in result else {}
    line_plot(str(plot), lines, "iteration", "mean validation PSNR (dB), mean ± std over seeds",
              f"{result['budget']}, seeds {args.seeds}\n{result['machine']}", bands=bands, hlines=reference)
    print(f"\nresults: {results}\nplot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
