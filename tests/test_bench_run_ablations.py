"""bench/run_ablations.py's reading of finished runs: the budget with signal, the paired
comparisons behind each claim, the verdicts, and the per-seed figure."""
import csv
import math

import pytest


def _val_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "task", "images", "psnr", "ssim"])
        for iteration, scores in rows:
            for task, value in scores.items():
                writer.writerow([iteration, task, 4, value, 0.9])
    return path


REFERENCE = {"haze": 15.0, "rain": 25.0}


def test_first_budget_is_where_every_run_stays_above_the_input(tmp_path, bench_module):
    ablations = bench_module("run_ablations")
    a = _val_log(tmp_path / "a" / "val_log.csv", [(100, {"haze": 16, "rain": 26}), (200, {"haze": 17, "rain": 26}),
                                                 (300, {"haze": 18, "rain": 27})])
    # above at 100, below on rain at 200, above again at 300: the budget is 300, not 100
    b = _val_log(tmp_path / "b" / "val_log.csv", [(100, {"haze": 15.5, "rain": 25.5}), (200, {"haze": 16, "rain": 24.5}),
                                                 (300, {"haze": 16, "rain": 25.25})])
    rows, first = ablations.first_budget([a, b], REFERENCE)
    assert [(r["iteration"], r["beat"], r["runs"]) for r in rows] == [(100, 2, 2), (200, 1, 2), (300, 2, 2)]
    assert rows[1]["margin"] == {"haze": 1.0, "rain": -0.5}
    assert rows[2]["margin"] == {"haze": 1.0, "rain": 0.25}
    assert first == 300
    text = ablations.budget_section({"routing": [a], "experts": [b]}, REFERENCE)
    assert "| 200 | 1 / 2 | +1.00 | -0.50 |" in text and "from iteration 300 on" in text


def test_no_budget_when_the_last_validation_is_below_the_input(tmp_path, bench_module):
    ablations = bench_module("run_ablations")
    a = _val_log(tmp_path / "a" / "val_log.csv", [(100, {"haze": 16, "rain": 26}), (200, {"haze": 14, "rain": 26})])
    assert ablations.first_budget([a], REFERENCE)[1] is None
    assert "has no signal" in ablations.budget_section({"topk": [a]}, REFERENCE)


def _row(variant, per_seed):
    """A results row as run_study returns it: ``per_seed = {seed: {task: psnr}}``."""
    return {"variant": variant, "seeds": {seed: {"seconds": 1.0, "validation": {
        t: {"psnr": p, "ssim": 0.9, "images": 4} for t, p in scores.items()}} for seed, scores in per_seed.items()},
        "mean_psnr_per_seed": [sum(s.values()) / len(s) for s in per_seed.values()]}


def test_paired_comparison_matches_a_hand_computed_t_interval(bench_module):
    ablations = bench_module("run_ablations")
    # mean PSNR per seed: ori 21, 22, 23 (haze, rain averaged); equal 20, 20, 20: differences 1, 2, 3
    rows = {"weighting": [_row("ori", {0: {"haze": 17, "rain": 25}, 1: {"haze": 18, "rain": 26}, 2: {"haze": 19, "rain": 27}}),
                          _row("equal", {0: {"haze": 16, "rain": 24}, 1: {"haze": 16, "rain": 24}, 2: {"haze": 16, "rain": 24}})]}
    c = ablations.compare(rows, "weighting", "ori", "equal", "mean")
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n), sd of (1, 2, 3) = 1
    assert c["mean"] == pytest.approx(2.0)
    assert c["low"] == pytest.approx(2.0 - half, abs=1e-4) and c["high"] == pytest.approx(2.0 + half, abs=1e-4)
    worst = ablations.compare(rows, "weighting", "ori", "equal", "worst")  # haze: 1, 2, 3 above 16
    assert worst["mean"] == pytest.approx(2.0)
    assert ablations.compare(rows, "weighting", "ori", "rci", "mean") is None  # rci did not run


def test_verdicts(bench_module):
    verdict = bench_module("run_ablations").verdict
    above = {"low": 0.1, "high": 0.5}
    straddles = {"low": -0.2, "high": 0.4}
    below = {"low": -0.9, "high": -0.1}
    one_seed = {"low": None, "high": None}
    assert verdict([above, above]) == "confirmed"
    assert verdict([above, straddles]) == "inconclusive at this budget"
    assert verdict([above, below]) == "refuted"
    assert verdict([one_seed]) == "inconclusive at this budget"


def test_verdict_section_names_only_claims_whose_study_ran(bench_module):
    ablations = bench_module("run_ablations")
    good = {s: {"haze": 18 + s, "rain": 26 + s} for s in range(3)}
    worse = {s: {"haze": 17 + s + 0.1 * s * s, "rain": 25 + s} for s in range(3)}
    rows = {"topk": [_row("k=70%", good)] + [_row(f"k={k}%", worse) for k in (50, 60, 80, 90)]}
    text = ablations.verdict_section(rows, 300, 600.0)
    assert "Fig. 6: k = 70% is best, 80% is worse: confirmed" in text
    assert "T5" not in text and "T7" not in text
    # differences 1, 0.95, 0.8: mean 0.9167, sd 0.1041, half-width t(0.975, 2) * 0.1041 / sqrt(3) = 0.2586
    assert "k=70% − k=80% (mean) +0.92 dB [+0.66, +1.18]" in text


def test_strip_plot_draws_one_panel_per_study(tmp_path, bench_module):
    pytest.importorskip("matplotlib", reason="the figure is drawn with matplotlib (pip install -e '.[plots]')")
    from PIL import Image

    plots = bench_module("plots")
    out = tmp_path / "seeds.png"
    plots.strip_plot(out, {"routing": {"a": [20.0, 21.0, 20.5], "b": [19.0, 19.5, 20.0]},
                           "topk": {"k=70%": [20.0, 20.2, 20.1]}}, "dB", "title", hline=("input", 19.2),
                     panel_size=(300, 250))
    assert Image.open(out).size == (600, 250)
