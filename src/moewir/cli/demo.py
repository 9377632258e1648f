"""``moewir demo [-o DIR]``: restore the bundled sample photos with the shipped weights."""
from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

from ..models import DEFAULT_MODEL
from ..tables import markdown_header, markdown_row
from .options import add_device_option, add_weights_option

HELP = "restore the bundled rainy, hazy, snowy and night-rain samples and write a before/after sheet"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help=HELP, description=HELP + " (the shipped weights; no download).")
    p.add_argument("-o", "--output", default="demo_out", metavar="DIR", help="output folder (default demo_out)")
    add_weights_option(p, f"other weights (default: shipped {DEFAULT_MODEL})")
    add_device_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data import read_image, write_image
    from ..evaluation import comparison_sheet, save_sheet, stack_sheets
    from ..inference import load

    restorer = load(args.weights or DEFAULT_MODEL, device=args.device)
    samples = sorted(p for p in resources.files("moewir").joinpath("samples").iterdir() if p.name.endswith(".jpg"))
    out = Path(args.output)
    sheets = []
    print(f"{restorer.name} on {restorer.device}\n\n" + markdown_header(["sample", "size", "seconds"], align="llr"))
    for sample in samples:
        image = read_image(Path(str(sample)))
        started = time.perf_counter()
        restored = restorer.restore(image)
        seconds = time.perf_counter() - started
        write_image(out / sample.name, restored)
        task = sample.name.split("_")[0]
        sheets.append(comparison_sheet([(f"input ({task})", image), (f"restored ({restorer.name})", restored)],
                                       inset=None, panel_width=400))
        print(markdown_row([sample.name, f"{image.shape[1]}x{image.shape[0]}", f"{seconds:.2f}"]))
    save_sheet(out / "before_after.png", stack_sheets(sheets))
    print(f"\nrestored images and the before/after sheet: {out / 'before_after.png'}")
    return 0
