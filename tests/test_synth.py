"""Weather synthesis: determinism, physical monotonicity, ranges, the dataset builder."""
import json

import numpy as np
import pytest

from moewir.cli.main import main
from moewir.data import discover, read_image
from moewir.synth import TASKS, synthesize
from moewir.synth.build import build_dataset, default_photos, fit_longer_side, load_depth, merge_datasets
from moewir.synth.weather import haze, veil


def _photo(h=64, w=80):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(9 * x), 0.5 + 0.4 * np.cos(7 * y), 0.3 + 0.5 * x * y], -1)
    return img.astype(np.float32)


def _psnr(a, b):
    return 10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.mark.parametrize("task", list(TASKS))
def test_same_seed_same_output_and_values_in_range(task):
    a = synthesize(_photo(), task, 7, 0.6)
    b = synthesize(_photo(), task, 7, 0.6)
    c = synthesize(_photo(), task, 8, 0.6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    for img in a[:2]:
        assert img.dtype == np.float32 and img.shape == (64, 80, 3) and img.min() >= 0 and img.max() <= 1


@pytest.fixture(scope="module")
def real_photos():
    """The embedded photos, downscaled to 128 px (the generators' behaviour on real content)."""
    return [fit_longer_side(read_image(p), 128) for p in default_photos()]


@pytest.mark.parametrize("task", list(TASKS))
def test_psnr_falls_as_severity_rises_on_real_photos(task, real_photos):
    for photo in real_photos:  # mean over seeds: drop and streak layouts are random
        psnr = np.mean([[_psnr(*synthesize(photo, task, seed, s)[:2]) for s in (0.1, 0.5, 0.95)]
                        for seed in range(3)], axis=0)
        assert psnr[0] > psnr[1] > psnr[2], psnr


def test_transmission_is_exp_minus_beta_d_and_falls_with_beta():
    img = _photo()
    depth = np.linspace(0, 1, 80, dtype=np.float32)[None].repeat(64, 0)
    means = [veil(img, beta, np.full(3, 0.9, np.float32), depth)[1].mean() for beta in (0.5, 1.0, 2.0)]
    assert means[0] > means[1] > means[2]
    out, t = veil(img, 1.0, np.full(3, 0.9, np.float32), depth)
    np.testing.assert_allclose(t, np.exp(-depth), rtol=1e-6)
    np.testing.assert_allclose(out, img * t[..., None] + 0.9 * (1 - t[..., None]), rtol=1e-6)
    _, p = haze(img, np.random.default_rng(0), 0.5, {}, depth=depth)
    assert p["depth"] == "given" and 0 < p["mean_transmission"] < 1


def test_night_tasks_target_the_rainless_night_scene():
    degraded, target, params = synthesize(_photo(), "nightrain", 1, 0.7)
    assert target.mean() < 0.5 * _photo().mean()  # the target is dark, not the daylight photo
    assert "night" in params and "rain" in params


def test_unknown_task_and_bad_severity():
    with pytest.raises(ValueError, match="unknown synthesis task"):
        synthesize(_photo(), "sandstorm", 0, 0.5)
    with pytest.raises(ValueError, match="severity"):
        synthesize(_photo(), "haze", 0, 1.5)


def test_synth_cli_writes_a_readable_deterministic_dataset(tmp_path, capsys):
    clean = tmp_path / "clean"
    clean.mkdir()
    from moewir.data import write_image
    for i in range(3):
        write_image(clean / f"p{i}.png", np.roll(_photo(40, 48), 7 * i, axis=1))
    args = ["synth", "--clean", str(clean), "--tasks", "haze,rain", "--per-image", "2", "--seed", "5",
            "--split", "0.6"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    train, test = discover(tmp_path / "a", "train"), discover(tmp_path / "a", "test")
    assert sorted(train) == ["haze", "rain"] and len(train["rain"]) + len(test["rain"]) == 6
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(manifest["samples"]) == 12 and "beta" in json.dumps(manifest["samples"][0]["params"]) + json.dumps(
        [s["params"] for s in manifest["samples"]])
    assert "| haze |" in capsys.readouterr().out


def test_synth_cli_errors(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "o"), "--tasks", "fog"]) == 2
    assert "unknown synthesis task" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "o"), "--clean", str(tmp_path / "none")]) == 2


def test_synth_cli_uses_user_depth_maps(tmp_path, capsys):
    from PIL import Image

    from moewir.data import write_image
    clean, depth = tmp_path / "clean", tmp_path / "depth"
    depth.mkdir()
    write_image(clean / "p.png", _photo(40, 48))
    ramp = np.repeat(np.linspace(0, 65535, 24, dtype=np.uint16)[None], 20, axis=0)  # half size: resized up
    Image.fromarray(ramp).save(depth / "p.png")  # 16-bit gray, far on the right
    np.testing.assert_allclose(load_depth(depth / "p.png", (20, 24)), ramp / 65535.0, atol=1e-6)
    args = ["synth", "--clean", str(clean), "--tasks", "haze", "--split", "1", "--depth", str(depth)]
    for inverse in (False, True):
        out = tmp_path / f"o{inverse}"
        assert main(args + ["--out", str(out)] + (["--depth-inverse"] if inverse else [])) == 0
        inp, tgt = (read_image(out / "train" / "HAZE" / k / "p_00.png") for k in ("input", "target"))
        change = np.abs(inp - tgt).mean(axis=(0, 2))
        near, far = change[:12].mean(), change[-12:].mean()
        assert (near > far) if inverse else (far > near)
        assert json.loads((out / "manifest.json").read_text())["samples"][0]["params"]["haze"]["depth"] == "given"
    (depth / "p.png").rename(depth / "q.png")
    assert main(args + ["--out", str(tmp_path / "x")]) == 2
    assert "no depth map for 1 of 1 photos (first: p.png)" in capsys.readouterr().err


