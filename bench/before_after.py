"""Training steps and forwards of today's code against an older checkout, in one process
(issue 16, item 4: the recipe's throughput before and after the fast paths).

    git worktree add /tmp/moewir-before <commit>      # e.g. 6eeca3c, before issue 16's fast paths
    python bench/before_after.py --before /tmp/moewir-before/src [--models moewirnet-tiny restormer-tiny]
                                 [--threads 1] [--rounds 7] [--json bench/results/before_after.json]

The older package is imported under another name (its ``src/moewir`` copied to a temporary
folder as ``moewir_before``; the package uses only relative imports, so it runs as it did).
Both networks get the same weights (the state dict of today's network, loaded into the old
one; the fast paths changed no parameter). Timed with :func:`moewir.profiling.interleaved`,
old and new taking turns in every round:

* training step: the recipe's (``configs/default_weights.yml``) per-iteration work on one
  64-px patch per task of its five tasks (5 x 3 x 64 x 64): forward, composite loss, backward,
  grad clip 0.5, Adam step (data loading, EMA and logging left out: they did not change);
* forward: ``1 x 3 x 256 x 256`` in eval mode under ``torch.no_grad()``.

Prints new / old per model (median over rounds, lowest-highest round) and the largest output
difference of the two forwards (they must agree to float rounding).
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

import moewir
from moewir.profiling import interleaved, machine_description
from moewir.tables import markdown_table
from moewir.training.config import load_config, training_config
from moewir.training.losses import CompositeLoss
from moewir.training.optim import build_optimizer

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "default_weights.yml"


def import_before(src: Path):
    """The package under ``src/moewir`` imported as ``moewir_before``."""
    if not (src / "moewir" / "__init__.py").is_file():
        raise SystemExit(f"{src}: no moewir package in it (give the src/ folder of an older checkout)")
    work = Path(tempfile.mkdtemp(prefix="moewir-before-"))
    shutil.copytree(src / "moewir", work / "moewir_before")
    sys.path.insert(0, str(work))
    return importlib.import_module("moewir_before")


def training_step(net: torch.nn.Module, patch: int, tasks: int, seed: int = 0):
    cfg = training_config(load_config(RECIPE))
    criterion = CompositeLoss(**asdict(cfg.loss))
    optimizer = build_optimizer(net, cfg.optim)
    g = torch.Generator().manual_seed(seed)
    inputs, targets = torch.rand(tasks, 3, patch, patch, generator=g), torch.rand(tasks, 3, patch, patch, generator=g)
    net.train()

    def step() -> None:
        outputs = net(inputs).split(1)
        total = sum(criterion(o, t[None]) for o, t in zip(outputs, targets))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.train.grad_clip)
        optimizer.step()
    return step


def forward(net: torch.nn.Module, size: int):
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    net.eval()

    def call():
        with torch.no_grad():
            return net(x)
    return call


def compare(before, model: str, rounds: int, patch: int, size: int) -> dict:
    new = moewir.create_model(model)
    old = before.create_model(model)
    old.load_state_dict(new.state_dict())
    diff = float((forward(new, size)() - forward(old, size)()).abs().max())
    calls = {"train new": training_step(new, patch, 5), "train old": training_step(old, patch, 5),
             "fwd new": forward(new, size), "fwd old": forward(old, size)}
    seconds = interleaved(calls, rounds=rounds, warmup=1)
    out = {"model": model, "forward_max_abs_diff": diff}
    for kind in ("train", "fwd"):
        ratios = [n / o for n, o in zip(seconds[f"{kind} new"], seconds[f"{kind} old"])]
        out[kind] = {"new_over_old": round(statistics.median(ratios), 3),
                     "range": [round(min(ratios), 3), round(max(ratios), 3)],
                     "old_s": round(statistics.median(seconds[f"{kind} old"]), 4),
                     "new_s": round(statistics.median(seconds[f"{kind} new"]), 4)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="src/ folder of the older checkout")
    ap.add_argument("--models", nargs="+", default=["moewirnet-tiny", "restormer-tiny"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = import_before(args.before)
    rows = [compare(before, m, args.rounds, args.patch, args.size) for m in args.models]
    print(f"{machine_description()}, torch {torch.__version__}, {args.rounds} rounds; new / old (median, range)")
    print(markdown_table(
        ["model", f"training step 5×3×{args.patch}²", f"forward 1×3×{args.size}²", "old step s", "new step s", "forward max |diff|"],
        [[r["model"], f"{r['train']['new_over_old']:.2f} ({r['train']['range'][0]:.2f}-{r['train']['range'][1]:.2f})",
          f"{r['fwd']['new_over_old']:.2f} ({r['fwd']['range'][0]:.2f}-{r['fwd']['range'][1]:.2f})",
          r["train"]["old_s"], r["train"]["new_s"], f"{r['forward_max_abs_diff']:.1e}"] for r in rows]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "torch": torch.__version__,
                                         "before": str(args.before), "rounds": args.rounds, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
