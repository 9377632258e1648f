"""Old-vs-new forward (and training-step) timing of the networks, in one process (issue 16).

"old" runs every changed module with its reference forward (tests/fast_paths_reference.py,
the code before the fast paths), "new" the current code, on the same model and input.
Rounds are interleaved (one timing of every variant per round) and the median is reported, so
that a busy machine slows every variant alike.

    python bench/fast_paths_ratio.py --pairs moewirnet:restormer moewirnet-tiny:restormer-tiny \
        --size 256 --threads 2 --rounds 7
    nice -n 15 env OMP_NUM_THREADS=1 python bench/fast_paths_ratio.py --clock cpu   # a busy machine
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(model, x, train, old, clock):
    if old:
        with reference_forwards():
            t = clock()
            _step(model, x, train)
            return clock() - t
    t = clock()
    _step(model, x, train)
    return clock() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["moewirnet:restormer", "moewirnet-tiny:restormer-tiny"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train", action="store_true", help="time forward + backward (train mode)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="cpu: the process's CPU time (steadier on a busy machine; with 1 thread only)")
    args = parser.parse_args(argv)
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = sorted({n for pair in args.pairs for n in pair.split(":")})
    models = {n: moewir.create_model(n).train(args.train) for n in names}
    x = torch.rand(args.batch, 3, args.size, args.size)
    variants = [(n, old) for n in names for old in (True, False)]
    for n, old in variants:  # warm-up
        _timed(models[n], x, args.train, old, clock)
    times = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            times[v].append(_timed(models[v[0]], x, args.train, v[1], clock))
    med = {v: statistics.median(t) for v, t in times.items()}
    what = "train step" if args.train else "forward"
    print(f"{what}, {args.batch}x3x{args.size}^2, {args.threads} thread(s), {args.clock} time, "
          f"median of {args.rounds} rounds")
    for n in names:
        print(f"  {n:24s} old {med[n, True] * 1e3:9.1f} ms   new {med[n, False] * 1e3:9.1f} ms   "
              f"new/old {med[n, False] / med[n, True]:.3f}")
    for pair in args.pairs:
        a, b = pair.split(":")
        print(f"  {a}/{b}: old {med[a, True] / med[b, True]:.3f}   new {med[a, False] / med[b, False]:.3f}")


if __name__ == "__main__":
    main()
