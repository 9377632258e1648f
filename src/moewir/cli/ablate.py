"""``moewir ablate {routing,experts,weighting,topk} --config CFG [--iterations N]``."""
from __future__ import annotations

import argparse
import json

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
    add_set_option(p, "base config (dotted keys)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.io import atomic_file
    from ..training.ablation import results_table, run_study

    config = load_config(args.config, parse_overrides(args.set))
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    rows = run_study(config, args.study, args.iterations, variants, progress=not args.no_progress)
    print("\n" + results_table(rows, args.study, config))
    if args.json:
        with atomic_file(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
