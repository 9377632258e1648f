"""``moewir synth``: make a paired weather dataset from clean photos."""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from ..synth.build import build_dataset, clean_photos
from ..synth.tasks import TASKS
from ..tables import markdown_table

HELP = "synthesize a paired weather dataset (WeatherBench layout) from clean photos"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("synth", help=HELP, description=HELP + ". Without --clean, uses the embedded "
                              "public-domain/CC0 photos. Same seed, same bytes.")
    p.add_argument("--clean", metavar="DIR", help="folder of clean photos (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset folder")
    p.add_argument("--tasks", default="haze,rain,snow,raindrop,nightrain",
                   help=f"comma-separated tasks (default: haze,rain,snow,raindrop,nightrain); known: {', '.join(TASKS)}")
    p.add_argument("--per-image", type=int, default=1, help="samples per photo and task (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--split", type=float, default=0.9, help="fraction of photos for train; the rest is test (default: 0.9)")
    p.add_argument("--severity", default="0.2,1.0", help="severity range low,high in [0,1] (default: 0.2,1.0)")
    p.add_argument("--max-side", type=int, help="downscale photos whose longer side exceeds this")
    p.add_argument("--depth", metavar="DIR", help="depth maps named like the clean photos (larger = farther); "
                   "haze uses them instead of its depth proxy")
    p.add_argument("--depth-inverse", action="store_true", help="the depth maps are disparity / inverse depth "
                   "(bright = near), as from MiDaS or Depth Anything")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: 0, in-process)")
    p.add_argument("--skip-bad", action="store_true", help="leave out photos that cannot be read (one warning "
                   "line each) instead of stopping at the first")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tasks = [t.strip().lower() for t in args.tasks.split(",") if t.strip()]
    try:
        low, high = (float(v) for v in args.severity.split(","))
    except ValueError:
        raise ValueError(f"--severity expects low,high, got {args.severity!r}") from None
    if args.per_image < 1:
        raise ValueError("--per-image must be at least 1")
    photos = clean_photos(args.clean) if args.clean else None
    skipped = []

    def warn(error):
        skipped.append(error.path)
        print(f"moewir: warning: {error} (skipped)", file=sys.stderr)

    records = build_dataset(args.out, tasks, photos, args.per_image, args.seed, args.split, args.workers,
                            (low, high), args.max_side, depth=args.depth, depth_inverse=args.depth_inverse,
                            skip_bad=args.skip_bad, on_skip=warn)
    stats = defaultdict(list)
    for r in records:
        stats[(r["task"], r["split"])].append(r["psnr"])
    print(f"\nwrote {len(records)} pairs to {args.out} (manifest.json, manifest.csv)"
          + (f"; skipped {len(skipped)} unreadable photo(s)" if skipped else "") + "\n")
    rows = []
    for task in tasks:
        all_psnr = stats[(task, "train")] + stats[(task, "test")]
        rows.append([task, len(stats[(task, "train")]), len(stats[(task, "test")]),
                     f"{sum(all_psnr) / max(len(all_psnr), 1):.2f}"])
    print(markdown_table(["task", "train", "test", "mean PSNR input vs target (dB)"], rows, align="lrrr"))
    return 0
