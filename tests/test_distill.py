"""UniRain distillation: features, pair checks, retrieval, the built-in judge, the resumable run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from moewir.cli.main import main
from moewir.data.io import read_image, write_image
from moewir.data.layouts import discover
from moewir.distill.database import ReferenceDB, standardize
from moewir.distill.features import BuiltinDescriber, embed_captions, rain_type_of_caption, thumbnail
from moewir.distill.judges import BuiltinJudge, Verdict
from moewir.distill.pairs import alignment, dhash, hamming, pair_problems, pair_statistics
from moewir.distill.pipeline import DistillSettings, run_distill
from moewir.distill.retrieval import retrieve, ssim_thumbs
from moewir.synth.build import default_photos
from moewir.synth.tasks import synthesize

ROOT = Path(__file__).resolve().parent.parent
SIZE = (192, 256)
TASK_DIRS = {"rain": "drs", "raindrop": "drd", "nightrain": "nrs", "nightraindrop": "nrd"}


def _photos() -> list[np.ndarray]:
    from PIL import Image
    out = []
    for p in default_photos():
        img = Image.open(p).convert("RGB").resize(SIZE[::-1], Image.Resampling.BILINEAR)
        out.append(np.asarray(img, np.float32) / 255.0)
    return out


@pytest.fixture(scope="module")
def photos():
    return _photos()


def _pair(photo: np.ndarray, task: str, seed: int, severity: float = 0.7):
    return synthesize(photo, task, seed, severity)[:2]


@pytest.fixture(scope="module")
def world(tmp_path_factory, photos):
    """References (rain of 4 types on photos 0-1, flipped) and a UniRain-layout candidate set
    on photos 2-3, plus planted bad pairs in their own dataset."""
    root = tmp_path_factory.mktemp("distill")
    refs = root / "refs"
    for i, photo in enumerate(photos[:2]):
        for task in TASK_DIRS:
            for k in range(3):
                write_image(refs / f"{task}_{i}_{k}.png", _pair(photo[:, ::-1], task, 100 * i + k)[0])
    good = root / "good"
    for i, photo in enumerate(photos[2:]):
        for task, code in TASK_DIRS.items():
            for k in range(2):
                inp, tgt = _pair(photo, task, 1000 + 10 * i + k)
                write_image(good / code / "input" / f"p{i}_{k}.png", inp)
                write_image(good / code / "target" / f"p{i}_{k}.png", tgt)
    bad = root / "bad"
    planted = {}
    for i, photo in enumerate(photos[2:]):
        inp, tgt = _pair(photo, "rain", 2000 + i)
        cases = {
            "misaligned_0": (inp, np.roll(tgt, (4, -3), (0, 1))),
            "misaligned_1": (inp, np.roll(tgt, (0, 2), (0, 1))),
            "rainy-target_0": (inp, _pair(tgt, "rain", 3000 + i, 0.5)[0]),
            "rainy-target_1": (inp, _pair(tgt, "rain", 3100 + i, 0.5)[0]),
            "clean-input_0": (np.clip(tgt + 0.002, 0, 1), tgt),
        }
        for case, (a, b) in cases.items():
            name = f"{case}_{i}"
            write_image(bad / "drs" / "input" / f"{name}.png", a)
            write_image(bad / "drs" / "target" / f"{name}.png", b)
            planted[name] = case[:-2]
    ReferenceDB(root / "db").index([refs])
    return {"root": root, "refs": refs, "good": good, "bad": bad, "planted": planted, "db": root / "db"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- features and measurements ----------------------------------------------------------
def test_ssim_thumbs_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    ours = ssim_thumbs(a, b)
    ref = [metrics.structural_similarity(x, y, win_size=7, data_range=255, use_sample_covariance=False)
           for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_dhash_and_hamming_by_hand():
    # Columns increase left to right: every horizontal difference is positive, all 64 bits set.
    import torch
    ramp = torch.linspace(0, 1, 90).repeat(80, 1)
    assert dhash(ramp) == 2 ** 64 - 1
    assert dhash(ramp.flip(1)) == 0
    assert hamming(0b1011, 0b0001) == 2


@pytest.mark.parametrize("shift", [(0, 0), (3, -2), (-5, 4)])
def test_alignment_finds_a_known_shift(photos, shift):
    import torch
    from moewir.ops.color import luma
    y = torch.from_numpy(np.ascontiguousarray(luma(photos[0], "bt601-full", channel_axis=-1)))
    dy, dx, ncc = alignment(y, torch.roll(y, shift, (0, 1)))
    assert (round(dy), round(dx)) == shift
    if shift == (0, 0):
        assert ncc == pytest.approx(1.0, abs=1e-4)


def test_caption_words_and_embedding():
    assert rain_type_of_caption("night photo, heavy rain drops, dark scene") == "nrd"
    assert rain_type_of_caption("day photo, light rain streaks") == "drs"
    v = embed_captions(["day photo, light rain streaks", "day photo, light rain streaks", "night, drops"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    assert v[0] @ v[1] == pytest.approx(1.0) and v[0] @ v[2] < 0.5


def test_builtin_describer_tells_night_from_day(photos):
    d = BuiltinDescriber()
    for i, photo in enumerate(photos):
        day = d.describe(_pair(photo, "rain", i)[0])
        night = d.describe(_pair(photo, "nightrain", i)[0])
        assert day.caption.startswith("day") and night.caption.startswith("night")
        assert day.visual.shape == night.visual.shape and np.isfinite(day.visual).all()


# -- the reference database and retrieval ------------------------------------------------
def test_index_is_incremental(tmp_path, photos):
    refs, db = tmp_path / "refs", ReferenceDB(tmp_path / "db")
    for i in range(3):
        write_image(refs / f"r{i}.png", _pair(photos[i], "rain", i)[0])
    first = db.index([refs])
    assert (first.added, first.total) == (3, 3)
    visual_before = np.load(tmp_path / "db" / "search" / "thumbs.npy").copy()
    write_image(refs / "r3.png", _pair(photos[3], "rain", 3)[0])
    (refs / "broken.png").write_bytes(b"not a png")
    second = db.index([refs])
    assert (second.added, second.unchanged, second.total) == (1, 3, 4)
    assert [Path(p).name for p, _ in second.failed] == ["broken.png"]
    loaded = db.load()
    # old rows kept their thumbnails; rows are ordered by path, r3 is the new last one
    np.testing.assert_array_equal(np.asarray(loaded.thumbs[:3]), visual_before)
    (refs / "r0.png").unlink()
    third = db.index([refs])
    assert (third.removed, third.total) == (1, 3)
    with pytest.raises(ValueError, match="describer"):
        db.index([refs], describer="clip:/nowhere")


def test_retrieval_returns_planted_neighbours(world, photos, tmp_path):
    db = ReferenceDB(world["db"]).load()
    d = BuiltinDescriber()
    rng = np.random.default_rng(0)
    # Each query is a reference, slightly re-rendered: its source must come back first.
    rows = [0, 5, 11, 17, 23]
    queries = []
    for r in rows:
        img = read_image(db.paths[r])
        queries.append(np.clip(img * 1.02 + rng.normal(0, 0.005, img.shape), 0, 1).astype(np.float32))
    desc = [d.describe(q) for q in queries]
    found = retrieve(db, embed_captions([x.caption for x in desc]),
                     standardize(np.stack([x.visual for x in desc]), db.mean, db.std),
                     np.stack([thumbnail(q) for q in queries]), k1=20, k2=8, k3=3)
    assert found.indices.shape == (5, 3)
    assert found.indices[:, 0].tolist() == rows
    # leave-one-out excludes the row itself
    loo = retrieve(db, np.asarray(db.caption_vectors[rows]), db.visual[rows], np.asarray(db.thumbs[rows]),
                   k1=20, k2=8, k3=3, exclude=np.array(rows))
    assert not any(r in loo.indices[i] for i, r in enumerate(rows))


def test_builtin_judge_realism_percentile():
    judge = BuiltinJudge(np.array([0.1, 0.2, 0.3, 0.4]), min_realism=0.5)
    assert judge.realism(np.array([0.25])) == 0.5
    verdicts = judge.judge([_query(np.array([0.05])), _query(np.array([0.35, 0.45]))])
    assert [v.keep for v in verdicts] == [False, True] and verdicts[0].reason == "unrealistic"


def _query(visual):
    from moewir.distill.judges import Query
    return Query(0, "a", "b", "drs", "", ["r"] * len(visual), visual, visual)


# -- pair checks and the whole run -------------------------------------------------------
def _recall(found: dict[str, list[str]], planted: dict[str, str], reason: str) -> float:
    names = [n for n, why in planted.items() if why == reason]
    return sum(reason in found[n] for n in names) / len(names)


def test_pair_checks_pass_good_pairs_and_catch_planted_bad_ones(world):
    # bench/distill_calibrate.py measures these rates on 192 pairs (docs/distill.md): misaligned
    # and clean inputs 100%, rain left in a day-streak target 85-90%, good pairs rejected <= 10%.
    problems = []
    for task, pair_list in discover(world["good"]).items():
        for p in pair_list:
            problems.append(pair_problems(pair_statistics(read_image(p.input), read_image(p.target)), TASK_DIRS[task]))
    assert sum(map(bool, problems)) <= 1, problems  # of 16
    found = {p.input.stem: pair_problems(pair_statistics(read_image(p.input), read_image(p.target)), "drs")
             for p in discover(world["bad"])["rain"]}
    assert _recall(found, world["planted"], "misaligned") == 1.0
    assert _recall(found, world["planted"], "clean-input") == 1.0
    assert _recall(found, world["planted"], "rainy-target") >= 0.75


def test_pair_thresholds_merge_per_type_and_refuse_unknown_names():
    from moewir.distill.pairs import PAIR_THRESHOLDS, pair_thresholds
    th = pair_thresholds({"max_rain_left": {"drs": 0.9}, "max_psnr": 50.0})
    assert th["max_rain_left"] == {**PAIR_THRESHOLDS["max_rain_left"], "drs": 0.9} and th["max_psnr"] == 50.0
    assert PAIR_THRESHOLDS["max_rain_left"]["drs"] == 0.8  # the defaults are not touched
    with pytest.raises(ValueError, match="unknown threshold 'max_shfit'"):
        DistillSettings.from_config({"pair_checks": {"max_shfit": 2}})
    with pytest.raises(ValueError, match="pair_checks.max_rain_left"):
        pair_thresholds({"max_rain_left": {"xyz": 1.0}})


def _settings(**kw) -> DistillSettings:
    return DistillSettings(k1=12, k2=6, k3=3, chunk=5, **kw)


def test_run_keeps_good_rejects_planted(world, tmp_path):
    dup = tmp_path / "dup"
    # an exact copy of two good pairs under another name: duplicates of the originals
    for name in ("p0_0", "p1_1"):
        for side in ("input", "target"):
            (dup / "drs" / side).mkdir(parents=True, exist_ok=True)
            (dup / "drs" / side / f"copy_{name}.png").write_bytes((world["good"] / "drs" / side / f"{name}.png").read_bytes())
    out = tmp_path / "out"
    report = run_distill([str(world["good"]), f"bad={world['bad']}", f"dup={dup}"], world["db"], out,
                         _settings(min_realism=0.0))
    kept, rejected = _rows(out / "kept.csv"), _rows(out / "rejected.csv")
    assert len(kept) + len(rejected) == report["candidates"] == 16 + 10 + 2
    reasons = {Path(r["input"]).stem: r["reason"].split(";") for r in rejected}
    found = {name: reasons.get(name, []) for name in world["planted"]}
    assert _recall(found, world["planted"], "misaligned") == _recall(found, world["planted"], "clean-input") == 1.0
    assert _recall(found, world["planted"], "rainy-target") >= 0.75
    assert reasons["copy_p0_0"] == reasons["copy_p1_1"] == ["duplicate"]
    kept_good = [r for r in kept if "/good/" in r["input"]]
    assert len(kept_good) >= 15, sorted(reasons)
    assert {r["type"] for r in kept_good} == {"drs", "drd", "nrs", "nrd"}
    # train.csv and the dataset folder are readable as datasets, with the four tasks
    assert sum(map(len, discover(out / "train.csv").values())) == len(kept)
    assert set(discover(out / "dataset")) == {"rain", "raindrop", "nightrain", "nightraindrop"}
    assert set(discover(out / "lists" / "nrd.csv")) == {"nightraindrop"}
    assert report["by_reason"]["duplicate"] == 2
    bad_kept = report["by_source"]["bad"]["kept"]
    assert bad_kept <= 1 and f"| bad | 10 | {bad_kept} |" in (out / "report.md").read_text()


class Interrupting:
    """A judge that stops the run (like Ctrl-C) after ``after`` queries."""
    name = "builtin"

    def __init__(self, inner, after: int):
        self.inner, self.after, self.seen = inner, after, 0

    def judge(self, queries):
        if self.seen + len(queries) > self.after:
            raise KeyboardInterrupt
        self.seen += len(queries)
        return self.inner.judge(queries)


def test_resume_after_interruption_gives_the_same_output(world, tmp_path):
    from moewir.distill.judges import reference_realism
    db = ReferenceDB(world["db"]).load()
    s = _settings()
    judge = BuiltinJudge(reference_realism(db, s.k1, s.k2, s.k3), s.min_realism)
    datasets = [str(world["good"]), f"bad={world['bad']}"]
    run_distill(datasets, world["db"], tmp_path / "once", s, judge=judge)
    with pytest.raises(KeyboardInterrupt):
        run_distill(datasets, world["db"], tmp_path / "twice", s, judge=Interrupting(judge, 7))
    lines = (tmp_path / "twice" / "decisions.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 26 and not (tmp_path / "twice" / "kept.csv").exists()
    run_distill(datasets, world["db"], tmp_path / "twice", s, judge=judge)
    for name in ("kept.csv", "rejected.csv", "train.csv", "lists/drs.csv"):
        assert (tmp_path / "once" / name).read_text() == (tmp_path / "twice" / name).read_text(), name
    once = json.loads((tmp_path / "once" / "report.json").read_text())
    twice = json.loads((tmp_path / "twice" / "report.json").read_text())
    for r in (once, twice):
        r.pop("seconds")
    assert once == twice


def test_judge_errors_are_retried_on_the_next_run(world, tmp_path):
    class Failing:
        name = "http"

        def judge(self, queries):
            return [Verdict(False, 0.0, "judge-error", "timed out") for _ in queries]

    s = _settings(min_realism=0.0)
    datasets = [str(world["good"])]
    first = run_distill(datasets, world["db"], tmp_path / "o", s, judge=Failing())
    assert first["by_reason"]["judge-error"] >= 15
    from moewir.distill.judges import reference_realism
    db = ReferenceDB(world["db"]).load()
    second = run_distill(datasets, world["db"], tmp_path / "o", s,
                         judge=BuiltinJudge(reference_realism(db, s.k1, s.k2, s.k3), 0.0))
    assert second["kept"] == first["by_reason"]["judge-error"]


def test_cli_index_and_run_with_config(world, tmp_path, capsys):
    config = yaml.safe_load((ROOT / "configs" / "distill.yml").read_text())
    # the shipped config states the built-in defaults
    from moewir.distill.pairs import PAIR_THRESHOLDS
    from_file, defaults = DistillSettings.from_config(config), DistillSettings()
    assert from_file.pair_checks == PAIR_THRESHOLDS
    from moewir.distill.http_judge import DEFAULT_PROMPT
    assert from_file.http["prompt"].rstrip("\n") == DEFAULT_PROMPT
    from_file.pair_checks, from_file.http = {}, {}
    assert from_file == defaults
    db = tmp_path / "db"
    assert main(["distill", "index", "--references", str(world["refs"]), "--db", str(db), "--no-progress"]) == 0
    assert "24 references (24 added" in capsys.readouterr().out
    cfg = tmp_path / "d.yml"
    cfg.write_text(yaml.safe_dump({**config, "materialize": "none"}))
    code = main(["distill", "run", "--candidates", str(world["good"]), "--db", str(db), "--out", str(tmp_path / "o"),
                 "--config", str(cfg), "--k1", "12", "--k2", "6", "--k3", "3", "--limit", "6", "--no-progress",
                 "--json", str(tmp_path / "r.json")])
    assert code == 0
    assert "6 candidate pairs" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["candidates"] == 6
    assert not (tmp_path / "o" / "dataset").exists()
    # clear one-line errors
    assert main(["distill", "run", "--candidates", str(world["good"]), "--db", str(tmp_path / "nodb"),
                 "--out", str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "not a reference database" in capsys.readouterr().err
    bad_cfg = tmp_path / "bad.yml"
    bad_cfg.write_text("retreival: {k1: 3}\n")
    assert main(["distill", "run", "--candidates", str(world["good"]), "--db", str(db), "--out", str(tmp_path / "o3"),
                 "--config", str(bad_cfg), "--no-progress"]) == 2
    assert "bad.yml: unknown section(s) retreival" in capsys.readouterr().err


def _haze_set_and_untyped_list(world, tmp_path, photos) -> tuple[Path, Path, Path]:
    """A haze dataset (no rain type), and a list without tasks holding one night-rain pair (its folder too)."""
    haze = tmp_path / "haze_set"
    inp, tgt = _pair(photos[2], "haze", 0)
    write_image(haze / "haze" / "input" / "a.png", inp)
    write_image(haze / "haze" / "target" / "a.png", tgt)
    src = world["good"] / "nrs"
    listing = tmp_path / "mixed.csv"
    listing.write_text(f"{src / 'input' / 'p0_0.png'},{src / 'target' / 'p0_0.png'}\n")
    return haze, listing, src


def test_non_rain_tasks_and_untyped_lists(world, tmp_path, photos):
    haze, listing, src = _haze_set_and_untyped_list(world, tmp_path, photos)
    out = tmp_path / "o"
    run_distill([str(haze), str(listing)], world["db"], out, _settings(min_realism=0.0, materialize="none"))
    rejected = _rows(out / "rejected.csv")
    assert [r["reason"] for r in rejected] == ["not-rain"]
    kept = _rows(out / "kept.csv")
    guess = BuiltinDescriber().describe(read_image(src / "input" / "p0_0.png")).rain_type
    assert [r["type"] for r in kept] == [guess] and guess[0] == "n"  # the describer's guess; night


def test_unified_deraining_trains_and_evaluates_on_the_distilled_four_types(world, tmp_path, capsys):
    """configs/unirain_rain4.yml (asymmetric MoE, unirain weighting) reads the distilled
    dataset/ folder; `moewir eval` reports the four rain types."""
    out = tmp_path / "distilled"
    run_distill([str(world["good"])], world["db"], out, _settings(min_realism=0.0))
    sets = ["datasets.train.patch_size=32", "datasets.train.workers=0", "datasets.val.center_crop=64",
            "datasets.val.max_per_task=1", "schedule.iterations=4", "val.every=4", "log.every=2",
            "log.checkpoint_every=4", "train.amp=none", "model.name=moewirnet-tiny", "model.dim=12",
            "weighting.warmup=2", "weighting.window=2", "device=cpu", "log.tensorboard=false",
            f"datasets.train.root={out / 'dataset'}", f"datasets.val.root={world['good']}",
            f"experiments_root={tmp_path / 'exp'}"]
    args = ["train", str(ROOT / "configs" / "unirain_rain4.yml"), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    weights = sorted((tmp_path / "exp" / "unirain_rain4" / "checkpoints").glob("net_ema_*.safetensors"))[-1]
    capsys.readouterr()
    assert main(["eval", "--weights", str(weights), "--data", str(world["good"]), "--input-baseline",
                 "--no-progress"]) == 0
    table = capsys.readouterr().out
    for task in ("rain", "raindrop", "nightrain", "nightraindrop"):
        assert f"| {task} |" in table


def test_worker_processes_give_the_same_decisions(world, tmp_path):
    from moewir.distill.judges import reference_realism
    db = ReferenceDB(world["db"]).load()
    s = _settings(materialize="none")
    judge = BuiltinJudge(reference_realism(db, s.k1, s.k2, s.k3), s.min_realism)
    run_distill([str(world["good"])], world["db"], tmp_path / "serial", s, judge=judge)
    s.workers = 2
    run_distill([str(world["good"])], world["db"], tmp_path / "pool", s, judge=judge)
    for name in ("kept.csv", "rejected.csv"):
        assert (tmp_path / "serial" / name).read_text() == (tmp_path / "pool" / name).read_text()


# -- storage: one row encoding, and the TEXT values of rain types stay the codes ----------------
def test_a_database_written_before_the_rain_type_enum_reads_back(tmp_path, photos):
    import sqlite3

    from moewir.distill.features import RainType
    refs = tmp_path / "refs"
    files = [refs / "a.png", refs / "b.png"]
    for i, f in enumerate(files):
        write_image(f, _pair(photos[i], "rain", i)[0])
    dim = len(BuiltinDescriber().describe(photos[0]).visual)
    # the schema and rows exactly as the earlier code wrote them (literal SQL, literal codes)
    folder = tmp_path / "db"
    folder.mkdir()
    con = sqlite3.connect(folder / "refs.sqlite")
    con.execute("CREATE TABLE refs (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, caption TEXT, "
                "rain_type TEXT, visual BLOB, thumb BLOB)")
    con.execute("CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO info VALUES ('describer', 'builtin')")
    thumbs = [np.full((64, 64), 10 * (i + 1), np.uint8) for i in range(2)]
    for f, code, caption, thumb in zip(files, ("nrd", "drs"), ("night photo, rain drops", "day photo, rain streaks"),
                                       thumbs):
        st = f.resolve().stat()
        con.execute("INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(f.resolve()), st.st_size, st.st_mtime_ns, caption, code,
                     np.arange(dim, dtype=np.float32).tobytes(), thumb.tobytes()))
    con.commit()
    con.close()
    report = ReferenceDB(folder).index([refs])
    assert (report.added, report.updated, report.unchanged, report.total) == (0, 0, 2, 2)
    loaded = ReferenceDB(folder).load()
    assert loaded.types == ["nrd", "drs"] and loaded.captions[0] == "night photo, rain drops"
    np.testing.assert_array_equal(np.asarray(loaded.thumbs), np.stack(thumbs))
    assert json.loads((folder / "search" / "refs.json").read_text())["types"] == ["nrd", "drs"]
    # a row written now stores the same TEXT
    write_image(refs / "c.png", _pair(photos[2], "nightrain", 2)[0])
    ReferenceDB(folder).index([refs])
    con = sqlite3.connect(folder / "refs.sqlite")
    rows = con.execute("SELECT rain_type, typeof(rain_type), length(thumb) FROM refs ORDER BY path").fetchall()
    con.close()
    assert rows[:2] == [("nrd", "text", 64 * 64), ("drs", "text", 64 * 64)]
    assert rows[2][0] in {t.value for t in RainType} and rows[2][1:] == ("text", 64 * 64)


def test_analysis_cache_rows_keep_their_format(tmp_path):
    import sqlite3

    from moewir.distill.analysis import PairAnalysis
    from moewir.distill.features import Description, RainType
    from moewir.distill.pipeline import AnalysisCache
    cache = AnalysisCache(tmp_path / "cache.sqlite", "builtin")
    thumb = np.arange(64 * 64, dtype=np.int64).reshape(64, 64).astype(np.uint8)
    written = PairAnalysis(Description("night photo", np.array([0.5, -1.0], np.float32), RainType.NRS, thumb),
                           {"psnr": 20.0})
    cache.put("k", written)
    # a row as the earlier code wrote it
    cache.con.execute("INSERT INTO analysis VALUES (?, ?, ?, ?, ?, ?)",
                      ("old", "day photo", "drd", np.ones(2, np.float32).tobytes(), bytes(16), '{"psnr": 1.0}'))
    cache.close()
    con = sqlite3.connect(tmp_path / "cache.sqlite")
    assert con.execute("SELECT caption, rain_type, typeof(rain_type), visual FROM analysis WHERE key = 'k'"
                       ).fetchone() == ("night photo", "nrs", "text", np.array([0.5, -1.0], np.float32).tobytes())
    con.close()
    cache = AnalysisCache(tmp_path / "cache.sqlite", "builtin")
    got = cache.get("k")
    assert got.query.rain_type is RainType.NRS and got.query.caption == "night photo" and got.stats == {"psnr": 20.0}
    np.testing.assert_array_equal(got.query.thumb, thumb)
    np.testing.assert_array_equal(got.query.visual, written.query.visual)
    old = cache.get("old")
    assert old.query.rain_type is RainType.DRD and old.query.thumb.shape == (4, 4) and cache.get("none") is None
    cache.close()
    with pytest.raises(ValueError, match="thumbnail"):
        Description("x", np.zeros(2, np.float32), RainType.DRS).row()


def test_failures_are_a_type_not_strings(tmp_path, photos):
    from moewir.distill.analysis import DescribeJob, Failure, PairJob, analyze_pairs, describe_files
    from moewir.distill.features import Description
    (tmp_path / "broken.png").write_bytes(b"not a png")
    write_image(tmp_path / "good.png", photos[0])
    jobs = [DescribeJob(str(tmp_path / name), 0, 0) for name in ("broken.png", "good.png")]
    (_, broken), (_, good) = describe_files(jobs, "builtin")
    assert isinstance(broken, Failure) and broken.problem and isinstance(good, Description)
    assert good.thumb.shape == (64, 64) and good.thumb.dtype == np.uint8
    [(_, missing)] = analyze_pairs([PairJob(0, str(tmp_path / "good.png"), str(tmp_path / "nowhere.png"))], "builtin")
    assert isinstance(missing, Failure) and "nowhere.png" in missing.problem


def test_candidate_rain_types(world, tmp_path, photos):
    from moewir.distill.features import RainType
    from moewir.distill.pipeline import NoTaskType, candidates
    haze, listing, _ = _haze_set_and_untyped_list(world, tmp_path, photos)
    found = candidates([str(haze), str(listing), str(world["good"])])
    kinds = {c.task: c.rain_type for c in found}
    assert kinds["haze"] is NoTaskType.NOT_RAIN and kinds["mixed"] is NoTaskType.GUESS
    assert kinds["nightrain"] is RainType.NRS and kinds["rain"] == "drs"
    assert {c.task: c.type_code for c in found} == {"haze": "", "mixed": "", "rain": "drs", "raindrop": "drd",
                                                    "nightrain": "nrs", "nightraindrop": "nrd"}
