"""PyTorch datasets: task-balanced training patches and full-image validation.

Training for multi-task reweighting needs one loss per task every iteration, so
:class:`MultiTaskLoader` yields a sub-batch of every task at each step
(``{task: (input, target)}``), with a configurable batch size per task.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .cache import DecodedCache, as_float
from .io import ImageReadError, read_image
from .layouts import Pair

__all__ = ["PairedPatches", "PairedImages", "MultiTaskLoader", "SeededIndices", "augment", "random_crop",
           "zoomed_crop", "is_zoom_range", "clean_pairs"]

log = logging.getLogger(__name__)


def _load_pair(pair: Pair, cache: DecodedCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pair's input and target; from ``cache`` in their stored form (:func:`as_float` a crop)."""
    read = cache.read if cache is not None else read_image
    inp, tgt = read(pair.input), read(pair.target)
    if inp.shape != tgt.shape:
        raise ImageReadError(pair.input, f"size {inp.shape[1]}x{inp.shape[0]} differs from its target "
                                         f"{pair.target} ({tgt.shape[1]}x{tgt.shape[0]})")
    return inp, tgt


def random_crop(arrays: Sequence[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random ``size x size`` crop of each array; images smaller than ``size`` are
    reflect-padded first (so tiny images still give full patches)."""
    h, w = arrays[0].shape[:2]
    if h < size or w < size:
        pad = ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0))
        arrays = [np.pad(a, pad, mode="reflect" if min(h, w) > 1 else "edge") for a in arrays]
        h, w = arrays[0].shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return [a[y:y + size, x:x + size] for a in arrays]


def is_zoom_range(zoom) -> bool:
    """Whether ``zoom`` is a usable ``[lo, hi]``: ``0 < lo <= hi <= 1``."""
    return len(zoom) == 2 and 0 < zoom[0] <= zoom[1] <= 1


def zoomed_crop(arrays: Sequence[np.ndarray], size: int, zoom: tuple[float, float],
                rng: np.random.Generator) -> list[np.ndarray]:
    """The same random crop of each array, seen at a random scale: a square of side
    ``round(size / z)`` (at most the image's shorter side), with ``z`` log-uniform in
    ``zoom = (lo, hi)``, resized to ``size x size`` (antialiased bilinear). ``z < 1`` zooms out,
    so a patch holds the context of a larger part of the photo (haze's airlight and depth)."""
    lo, hi = zoom
    z = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
    h, w = arrays[0].shape[:2]
    side = max(size, min(int(round(size / z)), h, w))
    if side == size:
        return random_crop(arrays, size, rng)
    crops = random_crop(arrays, side, rng)
    batch = torch.from_numpy(np.stack([np.ascontiguousarray(as_float(c).transpose(2, 0, 1)) for c in crops]))
    small = F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return [a.numpy().transpose(1, 2, 0).clip(0.0, 1.0) for a in small]


def augment(arrays: Sequence[np.ndarray], rng: np.random.Generator, flip: bool = True,
            rotate: bool = True) -> list[np.ndarray]:
    """The same random horizontal/vertical flip and 90-degree rotation of each array."""
    if flip and rng.random() < 0.5:
        arrays = [a[:, ::-1] for a in arrays]
    if flip and rng.random() < 0.5:
        arrays = [a[::-1] for a in arrays]
    if rotate:
        k = int(rng.integers(0, 4))
        arrays = [np.rot90(a, k) for a in arrays]
    return list(arrays)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class PairedPatches(Dataset):
    """Random augmented ``patch x patch`` crops of one task's pairs.

    Items are requested as ``(index, seed)``: crops and augmentations come from ``seed``, so a
    run is reproducible whatever the number of workers (see :class:`SeededIndices`).
    With ``skip_bad=True`` an unreadable pair is logged and another pair is drawn instead.
    ``zoom = (lo, hi)`` cuts each patch at a random scale (:func:`zoomed_crop`); ``None`` (and
    ``(1, 1)``) cuts it at the photo's own scale. ``cache``: a folder where each photo is kept
    decoded after its first draw (:mod:`moewir.data.cache`); the patches are the same.
    """

    def __init__(self, pairs: Sequence[Pair], patch_size: int, flip: bool = True, rotate: bool = True,
                 skip_bad: bool = False, zoom: tuple[float, float] | None = None,
                 cache: str | os.PathLike | None = None):
        if not pairs:
            raise ValueError("PairedPatches needs at least one pair")
        if zoom is not None and not is_zoom_range(zoom):
            raise ValueError(f"zoom must be [lo, hi] with 0 < lo <= hi <= 1, got {list(zoom)}")
        self.pairs = list(pairs)
        self.patch_size = patch_size
        self.zoom = None if zoom is None or tuple(zoom) == (1, 1) else (float(zoom[0]), float(zoom[1]))
        self.flip, self.rotate = flip, rotate
        self.skip_bad = skip_bad
        self.bad: set[int] = set()
        self.cache = DecodedCache(cache) if cache is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item
        rng = np.random.default_rng(seed)
        while True:
            try:
                arrays = _load_pair(self.pairs[index], self.cache)
                break
            except ImageReadError as exc:
                if not self.skip_bad:
                    raise
                if index not in self.bad:
                    log.warning("skipping unreadable pair: %s", exc)
                    self.bad.add(index)
                readable = [i for i in range(len(self.pairs)) if i not in self.bad]
                if not readable:
                    raise ImageReadError(self.pairs[index].input, "no readable pair left in this task") from None
                index = readable[int(rng.integers(0, len(readable)))]
        crops = (random_crop(arrays, self.patch_size, rng) if self.zoom is None
                 else zoomed_crop(arrays, self.patch_size, self.zoom, rng))
        arrays = augment([as_float(c) for c in crops], rng, self.flip, self.rotate)
        return _tensor(arrays[0]), _tensor(arrays[1])


class SeededIndices(Sampler):
    """An endless stream of ``(index, seed)``: indices drawn with replacement, and a seed for
    each sample's random crop and augmentation, all from one seeded generator.

    ``skip`` starts the stream that many items in (resuming training exactly, without
    loading the skipped images)."""

    def __init__(self, size: int, seed: int, skip: int = 0):
        self.size, self.seed, self.skip = size, seed, skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed)
        skip = self.skip
        while True:
            indices = torch.randint(0, self.size, (1024,), generator=generator).tolist()
            seeds = torch.randint(0, 2 ** 62, (1024,), generator=generator).tolist()
            yield from zip(indices[skip:], seeds[skip:])
            skip = max(0, skip - 1024)


class PairedImages(Dataset):
    """Validation/evaluation pairs: full images, or centre crops of ``center_crop`` pixels.

    Items are dicts with ``input``, ``target`` (``3 x H x W`` tensors), ``task`` and ``name``.
    """

    def __init__(self, pairs: Sequence[Pair], center_crop: int | None = None):
        self.pairs = list(pairs)
        self.center_crop = center_crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        inp, tgt = _load_pair(pair)
        if self.center_crop:
            h, w = inp.shape[:2]
            s = self.center_crop
            y, x = max(0, (h - s) // 2), max(0, (w - s) // 2)
            inp, tgt = inp[y:y + s, x:x + s], tgt[y:y + s, x:x + s]
        return {"input": _tensor(inp), "target": _tensor(tgt), "task": pair.task, "name": pair.name}


def clean_pairs(tasks: dict[str, Sequence[Pair]]) -> list[Pair]:
    """Identity pairs, task ``clean``: each distinct target of ``tasks`` as its own input."""
    targets = dict.fromkeys(p.target for task in sorted(tasks) for p in tasks[task])
    return [Pair(t, t, "clean") for t in targets]


class MultiTaskLoader:
    """Yields ``{task: (input, target)}`` with a sub-batch of every task at every step.

    ``batch_per_task`` is an int (same for all) or ``{task: size}``. ``patch_schedule`` is an
    optional progressive schedule ``[(start_iteration, patch_size), ...]``: patches are read
    at ``patch_size`` (the largest) and each step's batch is cropped to the size in force.
    ``zoom`` and ``cache`` are :class:`PairedPatches`'s. ``start_step`` resumes the exact stream of an interrupted run at that step.
    """

    def __init__(self, tasks: dict[str, Sequence[Pair]], patch_size: int,
                 batch_per_task: int | dict[str, int] = 1, workers: int = 0, seed: int = 0,
                 flip: bool = True, rotate: bool = True, skip_bad: bool = False,
                 patch_schedule: Sequence[tuple[int, int]] | None = None, start_step: int = 0,
                 zoom: tuple[float, float] | None = None, cache: str | os.PathLike | None = None):
        if not tasks:
            raise ValueError("MultiTaskLoader needs at least one task")
        self.tasks = sorted(tasks)
        sizes = batch_per_task if isinstance(batch_per_task, dict) else {t: batch_per_task for t in self.tasks}
        missing = [t for t in self.tasks if t not in sizes]
        if missing:
            raise ValueError(f"batch_per_task has no size for task(s) {', '.join(missing)}")
        self.schedule = sorted(patch_schedule or [(0, patch_size)])
        if any(s > patch_size for _, s in self.schedule):
            raise ValueError(f"progressive patch sizes must not exceed patch_size={patch_size}")
        self.step, self.seed = start_step, seed
        self.loaders = {}
        for i, task in enumerate(self.tasks):
            dataset = PairedPatches(tasks[task], patch_size, flip, rotate, skip_bad, zoom, cache)
            self.loaders[task] = DataLoader(
                dataset, batch_size=sizes[task], num_workers=workers, persistent_workers=workers > 0,
                sampler=SeededIndices(len(dataset), seed * 1000 + i, skip=start_step * sizes[task]))
        self._iters: dict[str, Iterator] = {}

    def patch_size_at(self, step: int) -> int:
        size = self.schedule[0][1]
        for start, s in self.schedule:
            if step >= start:
                size = s
        return size

    def __iter__(self) -> "MultiTaskLoader":
        return self

    def __next__(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        if not self._iters:
            self._iters = {t: iter(loader) for t, loader in self.loaders.items()}
        size = self.patch_size_at(self.step)
        batch = {}
        for task in self.tasks:
            inp, tgt = next(self._iters[task])
            if inp.shape[-1] > size:
                rng = np.random.default_rng([self.seed, self.step, self.tasks.index(task)])
                y = int(rng.integers(0, inp.shape[-2] - size + 1))
                x = int(rng.integers(0, inp.shape[-1] - size + 1))
                inp, tgt = inp[..., y:y + size, x:x + size], tgt[..., y:y + size, x:x + size]
            batch[task] = (inp, tgt)
        self.step += 1
        return batch
