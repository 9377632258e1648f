"""``moewir restore INPUT... -o OUT [--weights W | --model NAME] [--tile 512|auto|0 --tile-overlap 32] ...``.

Inputs are photos and videos (``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ``.webm``; PyAV, the extra
``moewir[video]``), mixed in folders and patterns as they come.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from tqdm import tqdm

from ..data.io import atomic_file
from ..devices import keep_freed_memory
from ..models import DEFAULT_MODEL
from ..tables import markdown_table
from .options import add_device_options, add_model_option, add_weights_option, parse_tile

HELP = "restore photos, videos, folders or glob patterns with a trained network"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("restore", help=HELP, description=HELP + ". Outputs keep the input's "
                              "file name and format (videos: container, size, frame count, frame rate and audio); see "
                              "docs/inference.md.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    add_weights_option(p)
    add_model_option(p, f"restore with its shipped weights (default {DEFAULT_MODEL})")
    add_device_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders (kept in the output)")
    p.add_argument("--format", metavar="EXT", help="write photos in this format instead of the input's (e.g. png; "
                                                   "videos keep their container)")
    p.add_argument("--suffix", default="", help="append this to output file names (e.g. _restored)")
    p.add_argument("--max-megapixels", type=float, default=200, help="refuse larger images or video frames "
                                                                     "(default 200)")
    p.add_argument("--batch", type=int, default=4, metavar="N", help="video frames restored together (default 4)")
    p.add_argument("--crf", type=int, default=17, metavar="Q",
                   help="video quality: H.264 / VP9 constant-rate factor, lower is better and larger "
                        "(0: lossless H.264; default 17)")
    p.add_argument("--json", metavar="FILE", help="write per-file results and the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import load
    from ..inference.files import check_outputs, plan_jobs, restore_files, summarize

    tile = parse_tile(args.tile)
    if args.max_megapixels <= 0:
        raise ValueError("--max-megapixels must be > 0")
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    if not 0 <= args.crf <= 51:
        raise ValueError(f"--crf must be between 0 and 51, got {args.crf}")
    extension = "." + args.format.lower().lstrip(".") if args.format else None
    jobs, problems = plan_jobs(args.inputs, args.output, args.recursive, args.suffix, extension)
    check_outputs(args.output, jobs)  # before the network is loaded and any image restored
    for problem in problems:
        print(f"moewir: error: {problem.source}: {problem.error}", file=sys.stderr)
    keep_freed_memory()  # one-shot process: large maps reuse the heap instead of fresh pages
    restorer = load(args.weights or args.model or DEFAULT_MODEL, device=args.device, tile=tile,
                    tile_overlap=args.tile_overlap, half=args.half, model=args.model if args.weights else None,
                    self_ensemble=args.self_ensemble)
    outcomes = problems + restore_files(restorer, jobs, overwrite=args.overwrite,
                                        max_pixels=int(args.max_megapixels * 1e6), progress=not args.no_progress,
                                        report=lambda line: tqdm.write(line, file=sys.stderr),
                                        batch_size=args.batch, crf=args.crf)
    summary = summarize(outcomes)
    print("\n" + markdown_table(["restored", "skipped", "failed", "megapixels", "seconds", "s / MP"],
                                [[summary["restored"], summary["skipped"], summary["failed"],
                                  f"{summary['megapixels']:.2f}", f"{summary['seconds']:.1f}",
                                  f"{summary['seconds_per_megapixel']:.2f}"]], align="rrrrrr"))
    tiles = {None: "", "auto": ", tiles chosen by memory"}.get(tile, f", tiles up to {tile} px")
    tiles = ", whole images" if restorer.whole_image else tiles
    print(f"\n{restorer.name} on {restorer.device}" + tiles
          + f"; outputs in {args.output}")
    if args.json:
        with atomic_file(args.json, "w") as f:
            json.dump({"model": restorer.name, "device": str(restorer.device), "summary": summary,
                       "files": [asdict(o) for o in outcomes]}, f, indent=2)
    return 1 if summary["failed"] else 0
