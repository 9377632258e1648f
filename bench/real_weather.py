"""Real fog, mist, haze and snow photographs restored side by side, scored without ground truth.

    python bench/real_weather.py --debian ROOT [--model LABEL=SOURCE ...] [--max-side 512]
        [--sheet docs/images/real_weather.png] [--json bench/results/real_weather.json]

The photos are ``REAL_WEATHER`` of ``bench/default_weights.py`` (Debian packages that install
offline; none of them is in any training set), downscaled to ``--max-side``. Each ``--model``
is a registered name (its shipped weights, or ``dcp``) or a weights file, as ``moewir.load``
takes. Per photo and model the table gives:

* **NIQE** (lower = closer to pristine natural-image statistics; no reference needed);
* **change**: the mean absolute difference to the input, in 8-bit levels (0: left untouched);
* **cast**: how far the mean colour moved off grey, ``|Δ mean RGB − mean(Δ mean RGB)|``, in
  8-bit levels (a warm cast on a grey scene shows as a large value; a uniform darkening as 0);
* **contrast**: the output's RMS contrast of luma over the input's (dehazing raises it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from moewir.data.io import atomic_file, read_image
from moewir.evaluation.figures import comparison_sheet, save_sheet, stack_sheets
from moewir.inference import load
from moewir.metrics.niqe import niqe
from moewir.ops.color import luma
from moewir.synth.build import fit_longer_side
from moewir.tables import markdown_header, markdown_row

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_weights import REAL_WEATHER, photo_stem  # noqa: E402


def scores(restored: np.ndarray, photo: np.ndarray) -> dict[str, float]:
    """NIQE, change, cast and contrast (see the module docstring) of ``restored`` against ``photo``."""
    shift = (restored.astype(np.float64) - photo).reshape(-1, 3).mean(axis=0) * 255
    def contrast(image):
        return float(luma(image, "bt601-full", channel_axis=-1).std())
    return {"niqe": niqe(restored), "change": float(np.abs(restored - photo).mean() * 255),
            "cast": float(np.linalg.norm(shift - shift.mean())),
            "contrast": contrast(restored) / max(contrast(photo), 1e-6)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debian", required=True, help="root where the packages of REAL_WEATHER are extracted")
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=SOURCE",
                    help="a model to compare (repeatable; default: shipped=moewirnet-tiny and dcp=dcp)")
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--sheet", default=None, help="write the side-by-side figure here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    models = [m.split("=", 1) if "=" in m else (m, m) for m in args.model or ["shipped=moewirnet-tiny", "dcp=dcp"]]
    missing = [str(Path(args.debian) / p) for p in REAL_WEATHER if not (Path(args.debian) / p).is_file()]
    if missing:
        sys.exit(f"{missing[0]}: missing ({len(missing)} of {len(REAL_WEATHER)} photos); "
                 f"extract the packages that hold them into --debian")
    restorers = {label: load(source, device="cpu", tile=512) for label, source in models}
    rows, sheets = [], []
    for path, weather in REAL_WEATHER.items():
        photo = np.round(fit_longer_side(read_image(Path(args.debian) / path), args.max_side) * 255) / 255
        panels = [(f"input ({weather}) NIQE {niqe(photo):.2f}", photo)]
        row = {"photo": path, "weather": weather, "input": {"niqe": niqe(photo)}}
        for label, restorer in restorers.items():
            restored = restorer.restore(photo)
            row[label] = scores(restored, photo)
            panels.append((f"{label} NIQE {row[label]['niqe']:.2f}", restored))
        rows.append(row)
        sheets.append(comparison_sheet(panels, inset=None, panel_width=300))
        print(f"{photo_stem(path)}: " + ", ".join(f"{k} {row[k]['niqe']:.2f}" for k in ["input", *restorers]),
              flush=True)
    labels = list(restorers)
    print(markdown_header(["photo", "weather", "input NIQE", *(f"{k} NIQE / change / cast / contrast" for k in labels)],
                          align="llr" + "r" * len(labels)))
    for row in rows:
        print(markdown_row([photo_stem(row["photo"]), row["weather"], f"{row['input']['niqe']:.2f}",
                            *(f"{row[k]['niqe']:.2f} / {row[k]['change']:.1f} / {row[k]['cast']:.1f} / "
                              f"{row[k]['contrast']:.2f}" for k in labels)]))
    mean = {k: {m: statistics.fmean(r[k][m] for r in rows) for m in rows[0][k]} for k in ["input", *labels]}
    print(markdown_row(["mean", "", f"{mean['input']['niqe']:.2f}",
                        *(f"{mean[k]['niqe']:.2f} / {mean[k]['change']:.1f} / {mean[k]['cast']:.1f} / "
                          f"{mean[k]['contrast']:.2f}" for k in labels)]))
    if args.sheet:
        save_sheet(args.sheet, stack_sheets(sheets))
    if args.json:
        with atomic_file(args.json, "w") as f:
            json.dump({"max_side": args.max_side, "models": dict(models), "rows": rows, "mean": mean}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
