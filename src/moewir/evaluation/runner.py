"""Running one or more restorers over paired test sets and scoring every output.

Each test pair is read once and restored by every model in turn, so ``--compare`` costs one
pass over the data; per-image scores come back as rows that :mod:`.report` aggregates.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..data.io import read_image, write_image
from ..data.layouts import Pair
from ..metrics import psnr, ssim
from ..registry import Registry

__all__ = ["Metric", "METRICS", "fidelity_metrics", "build_metrics", "evaluate", "evaluate_tensors", "score", "Restore"]

#: A restorer as the evaluation sees it: float ``H x W x 3`` in [0, 1] -> the same.
Restore = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """``fn(output, target) -> float`` on ``(1, 3, H, W)`` tensors; ``target`` is ignored by
    no-reference metrics. ``higher_is_better`` orients the table's arrows."""
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], float]
    higher_is_better: bool = True


def fidelity_metrics(crop_border: int = 0, y_channel: bool = True) -> list[Metric]:
    """PSNR and SSIM under one convention (BasicSR's: 8-bit quantised)."""
    kw = dict(crop_border=crop_border, y_channel=y_channel)
    return [Metric("psnr", lambda out, tgt: psnr(out, tgt, **kw).item()),
            Metric("ssim", lambda out, tgt: ssim(out, tgt, **kw).item())]


def _niqe(crop_border: int, y_channel: bool, lpips_files) -> list[Metric]:
    from ..metrics import niqe

    return [Metric("niqe", lambda out, tgt: niqe(out[0].permute(1, 2, 0).numpy(), crop_border=crop_border,
                                                 y_channel=y_channel), higher_is_better=False)]


def _lpips(crop_border: int, y_channel: bool, lpips_files) -> list[Metric]:
    if lpips_files is None:
        raise ValueError("LPIPS needs local weights: --lpips-backbone FILE and --lpips-linear FILE "
                         "(nothing is downloaded; see docs/metrics.md)")
    from ..metrics import LPIPS, lpips

    model = LPIPS.from_files(*lpips_files)
    return [Metric("lpips", lambda out, tgt: lpips(out, tgt, model).item(), higher_is_better=False)]


def _fidelity(crop_border: int, y_channel: bool, lpips_files) -> list[Metric]:
    return fidelity_metrics(crop_border, y_channel)


#: ``moewir eval --metrics`` name -> ``builder(crop_border, y_channel, lpips_files)``; ``psnr``
#: and ``ssim`` are one builder (always reported together).
METRICS: Registry[Callable[..., list[Metric]]] = Registry("metric")
METRICS.register("psnr", _fidelity)
METRICS.register("ssim", _fidelity)
METRICS.register("niqe", _niqe)
METRICS.register("lpips", _lpips)


def build_metrics(names: Sequence[str], crop_border: int = 0, y_channel: bool = True,
                  lpips_files: tuple[str, str, str] | None = None) -> list[Metric]:
    """Metrics by name (:data:`METRICS`): ``psnr`` and ``ssim`` (always, together), ``niqe``
    (no-reference, on the output) and ``lpips`` (needs ``lpips_files = (backbone, linear, net)``,
    local files only); in the table's order, fidelity first."""
    METRICS.require(names)
    builders = dict.fromkeys(builder for name, builder in METRICS.items() if name in {"psnr", *names})
    return [metric for builder in builders for metric in builder(crop_border, y_channel, lpips_files)]


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def score(output: torch.Tensor, target: torch.Tensor, metrics: Sequence[Metric], where: str | Path) -> dict[str, float]:
    """Every metric of one ``(1, 3, H, W)`` output against its target; a metric that cannot
    score it (e.g. an image too small for NIQE's 96x96 blocks) raises, naming ``where``."""
    scores = {}
    for metric in metrics:
        try:
            scores[metric.name] = metric.fn(output, target)
        except ValueError as exc:
            raise ValueError(f"{where}: {metric.name}: {exc}") from None
    return scores


def evaluate_tensors(restore: Callable[[torch.Tensor], torch.Tensor], tasks: dict[str, Iterable[dict]],
                     metrics: Sequence[Metric], model: str = "model") -> list[dict]:
    """:func:`evaluate` on images already in memory (e.g. the trainer's validation crops): each
    task's items are dicts with ``input`` and ``target`` (``3 x H x W`` tensors in [0, 1]) and
    ``name``, as :class:`moewir.data.PairedImages` yields them; ``restore`` maps a
    ``(1, 3, H, W)`` input to the output. Rows as :func:`evaluate`'s, for :func:`~.report.aggregate`."""
    rows = []
    for task, items in tasks.items():
        for item in items:
            output = restore(item["input"][None])
            rows.append({"model": model, "task": task, "image": item["name"],
                         **score(output, item["target"][None], metrics, item["name"])})
    return rows


def evaluate(models: dict[str, Restore], tasks: dict[str, Sequence[Pair]], metrics: Sequence[Metric],
             save_images: str | Path | None = None,
             on_image: Callable[[Pair, np.ndarray, dict[str, np.ndarray], np.ndarray], None] | None = None,
             progress: bool = True) -> list[dict]:
    """One row per (model, image): ``model, task, image`` and every metric's value.

    ``save_images`` writes each output as ``<dir>/<model>/<task>/<name>.png``; ``on_image``
    is called with (pair, input, {model: output}, target), e.g. to draw comparison figures.
    An unreadable pair or an input and target of different sizes raises, naming the files.
    """
    rows = []
    total = sum(len(p) for p in tasks.values())
    with tqdm(total=total, desc="eval", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for task, pairs in tasks.items():
            for pair in pairs:
                inp, tgt = read_image(pair.input), read_image(pair.target)
                if inp.shape != tgt.shape:
                    raise ValueError(f"{pair.input}: input is {inp.shape[1]}x{inp.shape[0]} but its target "
                                     f"{pair.target} is {tgt.shape[1]}x{tgt.shape[0]}")
                outputs, tgt_tensor = {}, _tensor(tgt)
                for label, restore in models.items():
                    out = outputs[label] = restore(inp)
                    out_tensor = _tensor(out)
                    scores = score(out_tensor, tgt_tensor, metrics, pair.input)
                    rows.append({"model": label, "task": task, "image": pair.name, **scores})
                    if save_images:
                        write_image(Path(save_images) / label / task / f"{pair.name}.png", out)
                if on_image:
                    on_image(pair, inp, outputs, tgt)
                bar.update()
    return rows
