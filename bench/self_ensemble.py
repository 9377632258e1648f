"""Self-ensemble (``--self-ensemble``) against one pass on the held-out photos of the model card.

    python bench/self_ensemble.py [--data data/v2] [--model NAME_OR_FILE ...] [--json FILE]

Every test pair of ``--data`` (256-px centre crops, as the model card's table), each model
restored once and as the mean of its eight flips and quarter turns; Y-PSNR per task, the mean,
and the seconds each took (both ways in one process, one after the other).
"""
from __future__ import annotations

import argparse
import sys
import time

import moewir
from moewir.data import PairedImages
from moewir.data.layouts import discover
from moewir.evaluation.report import AVERAGE, aggregate, write_json
from moewir.evaluation.runner import evaluate_tensors, fidelity_metrics
from moewir.tables import markdown_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/v2")
    parser.add_argument("--model", nargs="+", default=["restormer-tiny-matched", "moewirnet-tiny"])
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    tasks = discover(args.data, "test")
    if not tasks:
        sys.exit(f"{args.data}: no test pairs")
    metrics = fidelity_metrics()
    results = []
    for source in args.model:
        for ensemble in (False, True):
            restorer = moewir.load(source, device="cpu", self_ensemble=ensemble)
            start = time.perf_counter()
            rows = evaluate_tensors(restorer.restore_tensor, {t: PairedImages(p, 256) for t, p in tasks.items()},
                                    metrics)
            seconds = time.perf_counter() - start
            psnr = {r["task"]: r["psnr"] for r in aggregate(rows, metrics)}
            results.append({"model": source, "self_ensemble": ensemble, "seconds": round(seconds, 1),
                            "psnr": {t: round(v, 3) for t, v in psnr.items()}})
            print(f"{source} self_ensemble={ensemble}: {seconds:.0f} s", file=sys.stderr, flush=True)
    names = [*sorted(tasks), AVERAGE]
    print(markdown_table(["model", "self-ensemble", *names, "seconds"],
                         [[r["model"], "x8" if r["self_ensemble"] else "no", *(f"{r['psnr'][t]:.2f}" for t in names),
                           f"{r['seconds']:.0f}"] for r in results], align="ll" + "r" * (len(names) + 1)))
    if args.json:
        write_json(args.json, {"data": args.data, "center_crop": 256, "convention": "Y, crop 0", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
