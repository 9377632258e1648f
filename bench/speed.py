"""Speed ratios of issue 16: moewirnet against Restormer, tiled against untiled, and training
iterations per second of the shipped-weights recipe. Prints one Markdown table with a goal and
pass / fail per ratio (and JSON with --json FILE).

    python bench/speed.py [--threads 2] [--rounds 5] [--runs 3] [--json FILE] [--quick]

Everything is measured in this one process with :func:`moewir.profiling.interleaved`: every
round times each call in turn (reversed order on odd rounds), a ratio is taken within each
round, and the table gives the median over rounds with the lowest and highest round. Never
compare absolute times from separate runs; the ratios are what this script is for.

* forward: ``1 x 3 x 256 x 256``, eval mode, ``torch.no_grad()``;
* training step: ``3 x 64 x 64`` random patches, forward + the composite loss + backward + one
  Adam step (the loss and optimiser of ``configs/default_weights.yml``);
* tiled restore: a 1024² image through ``moewir.ops.tiling.tiled_forward`` with 512-px tiles
  overlapping by 32 px (``moewir restore``'s default) against one untiled pass (one call per
  round: a call takes seconds);
* recipe iterations per second: ``Trainer.step`` of a real :class:`Trainer` built from the
  recipe's config (the five tasks of ``data/default`` at one 64-px patch each, composite loss,
  equal weighting, grad clip 0.5, Adam, warm-up + cosine schedule, EMA) on a throwaway
  dataset, fed random patches (data loading is not timed).

``--quick`` shrinks every size (16-128 px) so the tests run it in seconds; its numbers mean
nothing. A full run takes about 8 minutes on 2 free CPU cores (estimated from the per-call
times in docs/benchmarks.md: the two 1024² restores are half of it).
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import moewir
from moewir.ops.tiling import tiled_forward
from moewir.profiling import interleaved, machine_description
from moewir.tables import markdown_table
from moewir.training.config import load_config, training_config
from moewir.training.losses import CompositeLoss
from moewir.training.optim import build_optimizer
from moewir.data import write_image
from moewir.training.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_weights import TASKS  # noqa: E402  the five tasks of data/default

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "default_weights.yml"


@dataclass(frozen=True)
class Sizes:
    forward: int = 256         # moewirnet / restormer and the tiny pair
    big_forward: int = 256     # moewirnet / restormer (the paper-size pair)
    train_patch: int = 64      # plain training step: 3 patches of this side
    train_batch: int = 3
    image: int = 1024          # tiled vs untiled
    tile: int = 512
    overlap: int = 32
    recipe_patch: int | None = None  # None: the recipe's datasets.train.patch_size


FULL = Sizes()
QUICK = Sizes(forward=32, big_forward=16, train_patch=16, image=128, tile=64, overlap=16, recipe_patch=16)


# --- the shipped-weights recipe's training step: a real Trainer on throwaway data --------------
def build_recipe(model_name: str, device: torch.device, patch: int | None = None, config: Path = RECIPE
                 ) -> tuple[Trainer, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """A :class:`Trainer` of ``config`` with ``model.name`` replaced, trained on a throwaway
    dataset (one random pair per task of ``data/default``, in a temporary folder removed at exit),
    and one batch of random patches for every task, on the CPU as the loader gives them.
    ``trainer.step(batch)`` is one iteration; ``trainer.net`` may be replaced (e.g. by a
    ``DistributedDataParallel`` around ``trainer.model``)."""
    work = Path(tempfile.mkdtemp(prefix="moewir-speed-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    raw = load_config(config)
    side = patch or raw["datasets"]["train"]["patch_size"]
    rng = np.random.default_rng(0)
    for task in TASKS:
        for kind in ("input", "target"):
            write_image(work / "data" / "train" / task.upper() / kind / "0.png", rng.uniform(0, 1, (side, side, 3)))
    trainer = Trainer(load_config(config, {
        "model.name": model_name, "device": str(device), "experiments_root": str(work / "experiments"),
        "datasets.train.root": str(work / "data"), "datasets.train.patch_size": side,
        "datasets.train.workers": 0, "log.tensorboard": False}), progress=False)
    per_task = trainer.config.datasets.train.batch_per_task
    shapes = {t: (per_task if isinstance(per_task, int) else per_task[t], 3, side, side) for t in trainer.tasks}
    return trainer, {t: (torch.rand(shape), torch.rand(shape)) for t, shape in shapes.items()}


def plain_step(model: torch.nn.Module, batch: int, patch: int, device: torch.device, config: Path = RECIPE
               ) -> Callable[[], None]:
    """Forward + composite loss + backward + one optimiser step on ``batch`` random patches,
    with the recipe's loss and optimiser (Adam 1e-3)."""
    cfg = training_config(load_config(config))
    criterion = CompositeLoss(**asdict(cfg.loss))
    optimizer = build_optimizer(model, cfg.optim)
    inputs, targets = torch.rand(batch, 3, patch, patch, device=device), torch.rand(batch, 3, patch, patch, device=device)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(inputs), targets).backward()
        optimizer.step()
    return step


def forward_call(model: torch.nn.Module, size: int, device: torch.device) -> Callable[[], torch.Tensor]:
    model.eval()
    image = torch.rand(1, 3, size, size, device=device)

    def call():
        with torch.no_grad():
            return model(image)
    return call


