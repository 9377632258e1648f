"""The reference database: real rainy images with their captions, features and thumbnails.

On disk, ``DB/`` holds

* ``refs.sqlite``: one row per reference (path, size, mtime, caption, rain type, raw visual
  feature, thumbnail). Rows are committed in batches, so an interrupted ``index`` keeps what
  it finished; a re-run describes only new or changed files and drops rows of deleted files;
* ``meta.json``: the describer that made the rows and the feature standardization;
* ``search/``: the arrays retrieval reads, rewritten after every ``index``: ``captions.npy``
  (hashed caption vectors), ``visual.npy`` (standardized, L2-normalized features) and
  ``thumbs.npy`` (uint8, memory-mapped). 100k references take about 25 MB of visual features,
  100 MB of caption vectors and 400 MB of thumbnails, most of it never read into memory.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from ..data.io import IMAGE_EXTENSIONS, atomic_file, is_image_file
from .analysis import DescribeJob, Failure, describe_files
from .features import THUMB_SIZE, Description, embed_captions

__all__ = ["ReferenceDB", "IndexReport", "DatabaseError", "reference_files"]


class DatabaseError(ValueError):
    """The reference database is missing, empty, or was built by another describer."""


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    total: int = 0


def reference_files(folders: Iterable[str | Path]) -> list[Path]:
    """Every image under the given folders (recursively) or given as files, resolved and sorted."""
    files: set[Path] = set()
    for item in folders:
        p = Path(item)
        if p.is_file():
            if not is_image_file(p):
                raise DatabaseError(f"{p}: not an image file (expected {', '.join(IMAGE_EXTENSIONS)})")
            files.add(p.resolve())
        elif p.is_dir():
            files.update(f.resolve() for f in p.rglob("*") if f.is_file() and is_image_file(f))
        else:
            raise DatabaseError(f"{p}: no such file or folder")
    return sorted(files)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)


class ReferenceDB:
    """A reference database folder (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    # -- building -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.folder / "refs.sqlite")
        con.execute("CREATE TABLE IF NOT EXISTS refs (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                    f"{Description.SQL_SCHEMA})")
        con.execute("CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT)")
        return con

    def index(self, folders: Iterable[str | Path], describer: str = "builtin", workers: int = 0,
              progress: bool = False, batch: int = 64) -> IndexReport:
        """Add the images under ``folders``; only new or changed files are described, and rows
        of files that no longer exist are dropped (rows from other folders stay)."""
        files = reference_files(folders)
        report = IndexReport()
        con = self._connect()
        try:
            row = con.execute("SELECT value FROM info WHERE key='describer'").fetchone()
            if row and row[0] != describer:
                raise DatabaseError(f"{self.folder}: built with describer {row[0]!r}, not {describer!r}; "
                                    f"use another --db folder")
            con.execute("INSERT OR REPLACE INTO info VALUES ('describer', ?)", (describer,))
            known = {p: (s, m) for p, s, m in con.execute("SELECT path, size, mtime_ns FROM refs")}
            todo = []
            for f in files:
                st = f.stat()
                old = known.get(str(f))
                if old == (st.st_size, st.st_mtime_ns):
                    report.unchanged += 1
                else:
                    todo.append(DescribeJob(str(f), st.st_size, st.st_mtime_ns))
            gone = [p for p in known if not Path(p).is_file()]  # deleted since the last index
            con.executemany("DELETE FROM refs WHERE path = ?", [(p,) for p in gone])
            report.removed = len(gone)
            pending = 0
            described = describe_files(todo, describer, workers)
            for job, result in tqdm(described, total=len(todo), desc="index", unit="img", disable=not progress,
                                    dynamic_ncols=True):
                if isinstance(result, Failure):
                    report.failed.append((job.path, result.problem))
                else:
                    if job.path in known:
                        report.updated += 1
                    else:
                        report.added += 1
                    con.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (job.path, job.size, job.mtime_ns, *result.row()))
                    pending += 1
                    if pending >= batch:
                        con.commit()
                        pending = 0
            con.commit()
            report.total = con.execute("SELECT COUNT(*) FROM refs").fetchone()[0]
            self._export(con, describer)
        finally:
            con.close()
        return report

    def _export(self, con: sqlite3.Connection, describer: str) -> None:
        """Rewrite ``meta.json`` and the ``search/`` arrays from the rows."""
        count = con.execute("SELECT COUNT(*) FROM refs").fetchone()[0]
        search = self.folder / "search"
        search.mkdir(exist_ok=True)
        if count == 0:
            meta = {"describer": describer, "count": 0}
        else:
            dim = len(con.execute("SELECT visual FROM refs LIMIT 1").fetchone()[0]) // 4
            visual = np.empty((count, dim), np.float32)
            thumbs = np.lib.format.open_memmap(search / "thumbs.npy.tmp", mode="w+", dtype=np.uint8,
                                               shape=(count, THUMB_SIZE, THUMB_SIZE))
            paths, captions, types = [], [], []
            rows = con.execute(f"SELECT path, {Description.SQL_COLUMNS} FROM refs ORDER BY path")
            for i, (path, *row) in enumerate(rows):
                ref = Description.from_row(*row)
                paths.append(path)
                captions.append(ref.caption)
                types.append(ref.rain_type.value)
                visual[i] = ref.visual
                thumbs[i] = ref.thumb
            thumbs.flush()
            del thumbs
            os.replace(search / "thumbs.npy.tmp", search / "thumbs.npy")
            mean = visual.mean(0).astype(np.float64)
            std = visual.std(0).astype(np.float64)
            std[std < 1e-6] = 1.0
            _save_npy(search / "visual.npy", standardize(visual, mean, std))
            _save_npy(search / "captions.npy", embed_captions(captions))
            with atomic_file(search / "refs.json", "w") as f:
                json.dump({"paths": paths, "captions": captions, "types": types}, f)
            meta = {"describer": describer, "count": count, "feature_dim": dim,
                    "mean": mean.tolist(), "std": std.tolist()}
        with atomic_file(self.folder / "meta.json", "w") as f:
            json.dump(meta, f, indent=1)

    # -- reading --------------------------------------------------------------------------
    def load(self) -> "LoadedDB":
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise DatabaseError(f"{self.folder}: not a reference database (no meta.json); "
                                f"build it with `moewir distill index --references DIR --db {self.folder}`")
        meta = json.loads(meta_path.read_text())
        if not meta.get("count"):
            raise DatabaseError(f"{self.folder}: the reference database is empty")
        search = self.folder / "search"
        names = json.loads((search / "refs.json").read_text())
        return LoadedDB(describer=meta["describer"], paths=names["paths"], captions=names["captions"],
                        types=names["types"], caption_vectors=np.load(search / "captions.npy", mmap_mode="r"),
                        visual=np.load(search / "visual.npy"), thumbs=np.load(search / "thumbs.npy", mmap_mode="r"),
                        mean=np.asarray(meta["mean"]), std=np.asarray(meta["std"]))


def standardize(visual: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Z-score every feature with the database's statistics, then L2-normalize each row."""
    z = (np.atleast_2d(visual).astype(np.float64) - mean) / std
    return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass
class LoadedDB:
    describer: str
    paths: list[str]
    captions: list[str]
    types: list[str]
    caption_vectors: np.ndarray  # N x CAPTION_DIM
    visual: np.ndarray           # N x D, standardized and L2-normalized
    thumbs: np.ndarray           # N x 64 x 64 uint8 (memory-mapped)
    mean: np.ndarray
    std: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)
