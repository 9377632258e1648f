"""``moewir distill index|run``: UniRain's retrieval-augmented training-data distillation."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..data.io import atomic_file
from ..distill.judges import JUDGES

HELP = "select realistic, clean training pairs by retrieval against real rainy references (UniRain)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("distill", help=HELP, description=HELP + "; see docs/distill.md.")
    sub = p.add_subparsers(title="steps", metavar="STEP", required=True)

    i = sub.add_parser("index", help="build or update the database of real rainy reference images",
                       description="Describe every image under the reference folders (caption, visual feature, "
                                   "thumbnail) into DB; only new or changed files are described again.")
    i.add_argument("--references", nargs="+", required=True, metavar="DIR", help="folders (recursive) or image files")
    i.add_argument("--db", required=True, metavar="DB", help="database folder (created if missing)")
    i.add_argument("--describer", default="builtin",
                   help="builtin (default, no weights) or clip:<folder with local CLIP weights>")
    i.add_argument("--workers", type=int, default=0, help="worker processes (default: 0, in-process)")
    i.add_argument("--no-progress", action="store_true")
    i.set_defaults(run=run_index)

    r = sub.add_parser("run", help="judge candidate pairs and write the distilled dataset",
                       description="Stream the candidate datasets through pair checks, hierarchical retrieval "
                                   "and a judge; resumable. Writes kept.csv, rejected.csv, train.csv, lists/, "
                                   "dataset/ and report.md/json into OUT.")
    r.add_argument("--candidates", nargs="+", required=True, metavar="DATASET",
                   help="datasets in any layout moewir reads (NAME=PATH to name one)")
    r.add_argument("--db", required=True, metavar="DB", help="reference database from `moewir distill index`")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder (resumes when it holds a run)")
    r.add_argument("--config", metavar="YAML", help="settings file like configs/distill.yml (default: the built-in defaults, "
                        "which are that file's values)")
    r.add_argument("--judge", choices=JUDGES.names(), help="override judge.name")
    r.add_argument("--k1", type=int)
    r.add_argument("--k2", type=int)
    r.add_argument("--k3", type=int)
    r.add_argument("--workers", type=int)
    r.add_argument("--split", default="train", help="split of WeatherBench-layout datasets (default: train)")
    r.add_argument("--materialize", choices=("link", "copy", "none"))
    r.add_argument("--limit", type=int, metavar="N", help="only the first N candidates")
    r.add_argument("--json", metavar="FILE", help="also write the report here")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(run=run_distill)


def _logging() -> None:
    logging.basicConfig(format="moewir: %(message)s", level=logging.WARNING, stream=sys.stderr)


def run_index(args: argparse.Namespace) -> int:
    from ..distill.database import ReferenceDB

    _logging()
    report = ReferenceDB(args.db).index(args.references, args.describer, args.workers, progress=not args.no_progress)
    for path, problem in report.failed:
        print(f"moewir: error: {path}: {problem}", file=sys.stderr)
    print(f"\n{args.db}: {report.total} references "
          f"({report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
          f"{report.removed} removed, {len(report.failed)} unreadable)")
    return 1 if report.failed else 0


def run_distill(args: argparse.Namespace) -> int:
    from ..distill.pipeline import DistillSettings, run_distill as run
    from ..yamlfiles import read_yaml_mapping

    _logging()
    config = read_yaml_mapping(args.config) if args.config else {}
    try:
        settings = DistillSettings.from_config(config, split=args.split)
    except ValueError as exc:
        raise ValueError(f"{args.config}: {exc}") from None
    for name in ("judge", "k1", "k2", "k3", "workers", "materialize"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    report = run(args.candidates, args.db, args.out, settings, progress=not args.no_progress, limit=args.limit)
    print()
    print((Path(args.out) / "report.md").read_text())
    if args.json:
        with atomic_file(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0
