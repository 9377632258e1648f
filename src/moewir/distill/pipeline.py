"""``moewir distill run``: stream candidate pairs through pair checks, retrieval and a judge.

For every candidate pair of every dataset (any layout :func:`moewir.data.discover` reads):

1. its rain type comes from its task (``rain`` -> ``drs``, ``raindrop`` -> ``drd``,
   ``nightrain`` -> ``nrs``, ``nightraindrop`` -> ``nrd``); a ``list`` without tasks gets the
   describer's guess; other tasks (haze, snow) are rejected as ``not-rain`` unread;
2. the pair is analysed in worker processes (caption, visual feature and thumbnail of the
   input, pair statistics) and the analysis is cached in ``OUT/cache.sqlite``;
3. pair checks (:mod:`moewir.distill.pairs`) reject misaligned, clean-input, rainy-target and
   size-mismatched pairs;
4. the rest retrieve their real references S(q) (:mod:`moewir.distill.retrieval`) and the
   judge decides; every decision is appended to ``OUT/decisions.jsonl`` as it is made.

An interrupted run resumes from ``decisions.jsonl`` (judge errors are retried); a run with
other settings starts its decisions afresh but reuses the cache. The outputs are written at
the end, from the decisions, in candidate order, so a resumed run writes the same files as an
uninterrupted one (:mod:`moewir.distill.outputs`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..data.io import atomic_file
from ..data.layouts import UNIRAIN, discover
from .analysis import Failure, PairAnalysis, PairJob, analyze_pairs
from .database import LoadedDB, ReferenceDB, standardize
from .features import Description, RainType, embed_captions
from .judges import JUDGES, Judge, Query
from .outputs import write_outputs
from .pairs import pair_problems, pair_thresholds
from .retrieval import retrieve

__all__ = ["DistillSettings", "Candidate", "NoTaskType", "candidates", "run_distill", "TASK_TYPES"]

log = logging.getLogger("moewir.distill")

#: Canonical task name -> UniRain rain type.
TASK_TYPES = {task: RainType(code) for code, task in UNIRAIN.items()}


class NoTaskType(Enum):
    """What a candidate whose task names no rain type has instead of one."""
    GUESS = "guess"        # a list without tasks ("mixed"): the describer's guess from the input
    NOT_RAIN = "not-rain"  # haze, snow, ...: rejected as ``not-rain`` without being read


@dataclass
class DistillSettings:
    k1: int = 200
    k2: int = 20
    k3: int = 5
    judge: str = "builtin"
    min_realism: float = 0.05
    realism_sample: int = 2000
    pair_checks: dict = field(default_factory=dict)   # overrides of PAIR_THRESHOLDS
    http: dict = field(default_factory=dict)          # HttpJudge options
    workers: int = 0
    chunk: int = 128
    split: str = "train"
    materialize: str = "link"                         # dataset/ folders: link, copy or none

    @classmethod
    def from_config(cls, config: dict, **extra) -> "DistillSettings":
        """From a mapping shaped like ``configs/distill.yml``; missing values are the defaults."""
        known = {"retrieval", "judge", "pair_checks", "workers", "chunk", "materialize"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        retrieval, judge = dict(config.get("retrieval") or {}), dict(config.get("judge") or {})
        unknown = set(retrieval) - {"k1", "k2", "k3"} | set(judge) - {"name", "min_realism", "realism_sample", "http"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} under retrieval/judge")
        values = {**retrieval, **{k: v for k, v in judge.items() if k not in ("name",)}, **extra}
        if "name" in judge:
            values["judge"] = judge["name"]
        for key in ("pair_checks", "workers", "chunk", "materialize"):
            if key in config:
                values[key] = config[key]
        pair_thresholds(values.get("pair_checks"))  # unknown pair_checks fail here, before any work
        return cls(**values)

    @property
    def thresholds(self) -> dict:
        """The pair-check thresholds: PAIR_THRESHOLDS with ``pair_checks`` applied."""
        return pair_thresholds(self.pair_checks)

    def fingerprint(self, db: LoadedDB) -> str:
        """What the decisions depend on (not workers / chunk, and never an API key)."""
        decisive = {k: v for k, v in asdict(self).items() if k not in ("workers", "chunk", "materialize")}
        decisive["http"] = {k: v for k, v in self.http.items() if "key" not in k.lower()}
        decisive["db"] = [db.describer, len(db), hashlib.sha1("\n".join(db.paths).encode()).hexdigest()]
        return hashlib.sha1(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()


def pair_key(input_path: str, target_path: str) -> str:
    """A candidate's identity in the decisions log."""
    return input_path + "\n" + target_path


