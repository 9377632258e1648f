"""Write docs/images/synth_contact_sheet.jpg: one row per embedded photo, clean target then
every synthesis task at severity 0.7 (seed 0).

    python docs/scripts/contact_sheet.py [--out docs/images/synth_contact_sheet.jpg]
"""
import argparse

import numpy as np
from PIL import Image, ImageDraw

from moewir.data import read_image, write_image
from moewir.synth import TASKS, default_photos, synthesize
from moewir.synth.build import fit_longer_side

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="docs/images/synth_contact_sheet.jpg")
parser.add_argument("--cell", type=int, default=200)
args = parser.parse_args()

tasks = list(TASKS)
cell = args.cell
rows = []
for i, photo in enumerate(default_photos()):
    clean = read_image(photo)
    h, w = clean.shape[:2]
    s = min(h, w)
    clean = fit_longer_side(clean[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], cell)
    tiles = [clean]
    for task in tasks:
        degraded, target, _ = synthesize(clean, task, np.random.default_rng([0, i]), 0.7)
        tiles.append(degraded)
    rows.append(np.concatenate(tiles, axis=1))
sheet = np.concatenate(rows, axis=0)
header = Image.new("RGB", (sheet.shape[1], 24), "white")
draw = ImageDraw.Draw(header)
for j, label in enumerate(["clean"] + tasks):
    draw.text((j * cell + 6, 6), label, fill="black")
full = np.concatenate([np.asarray(header, dtype=np.float32) / 255, sheet], axis=0)
write_image(args.out, full, quality=88)
print(f"wrote {args.out} ({full.shape[1]}x{full.shape[0]})")
