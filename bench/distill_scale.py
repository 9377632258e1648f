"""How ``moewir distill`` scales: retrieval against a large reference database, the per-pair
analysis cost, and the duplicate search over many kept pairs.

    python bench/distill_scale.py [--references 100000] [--queries 1024] [--pairs 100000]

The database is synthetic (random features and thumbnails written to a temporary folder in
the on-disk format, captions drawn from the built-in caption vocabulary): retrieval cost
depends on its size, not its content. The analysis is timed on real-sized synthesized pairs.
Prints a table; peak memory is the process's maximum resident set size, which counts the
thumbnail file's pages as they are written and read (page cache, not heap).
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from moewir.distill.analysis import make_describer
from moewir.distill.database import LoadedDB
from moewir.distill.features import THUMB_SIZE, embed_captions, thumbnail
from moewir.distill.outputs import find_duplicates
from moewir.distill.pairs import pair_statistics
from moewir.synth.build import default_photos
from moewir.data.io import read_image
from moewir.synth.tasks import synthesize
from moewir.tables import markdown_table


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_db(folder: Path, n: int, dim: int, rng: np.random.Generator) -> LoadedDB:
    words = [[t, i, f, s] for t in ("day", "night") for i in ("light", "moderate", "heavy")
             for f in ("streaks", "drops") for s in ("dark", "dim", "bright")]
    captions = [f"{w[0]} photo, {w[1]} rain {w[2]}, {w[3]} scene" for w in words]
    vocab = embed_captions(captions)
    pick = rng.integers(0, len(captions), n)
    visual = rng.normal(size=(n, dim)).astype(np.float32)
    visual /= np.linalg.norm(visual, axis=1, keepdims=True)
    thumbs = np.lib.format.open_memmap(folder / "thumbs.npy", mode="w+", dtype=np.uint8, shape=(n, THUMB_SIZE, THUMB_SIZE))
    for start in range(0, n, 10_000):
        thumbs[start:start + 10_000] = rng.integers(0, 256, thumbs[start:start + 10_000].shape, dtype=np.uint8)
    thumbs.flush()
    np.save(folder / "captions.npy", vocab[pick])
    return LoadedDB("builtin", [f"ref{i}" for i in range(n)], [captions[i] for i in pick], ["drs"] * n,
                    np.load(folder / "captions.npy", mmap_mode="r"), visual,
                    np.load(folder / "thumbs.npy", mmap_mode="r"), np.zeros(dim), np.ones(dim))


def main() -> int:
    from moewir.distill.retrieval import retrieve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--references", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--pairs", type=int, default=100_000, help="kept pairs for the duplicate search")
    ap.add_argument("--size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"),
                    help="image size for the per-pair analysis (default 720 1280)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = [("peak memory after imports", "", 0.0, f"{peak_mb():.0f} MB")]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        db = synthetic_db(Path(tmp), args.references, 36, rng)
        rows.append(("build synthetic database", f"{args.references} refs", time.perf_counter() - t, ""))
        q = args.queries
        captions = np.asarray(db.caption_vectors[rng.integers(0, len(db), q)])
        visual = db.visual[rng.integers(0, len(db), q)] + rng.normal(0, 0.1, (q, 36)).astype(np.float32)
        thumbs = np.asarray(db.thumbs[rng.integers(0, len(db), q)])
        t = time.perf_counter()
        found = retrieve(db, captions, visual, thumbs, 200, 20, 5)
        dt = time.perf_counter() - t
        assert found.indices.shape == (q, 5)
        rows.append(("retrieval (k1 200, k2 20, k3 5)", f"{q} queries", dt, f"{1000 * dt / q:.1f} ms/query"))
        rows.append(("peak memory after retrieval", "", 0.0, f"{peak_mb():.0f} MB"))

    photo = read_image(default_photos()[0])
    from PIL import Image
    h, w = args.size
    photo = np.asarray(Image.fromarray((photo * 255).astype(np.uint8)).resize((w, h)), np.float32) / 255
    inp, tgt = synthesize(photo, "rain", 0, 0.6)[:2]
    describer = make_describer("builtin")
    t = time.perf_counter()
    for _ in range(3):
        describer.describe(inp), thumbnail(inp), pair_statistics(inp, tgt)
    per_pair = (time.perf_counter() - t) / 3
    rows.append((f"analysis of one {h}x{w} pair (no file reading)", "", per_pair,
                 f"100k pairs: {per_pair * 1e5 / 3600:.1f} h per worker"))

    hashes = rng.integers(0, 2 ** 63, (args.pairs, 2))
    kept = [{"input": f"i{i}", "target": f"t{i}", "stats": {"input_dhash": f"{a:016x}", "target_dhash": f"{b:016x}",
                                                              "residual_grid": [0.0] * 64}} for i, (a, b) in enumerate(hashes)]
    t = time.perf_counter()
    find_duplicates(kept, 3, 0.9)
    rows.append(("duplicate search", f"{args.pairs} kept pairs", time.perf_counter() - t, ""))
    rows.append(("peak memory (whole script)", "", 0.0, f"{peak_mb():.0f} MB"))

    print(markdown_table(["step", "size", "seconds", "note"],
                         [[step, size, f"{sec:.2f}", note] for step, size, sec, note in rows], align="llrl"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