@dataclass(frozen=True)
class Candidate:
    index: int
    source: str
    input: str
    target: str
    task: str
    rain_type: RainType | NoTaskType

    @property
    def key(self) -> str:
        return pair_key(self.input, self.target)

    @property
    def type_code(self) -> str:
        """The rain type's code, as the outputs write it: ``""`` while the task gives none."""
        return self.rain_type.value if isinstance(self.rain_type, RainType) else ""


def _source_names(datasets: list[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` or ``PATH`` (named after its folder); names must be unique."""
    out, seen = [], set()
    for item in datasets:
        name, sep, path = item.partition("=")
        if not sep:
            path = item
            p = Path(item)
            name = p.stem if p.is_file() else p.resolve().name
        if name in seen:
            raise ValueError(f"two candidate datasets are named {name!r}; name them: --candidates A={path} ...")
        seen.add(name)
        out.append((name, Path(path)))
    return out


def candidates(datasets: list[str], split: str = "train") -> list[Candidate]:
    """Every pair of every dataset, in a stable order (dataset, task, file name)."""
    out: list[Candidate] = []
    for name, root in _source_names(datasets):
        for task, pairs in sorted(discover(root, split).items()):
            rain_type = TASK_TYPES.get(task, NoTaskType.GUESS if task == "mixed" else NoTaskType.NOT_RAIN)
            for p in pairs:
                out.append(Candidate(len(out), name, str(p.input.resolve()), str(p.target.resolve()), task,
                                     rain_type))
    return out


# -- the analysis cache -------------------------------------------------------------------
class AnalysisCache:
    """``OUT/cache.sqlite``: pair analyses keyed by both files' paths, sizes and mtimes."""

    def __init__(self, path: Path, describer: str):
        self.con = sqlite3.connect(path)
        self.con.execute(f"CREATE TABLE IF NOT EXISTS analysis (key TEXT PRIMARY KEY, {Description.SQL_SCHEMA}, "
                         "stats TEXT)")
        self.describer = describer

    def key(self, c: Candidate) -> str:
        parts = [self.describer]
        for f in (c.input, c.target):
            try:
                st = os.stat(f)
                parts += [f, str(st.st_size), str(st.st_mtime_ns)]
            except OSError:
                parts += [f, "missing"]
        return "\n".join(parts)

    def get(self, key: str) -> PairAnalysis | None:
        row = self.con.execute(f"SELECT {Description.SQL_COLUMNS}, stats FROM analysis WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            return None
        *description, stats = row
        return PairAnalysis(Description.from_row(*description), json.loads(stats))

    def put(self, key: str, a: PairAnalysis) -> None:
        self.con.execute("INSERT OR REPLACE INTO analysis VALUES (?, ?, ?, ?, ?, ?)",
                         (key, *a.query.row(), json.dumps(a.stats)))

    def commit(self) -> None:
        self.con.commit()

    def close(self) -> None:
        self.con.commit()
        self.con.close()


# -- decisions ----------------------------------------------------------------------------
def read_decisions(path: Path) -> dict[str, dict]:
    """The latest decision per candidate key; a torn last line (a crash mid-write) is skipped."""
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    with open(path) as f:
        for line in f:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[pair_key(d["input"], d["target"])] = d
    return out


def _decision(c: Candidate, rain_type: str, reasons: list[str], score: float | None, detail: str = "",
              analysis: PairAnalysis | None = None, references: list[str] | None = None) -> dict:
    d = {"input": c.input, "target": c.target, "source": c.source, "task": c.task, "type": rain_type,
         "reasons": reasons, "score": None if score is None else round(float(score), 6), "detail": detail}
    if analysis is not None:
        d["caption"] = analysis.query.caption
        d["stats"] = {k: analysis.stats[k] for k in ("psnr", "shift", "ncc", "rain_left", "input_dhash",
                                                       "target_dhash", "residual_grid") if k in analysis.stats}
    if references is not None:
        d["references"] = references
    return d


def _analyses(pending: list[Candidate], cache: AnalysisCache, describer: str, workers: int
              ) -> Iterator[tuple[Candidate, PairAnalysis | Failure]]:
    """Cached analyses first, then the rest computed by the workers, in order within each."""
    keys = {c.index: cache.key(c) for c in pending}
    todo = []
    for c in pending:
        hit = cache.get(keys[c.index])
        if hit is None:
            todo.append(c)
        else:
            yield c, hit
    by_index = {c.index: c for c in todo}
    jobs = [PairJob(c.index, c.input, c.target) for c in todo]
    for job, result in analyze_pairs(jobs, describer, workers):
        if not isinstance(result, Failure):
            cache.put(keys[job.index], result)
        yield by_index[job.index], result


def run_distill(datasets: list[str], db_folder: str | Path, out: str | Path, settings: DistillSettings,
                judge: Judge | None = None, progress: bool = False, limit: int | None = None) -> dict:
    """Decide every candidate (resuming), then write the outputs; returns the report dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    db = ReferenceDB(db_folder).load()
    if not 1 <= settings.k3 <= settings.k2 <= settings.k1:
        raise ValueError(f"retrieval needs 1 <= k3 <= k2 <= k1, got {settings.k1}, {settings.k2}, {settings.k3}")
    all_candidates = candidates(datasets, settings.split)
    if limit is not None:
        all_candidates = all_candidates[:limit]
    fingerprint = settings.fingerprint(db)
    run_file, decisions_file = out / "run.json", out / "decisions.jsonl"
    if run_file.is_file() and json.loads(run_file.read_text()).get("fingerprint") != fingerprint:
        if decisions_file.is_file():
            os.replace(decisions_file, out / "decisions.previous.jsonl")
            log.warning("%s: settings changed since the last run; decisions start afresh "
                        "(old ones in decisions.previous.jsonl), cached analyses are reused", out)
    with atomic_file(run_file, "w") as f:
        json.dump({"fingerprint": fingerprint, "settings": {k: v for k, v in asdict(settings).items() if k != "http"},
                   "db": str(db_folder), "datasets": datasets}, f, indent=1)
    done = {k: d for k, d in read_decisions(decisions_file).items() if "judge-error" not in d["reasons"]}
    pending = [c for c in all_candidates if c.key not in done]
    judge = judge or JUDGES.get(settings.judge)(settings, db)
    cache = AnalysisCache(out / "cache.sqlite", db.describer)
    bar = tqdm(total=len(all_candidates), initial=len(all_candidates) - len(pending), desc="distill", unit="pair",
               disable=not progress, dynamic_ncols=True)
    try:
        with open(decisions_file, "a") as log_file:
            def record(decisions: list[dict]) -> None:
                for d in decisions:
                    log_file.write(json.dumps(d) + "\n")
                log_file.flush()
                os.fsync(log_file.fileno())
                cache.commit()
                bar.update(len(decisions))

            record([_decision(c, "", ["not-rain"], None, f"task {c.task!r} is not a rain type")
                    for c in pending if c.rain_type is NoTaskType.NOT_RAIN])
            stream = _analyses([c for c in pending if c.rain_type is not NoTaskType.NOT_RAIN], cache, db.describer,
                               settings.workers)
            while chunk := list(islice(stream, settings.chunk)):
                record(_decide_chunk(chunk, db, judge, settings))
    finally:
        bar.close()
        cache.close()
    return write_outputs(out, all_candidates, read_decisions(decisions_file), settings, db, time.time() - started)


def _decide_chunk(chunk: list[tuple[Candidate, PairAnalysis | Failure]], db: LoadedDB, judge: Judge,
                  settings: DistillSettings) -> list[dict]:
    thresholds = settings.thresholds
    decided: dict[int, dict] = {}
    passing: list[tuple[Candidate, str, PairAnalysis]] = []
    for c, result in chunk:
        if isinstance(result, Failure):
            decided[c.index] = _decision(c, c.type_code, ["unreadable"], None, result.problem)
            continue
        rain_type = result.query.rain_type if c.rain_type is NoTaskType.GUESS else c.rain_type
        problems = pair_problems(result.stats, rain_type, thresholds)
        if problems:
            decided[c.index] = _decision(c, rain_type, problems, None, "", result)
        else:
            passing.append((c, rain_type, result))
    if passing:
        visual = standardize(np.stack([a.query.visual for _, _, a in passing]), db.mean, db.std)
        found = retrieve(db, embed_captions([a.query.caption for _, _, a in passing]), visual,
                         np.stack([a.query.thumb for _, _, a in passing]), settings.k1, settings.k2, settings.k3)
        queries = [Query(c.index, c.input, c.target, t, a.query.caption, [db.paths[j] for j in found.indices[i]],
                         found.visual[i], found.ssim[i])
                   for i, (c, t, a) in enumerate(passing)]
        for (c, t, a), q, v in zip(passing, queries, judge.judge(queries)):
            decided[c.index] = _decision(c, t, [] if v.keep else [v.reason], v.score, v.detail, a, q.references)
    return [decided[c.index] for c, _ in chunk]
