"""How hard the recipe's gradient clip bites: the gradient norm of trained checkpoints.

    python bench/grad_norms.py EXPERIMENT [...] [--batches 20] [--clip 0.5] [--data data/default]
                               [--json FILE]

For every checkpoint of each experiment folder (``checkpoints/net_<iteration>.safetensors``, the
raw weights the optimiser steps, not the EMA), computes the gradient norm of the recipe's loss
(``configs/default_weights.yml``: composite loss, equal weights, one 64-px training patch per
task) over ``--batches`` batches of ``data/default``'s training split, the same batches for
every checkpoint. Prints the median norm and the factor ``min(1, clip / norm)`` by which
``torch.nn.utils.clip_grad_norm_`` scales that step, and per MoE module the share of the
module's gradient norm that reaches each expert. Two networks trained with the same clip are
treated alike when their factors are alike; with Adam, a uniform factor matters little, a
factor that swings from step to step changes the effective step size.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from moewir.data import discover
from moewir.data.datasets import MultiTaskLoader
from moewir.models import build_from_weights
from moewir.tables import markdown_table
from moewir.training.config import TrainDataConfig, load_config, training_config
from moewir.training.losses import CompositeLoss

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "default_weights.yml"


def recipe_batches(train: TrainDataConfig, data: str, count: int, seed: int = 0
                   ) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    loader = MultiTaskLoader(discover(data, "train"), train.patch_size, train.batch_per_task, seed=seed)
    return [next(loader) for _ in range(count)]


def gradient_norms(weights: Path, batches, criterion) -> dict[str, list[float]]:
    """Per batch: the total gradient norm and, per expert name, its share of its module's norm."""
    net = build_from_weights(weights).train()
    names = getattr(getattr(net, "config", None), "experts", ())
    out: dict[str, list[float]] = {"total": []}
    for batch in batches:
        net.zero_grad(set_to_none=True)
        tasks = sorted(batch)
        inputs = torch.cat([batch[t][0] for t in tasks])
        outputs = net(inputs).split([len(batch[t][0]) for t in tasks])
        sum(criterion(o, batch[t][1]) for o, t in zip(outputs, tasks)).backward()
        grads = {n: p.grad.norm() ** 2 for n, p in net.named_parameters() if p.grad is not None}
        out["total"].append(float(sum(grads.values()) ** 0.5))
        modules: dict[str, float] = {}
        experts: dict[tuple[str, str], float] = {}
        for name, sq in grads.items():
            match = re.match(r"(.*\.moe)\.(experts\.(\d+))?", name)
            if match:
                modules[match.group(1)] = modules.get(match.group(1), 0.0) + float(sq)
                if match.group(2):
                    key = (match.group(1), match.group(3))
                    experts[key] = experts.get(key, 0.0) + float(sq)
        for (module, index), sq in experts.items():
            out.setdefault(f"share/{names[int(index)]}", []).append((sq / modules[module]) ** 0.5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="+", type=Path)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--clip", type=float, default=0.5)
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    recipe = training_config(load_config(RECIPE))
    batches = recipe_batches(recipe.datasets.train, args.data, args.batches)
    criterion = CompositeLoss(**asdict(recipe.loss))
    rows, results = [], {}
    for folder in args.experiments:
        checkpoints = sorted(folder.glob("checkpoints/net_[0-9]*.safetensors"),
                             key=lambda p: int(p.stem.split("_")[-1]))
        for weights in checkpoints:
            norms = gradient_norms(weights, batches, criterion)
            total = norms["total"]
            factors = [min(1.0, args.clip / n) for n in total]
            shares = {k.split("/")[1]: statistics.median(v) for k, v in norms.items() if k.startswith("share/")}
            results[str(weights)] = {"norms": total, "clip_factors": factors, "expert_shares": shares}
            rows.append([folder.name, weights.stem.split("_")[-1], f"{statistics.median(total):.3f}",
                         f"{min(total):.3f}-{max(total):.3f}", f"{statistics.median(factors):.3f}",
                         f"{min(factors):.3f}-{max(factors):.3f}",
                         ", ".join(f"{k} {v:.2f}" for k, v in shares.items()) or "-"])
            print(rows[-1], flush=True)
    print(markdown_table(["experiment", "iteration", "grad norm (median)", "range", "clip factor (median)",
                          "range", "expert share of its module's grad (median)"], rows))
    if args.json:
        args.json.write_text(json.dumps({"clip": args.clip, "batches": args.batches, "checkpoints": results},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
