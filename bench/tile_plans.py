"""Tiled / untiled restore time of one image: the fixed-stride tile plan against the even plan.

    python bench/tile_plans.py [--model moewirnet-tiny] [--size 1024x1024] [--tile 512 --overlap 32]
                               [--rounds 3] [--threads 1] [--json bench/results/tile_plans.json]

In one process, after a 256x256 warm-up pass, every round runs the untiled pass, the
old plan (windows of ``tile``, stride ``tile - overlap`` rounded down to 8, the last window
flush with the border: moewir before issue 16) and the even plan (``moewir.ops.tiling.plan_tiles``)
once each, taking turns (``moewir.profiling.interleaved``: reversed order on odd rounds); the
medians are reported. Float32,
``torch.no_grad``, random weights and a random image (time does not depend on either).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

import moewir
from moewir.ops.tiling import TilePlan, forward_planned, plan_tiles
from moewir.profiling import interleaved


def old_plan(length: int, tile: int, overlap: int, align: int = 8) -> TilePlan:
    """The plan ``tiled_forward`` used before the even plan."""
    if tile >= length:
        return TilePlan(length, length, (0,))
    stride = max(align, (tile - overlap) // align * align)
    return TilePlan(length, tile, (*range(0, length - tile, stride), length - tile))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="moewirnet-tiny")
    p.add_argument("--size", default="1024x1024", help="WxH")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "tile_plans.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    w, h = map(int, args.size.lower().split("x"))
    torch.manual_seed(0)
    model = moewir.create_model(args.model).eval()
    image = torch.rand(1, 3, h, w)
    plans = {"old": (old_plan(h, args.tile, args.overlap), old_plan(w, args.tile, args.overlap)),
             "even": (plan_tiles(h, args.tile, args.overlap, 8), plan_tiles(w, args.tile, args.overlap, 8))}
    variants = {"untiled": lambda: model(image),
                **{k: (lambda r=r, c=c: forward_planned(model, image, r, c, args.overlap)) for k, (r, c) in plans.items()}}
    with torch.no_grad():
        if not args.no_warmup:
            model(torch.rand(1, 3, 256, 256))
        seconds = interleaved(variants, rounds=args.rounds, runs=1, warmup=0)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    result = {"model": args.model, "size": [w, h], "tile": args.tile, "overlap": args.overlap,
              "threads": args.threads, "rounds": args.rounds, "machine": platform.machine(),
              "torch": torch.__version__, "seconds": seconds, "median_s": median,
              "plans": {k: {"rows": [r.size, list(r.starts)], "columns": [c.size, list(c.starts)],
                            "pixels_ratio": r.covered * c.covered / (h * w)} for k, (r, c) in plans.items()},
              "ratio_to_untiled": {k: median[k] / median["untiled"] for k in plans}}
    print(json.dumps({k: result[k] for k in ("median_s", "ratio_to_untiled")}, indent=1))
    for k, v in result["plans"].items():
        print(k, v)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
