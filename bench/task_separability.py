"""Can a small network tell a task's inputs apart from another's, from the patches training sees?

    python bench/task_separability.py [--tasks haze raindrop] [--patch 64] [--iterations 400] [--json FILE]

The restoration runs of docs/benchmarks.md apply haze's global correction to raindrop photos.
Either the two cannot be told apart from a training patch, or they can and the restoration loss
does not teach it. This trains a plain classifier (four 3x3 conv + GELU layers, stride 2 from
the second, global average pool, linear) on the training split's input patches, one per task per
step (the recipe's sampling: same patch size, flips and rotations), Adam 1e-3, and reports its
accuracy on 64-px patches and on 256-px centre crops of the held-out inputs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from moewir.data import MultiTaskLoader, PairedImages, PairedPatches, discover
from moewir.data.datasets import SeededIndices


def classifier(classes: int, width: int = 32) -> nn.Module:
    layers, channels = [], 3
    for i in range(4):
        layers += [nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1), nn.GELU()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


def accuracy(net: nn.Module, batches: list[tuple[torch.Tensor, int]]) -> float:
    with torch.no_grad():
        return statistics.fmean(float(net(x).argmax(1).eq(label).float().mean()) for x, label in batches)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/default")
    ap.add_argument("--tasks", nargs="+", default=["haze", "raindrop"])
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    train, test = discover(args.data, "train"), discover(args.data, "test")
    loader = MultiTaskLoader({t: train[t] for t in args.tasks}, args.patch, seed=args.seed)
    net = classifier(len(args.tasks))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    curve = {}
    patches = []  # 8 held-out 64-px patches per test pair, fixed
    for label, task in enumerate(args.tasks):
        data = PairedPatches(test[task], args.patch, flip=False, rotate=False)
        stream = iter(SeededIndices(len(data), 12345 + label))
        patches += [(torch.stack([data[next(stream)][0] for _ in range(8)]), label) for _ in range(len(test[task]))]
    crops = [(item["input"][None], label) for label, task in enumerate(args.tasks)
             for item in PairedImages(test[task], 256)]
    for step in range(1, args.iterations + 1):
        batch = next(loader)
        x = torch.cat([batch[t][0] for t in args.tasks])
        y = torch.arange(len(args.tasks)).repeat_interleave(torch.tensor([len(batch[t][0]) for t in args.tasks]))
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.iterations:
            curve[step] = {"patches": accuracy(net, patches), "crops": accuracy(net, crops)}
            print(f"iteration {step}: held-out accuracy, {args.patch}-px patches {curve[step]['patches']:.3f}, "
                  f"256-px crops {curve[step]['crops']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tasks": args.tasks, "patch": args.patch, "iterations": args.iterations, "seed": args.seed,
                       "held_out_pairs": {t: len(test[t]) for t in args.tasks}, "curve": curve}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
