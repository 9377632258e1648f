"""How much of a network's error is a global colour offset, per task.

    python bench/offset_error.py WEIGHTS.safetensors [...] [--data data/default] [--crop 256] [--limit 6]

(``WEIGHTS`` may also be a registered model name, as ``moewir.load`` takes: its shipped weights, or
``dcp``, which needs none.)

For the held-out pairs of each task (centre crops, as in training validation) prints the PSNR
on Y of the input, of the restored output, and of the output with its per-image, per-channel
mean difference to the target removed, plus that signed offset (RGB, in [0, 1] units). When
the third column is far above the second, the network mostly shifts the whole image's colour
(e.g. darkens raindrop photos as it would dehaze), rather than failing on the weather itself.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from moewir.data import discover
from moewir.data.datasets import PairedImages
from moewir.inference import load
from moewir.metrics import psnr
from moewir.tables import markdown_header, markdown_row


def offsets(weights: str, data: str, crop: int, limit: int) -> dict[str, dict[str, float]]:
    net = load(weights, device="cpu", tile=None).network  # a weights file or a registered name, in eval mode
    out: dict[str, dict[str, float]] = {}
    for task, pairs in sorted(discover(data, "test").items()):
        rows = []
        for item in PairedImages(pairs[:limit], crop):
            x, y = item["input"][None], item["target"][None]
            with torch.no_grad():
                restored = net(x).clamp(0, 1)
            shift = (restored - y).mean(dim=(2, 3), keepdim=True)
            rows.append({"input": psnr(x, y, y_channel=True).item(),
                         "output": psnr(restored, y, y_channel=True).item(),
                         "without offset": psnr((restored - shift).clamp(0, 1), y, y_channel=True).item(),
                         "offset R": float(shift[0, 0]), "offset G": float(shift[0, 1]), "offset B": float(shift[0, 2])})
        out[task] = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--limit", type=int, default=6, help="pairs per task (default: 6, as validation)")
    args = ap.parse_args()
    print(markdown_header(["weights", "task", "input PSNR", "output PSNR", "output PSNR, offset removed",
                           "mean offset R, G, B"], align="llrrrl"))
    for weights in args.weights:
        for task, r in offsets(weights, args.data, args.crop, args.limit).items():
            print(markdown_row([weights, task, f"{r['input']:.2f}", f"{r['output']:.2f}", f"{r['without offset']:.2f}",
                                f"{r['offset R']:+.3f}, {r['offset G']:+.3f}, {r['offset B']:+.3f}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
