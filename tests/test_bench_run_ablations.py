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
    assert [(r["iteration"], r["validated"], r["beat"]) for r in rows] == [(100, 2, 2), (200, 2, 1), (300, 2, 2)]
    assert rows[1]["margin"] == {"haze": 1.0, "rain": -0.5}
    assert rows[2]["margin"] == {"haze": 1.0, "rain": 0.25}
    assert first == 300
    text = ablations.budget_section({"routing": [a.parent], "experts": [b.parent]}, REFERENCE)
    assert "| 200 | 2 / 2 | 1 | +1.00 | -0.50 |" in text
    assert "from iteration 300 on** (per study: routing 100, experts 300)" in text


def test_budget_over_runs_validated_on_different_schedules(tmp_path, bench_module):
    """A study validated every 100 iterations beside one validated only at the end: each run
    counts where it was validated, and the budget is the latest any run needs."""
    ablations = bench_module("run_ablations")
    often = [_val_log(tmp_path / f"often{k}" / "val_log.csv",
                      [(100, {"haze": 16, "rain": 26}), (200, {"haze": 16, "rain": 26}), (300, {"haze": 16, "rain": 26})])
             for k in range(2)]
    at_end = _val_log(tmp_path / "end" / "val_log.csv", [(300, {"haze": 16, "rain": 25.5})])
    rows, first = ablations.first_budget(often + [at_end], REFERENCE)
    assert [(r["iteration"], r["validated"], r["beat"]) for r in rows] == [(100, 2, 2), (200, 2, 2), (300, 3, 3)]
    assert first == 300  # the end-only run shows nothing earlier
    assert ablations.first_budget(often, REFERENCE)[1] == 100
    text = ablations.budget_section({"a": [p.parent for p in often], "b": [at_end.parent]}, REFERENCE)
    assert "| 100 | 2 / 3 | 2 |" in text and "(per study: a 100, b 300)" in text
    # a run without a log has no budget, so neither has the study
    assert ablations.first_budget(often + [tmp_path / "missing" / "val_log.csv"], REFERENCE)[1] is None


def test_no_budget_when_the_last_validation_is_below_the_input(tmp_path, bench_module):
    ablations = bench_module("run_ablations")
    a = _val_log(tmp_path / "a" / "val_log.csv", [(100, {"haze": 16, "rain": 26}), (200, {"haze": 14, "rain": 26})])
    assert ablations.first_budget([a], REFERENCE)[1] is None
    assert "this budget has no signal" in ablations.budget_section({"topk": [a.parent]}, REFERENCE)


def test_run_folders_follow_the_rows(tmp_path, bench_module):
    ablations = bench_module("run_ablations")
    config = {"experiments_root": str(tmp_path), "name": "base"}
    rows = [{"variant": "k=70%", "seeds": {0: {}, 1: {}}}, {"variant": "k=50%", "seeds": {"config": {}}}]
    assert ablations.run_folders(rows, config, "topk") == [
        tmp_path / "base_ablate_topk" / "k=70%_s0", tmp_path / "base_ablate_topk" / "k=70%_s1",
        tmp_path / "base_ablate_topk" / "k=50%"]


def _row(variant, per_seed):
    """A results row as run_study returns it: ``per_seed = {seed: {task: psnr}}``."""
    return {"variant": variant, "seeds": {seed: {"seconds": 1.0, "validation": {
        t: {"psnr": p, "ssim": 0.9, "images": 4} for t, p in scores.items()}} for seed, scores in per_seed.items()},
        "mean_psnr_per_seed": [sum(s.values()) / len(s) for s in per_seed.values()]}


def test_paired_comparison_matches_a_hand_computed_t_interval(bench_module):
    ablations = bench_module("run_ablations")
    # mean PSNR per seed (haze, rain averaged): ori 21, 22, 23; equal 20, 21.5, 19 (its seeds listed
    # in another order): paired by seed the differences are 1, 0.5, 4 (paired by position they
    # would be 2, 0.5, 2.5)
    rows = {"weighting": [_row("ori", {0: {"haze": 17, "rain": 25}, 1: {"haze": 18, "rain": 26}, 2: {"haze": 19, "rain": 27}}),
                          _row("equal", {2: {"haze": 15, "rain": 23}, 0: {"haze": 16, "rain": 24}, 1: {"haze": 17, "rain": 26}})]}
    c = ablations.compare(rows, "weighting", "ori", "equal", "mean")
    sd = math.sqrt(((1 - 11 / 6) ** 2 + (0.5 - 11 / 6) ** 2 + (4 - 11 / 6) ** 2) / 2)
    half = 4.302653 * sd / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert c["mean"] == pytest.approx(11 / 6) and c["n"] == 3
    assert c["low"] == pytest.approx(11 / 6 - half, abs=1e-4) and c["high"] == pytest.approx(11 / 6 + half, abs=1e-4)
    worst = ablations.compare(rows, "weighting", "ori", "equal", "worst")  # haze: 17-16, 18-17, 19-15
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
