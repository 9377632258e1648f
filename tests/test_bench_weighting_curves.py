"""bench/weighting_curves.py on a hand-made study: one run per method, or one per seed."""
import csv
import sys

import pytest
import yaml

pytest.importorskip("matplotlib", reason="the weighting curves are drawn with matplotlib (pip install -e '.[plots]')")


def _run(folder, weights):
    folder.mkdir(parents=True)
    with open(folder / "train_log.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "weight/haze", "weight/rain"])
        for i, (a, b) in enumerate(weights):
            writer.writerow([10 * (i + 1), a, b])
    config = {"schedule": {"iterations": 20}, "model": {"name": "moewirnet-tiny"},
              "datasets": {"train": {"patch_size": 64, "batch_per_task": 1}}}
    (folder / "config.yml").write_text(yaml.safe_dump(config))


def test_seeded_study_reports_mean_and_std_over_seeds(tmp_path, bench_module, monkeypatch, capsys):
    curves = bench_module("weighting_curves")
    study = tmp_path / "study"
    _run(study / "equal", [(1.0, 1.0), (1.0, 1.0)])
    _run(study / "ori_s0", [(1.0, 1.0), (1.5, 0.5)])    # spread 3
    _run(study / "ori_s1", [(1.0, 1.0), (0.25, 1.75)])  # spread 7: the widest of any seed
    _run(study / "ori_s10x", [(9.0, 0.1), (9.0, 0.1)])  # not a seed folder: ignored
    rows = [("equal", "None", "haze", 20.0), ("equal", "None", "rain", 24.0),
            ("ori", "0", "haze", 21.0), ("ori", "0", "rain", 25.0),   # mean 23, worst 21
            ("ori", "1", "haze", 23.0), ("ori", "1", "rain", 27.0)]   # mean 25, worst 23
    with open(study / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "task", "psnr", "ssim", "images", "iterations"])
        writer.writerows([[v, s, t, p, 0.9, 4, 20] for v, s, t, p in rows])
    plot = tmp_path / "curves.png"
    monkeypatch.setattr(sys, "argv", ["weighting_curves.py", "--study", str(study), "--plot", str(plot)])
    assert curves.main() == 0
    out = capsys.readouterr().out
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert lines["equal"] == ["haze 1.00, rain 1.00", "1.00", "22.00", "20.00"]
    # seeds 0 and 1: means 23 and 25 (mean 24, sample std sqrt(2)), worst 21 and 23; weights of seed 0
    assert lines["ori"] == ["haze 1.50, rain 0.50", "7.00", "24.00 ± 1.41", "22.00 ± 1.41"]
    assert plot.is_file()
