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
(seconds per megapixel against megapixels, log x axis).
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
from moewir.ops.tiling import tiled_forward
from moewir.profiling import peak_memory_bytes
from moewir.tables import markdown_header, markdown_row
from plots import line_plot

ROOT = Path(__file__).resolve().parent.parent


class Tiled(nn.Module):
    def __init__(self, model: nn.Module, tile: int | None, overlap: int):
        super().__init__()
        self.model, self.tile, self.overlap = model, tile, overlap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tiled_forward(self.model, x, self.tile, self.overlap)


HEADER = markdown_header(["model", "size", "MP", "tiled s", "s/MP", "tiled peak MB", "untiled s", "untiled peak MB"],
                         align="llrrrrrr")


def table_row(row: dict) -> str:
    def cell(key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"
    return markdown_row([row["model"], f"{row['width']}x{row['height']}", f"{row['megapixels']:.2f}",
                         f"{row['tiled_seconds']:.2f}", f"{row['tiled_seconds'] / row['megapixels']:.2f}",
                         cell("tiled_peak_mb", ".0f"), cell("untiled_seconds", ".2f"), cell("untiled_peak_mb", ".0f")])


def plot(path: str, rows: list[dict], machine: str, tile: int, overlap: int) -> None:
    curves: dict[str, list] = {}
    for row in rows:
        curves.setdefault(f"{row['model']} (tiled)", []).append(
            (row["megapixels"], row["tiled_seconds"] / row["megapixels"]))
    line_plot(path, curves, "megapixels (log)", "seconds per megapixel",
              f"Restore time against image size, tiles {tile} px, overlap {overlap}, float32, one pass\n{machine}",
              log_x=True)
    print(f"\nplot: {path}")


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
    ap.add_argument("--from-json", nargs="+", metavar="FILE",
                    help="measure nothing: tabulate and plot the --json files of earlier runs together")
    args = ap.parse_args()
    if args.from_json:
        runs = [json.loads(Path(f).read_text()) for f in args.from_json]
        print(f"{'; '.join(sorted({r['machine'] for r in runs}))}; tile {runs[0]['tile']}, overlap {runs[0]['overlap']}\n")
        print(HEADER)
        rows = [row for r in runs for row in r["rows"]]
        for row in rows:
            print(table_row(row))
        plot(args.plot, rows, runs[0]["machine"], runs[0]["tile"], runs[0]["overlap"])
        return 0
    device = resolve_device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    print(f"{where}, torch {torch.__version__}; tile {args.tile}, overlap {args.overlap}, float32\n")
    print(HEADER)
    rows = []
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
            print(table_row(row), flush=True)
    plot(args.plot, rows, f"{where}, torch {torch.__version__}", args.tile, args.overlap)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": f"{where}, torch {torch.__version__}", "tile": args.tile,
                                               "overlap": args.overlap, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