# --- the table -----------------------------------------------------------------------------------
#: (key, what, numerator, denominator, baseline of issue 16, goal: ratio <= goal)
RATIOS = [
    ("forward", "moewirnet / restormer forward, 1×3×{big_forward}²", "fwd moewirnet", "fwd restormer",
     "0.79–0.89", 0.6),
    ("forward_tiny", "moewirnet-tiny / restormer-tiny forward, 1×3×{forward}²", "fwd moewirnet-tiny",
     "fwd restormer-tiny", "1.11–1.18", 1.0),
    ("train_step_tiny", "moewirnet-tiny / restormer-tiny training step, {train_batch}×{train_patch}² "
     "(forward + backward + Adam)", "train moewirnet-tiny", "train restormer-tiny", "1.30", 1.0),
    ("tiled", "tiled ({tile}, overlap {overlap}) / untiled restore of a {image}² image, moewirnet-tiny",
     "tiled moewirnet-tiny", "untiled moewirnet-tiny", "1.20", 1.15),
    ("recipe_tiny", "moewirnet-tiny / restormer-tiny recipe iteration (default_weights.yml)",
     "recipe moewirnet-tiny", "recipe restormer-tiny", "", None),
]
RATES = [("recipe_its_moewirnet-tiny", "moewirnet-tiny recipe iterations / s", "recipe moewirnet-tiny"),
         ("recipe_its_restormer-tiny", "restormer-tiny recipe iterations / s", "recipe restormer-tiny")]


def build_calls(sizes: Sizes, device: torch.device) -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    calls: dict[str, Callable[[], object]] = {}
    for name in ("moewirnet", "restormer"):
        calls[f"fwd {name}"] = forward_call(moewir.create_model(name).to(device), sizes.big_forward, device)
    tiny = {name: moewir.create_model(name).to(device) for name in ("moewirnet-tiny", "restormer-tiny")}
    for name, model in tiny.items():
        calls[f"fwd {name}"] = forward_call(model, sizes.forward, device)
    image = torch.rand(1, 3, sizes.image, sizes.image, device=device)
    net = tiny["moewirnet-tiny"]
    calls["tiled moewirnet-tiny"] = lambda: tiled_forward(net, image, tile=sizes.tile, overlap=sizes.overlap)
    calls["untiled moewirnet-tiny"] = lambda: tiled_forward(net, image, tile=None)  # one pass, no_grad too
    for name in tiny:  # fresh networks: the ones above stay in eval mode
        calls[f"train {name}"] = plain_step(moewir.create_model(name).to(device), sizes.train_batch,
                                            sizes.train_patch, device)
    for name in tiny:
        trainer, batch = build_recipe(name, device, sizes.recipe_patch)
        calls[f"recipe {name}"] = lambda trainer=trainer, batch=batch: trainer.step(batch)
    return calls


def summarise(seconds: dict[str, list[float]], sizes: Sizes) -> list[dict]:
    """One row per ratio and rate: the median over rounds and the lowest and highest round."""
    rows = []
    for key, what, num, den, baseline, goal in RATIOS:
        per_round = [a / b for a, b in zip(seconds[num], seconds[den])]
        value = statistics.median(per_round)
        status = "info" if goal is None else ("pass" if value <= goal else "fail")
        rows.append(dict(key=key, what=what.format(**asdict(sizes)), kind="ratio", value=value,
                         low=min(per_round), high=max(per_round), baseline=baseline,
                         goal=None if goal is None else f"≤ {goal}", status=status))
    for key, what, name in RATES:
        per_round = [1 / s for s in seconds[name]]
        rows.append(dict(key=key, what=what, kind="rate", value=statistics.median(per_round), low=min(per_round),
                         high=max(per_round), baseline="", goal=None, status="info"))
    return rows


def table(rows: list[dict]) -> str:
    def number(v: float) -> str:
        return f"{v:.2f}" if abs(v) >= 0.1 or v == 0 else f"{v:.3g}"
    return markdown_table(
        ["measurement", "median", "rounds (min–max)", "issue 16 baseline", "goal", "status"],
        [[r["what"], number(r["value"]), f"{number(r['low'])}–{number(r['high'])}", r["baseline"] or "—",
          r["goal"] or "—", r["status"]] for r in rows], align="lrrrcc")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--runs", type=int, default=3,
                        help="calls per round of each short measurement (the 1024² restores: 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the tests: the numbers mean nothing")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.runs < 1 or args.threads < 1:
        parser.error("--threads, --rounds and --runs must be >= 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = QUICK if args.quick else FULL
    calls = build_calls(sizes, device)
    runs = {name: (1 if name.split()[0] in ("tiled", "untiled") else args.runs) for name in calls}
    seconds = interleaved(calls, rounds=args.rounds, runs=runs, warmup=1, device=device)
    rows = summarise(seconds, sizes)
    header = (f"machine: {machine_description(device)}; torch {torch.__version__}; {args.rounds} interleaved rounds"
              f" (median of {args.runs} calls per round, 1 for the tiled restores)" + ("; --quick" if args.quick else ""))
    print(header + "\n")
    print(table(rows))
    result = dict(machine=machine_description(device), torch=torch.__version__, threads=args.threads,
                  rounds=args.rounds, runs=args.runs, quick=args.quick, sizes=asdict(sizes), rows=rows,
                  seconds=seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
