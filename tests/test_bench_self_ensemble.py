"""bench/self_ensemble.py: one run with dcp on a two-task test split."""
import json

import numpy as np
import pytest
from PIL import Image


def test_one_pass_and_self_ensemble_rows(bench_module, tmp_path, capsys):
    rng = np.random.default_rng(0)
    for task in ("HAZE", "SNOW"):
        for side in ("input", "target"):
            (tmp_path / "data" / "test" / task / side).mkdir(parents=True)
        clean = rng.integers(0, 256, (40, 48, 3), np.uint8)
        Image.fromarray(clean).save(tmp_path / "data" / "test" / task / "target" / "a.png")
        Image.fromarray((clean * 0.6 + 90).astype(np.uint8)).save(tmp_path / "data" / "test" / task / "input" / "a.png")
    out = tmp_path / "se.json"
    assert bench_module("self_ensemble").main(["--data", str(tmp_path / "data"), "--model", "dcp",
                                               "--json", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["model"], r["self_ensemble"]) for r in results] == [("dcp", False), ("dcp", True)]
    for r in results:
        tasks = {t: v for t, v in r["psnr"].items() if t != "average"}
        assert set(tasks) == {"haze", "snow"}
        assert r["psnr"]["average"] == pytest.approx(np.mean(list(tasks.values())), abs=2e-3)
    assert "| dcp | x8 |" in capsys.readouterr().out
