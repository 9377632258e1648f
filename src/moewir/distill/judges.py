"""Judges decide whether a candidate pair that passed the pair checks is a realistic, good
training sample, given the real rainy references retrieved for it (UniRain: True / Fake).

A judge takes a batch of :class:`Query` and returns one :class:`Verdict` per query.

* :class:`BuiltinJudge` needs no model. Its score is the *realism percentile* of the query:
  the mean visual cosine between the query and its retrieved set S(q), ranked among the same
  quantity for the references themselves (each retrieved against the others, leave-one-out).
  A query as close to the real references as a typical reference scores 0.5; it is kept
  when the score is at least ``min_realism`` (default 0.05: closer than the 5% least
  typical references).
* :class:`moewir.distill.http_judge.HttpJudge` asks an OpenAI-compatible vision endpoint.

:data:`JUDGES` builds them by name (``judge.name`` of ``configs/distill.yml``, ``--judge``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..registry import Registry
from .database import LoadedDB
from .features import RainType
from .retrieval import retrieve

__all__ = ["Query", "Verdict", "Judge", "BuiltinJudge", "reference_realism", "JUDGES"]


@dataclass
class Query:
    index: int               # candidate number (order of the run)
    input: str               # the degraded input's path
    target: str
    rain_type: RainType      # drs / drd / nrs / nrd
    caption: str             # the input's caption
    references: list[str]    # paths of S(q), best first
    visual: np.ndarray       # visual cosine to each reference
    ssim: np.ndarray         # thumbnail SSIM to each reference


@dataclass
class Verdict:
    keep: bool
    score: float             # in [0, 1]; higher = better
    reason: str = ""         # empty when kept: unrealistic, judge-fake, judge-error
    detail: str = ""         # the judge's words, for the logs


class Judge(Protocol):
    name: str

    def judge(self, queries: list[Query]) -> list[Verdict]: ...


def reference_realism(db: LoadedDB, k1: int, k2: int, k3: int, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Sorted leave-one-out realism statistics (mean visual cosine over S) of up to ``sample``
    references: the distribution a query is ranked in."""
    n = len(db)
    if n <= k3:
        raise ValueError(f"the reference database has {n} images; the built-in judge needs more than "
                         f"k3={k3} to calibrate")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    found = retrieve(db, np.asarray(db.caption_vectors[rows]), db.visual[rows], np.asarray(db.thumbs[rows]),
                     min(k1, n - 1), min(k2, n - 1), k3, exclude=rows)
    return np.sort(found.visual.mean(1))


class BuiltinJudge:
    """Realism against the retrieved references (see the module docstring)."""
    name = "builtin"

    def __init__(self, reference_scores: np.ndarray, min_realism: float = 0.05):
        self.reference_scores = np.sort(np.asarray(reference_scores, np.float64))
        self.min_realism = float(min_realism)

    def realism(self, visual: np.ndarray) -> float:
        """Fraction of references whose own statistic is at most this query's."""
        value = float(np.mean(visual))
        return float(np.searchsorted(self.reference_scores, value, side="right") / len(self.reference_scores))

    def judge(self, queries: list[Query]) -> list[Verdict]:
        out = []
        for q in queries:
            score = self.realism(q.visual)
            keep = score >= self.min_realism
            out.append(Verdict(keep, score, "" if keep else "unrealistic",
                               f"realism percentile {score:.3f} (mean cosine {float(np.mean(q.visual)):.3f})"))
        return out


#: Judge name -> ``factory(settings, db) -> Judge``, with ``settings`` a
#: :class:`moewir.distill.pipeline.DistillSettings` and ``db`` the loaded reference database.
JUDGES: Registry[Callable[..., Judge]] = Registry("judge")


@JUDGES.register("builtin")
def _builtin_judge(settings, db: LoadedDB) -> Judge:
    scores = reference_realism(db, settings.k1, settings.k2, settings.k3, settings.realism_sample)
    return BuiltinJudge(scores, settings.min_realism)


@JUDGES.register("http")
def _http_judge(settings, db: LoadedDB) -> Judge:
    from .http_judge import HttpJudge

    known = [p for p in inspect.signature(HttpJudge).parameters]
    unknown = sorted(set(settings.http) - set(known))
    if "api_key" in unknown:
        raise ValueError("judge.http: no api_key in config files; put the key in the environment variable "
                         "named by api_key_env (default MOEWIR_JUDGE_API_KEY)")
    if unknown:
        raise ValueError(f"judge.http: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return HttpJudge(**settings.http)
