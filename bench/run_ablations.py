"""Run the four ablation studies at a small CPU budget on synthesized data; write one
Markdown file with every table and the budget used.

    python bench/run_ablations.py [--iterations 600] [--studies routing experts weighting topk]
                                  [--seeds 3] [--jobs 2] [--photos FOLDER] [--data DIR]
                                  [--out docs/ablations_results.md] [--device auto]

The data is made by ``moewir synth`` from ``--photos`` (a folder of clean photos; default the
embedded ones) for haze, rain and snow: ``--per-image`` samples per photo and task, longer side
192, a quarter of the photos held out. The base experiment is ``configs/tiny_cpu_synthetic.yml``
with batch 1 per task, ``zero_init_output`` (every variant starts as the identity, so the
budget at which all of them beat the input is small) and validation on every held-out pair
every ``--val-every`` iterations. Finished runs are reused, so an interrupted run continues where
it stopped. ``--seeds N`` trains every variant with seeds 0..N-1 in ``--jobs`` processes of one
thread each (``moewir ablate --seeds``).
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from moewir.data import PairedImages, discover
from moewir.metrics import psnr, ssim
from moewir.synth.build import build_dataset
from moewir.training.ablation import STUDIES, results_table, run_study
from moewir.training.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--studies", nargs="+", default=["routing", "weighting", "experts", "topk"],
                        choices=list(STUDIES))
    parser.add_argument("--photos", default=None, help="folder of clean photos (default: the embedded ones)")
    parser.add_argument("--per-image", type=int, default=8, help="samples per photo and task")
    parser.add_argument("--data", default="experiments/ablation_data")
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "docs" / "ablations_results.md"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (1: the config's seed)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes with --seeds")
    args = parser.parse_args()

    data = Path(args.data)
    if not (data / "manifest.json").is_file():
        clean = sorted(p for p in Path(args.photos).iterdir() if p.is_file()) if args.photos else None
        build_dataset(data, ["haze", "rain", "snow"], clean, per_image=args.per_image, seed=0, split=0.75,
                      max_side=192)
    config = load_config(ROOT / "configs" / "tiny_cpu_synthetic.yml", {
        "datasets.train.root": str(data), "datasets.train.batch_per_task": 1, "datasets.val.max_per_task": None,
        "model.zero_init_output": True, "device": args.device, "log.tensorboard": False,
        "val.every": args.val_every, "log.checkpoint_every": 100})
    where = (torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu"
             else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    seeds = f"seeds 0-{args.seeds - 1}" if args.seeds > 1 else f"seed {config['seed']}"
    sections = [f"Measured on {where}, torch {torch.__version__}; model `{config['model']['name']}`, "
                f"{args.iterations} iterations per variant, patch {config['datasets']['train']['patch_size']}, "
                f"batch 1 per task, Adam lr {config['optim']['lr']} (warm-up {config['schedule']['warmup']}, cosine), "
                f"{seeds}; validation on every held-out pair ({config['datasets']['val']['center_crop']}-px "
                "centre crops, EMA weights)."]
    sections.append(_input_row(config))
    for study in args.studies:
        rows = run_study(config, study, args.iterations, progress=False,
                         seeds=list(range(args.seeds)) if args.seeds > 1 else None, jobs=args.jobs)
        sections.append(results_table(rows, study, config) +
                        f"\n\n(training wall time per variant: {min(r['seconds'] for r in rows):.0f}-"
                        f"{max(r['seconds'] for r in rows):.0f} s)")
        Path(args.out).write_text("\n\n".join(sections) + "\n")
        print(sections[-1], flush=True)


def _input_row(config: dict) -> str:
    """PSNR / SSIM of the degraded inputs themselves on the validation crops (no restoration)."""
    val = config["datasets"]["val"]
    cells = []
    for task, pairs in sorted(discover(config["datasets"]["train"]["root"], val["split"]).items()):
        items = list(PairedImages(pairs[:val["max_per_task"]], val["center_crop"]))
        p = sum(psnr(i["input"], i["target"], y_channel=True).item() for i in items) / len(items)
        s = sum(ssim(i["input"], i["target"], y_channel=True).item() for i in items) / len(items)
        cells.append(f"{task} {p:.2f} dB / {s:.4f}")
    return "Reference, the degraded inputs without restoration (Y): " + ", ".join(cells) + "."


if __name__ == "__main__":
    main()
