"""Per-file work, in worker processes: describe references, and analyse candidate pairs.

Every function here reads its images itself and returns either a result or a :class:`Failure`
(one line: ``"not an image"``, ...), so that one bad file never stops a run.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..data.io import ImageReadError, read_image
from ..registry import Registry
from .features import BuiltinDescriber, Describer, Description, thumbnail
from .pairs import pair_statistics

__all__ = ["DescribeJob", "PairJob", "Failure", "PairAnalysis", "DESCRIBERS", "make_describer", "describe_files",
           "analyze_pairs"]

#: Describer kind -> ``factory(argument) -> Describer``. A describer spec (``--describer``, and
#: what a database records) is ``KIND`` or ``KIND:ARGUMENT``.
DESCRIBERS: Registry[Callable[[str], Describer]] = Registry(
    "describer", unknown="unknown {kind} {names}; known: {known} (clip as clip:<folder with CLIP weights>)")


@DESCRIBERS.register("builtin")
def _builtin_describer(argument: str) -> Describer:
    """``builtin``: measured statistics, no weights."""
    if argument:
        raise ValueError(f"the builtin describer takes no argument, got 'builtin:{argument}'")
    return BuiltinDescriber()


@DESCRIBERS.register("clip")
def _clip_describer(folder: str) -> Describer:
    """``clip:<local folder>``: needs ``transformers`` and CLIP weights on disk."""
    if not folder:
        raise ValueError("the clip describer needs the folder of its local CLIP weights: clip:<folder>")
    from .clip import ClipDescriber
    return ClipDescriber(folder)


def make_describer(spec: str) -> Describer:
    """``builtin``, or ``clip:<local folder>`` (needs ``transformers`` and weights on disk)."""
    kind, _, argument = spec.partition(":")
    return DESCRIBERS.get(kind)(argument)


@dataclass(frozen=True)
class Failure:
    """Why a file or pair could not be described: one line, returned instead of a result."""
    problem: str


@dataclass(frozen=True)
class DescribeJob:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class PairJob:
    index: int
    input: str
    target: str


@dataclass
class PairAnalysis:
    query: Description  # the degraded input, described like a reference (with its thumbnail)
    stats: dict       # pair_statistics


_describer: Describer | None = None


def _init(spec: str) -> None:
    global _describer
    torch.set_num_threads(1)
    _describer = make_describer(spec)


def _describe(image: np.ndarray) -> Description:
    return replace(_describer.describe(image), thumb=thumbnail(image))


def _describe_job(job: DescribeJob) -> tuple[DescribeJob, Description | Failure]:
    try:
        return job, _describe(read_image(job.path))
    except ImageReadError as exc:
        return job, Failure(exc.problem)
    except (OSError, ValueError, RuntimeError) as exc:
        return job, Failure(f"{type(exc).__name__}: {exc}")


def _analyze_job(job: PairJob) -> tuple[PairJob, PairAnalysis | Failure]:
    try:
        inp, tgt = read_image(job.input), read_image(job.target)
        return job, PairAnalysis(_describe(inp), pair_statistics(inp, tgt))
    except ImageReadError as exc:
        return job, Failure(f"{exc.path}: {exc.problem}")
    except (OSError, ValueError, RuntimeError) as exc:
        return job, Failure(f"{type(exc).__name__}: {exc}")


def _map(fn, jobs: list, spec: str, workers: int, window: int = 1024) -> Iterator:
    """``fn`` over ``jobs`` in order, in-process or in a pool of ``workers`` processes. The pool
    gets ``window`` jobs at a time, so a slow consumer (an HTTP judge) never has more than that
    many finished analyses waiting in memory."""
    if workers <= 0 or len(jobs) <= 1:
        global _describer
        _describer = make_describer(spec)
        yield from map(fn, jobs)
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(spec,)) as pool:
        for start in range(0, len(jobs), window):
            yield from pool.imap(fn, jobs[start:start + window], chunksize=4)


def describe_files(jobs: Iterable[DescribeJob], spec: str, workers: int = 0
                   ) -> Iterator[tuple[DescribeJob, Description | Failure]]:
    return _map(_describe_job, list(jobs), spec, workers)


def analyze_pairs(jobs: Iterable[PairJob], spec: str, workers: int = 0
                  ) -> Iterator[tuple[PairJob, PairAnalysis | Failure]]:
    return _map(_analyze_job, list(jobs), spec, workers)
