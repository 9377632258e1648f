"""bench/data_loading.py on a small dataset: both ways load the same patches, the numbers are written."""
import json
import sys

import numpy as np
from PIL import Image


def test_runs_and_writes_both_timings(tmp_path, bench_module, monkeypatch, capsys):
    loading = bench_module("data_loading")
    rng = np.random.default_rng(0)
    for task in ("haze", "rain"):
        for i in range(2):
            for split in ("input", "target"):
                (tmp_path / "d" / task / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)).save(
                    tmp_path / "d" / task / split / f"{i}.png")
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["data_loading.py", "--data", str(tmp_path / "d"), "--split", "",
                                      "--patch", "32", "--pairs", "2", "--rounds", "2", "--json", str(out)])
    assert loading.main() == 0
    result = json.loads(out.read_text())
    assert result["patches_per_call"] == 4 and len(result["rounds"]) == 2
    assert result["ms_per_patch"]["png"] > 0 and result["ms_per_patch"]["cache"] > 0
    assert "cache / decode:" in capsys.readouterr().out
