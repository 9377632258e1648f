"""Params, GMACs, latency and peak memory of every registered model at 256x256, and of
moewirnet as the image grows. Prints Markdown tables (and JSON with --json FILE).

    python bench/profile_models.py [--device auto] [--runs 5] [--rounds 3] [--sizes 256 512 1024]

Latency is the median over ``rounds`` rounds of each model's median of ``runs`` passes; the
rounds interleave the models so that machine noise hits them alike.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

import moewir
from moewir.devices import resolve_device
from moewir.profiling import machine_description as machine
from moewir.profiling import profile
from moewir.tables import markdown_header, markdown_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="moewirnet", help="model for the growth table")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device: {machine(device)}; torch {torch.__version__}\n")

    models = {name: moewir.create_model(name) for name in moewir.list_models()}
    results: dict[str, list] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            results[name].append(profile(model, args.size, runs=args.runs, warmup=1, device=device,
                                         count=not results[name]))
    print(f"## All models at {args.size}x{args.size}\n")
    print(markdown_header(["model", "params (M)", "GMACs", "latency (ms)", "peak memory (MB)"], align="lrrrr"))
    table = []
    for name, rs in results.items():
        row = dict(model=name, params_m=rs[0].params / 1e6, gmacs=rs[0].gmacs,
                   latency_ms=statistics.median(r.latency_ms for r in rs), peak_memory_mb=rs[0].peak_memory_mb)
        table.append(row)
        print(markdown_row([name, f"{row['params_m']:.2f}", f"{row['gmacs']:.2f}", f"{row['latency_ms']:.0f}",
                            f"{row['peak_memory_mb']:.0f}"]))

    print(f"\n## {args.model} as the image grows (untiled)\n")
    print(markdown_header(["input", "GMACs", "latency (ms)", "peak memory (MB)", "memory / pixel (bytes)"],
                          align="lrrrr"))
    growth = []
    model = models[args.model]
    for size in args.sizes:
        r = profile(model, size, runs=max(1, args.runs // 2), warmup=1, device=device)
        growth.append(dict(size=size, gmacs=r.gmacs, latency_ms=r.latency_ms, peak_memory_mb=r.peak_memory_mb))
        print(markdown_row([f"{size}x{size}", f"{r.gmacs:.1f}", f"{r.latency_ms:.0f}", f"{r.peak_memory_mb:.0f}",
                            f"{r.peak_memory_mb * 2 ** 20 / size ** 2:.0f}"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=machine(device), torch=torch.__version__, models=table, growth=growth), f, indent=2)


if __name__ == "__main__":
    main()