@pytest.mark.parametrize("workers", ["0", "2"])
def test_synth_cli_corrupt_photo_one_line_or_skipped(tmp_path, capsys, workers):
    """A corrupt photo stops the run with one line naming it, from worker processes too (their
    ImageReadError used to be unpicklable: BrokenProcessPool); --skip-bad leaves it out."""
    from moewir.data import write_image
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(3):
        write_image(clean / f"p{i}.png", np.roll(_photo(40, 48), 7 * i, axis=1))
    (clean / "p1.png").write_bytes((clean / "p1.png").read_bytes()[:60])  # truncated
    args = ["synth", "--clean", str(clean), "--tasks", "haze", "--workers", workers, "--split", "1.0"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 2
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "p1.png" in line]
    assert len(lines) == 1 and lines[0].startswith("moewir: error: ") and "p1.png: corrupt or truncated" in lines[0]
    assert main(args + ["--out", str(tmp_path / "b"), "--skip-bad"]) == 0
    out = capsys.readouterr()
    assert "p1.png: corrupt or truncated image" in out.err and "(skipped)" in out.err
    assert "skipped 1 unreadable photo(s)" in out.out
    assert sorted(p.name for p in (tmp_path / "b" / "train" / "HAZE" / "input").iterdir()) == ["p0_00.png", "p2_00.png"]


def test_image_read_error_survives_pickling_and_torch_worker_rewrap():
    import pickle

    from moewir.data import ImageReadError
    err = pickle.loads(pickle.dumps(ImageReadError("/x/a b.png", "corrupt or truncated image (bad: header)")))
    assert (err.path, err.problem, str(err)) == ("/x/a b.png", "corrupt or truncated image (bad: header)",
                                                 "/x/a b.png: corrupt or truncated image (bad: header)")
    # what torch.utils.data does with a worker's exception: type(formatted traceback)
    wrapped = ImageReadError("Caught ImageReadError in DataLoader worker process 0.\nOriginal Traceback (most "
                             "recent call last):\n  File \"x.py\", line 1\nmoewir.data.io.ImageReadError: "
                             "/d/e.png: not an image (format not recognised)\n")
    assert str(wrapped) == "/d/e.png: not an image (format not recognised)" and wrapped.path == "/d/e.png"


def test_merge_keeps_every_pair_byte_for_byte_and_adds_the_new_photos_as_train(tmp_path):
    """The data-v2 recipe: an old dataset (with its test split) plus new photos as train only."""
    from moewir.data import write_image
    for name, count in (("old", 3), ("new", 2)):
        (tmp_path / name).mkdir()
        for i in range(count):
            write_image(tmp_path / name / f"{name}{i}.png", np.roll(_photo(40, 48), 5 * i + len(name), axis=0))
    old = build_dataset(tmp_path / "a", ["haze", "rain"], clean=sorted((tmp_path / "old").iterdir()), per_image=2,
                        seed=3, split=0.6, progress=False)
    new = build_dataset(tmp_path / "b", ["haze", "rain"], clean=sorted((tmp_path / "new").iterdir()), per_image=2,
                        seed=4, split=1.0, progress=False)
    assert {r["split"] for r in new} == {"train"} and {r["split"] for r in old} == {"train", "test"}
    merged = merge_datasets(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])
    assert [r["part"] for r in merged] == [0] * len(old) + [1] * len(new)
    for record, part in [(r, "a") for r in old] + [(r, "b") for r in new]:
        for key in ("input", "target"):
            assert (tmp_path / "m" / record[key]).read_bytes() == (tmp_path / part / record[key]).read_bytes()
            assert (tmp_path / "m" / record[key]).stat().st_ino == (tmp_path / part / record[key]).stat().st_ino
    def names(root, split):
        return {t: [(p.input.relative_to(root), p.target.relative_to(root)) for p in pairs]
                for t, pairs in discover(root, split).items()}
    assert names(tmp_path / "m", "test") == names(tmp_path / "a", "test")
    train = discover(tmp_path / "m", "train")
    assert sum(len(v) for v in train.values()) == sum(r["split"] == "train" for r in old) + len(new)
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert [p["seed"] for p in manifest["parts"]] == [3, 4] and len(manifest["samples"]) == len(merged)
    assert len((tmp_path / "m" / "manifest.csv").read_text().splitlines()) == len(merged) + 1


def test_merge_errors_name_the_problem(tmp_path):
    from moewir.data import write_image
    (tmp_path / "p").mkdir()
    write_image(tmp_path / "p" / "x.png", _photo(32, 32))
    for name in ("a", "b"):
        build_dataset(tmp_path / name, ["haze"], clean=[tmp_path / "p" / "x.png"], split=1.0, progress=False)
    with pytest.raises(ValueError, match=r"b/manifest.json: photo 'x' is also in .*a; merged datasets need distinct"):
        merge_datasets(tmp_path / "m", [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="exists and is not empty"):
        merge_datasets(tmp_path / "a", [tmp_path / "b"])
    with pytest.raises(ValueError, match="not one of the parts or inside one"):
        merge_datasets(tmp_path / "a" / "new", [tmp_path / "a"])
    (tmp_path / "b" / "train" / "HAZE" / "target" / "x_00.png").unlink()
    with pytest.raises(ValueError, match=r"b/train/HAZE/target/x_00.png: listed in .*manifest.json but missing"):
        merge_datasets(tmp_path / "m", [tmp_path / "b"])
    with pytest.raises(ValueError, match=r"nothing: not a moewir synth dataset"):
        merge_datasets(tmp_path / "m", [tmp_path / "nothing"])
    assert not (tmp_path / "m").exists()
