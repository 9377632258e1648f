"""``moewir ablate {routing,experts,weighting,topk} --config CFG [--iterations N] [--seeds N [--jobs J]]``."""
from __future__ import annotations

import argparse
import json
import os

from ..training.ablation import STUDIES
from ..training.config import load_config
from .options import add_set_option, parse_overrides

HELP = "run one of the paper's ablations (every variant, one budget) and print one table"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("ablate", help=HELP, description=HELP + ". Variants: " + "; ".join(
        f"{s}: {', '.join(v)}" for s, v in STUDIES.items()))
    p.add_argument("study", choices=sorted(STUDIES), help="which ablation")
    p.add_argument("--config", required=True, metavar="CFG.yml", help="base experiment file")
    p.add_argument("--iterations", type=int, help="iterations per variant (default: the config's)")
    p.add_argument("--variants", help="comma-separated subset of the study's variants")
    p.add_argument("--seeds", type=_seeds, metavar="N|LIST",
                   help="train every variant once per seed: N for seeds 0..N-1, or a list such as 3,4,5; the "
                        "table shows mean ± std and the paired difference to the paper's variant with a 95%% "
                        "interval (default: once, with the config's seed)")
    p.add_argument("--jobs", type=_positive, default=None,
                   help="trainings at once, each a process of one thread (default: one per usable CPU core with "
                        "--seeds, else 1)")
    add_set_option(p, "base config (dotted keys)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _seeds(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or a comma-separated list, got {text!r}")
    if "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(f"the number of seeds must be at least 1, got {text}")
        return list(range(values[0]))
    return values


def run(args: argparse.Namespace) -> int:
    from ..data.io import atomic_file
    from ..training.ablation import results_table, run_study

    config = load_config(args.config, parse_overrides(args.set))
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = args.jobs or (cores if args.seeds else 1)
    rows = run_study(config, args.study, args.iterations, variants, progress=not args.no_progress,
                     seeds=args.seeds, jobs=jobs)
    print("\n" + results_table(rows, args.study, config))
    if args.json:
        with atomic_file(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
