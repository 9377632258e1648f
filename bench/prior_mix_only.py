"""How far the dark channel prior's mix opens when it is the only thing that learns (issue 17).

The network of ``configs/weights_v7.yml`` (``prior: dcp_mix``, from the v4 file), every weight
frozen except the mix ``M`` (``prior_mix``: ``I_hat = I + M (P - I) + H_refine``), trained on all
five tasks with the recipe's loss and data for 300 iterations (no EMA: validation scores the
mix as trained; no task classifier). With the features fixed, ``M`` is the best per-pixel
blend of the v4 network's output and the prior that those features can express: if it opens on
haze and stays shut elsewhere, the v7 fine-tune failed by competing with the rest of the
network, not because the features cannot tell hazy pixels apart.

    python bench/prior_mix_only.py [--set KEY=VALUE ...]     # e.g. --set model.name=moewirnet-tiny

The run is an ordinary experiment (``experiments/<name>``, its val_log.csv and checkpoints);
``--set`` takes the same overrides as ``moewir train``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from moewir.cli.options import parse_overrides
from moewir.training.config import load_config
from moewir.training.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "weights_v7.yml"
DEFAULTS = {"name": "prior_mix_only", "schedule.iterations": 300, "schedule.warmup": 10,
            "optim.lr_scale": {"prior_mix": 30}, "train.task_head": 0.0, "train.ema": 0.0,
            "val.every": 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    trainer = Trainer(load_config(CONFIG, {**DEFAULTS, **parse_overrides(args.set)}))
    for name, param in trainer.model.named_parameters():
        param.requires_grad_(name.startswith("prior_mix."))
    trainer.train()
    trainer.close()


if __name__ == "__main__":
    main()
