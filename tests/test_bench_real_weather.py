"""bench/real_weather.py: its no-reference scores by hand, and one run on a photo with dcp."""
import json
import sys

import numpy as np
import pytest
from PIL import Image

from moewir.metrics.niqe import niqe


@pytest.fixture
def real_weather(bench_module):
    return bench_module("real_weather")


def _photo(h=200, w=240):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.stack([0.4 + 0.3 * np.sin(23 * x), 0.4 + 0.3 * np.cos(17 * y), 0.3 + 0.4 * x * y], -1).astype(np.float32)


def test_scores_by_hand(real_weather):
    photo = _photo()
    same = real_weather.scores(photo, photo)
    assert same["change"] == 0 and same["cast"] == 0 and same["contrast"] == pytest.approx(1)
    assert same["niqe"] == pytest.approx(niqe(photo))
    grey = real_weather.scores(photo + 0.1, photo)
    assert grey["change"] == pytest.approx(25.5, rel=1e-4) and grey["cast"] == pytest.approx(0, abs=1e-3)
    assert grey["contrast"] == pytest.approx(1, rel=1e-4)
    red = photo.copy()
    red[..., 0] += 0.1
    # shift (25.5, 0, 0) minus its mean 8.5: |(17, -8.5, -8.5)|
    assert real_weather.scores(red, photo)["cast"] == pytest.approx(np.sqrt(17 ** 2 + 2 * 8.5 ** 2), rel=1e-4)
    assert real_weather.scores(photo * 2 - 0.4, photo)["contrast"] == pytest.approx(2, rel=1e-3)


def test_one_photo_with_dcp_writes_table_sheet_and_json(real_weather, tmp_path, monkeypatch, capsys):
    hazy = 0.6 * _photo(300, 360) + 0.4 * 0.9
    Image.fromarray(np.round(hazy * 255).astype(np.uint8)).save(tmp_path / "fog.png")
    monkeypatch.setattr(real_weather, "REAL_WEATHER", {"fog.png": "fog"})
    monkeypatch.setattr(sys, "argv", ["real_weather.py", "--debian", str(tmp_path), "--model", "dcp=dcp",
                                      "--max-side", "240", "--sheet", str(tmp_path / "s.png"),
                                      "--json", str(tmp_path / "r.json")])
    assert real_weather.main() == 0
    result = json.loads((tmp_path / "r.json").read_text())
    row = result["rows"][0]
    assert row["weather"] == "fog" and row["dcp"]["change"] > 5 and row["dcp"]["contrast"] > 1.2
    assert Image.open(tmp_path / "s.png").size[0] > 2 * 240
    assert "| fog | fog |" in capsys.readouterr().out
    monkeypatch.setattr(real_weather, "REAL_WEATHER", {"missing.png": "fog"})
    with pytest.raises(SystemExit, match="missing.png: missing .1 of 1 photos"):
        real_weather.main()
