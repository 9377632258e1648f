"""Training-patch loading with and without the decoded cache, side by side in one process.

    python bench/data_loading.py [--data data/v2] [--patch 64] [--pairs 40] [--rounds 5] [--json FILE]

Draws the recipe's patches (``PairedPatches``, random crop, flips, rotations) from ``--pairs``
training pairs of every task of ``--data``: once decoding each PNG every draw, once from
``datasets.train.cache`` (``moewir.data.cache``; its copies written by an untimed first pass).
The rounds interleave the two (``moewir.profiling.interleaved``); the ratio of the medians is
the number that counts, not the absolute times. One thread, no workers: the cost a data-loader
worker pays per patch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

import torch

from moewir.data import discover
from moewir.data.datasets import PairedPatches
from moewir.profiling import interleaved, machine_description


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/v2")
    ap.add_argument("--split", default="train")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=40, help="pairs per task drawn in each timed call")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tasks = discover(args.data, args.split)
    pairs = [p for task in sorted(tasks) for p in tasks[task][:args.pairs]]
    if not pairs:
        sys.exit(f"{args.data}: no training pairs")
    with tempfile.TemporaryDirectory() as cache:
        plain = PairedPatches(pairs, args.patch)
        cached = PairedPatches(pairs, args.patch, cache=cache)

        def draw(dataset):
            return lambda: [dataset[(i, i)] for i in range(len(pairs))]
        draw(cached)()  # writes the copies
        seconds = interleaved({"png": draw(plain), "cache": draw(cached)}, rounds=args.rounds, warmup=0)
    per_patch = {k: statistics.median(v) / len(pairs) for k, v in seconds.items()}
    ratios = [c / p for c, p in zip(seconds["cache"], seconds["png"])]
    result = {"machine": machine_description(), "data": args.data, "patch": args.patch, "patches_per_call": len(pairs),
              "ms_per_patch": {k: round(1e3 * v, 3) for k, v in per_patch.items()},
              "cache_over_png": round(statistics.median(ratios), 3),
              "rounds": [round(r, 3) for r in ratios]}
    print(f"{len(pairs)} patches of {args.patch} px per call from {args.data}, {machine_description()}")
    print(f"| loading | ms per patch |\n|---|---:|\n| decode every draw | {result['ms_per_patch']['png']:.2f} |\n"
          f"| decoded cache | {result['ms_per_patch']['cache']:.2f} |")
    print(f"cache / decode: {result['cache_over_png']:.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
