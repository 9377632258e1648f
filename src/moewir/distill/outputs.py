"""The files ``moewir distill run`` writes, all from the decisions, in candidate order.

==========================  ==========================================================
``kept.csv``                ``input,target,type,score`` per kept pair
``rejected.csv``            ``input,target,type,reason,score`` (reasons joined by ``;``)
``train.csv``               ``input,target,task`` of every kept pair: ``moewir train``
                            reads it as a dataset (``datasets.train.root: OUT/train.csv``)
``lists/<type>.csv``        the same, one list per rain type
``dataset/<type>/...``      ``{input,target}/`` folders of links to the kept pairs (the
                            UniRain layout; ``--materialize copy`` copies, ``none`` skips)
``report.md``/``.json``     kept and rejected per source dataset, per type and per reason,
                            score histograms, settings and timing
==========================  ==========================================================

Near-duplicates are found here, across the pairs the judge kept: a pair whose input and
target difference hashes are both within ``dup_bits`` of an earlier kept pair's, and whose
degradation lies in the same places (residual grids correlate above ``dup_residual``), is
rejected as ``duplicate`` of that pair. Two rain renderings of one clean photo share their
hashes but not their residual grids, and both stay. Hashes are bucketed by their four 16-bit bands
(pigeonhole: two hashes within 3 bits share a band exactly), so this is linear in the
number of pairs.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..data.io import atomic_file
from ..data.layouts import UNIRAIN
from ..tables import markdown_table
from .features import RAIN_TYPES
from .pairs import hamming, residual_correlation

__all__ = ["write_outputs", "find_duplicates"]

HIST_BINS = 10


def find_duplicates(kept: list[dict], max_bits: int, min_correlation: float) -> dict[int, int]:
    """``{i: j}``: ``kept[i]`` duplicates the earlier ``kept[j]`` (decisions in candidate order)."""
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    hashes = [(int(d["stats"]["input_dhash"], 16), int(d["stats"]["target_dhash"], 16)) for d in kept]

    out: dict[int, int] = {}
    for i, (hi, ht) in enumerate(hashes):
        bands = [(b, (ht >> (16 * b)) & 0xFFFF) for b in range(4)]
        seen = {j for band in bands for j in buckets.get(band, ())}
        for j in sorted(seen):
            if (hamming(ht, hashes[j][1]) <= max_bits and hamming(hi, hashes[j][0]) <= max_bits
                    and residual_correlation(kept[i]["stats"]["residual_grid"],
                                             kept[j]["stats"]["residual_grid"]) > min_correlation):
                out[i] = j
                break
        else:
            for band in bands:
                buckets[band].append(i)
    return out


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as f:
        f.write(text)


def _histogram(scores: list[float]) -> list[int]:
    return np.histogram(np.asarray(scores, np.float64), bins=HIST_BINS, range=(0.0, 1.0))[0].tolist()


def _materialize(out: Path, kept: list[dict], mode: str) -> None:
    """``OUT/dataset/<type>/{input,target}/<source>__<name>``, links (or copies) to the kept files."""
    root = out / "dataset"
    staging = out / "dataset.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for d in kept:
        for side in ("input", "target"):
            src = Path(d[side])
            dst = staging / d["type"] / side / f"{d['source']}__{Path(d['input']).stem}{src.suffix.lower()}"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if mode == "copy":
                shutil.copy2(src, dst)
            else:
                os.symlink(src, dst)
    staging.mkdir(exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(staging, root)


def write_outputs(out: Path, all_candidates: list, decisions: dict[str, dict], settings, db, elapsed: float) -> dict:
    """Everything in the module docstring."""
    ordered = [decisions[c.key] for c in all_candidates if c.key in decisions]
    judged = [d for d in ordered if not d["reasons"]]
    thresholds = settings.thresholds
    for i, j in find_duplicates(judged, thresholds["dup_bits"], thresholds["dup_residual"]).items():
        judged[i].update(reasons=["duplicate"], detail=f"duplicate of {judged[j]['input']}")
    kept = [d for d in ordered if not d["reasons"]]
    rejected = [d for d in ordered if d["reasons"]]

    def score(d: dict) -> str:
        return "" if d["score"] is None else f"{d['score']:.4f}"

    _write(out / "kept.csv", _csv_text(["input", "target", "type", "score"],
                                       [[d["input"], d["target"], d["type"], score(d)] for d in kept]))
    _write(out / "rejected.csv", _csv_text(["input", "target", "type", "reason", "score"],
                                           [[d["input"], d["target"], d["type"], ";".join(d["reasons"]), score(d)]
                                            for d in rejected]))
    _write(out / "train.csv", _csv_text(["input", "target", "task"], [[d["input"], d["target"], d["type"]] for d in kept]))
    for t in RAIN_TYPES:
        rows = [[d["input"], d["target"], t] for d in kept if d["type"] == t]
        path = out / "lists" / f"{t}.csv"
        if rows:
            _write(path, _csv_text(["input", "target", "task"], rows))
        elif path.is_file():
            path.unlink()
    if settings.materialize != "none":
        _materialize(out, kept, settings.materialize)

    report = _report(ordered, kept, rejected, settings, db, elapsed, len(all_candidates))
    _write(out / "report.json", json.dumps(report, indent=1) + "\n")
    _write(out / "report.md", report_markdown(report))
    return report


def _report(ordered, kept, rejected, settings, db, elapsed, total) -> dict:
    sources: dict[str, dict] = {}
    for d in ordered:
        s = sources.setdefault(d["source"], {"candidates": 0, "kept": 0, "rejected": Counter()})
        s["candidates"] += 1
    for d in kept:
        sources[d["source"]]["kept"] += 1
    for d in rejected:
        sources[d["source"]]["rejected"][d["reasons"][0]] += 1
    reasons = Counter(d["reasons"][0] for d in rejected)
    return {
        "candidates": total, "decided": len(ordered), "kept": len(kept), "rejected": len(rejected),
        "by_source": {k: {**v, "rejected": dict(v["rejected"])} for k, v in sources.items()},
        "by_reason": dict(reasons.most_common()),
        "kept_by_type": {t: sum(d["type"] == t for d in kept) for t in RAIN_TYPES},
        "histogram_bins": np.linspace(0, 1, HIST_BINS + 1).round(2).tolist(),
        "score_histogram": {"kept": _histogram([d["score"] for d in kept]),
                            "rejected_by_judge": _histogram([d["score"] for d in rejected
                                                             if d["score"] is not None and d["reasons"][0] != "duplicate"])},
        "settings": {k: v for k, v in asdict(settings).items() if k != "http"},
        "judge": settings.judge, "references": len(db), "describer": db.describer,
        "seconds": round(elapsed, 1),
    }


def _bar(count: int, largest: int, width: int = 30) -> str:
    return "#" * (round(width * count / largest) if largest else 0)


def report_markdown(r: dict) -> str:
    lines = ["# Distillation report", "",
             f"{r['candidates']} candidate pairs, {r['kept']} kept, {r['rejected']} rejected; judge `{r['judge']}`, "
             f"{r['references']} references (`{r['describer']}`), {r['seconds']} s.", "",
             "## By source dataset", ""]
    sources = []
    for name, s in r["by_source"].items():
        why = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items(), key=lambda kv: -kv[1])) or "-"
        sources.append([name, s["candidates"], s["kept"], f"{100 * s['kept'] / max(s['candidates'], 1):.1f}", why])
    lines.append(markdown_table(["source", "candidates", "kept", "kept %", "rejected (by reason)"], sources,
                                align="lrrrl"))
    lines += ["", "## Rejected, by reason", "",
              markdown_table(["reason", "pairs"], list(r["by_reason"].items()) or [["-", 0]], align="lr")]
    lines += ["", "## Kept, by rain type", "",
              markdown_table(["type", "task", "pairs"], [[t, UNIRAIN[t], n] for t, n in r["kept_by_type"].items()],
                             align="llr")]
    bins = r["histogram_bins"]
    for name, counts in r["score_histogram"].items():
        lines += ["", f"## Judge scores: {name.replace('_', ' ')}", "", "```"]
        largest = max(counts) if counts else 0
        lines += [f"{bins[i]:.1f}-{bins[i + 1]:.1f} {c:7d} {_bar(c, largest)}" for i, c in enumerate(counts)]
        lines.append("```")
    return "\n".join(lines) + "\n"
