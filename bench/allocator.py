"""glibc's allocator against ``moewir.devices.keep_freed_memory`` for a large restore. glibc's
default (an mmap threshold that adapts as blocks are freed) cannot be restored once ``mallopt``
has been called, so each measurement is a fresh process (the same seeded network and image,
one warm-up restore, then one timed): the rounds alternate the two settings (reversed order on
odd rounds) and the ratio is taken within each round, median over rounds. Each process also
reports its peak resident memory. Prints one Markdown table (and JSON with --json FILE).

    python bench/allocator.py [--size 1024] [--tile 0] [--rounds 3] [--threads 2] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import moewir
from moewir.devices import keep_freed_memory
from moewir.ops.tiling import tiled_forward
from moewir.profiling import machine_description
from moewir.tables import markdown_table


def restore_call(size: int, tile: int | None):
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny").eval()
    image = torch.rand(1, 3, size, size)
    return lambda: tiled_forward(net, image, tile=tile)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--tile", type=int, default=0, help="tile side (0: untiled)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--peak", choices=("glibc", "keep"), help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.peak:  # one measurement in this fresh process
        if args.peak == "keep":
            keep_freed_memory()
        call = restore_call(args.size, args.tile or None)
        call()
        start = time.perf_counter()
        call()
        print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return {}
    seconds, peak = {"glibc": [], "keep": []}, {"glibc": [], "keep": []}
    for round_ in range(args.rounds):
        for setting in ("glibc", "keep") if round_ % 2 == 0 else ("keep", "glibc"):
            out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--tile", str(args.tile),
                                  "--threads", str(args.threads), "--peak", setting],
                                 capture_output=True, text=True, check=True).stdout.split()
            seconds[setting].append(float(out[-2]))
            peak[setting].append(float(out[-1]))
    ratios = [k / g for k, g in zip(seconds["keep"], seconds["glibc"])]
    peak = {s: max(v) for s, v in peak.items()}
    result = dict(machine=machine_description(), size=args.size, tile=args.tile, threads=args.threads,
                  seconds=seconds, ratio=statistics.median(ratios), ratio_low=min(ratios), ratio_high=max(ratios),
                  peak_mib=peak)
    what = f"moewirnet-tiny restore of a {args.size}² image, " + (f"{args.tile}-px tiles" if args.tile else "untiled")
    print(f"machine: {result['machine']}; {args.rounds} alternating rounds of fresh processes\n")
    print(markdown_table(["measurement", "glibc default", "keep_freed_memory", "ratio (min–max)"], [
        [f"{what}, s (median)", f"{statistics.median(seconds['glibc']):.1f}", f"{statistics.median(seconds['keep']):.1f}",
         f"{result['ratio']:.2f} ({result['ratio_low']:.2f}–{result['ratio_high']:.2f})"],
        ["peak resident memory, MiB (highest process)", f"{peak['glibc']:.0f}", f"{peak['keep']:.0f}",
         f"{peak['keep'] / peak['glibc']:.2f}"]], align="lrrr"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
