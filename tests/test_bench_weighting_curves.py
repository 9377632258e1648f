"""bench/weighting_curves.py on a hand-made study: one run per method, or one per seed."""
import csv
import json
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
    from moewir.training.ablation import _row

    def summary(haze, rain):
        return {"seconds": 1.0, "validation": {"haze": {"psnr": haze, "ssim": 0.9, "images": 4},
                                               "rain": {"psnr": rain, "ssim": 0.9, "images": 4}}}
    rows = [_row("equal", 20, {None: summary(20.0, 24.0)}),
            _row("ori", 20, {0: summary(21.0, 25.0), 1: summary(23.0, 27.0)})]  # means 23, 25; worst 21, 23
    (study / "results.json").write_text(json.dumps(rows))
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
