"""``moewir train CONFIG.yml [--set key=value ...] [--resume]``."""
from __future__ import annotations

import argparse

from ..tables import markdown_table
from ..training.config import load_config
from .options import add_set_option, parse_overrides

HELP = "train a model from a YAML experiment file (multi-GPU: launch with torchrun)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help=HELP, description=HELP + ". Writes experiments/<name>/ "
                              "(checkpoints, logs, config, summary); see docs/training.md.")
    p.add_argument("config", metavar="CONFIG.yml", help="experiment file (configs/ has examples)")
    add_set_option(p, "config (dotted keys, e.g. --set optim.lr=1e-4 --set schedule.iterations=1000)")
    p.add_argument("--resume", action="store_true", help="continue from the experiment's latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..training.trainer import Trainer

    config = load_config(args.config, parse_overrides(args.set))
    trainer = Trainer(config, resume=args.resume, progress=not args.no_progress)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    if trainer.dist.main:
        print(f"\n{summary['experiment']}: {summary['iterations']} iterations in {summary['seconds']:.0f} s "
              f"(weighting {summary['weighting']})\n")
        rows = []
        for task in summary["tasks"]:
            val = summary["validation"].get(task, {})
            rows.append([task, f"{summary['final_losses'].get(task, float('nan')):.4f}",
                         f"{summary['final_weights'].get(task, float('nan')):.3f}",
                         f"{val.get('psnr', float('nan')):.2f}", f"{val.get('ssim', float('nan')):.4f}"])
        print(markdown_table(["task", "final loss", "final weight", "val PSNR (dB)", "val SSIM"], rows, align="lrrrr"))
        best = summary["best"]
        if best["iteration"] is not None:
            print(f"\nbest mean validation PSNR {best['psnr']:.2f} dB at iteration {best['iteration']}")
    return 0
