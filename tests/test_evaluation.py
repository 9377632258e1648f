"""`moewir eval`: scores against a hand-written reference, task-balanced averages, reports, figures."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import moewir
from moewir.cli.main import main
from moewir.data import discover, read_image
from moewir.evaluation import aggregate, choose_inset, comparison_sheet, evaluate, fidelity_metrics, markdown_table
from moewir.models import save_weights


def _psnr_y_reference(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR on BT.601 studio-range Y of two uint8 RGB images, written out from the definition."""
    def y(img):
        rgb = img.astype(np.float64) / 255.0
        return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]
    return 10 * np.log10(255.0 ** 2 / np.mean((y(a) - y(b)) ** 2))


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, dict]:
    """Generic layout: haze with 3 pairs, rain with 1; inputs are targets plus known noise."""
    rng = np.random.default_rng(0)
    images = {}
    for task, count in (("haze", 3), ("rain", 1)):
        for i in range(count):
            target = rng.integers(30, 220, (40, 48, 3), dtype=np.uint8)
            noisy = np.clip(target + rng.normal(0, 6 + 4 * i, target.shape), 0, 255).round().astype(np.uint8)
            for kind, array in (("input", noisy), ("target", target)):
                (tmp_path / "data" / task / kind).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(tmp_path / "data" / task / kind / f"im{i}.png")
            images[(task, f"im{i}")] = (noisy, target)
    return tmp_path / "data", images


def test_scores_match_the_reference_and_the_average_weights_tasks_equally(dataset):
    root, images = dataset
    metrics = fidelity_metrics(crop_border=0, y_channel=True)
    rows = evaluate({"input": lambda x: x}, discover(root), metrics, progress=False)
    assert len(rows) == 4
    for row in rows:
        assert row["psnr"] == pytest.approx(_psnr_y_reference(*images[(row["task"], row["image"])]), abs=1e-9)
    table = aggregate(rows, metrics)
    haze = np.mean([r["psnr"] for r in rows if r["task"] == "haze"])
    rain = [r["psnr"] for r in rows if r["task"] == "rain"][0]
    average = [r for r in table if r["task"] == "average"][0]
    assert average["psnr"] == pytest.approx((haze + rain) / 2) and average["images"] == 4
    assert average["psnr"] != pytest.approx(np.mean([r["psnr"] for r in rows]))  # not the per-image mean


def test_markdown_table_names_the_convention_and_bolds_the_best():
    metrics = fidelity_metrics()
    table = [{"model": "a", "task": "rain", "images": 2, "psnr": 30.0, "ssim": 0.8},
             {"model": "b", "task": "rain", "images": 2, "psnr": 31.0, "ssim": 0.7}]
    text = markdown_table(table, metrics, "Y, crop 4")
    assert "PSNR (dB) ↑ [Y, crop 4]" in text
    assert "| rain | a | 2 | 30.00 | **0.8000** |" in text and "| rain | b | 2 | **31.00** | 0.7000 |" in text


def test_inset_finds_the_most_degraded_square():
    reference = np.zeros((90, 120, 3), np.float32)
    degraded = reference.copy()
    degraded[50:70, 80:100] = 1.0
    x, y, size = choose_inset(degraded, reference, 20)
    assert size == 20 and abs(x - 80) <= 10 and abs(y - 50) <= 10
    assert degraded[y:y + size, x:x + size].mean() >= 0.25


def test_comparison_sheet_layout():
    image = np.random.default_rng(0).random((60, 80, 3), dtype=np.float32)
    sheet = comparison_sheet([("input", image), ("model", image), ("ground truth", image)], panel_width=200, gap=4)
    assert sheet.size == (3 * 200 + 2 * 4, 150 + 22)
    with pytest.raises(ValueError, match="one size"):
        comparison_sheet([("a", image), ("b", image[:50])])


