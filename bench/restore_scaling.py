"""Restore time and peak memory as the image grows, with and without tiling, up to 4K.

    python bench/restore_scaling.py [--models moewirnet-tiny moewirnet] [--tile 512 --overlap 32]
                                    [--sizes 256x256 512x512 1024x1024 1920x1080 3840x2160]
                                    [--untiled-max 1024] [--device auto] [--json FILE]

One forward pass per size (after a warm-up at 256x256), under ``torch.no_grad``, in float32:
the time includes the tiling arithmetic. Peak memory is what the pass allocates above what was
allocated before it (``moewir.profiling.peak_memory_bytes``: CUDA's allocator peak, or the
peak of live tensor storage on a CPU). Untiled passes are run only up to ``--untiled-max``
pixels on a side (attention memory grows fast), and peak memory (a second pass) only up to
``--peak-max`` megapixels: a tiled pass holds one tile's activations plus the output. Writes ``docs/images/restore_scaling.png``
(seconds against megapixels, log x axis).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import moewir
from moewir.devices import resolve_device
from moewir.inference.tiling import tiled_forward
from moewir.profiling import peak_memory_bytes
from plots import line_plot

ROOT = Path(__file__).resolve().parent.parent


class Tiled(nn.Module):
    def __init__(self, model: nn.Module, tile: int | None, overlap: int):
        super().__init__()
        self.model, self.tile, self.overlap = model, tile, overlap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tiled_forward(self.model, x, self.tile, self.overlap)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["moewirnet-tiny", "moewirnet"])
    ap.add_argument("--sizes", nargs="+", default=["256x256", "512x512", "1024x1024", "1920x1080", "3840x2160"])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--untiled-max", type=int, default=1024)
    ap.add_argument("--peak-max", type=float, default=2.1, metavar="MP",
                    help="measure peak memory (a second pass) only up to this many megapixels")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "images" / "restore_scaling.png"))
    args = ap.parse_args()
    device = resolve_device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    print(f"{where}, torch {torch.__version__}; tile {args.tile}, overlap {args.overlap}, float32\n")
    print("| model | size | MP | tiled s | s/MP | tiled peak MB | untiled s | untiled peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    rows, curves = [], {}
    for name in args.models:
        model = moewir.create_model(name).eval().to(device)
        with torch.no_grad():
            model(torch.rand(1, 3, 256, 256, device=device))  # warm-up
        for size in args.sizes:
            w, h = (int(v) for v in size.lower().split("x"))
            x = torch.rand(1, 3, h, w, device=device)
            row = {"model": name, "width": w, "height": h, "megapixels": w * h / 1e6}
            modes = [("tiled", args.tile)] + ([("untiled", None)] if max(w, h) <= args.untiled_max else [])
            for mode, tile in modes:
                runner = Tiled(model, tile, args.overlap)
                _sync(device)
                start = time.perf_counter()
                with torch.no_grad():
                    runner(x)
                _sync(device)
                row[f"{mode}_seconds"] = time.perf_counter() - start
                if row["megapixels"] <= args.peak_max:
                    row[f"{mode}_peak_mb"] = peak_memory_bytes(runner, x) / 2 ** 20
            rows.append(row)
            curves.setdefault(f"{name} (tile {args.tile})", []).append((row["megapixels"], row["tiled_seconds"]))
            def cell(key: str, fmt: str) -> str:
                return format(row[key], fmt) if key in row else "-"
            print(f"| {name} | {w}x{h} | {row['megapixels']:.2f} | {row['tiled_seconds']:.2f} | "
                  f"{row['tiled_seconds'] / row['megapixels']:.2f} | {cell('tiled_peak_mb', '.0f')} | "
                  f"{cell('untiled_seconds', '.2f')} | {cell('untiled_peak_mb', '.0f')} |", flush=True)
    line_plot(args.plot, curves, "megapixels (log)", "seconds per image",
              f"Restore time against image size, tiled {args.tile}/{args.overlap}, float32\n{where}, "
              f"torch {torch.__version__}", log_x=True)
    print(f"\nplot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
