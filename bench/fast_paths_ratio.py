"""Old-vs-new forward (and training-step) timing of the networks, in one process (issue 16).

"old" runs every changed module with its reference forward (tests/fast_paths_reference.py,
the code before the fast paths), "new" the current code, on the same model and input.
Rounds are interleaved (one timing of every variant per round) and the median is reported, so
that a busy machine slows every variant alike.

    python bench/fast_paths_ratio.py --pairs moewirnet:restormer moewirnet-tiny:restormer-tiny \
        --size 256 --threads 2 --rounds 7
    python bench/fast_paths_ratio.py --pairs moewirnet-tiny:restormer-tiny --train --size 64
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import moewir  # noqa: E402
from fast_paths_reference import reference_forwards  # noqa: E402


def _step(model, x, train):
    if train:
        model.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
    else:
        with torch.no_grad():
            model(x)


def _timed(model, x, train, old):
    if old:
        with reference_forwards():
            t = time.perf_counter()
            _step(model, x, train)
            return time.perf_counter() - t
    t = time.perf_counter()
    _step(model, x, train)
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["moewirnet:restormer", "moewirnet-tiny:restormer-tiny"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train", action="store_true", help="time forward + backward (train mode)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = sorted({n for pair in args.pairs for n in pair.split(":")})
    models = {n: moewir.create_model(n).train(args.train) for n in names}
    x = torch.rand(args.batch, 3, args.size, args.size)
    variants = [(n, old) for n in names for old in (True, False)]
    for n, old in variants:  # warm-up
        _timed(models[n], x, args.train, old)
    times = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            times[v].append(_timed(models[v[0]], x, args.train, v[1]))
    med = {v: statistics.median(t) for v, t in times.items()}
    what = "train step" if args.train else "forward"
    print(f"{what}, {args.batch}x3x{args.size}^2, {args.threads} thread(s), median of {args.rounds} rounds")
    for n in names:
        print(f"  {n:24s} old {med[n, True] * 1e3:9.1f} ms   new {med[n, False] * 1e3:9.1f} ms   "
              f"new/old {med[n, False] / med[n, True]:.3f}")
    for pair in args.pairs:
        a, b = pair.split(":")
        print(f"  {a}/{b}: old {med[a, True] / med[b, True]:.3f}   new {med[a, False] / med[b, False]:.3f}")


if __name__ == "__main__":
    main()