def test_cli_compares_models_in_one_table_with_files(dataset, tmp_path, capsys):
    root, images = dataset
    weights = []
    for i in range(2):
        torch.manual_seed(i)
        weights.append(tmp_path / f"run{i}" / "checkpoints" / "net_10.safetensors")
        save_weights(weights[-1], moewir.create_model("moewirnet-tiny"))
    out = tmp_path / "report"
    rc = main(["eval", "--weights", str(weights[0]), "--compare", str(weights[1]), "--input-baseline",
               "--data", str(root), "--json", str(out / "r.json"), "--csv", str(out / "r.csv"),
               "--save-images", str(out / "images"), "--figures", str(out / "figs"), "--figure-count", "2",
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    for label in ("input", "run0-net_10", "run1-net_10"):
        assert f"| average | {label} | 4 |" in text
    with open(out / "r.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 and {r["model"] for r in rows} == {"input", "run0-net_10", "run1-net_10"}
    report = json.loads((out / "r.json").read_text())
    assert report["convention"] == {"y_channel": True, "crop_border": 0}
    haze0 = [r for r in report["results"] if r["model"] == "run0-net_10" and r["task"] == "haze"][0]
    assert haze0["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows
                                                   if r["model"] == "run0-net_10" and r["task"] == "haze"]))
    # the saved output is what the model gives, and its score is the one in the table
    saved = read_image(out / "images" / "run1-net_10" / "rain" / "im0.png")
    expected = moewir.load(weights[1], device="cpu").restore(images[("rain", "im0")][0].astype(np.float32) / 255)
    assert np.abs(saved - expected).max() <= 0.5 / 255 + 1e-6
    row = [r for r in rows if r["model"] == "run1-net_10" and r["task"] == "rain"][0]
    assert float(row["psnr"]) == pytest.approx(_psnr_y_reference((saved * 255).round().astype(np.uint8),
                                                                 images[("rain", "im0")][1]), abs=1e-6)
    assert sorted(p.relative_to(out / "figs").as_posix() for p in (out / "figs").rglob("*.png")) == \
        ["haze/im0.png", "haze/im1.png", "rain/im0.png"]
    assert Image.open(out / "figs" / "rain" / "im0.png").width == 4 * 320 + 3 * 4  # input, 2 models, target


def test_cli_errors_are_one_line(dataset, tmp_path, capsys):
    root, _ = dataset
    weights = tmp_path / "w.safetensors"
    save_weights(weights, moewir.create_model("moewirnet-tiny"))
    base = ["eval", "--weights", str(weights), "--data", str(root), "--no-progress"]
    assert main(base + ["--tasks", "snow"]) == 2
    assert "no pairs for task(s) snow; found haze, rain" in capsys.readouterr().err
    assert main(base + ["--metrics", "psnr", "lpips"]) == 2
    assert "LPIPS needs local weights" in capsys.readouterr().err
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "rain" / "target" / "im0.png")
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "im0.png: input is 48x40 but its target" in err


def test_cli_niqe_and_lpips_columns(tmp_path, capsys):
    """NIQE and LPIPS (from local files) reach the table with the values the metrics give."""
    from moewir.metrics import LPIPS, lpips, niqe

    rng = np.random.default_rng(5)
    photo = read_image(Path(moewir.__file__).parent / "synth/photos/coffee.jpg")[:192, :200]
    noisy = np.clip(photo + rng.normal(0, 0.05, photo.shape), 0, 1)
    for kind, array in (("input", noisy), ("target", photo)):
        (tmp_path / "d" / "rain" / kind).mkdir(parents=True)
        Image.fromarray((array * 255).round().astype(np.uint8)).save(tmp_path / "d" / "rain" / kind / "x.png")
    torch.manual_seed(0)
    model = LPIPS("alex")
    state = model.state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, tmp_path / "alex.pth")
    torch.save({k: v for k, v in state.items() if k.startswith("lin")}, tmp_path / "lin.pth")
    weights = tmp_path / "w.safetensors"
    save_weights(weights, moewir.create_model("moewirnet-tiny"))
    rc = main(["eval", "--weights", str(weights), "--input-baseline", "--data", str(tmp_path / "d"),
               "--metrics", "psnr", "ssim", "niqe", "lpips", "--lpips-backbone", str(tmp_path / "alex.pth"),
               "--lpips-linear", str(tmp_path / "lin.pth"), "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert rc == 0
    assert "NIQE ↓" in capsys.readouterr().out
    row = [r for r in json.loads((tmp_path / "r.json").read_text())["images"] if r["model"] == "input"][0]
    inp = read_image(tmp_path / "d" / "rain" / "input" / "x.png")
    tgt = read_image(tmp_path / "d" / "rain" / "target" / "x.png")
    assert row["niqe"] == pytest.approx(niqe(inp))
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    assert row["lpips"] == pytest.approx(lpips(as_tensor(inp), as_tensor(tgt), model).item(), rel=1e-6)
    assert row["lpips"] > 0
