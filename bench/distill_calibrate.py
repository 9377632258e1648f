"""Calibrate the pair checks of ``moewir distill`` on synthesized pairs.

    python bench/distill_calibrate.py [--photos DIR] [--per-photo 2] [--size 384]

For every rain type (drs, drd, nrs, nrd) it renders good pairs with ``moewir synth``'s
generators from clean photos (default: the embedded ones; ``--photos`` adds a folder), plants
bad ones (target shifted by 2-4 px, the target of another photo, rain streaks left in the
target, an almost clean input)
and prints the distribution of each pair statistic for good and planted pairs, with the
recall and false rejections of the thresholds in ``moewir.distill.pairs.PAIR_THRESHOLDS``,
and the accuracy of the built-in describer's day/night x streak/drop guess.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from moewir.data.io import read_image
from moewir.distill.features import BuiltinDescriber
from moewir.distill.pairs import PAIR_THRESHOLDS, pair_statistics
from moewir.synth.build import clean_photos, default_photos, fit_longer_side
from moewir.synth.tasks import synthesize
from moewir.tables import markdown_header, markdown_row, markdown_table

TYPES = {"drs": "rain", "drd": "raindrop", "nrs": "nightrain", "nrd": "nightraindrop"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", help="folder of extra clean photos")
    ap.add_argument("--per-photo", type=int, default=2)
    ap.add_argument("--size", type=int, default=384, help="longer side of the photos")
    ap.add_argument("--limit", type=int, default=40, help="at most this many photos")
    args = ap.parse_args()
    paths = default_photos() + (clean_photos(args.photos) if args.photos else [])
    paths = paths[: args.limit]
    photos = [fit_longer_side(read_image(p), args.size) for p in paths]
    describer = BuiltinDescriber()
    print(f"{len(photos)} photos at <= {args.size} px, {args.per_photo} samples per photo and type\n")
    print(markdown_header(["type", "statistic", "good: p50 / p95 / max", "planted: min / p5 / p50", "threshold",
                           "recall", "false rejections"], align="llllrrr"))
    guesses = {}
    for code, task in TYPES.items():
        good, shifted, swapped, rainy, clean = [], [], [], [], []
        guesses[code] = []
        for i, photo in enumerate(photos):
            for k in range(args.per_photo):
                seed = [i, k, len(code)]
                inp, tgt = synthesize(photo, task, seed, np.random.default_rng(seed).uniform(0.2, 1.0))[:2]
                good.append(pair_statistics(inp, tgt))
                guesses[code].append(describer.describe(inp).rain_type)
                rng = np.random.default_rng([*seed, 1])
                dy, dx = rng.integers(2, 5, 2) * rng.choice([-1, 1], 2)
                shifted.append(pair_statistics(inp, np.roll(tgt, (int(dy), int(dx)), (0, 1))))
                other = photos[(i + 1) % len(photos)]
                h, w = min(tgt.shape[0], other.shape[0]), min(tgt.shape[1], other.shape[1])
                swapped.append(pair_statistics(inp[:h, :w], other[:h, :w]))
                streaks = synthesize(tgt, "rain", [*seed, 2], float(rng.uniform(0.3, 0.7)))[0]
                rainy.append(pair_statistics(inp, streaks))
                clean.append(pair_statistics(np.clip(tgt + rng.normal(0, 0.003, tgt.shape), 0, 1).astype(np.float32), tgt))
        th = PAIR_THRESHOLDS
        rows = [("shift (px)", "shift", shifted, th["max_shift"], 1), ("ncc (other photo)", "ncc", swapped, th["min_ncc"], -1),
                ("rain_left", "rain_left", rainy, th["max_rain_left"][code], 1),
                ("psnr (dB)", "psnr", clean, th["max_psnr"], 1)]
        for label, key, planted, t, sign in rows:
            g = np.array([s[key] for s in good])
            p = np.array([s[key] for s in planted])
            if t is None:
                print(markdown_row([code, label, " / ".join(f"{v:.2f}" for v in np.percentile(g, [50, 95, 100])),
                                    " / ".join(f"{v:.2f}" for v in np.percentile(p, [0, 5, 50])), "off", "-", "-"]))
                continue
            if sign > 0:
                recall, false = np.mean(p > t), np.mean(g > t)
                gq, pq = np.percentile(g, [50, 95, 100]), np.percentile(p, [0, 5, 50])
            else:
                recall, false = np.mean(p < t), np.mean(g < t)
                gq, pq = np.percentile(g, [50, 5, 0]), np.percentile(p, [100, 95, 50])
            print(markdown_row([code, label, " / ".join(f"{v:.2f}" for v in gq), " / ".join(f"{v:.2f}" for v in pq),
                                t, f"{recall:.0%}", f"{false:.0%}"]))
    print("\n" + markdown_table(
        ["type", "describer guess correct", "day/night correct", "streak/drop correct"],
        [[code, f"{np.mean([x == code for x in g]):.0%}", f"{np.mean([x[0] == code[0] for x in g]):.0%}",
          f"{np.mean([x[2] == code[2] for x in g]):.0%}"] for code, g in guesses.items()], align="lrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
