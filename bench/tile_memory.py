"""Peak process memory of one untiled forward pass per megapixel, for ``Restorer(tile="auto")``.

    python bench/tile_memory.py [--models moewirnet-tiny moewirnet restormer-tiny-matched] [--sizes 256 512 768]
                                [--threads 1] [--json bench/results/tile_memory.json]

Each (model, size) runs in a fresh subprocess: build the model with random weights, run a 16x16
pass (kernels and allocator warmed up), read ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, run
one ``size x size`` pass under ``torch.no_grad`` in float32 and read ``ru_maxrss`` again. The
difference is the peak resident memory the pass added: activations, kernels' scratch and
allocator slack, everything tracked tensor storage (``moewir.profiling``) does not see. Reported
as bytes per pixel; ``moewir.inference.memory`` keeps a rounded-up copy. Rows of models not
measured in this run are kept from an existing ``--json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import resource, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
import moewir
model = moewir.create_model(sys.argv[1]).eval()
size = int(sys.argv[2])
with torch.no_grad():
    model(torch.rand(1, 3, 16, 16))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image = torch.rand(1, 3, size, size)
    t = time.perf_counter()
    model(image)
    seconds = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before * 1024, after * 1024, seconds)
"""


def measure(model: str, size: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(size), str(threads)], check=True,
                         capture_output=True, text=True).stdout.split()
    before, after, seconds = int(out[0]), int(out[1]), float(out[2])
    return {"model": model, "size": size, "baseline_mb": before / 2 ** 20, "peak_mb": after / 2 ** 20,
            "added_mb": (after - before) / 2 ** 20, "bytes_per_pixel": (after - before) / size ** 2,
            "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["moewirnet-tiny", "moewirnet", "restormer-tiny-matched"])
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 768])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "tile_memory.json"))
    args = p.parse_args()
    rows = []
    print("| model | size | baseline MB | peak MB | added MB | bytes / pixel | s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model in args.models:
        for size in args.sizes:
            r = measure(model, size, args.threads)
            rows.append(r)
            print(f"| {model} | {size}x{size} | {r['baseline_mb']:.0f} | {r['peak_mb']:.0f} | {r['added_mb']:.0f} "
                  f"| {r['bytes_per_pixel']:.0f} | {r['seconds']:.1f} |", flush=True)
    path = Path(args.json)
    kept = json.loads(path.read_text())["rows"] if path.is_file() else []
    rows = [r for r in kept if r["model"] not in args.models] + rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": platform.machine(), "python": platform.python_version(),
                   "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
