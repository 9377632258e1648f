"""``moewir eval --weights W [--compare W2 ...] --data DIR [--tasks ...] [--json F] [--csv F] ...``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation.runner import METRICS
from ..metrics.lpips import BACKBONES
from .options import WEIGHTS_FILES, add_device_options, parse_tile

HELP = "score one or more trained networks on a paired test set (PSNR/SSIM, NIQE, LPIPS)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=HELP + "; see docs/evaluation.md.")
    p.add_argument("--weights", required=True, metavar="W", help=WEIGHTS_FILES)
    p.add_argument("--compare", nargs="+", default=[], metavar="W2",
                   help="more weights, scored in the same table (the same kinds of file; a release is loaded at "
                        "its own size, restormer or promptir)")
    p.add_argument("--labels", nargs="+", metavar="NAME", help="table names for --weights and --compare, in order")
    p.add_argument("--input-baseline", action="store_true", help="also score the unrestored inputs, as 'input'")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder or list (any layout moewir reads)")
    p.add_argument("--split", default="test", help="split of a WeatherBench-layout dataset (default test)")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="only these tasks (default: all found)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N images per task")
    p.add_argument("--metrics", nargs="+", default=["psnr", "ssim"], choices=METRICS.names(), metavar="M",
                   help="psnr ssim (default, always reported together), niqe, lpips")
    p.add_argument("--rgb", action="store_true", help="PSNR/SSIM on RGB (default: on Y, BT.601, as papers report)")
    p.add_argument("--crop-border", type=int, default=0, metavar="PX", help="pixels removed on every side (default 0)")
    p.add_argument("--lpips-backbone", metavar="FILE", help="local AlexNet/VGG16 weights for LPIPS (never downloaded)")
    p.add_argument("--lpips-linear", metavar="FILE", help="local LPIPS linear-layer weights")
    p.add_argument("--lpips-net", default="alex", choices=BACKBONES.names(), help="LPIPS backbone (default alex)")
    add_device_options(p)
    p.add_argument("--save-images", metavar="DIR", help="write outputs as DIR/<model>/<task>/<name>.png")
    p.add_argument("--figures", metavar="DIR", help="write comparison sheets (input, models, target, zoomed inset)")
    p.add_argument("--figure-count", type=int, default=3, metavar="N", help="sheets per task (default 3)")
    p.add_argument("--json", metavar="FILE", help="write per-task and per-image scores as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image scores as CSV")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _labels(paths: list[str], given: list[str] | None) -> list[str]:
    """Table names: the given ones, else file stems prefixed, while they clash, with the names
    of their folders (``checkpoints`` skipped): ``equal-net_ema_300``, ``ori-net_ema_300``."""
    if given:
        if len(given) != len(paths):
            raise ValueError(f"--labels needs {len(paths)} names (one per weights file), got {len(given)}")
        labels = list(given)
    else:
        folders = [[d for d in Path(p).resolve().parent.parts[::-1] if d not in ("checkpoints", "/")] for p in paths]
        labels = [Path(p).stem for p in paths]
        for depth in range(1, max(map(len, folders), default=0) + 1):
            if len(set(labels)) == len(labels):
                break
            labels = ["-".join(f[:depth][::-1] + [Path(p).stem]) for f, p in zip(folders, paths)]
    if len(set(labels)) < len(labels) or any("/" in label or label == "input" for label in labels):
        raise ValueError(f"model labels must be unique, without '/', and not 'input': {labels}")
    return labels


def run(args: argparse.Namespace) -> int:
    from ..data import discover, select_tasks
    from ..evaluation import (aggregate, build_metrics, comparison_sheet, evaluate, markdown_table, save_sheet,
                              write_csv, write_json)
    from ..inference import load

    tile = parse_tile(args.tile)
    if args.limit is not None and args.limit < 1 or args.figure_count < 0 or args.crop_border < 0:
        raise ValueError("--limit must be >= 1, --figure-count and --crop-border >= 0")
    lpips_files = None
    if args.lpips_backbone or args.lpips_linear:
        if not (args.lpips_backbone and args.lpips_linear):
            raise ValueError("LPIPS needs both --lpips-backbone and --lpips-linear")
        lpips_files = (args.lpips_backbone, args.lpips_linear, args.lpips_net)
    metrics = build_metrics(args.metrics, args.crop_border, not args.rgb, lpips_files)
    tasks = select_tasks(discover(args.data, args.split), args.tasks, args.data)
    tasks = {t: pairs[:args.limit] for t, pairs in tasks.items()}

    paths = [args.weights, *args.compare]
    models = {}
    if args.input_baseline:
        models["input"] = lambda image: image
    for label, path in zip(_labels(paths, args.labels), paths):
        restorer = load(path, device=args.device, tile=tile, tile_overlap=args.tile_overlap,
                        half=args.half, self_ensemble=args.self_ensemble)
        models[label] = restorer.restore

    drawn: dict[str, int] = {}

    def draw(pair, inp, outputs, tgt):
        if drawn.get(pair.task, 0) < args.figure_count:
            drawn[pair.task] = drawn.get(pair.task, 0) + 1
            panels = [("input", inp), *((k, v) for k, v in outputs.items() if k != "input"), ("ground truth", tgt)]
            save_sheet(Path(args.figures) / pair.task / f"{pair.name}.png", comparison_sheet(panels))

    rows = evaluate(models, tasks, metrics, save_images=args.save_images, on_image=draw if args.figures else None,
                    progress=not args.no_progress)
    table = aggregate(rows, metrics)
    convention = f"{'RGB' if args.rgb else 'Y'}, crop {args.crop_border}"
    print(f"\n{args.data} ({sum(len(p) for p in tasks.values())} images, {len(tasks)} tasks); "
          f"PSNR/SSIM on {convention}\n")
    print(markdown_table(table, metrics, convention))
    if args.json:
        write_json(args.json, {"data": str(args.data), "convention": {"y_channel": not args.rgb,
                                                                       "crop_border": args.crop_border},
                               "models": dict(zip(models, ["(unrestored input)"] * args.input_baseline + paths)),
                               "results": table, "images": rows})
    if args.csv:
        write_csv(args.csv, rows)
    return 0
