"""The web page's work (`moewir.web.Page`) without a browser; the browser test is browser_tests/."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from moewir.cli.main import main
from moewir.data import read_image, write_image
from moewir.models import DEFAULT_MODEL, save_weights
from moewir import web
from moewir.web import TILES, Page, weight_sources


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return Page(weight_sources(), device="cpu", max_pixels=1_000_000, workdir=tmp_path_factory.mktemp("web"))


@pytest.fixture
def photo(tmp_path):
    """A small smooth photo with a few bright streaks, as PNG."""
    y, x = np.mgrid[0:40, 0:56] / 60.0
    image = np.stack([x, y, 0.5 * (x + y)], axis=2)
    image[:, 10::12] = 0.9
    write_image(tmp_path / "rainy.png", image)
    return tmp_path / "rainy.png"


def test_weight_sources_are_the_shipped_models_then_files(tmp_path):
    # the models with shipped weights first, the default (the page's first choice) ahead of the
    # alphabetical order, then the classical ones
    assert list(weight_sources().items()) == [("restormer-tiny-matched", "restormer-tiny-matched"),
                                              ("moewirnet-tiny", "moewirnet-tiny"), ("dcp", "dcp"),
                                              ("mgf", "mgf")]
    (tmp_path / "a").mkdir()
    files = [str(tmp_path / "mine.safetensors"), str(tmp_path / "a" / "mine.safetensors")]
    assert weight_sources(files) == {"moewirnet-tiny": "moewirnet-tiny", "restormer-tiny-matched": "restormer-tiny-matched",
                                     "dcp": "dcp", "mgf": "mgf", "mine.safetensors": files[0], files[1]: files[1]}


def test_the_download_is_what_moewir_restore_writes(page, photo, tmp_path):
    result = page.restore(photo, DEFAULT_MODEL, "256")  # the page's first choice, restore's default
    assert page.choices[0] == DEFAULT_MODEL
    assert result.status.startswith(f"restored rainy.png (56x40) with {DEFAULT_MODEL} on cpu, tiles 256")
    assert main(["restore", str(photo), "-o", str(tmp_path / "cli"), "--tile", "256", "--device", "cpu",
                 "--no-progress"]) == 0
    cli = read_image(tmp_path / "cli" / "rainy.png")
    assert result.download.endswith("rainy_restored.png")
    assert np.array_equal(read_image(result.download), cli)
    assert np.array_equal(result.after, np.round(cli * 255).astype(np.uint8))
    assert np.array_equal(result.before, np.round(read_image(photo) * 255).astype(np.uint8))
    assert np.abs(result.after.astype(int) - result.before).mean() > 0.5  # the network did something


def test_each_tile_choice_restores(page, photo):
    results = {tile: page.restore(photo, "moewirnet-tiny", tile) for tile in TILES}
    assert all(r.after is not None and r.after.shape == (40, 56, 3) for r in results.values())
    # a photo smaller than every tile is one window whatever the choice: the same result
    assert all(np.array_equal(r.after, results["512"].after) for r in results.values())
    downloads = {r.download for r in results.values()}
    assert len(downloads) == len(TILES) and all(Path(d).is_file() for d in downloads)  # none overwritten


def test_old_results_are_removed(page, photo, monkeypatch):
    monkeypatch.setattr(web, "KEEP_RESULTS", 1)
    downloads = [page.restore(photo, "moewirnet-tiny", "512").download for _ in range(2)]
    assert [Path(d).is_file() for d in downloads] == [False, True]
    assert [p for p in page.workdir.iterdir() if p.is_dir()] == [Path(downloads[1]).parent]


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (b"<html>not a photo</html>", "not an image (format not recognised)"),
    (None, "1200x1000 is 1 megapixels, above the 1 MP limit (decompression-bomb guard)"),
])
def test_a_bad_upload_is_the_cli_one_line(page, tmp_path, content, problem):
    bad = tmp_path / "upload.jpg"
    if content is None:  # above the page's 1-megapixel bound
        write_image(bad, np.zeros((1000, 1200, 3), np.float32))
    else:
        bad.write_bytes(content)
    result = page.restore(bad, "moewirnet-tiny", "512")
    assert result.status == f"moewir: error: upload.jpg: {problem}"
    assert result.after is None and result.download is None


def test_no_upload_and_unknown_choices(page, photo):
    assert page.restore(None, "moewirnet-tiny", "512").status == "moewir: error: no photo uploaded"
    assert page.restore(photo, "nope", "512").status.startswith("moewir: error: unknown weights 'nope'")
    assert page.restore(photo, "moewirnet-tiny", "7").status.startswith("moewir: error: unknown tile '7'")


def test_a_weights_file_is_offered_under_its_name(tmp_path, photo):
    import moewir

    save_weights(tmp_path / "mine.safetensors", moewir.create_model("moewirnet-tiny"))
    page = Page(weight_sources([str(tmp_path / "mine.safetensors")]), device="cpu", workdir=tmp_path)
    assert page.choices == ["restormer-tiny-matched", "moewirnet-tiny", "dcp", "mgf", "mine.safetensors"]
    assert page.restore(photo, "mine.safetensors", "512").after is not None
    result = page.restore(photo, "dcp", "512")  # the classical baseline: whole images, whatever the tile
    assert result.after is not None and ", whole image, " in result.status


def test_a_bad_weights_file_fails_before_serving(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.safetensors: no such weights file"):
        Page(weight_sources([str(tmp_path / "missing.safetensors")]), device="cpu", workdir=tmp_path)


def test_serve_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == "moewir: error: --port must be between 1 and 65535, got 0"
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == "moewir: error: the web page needs Gradio: pip install 'moewir[web]'"

