"""bench/default_weights.py: the data-v2 photo list and the jigzo cut-out."""
import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def module(bench_module):
    return bench_module("default_weights")


def _png_bytes(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def test_jigzo_photo_is_the_image_box_of_the_last_embedded_jpeg(module, tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    atlas = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it to a few levels
    thumbnail = np.zeros((8, 8, 3), np.uint8)
    header = b"PzlF\n0.1\ntoy\nx.map\n531\n#texture map data\ncrop000 0 0 4 4 1 1 0 0 0 0\nimage 10 6 40 30 1 1\n"
    mask = np.zeros((48, 64, 4), np.uint8)
    (tmp_path / "toy.pzl").write_bytes(header + _png_bytes(thumbnail, "JPEG") + _png_bytes(mask, "PNG")
                                       + _png_bytes(atlas, "JPEG"))
    photo = np.asarray(module.jigzo_photo(tmp_path / "toy.pzl"), dtype=float)
    assert photo.shape == (30, 40, 3)
    assert np.abs(photo - atlas[6:36, 10:50]).max() <= 8
    (tmp_path / "bad.pzl").write_bytes(header.replace(b"image 10 6 40 30", b"image 10 6 60 30")
                                       + _png_bytes(atlas, "JPEG"))
    with pytest.raises(SystemExit, match="bad.pzl: image box 10 6 60 30 lies outside the embedded 64x48 JPEG"):
        module.jigzo_photo(tmp_path / "bad.pzl")


def test_extra_photo_names_are_distinct_and_real_weather_stays_out_of_training(module):
    pairs = [(k, p) for k, paths in module.EXTRA_PHOTOS.items() for p in paths]
    names = [module.photo_name(k, p) for k, p in pairs]
    assert len(set(names)) == len(names) == 78
    assert module.photo_name("plasma-workspace-wallpapers", module._WALLPAPERS.format("Kite")) == \
        "plasma-workspace-wallpapers_Kite"
    assert not set(module.REAL_WEATHER) & {p for _, p in pairs}
    assert module.photo_stem(module._WALLPAPERS.format("ColdRipple")) == "ColdRipple"


def test_curves_tabulates_the_val_log_beside_the_input_on_the_same_crops(module, tmp_path, capsys):
    import yaml

    from moewir.data import PairedImages, discover, write_image
    from moewir.metrics import psnr
    from moewir.synth.build import build_dataset

    y, x = np.mgrid[0:48, 0:56] / 56
    for i in range(2):
        write_image(tmp_path / f"p{i}.png", np.stack([0.5 + 0.3 * np.sin(9 * x + i), 0.4 + 0.3 * y, 0.3 + 0.2 * x], -1))
    build_dataset(tmp_path / "data", ["haze", "rain"], clean=[tmp_path / "p0.png", tmp_path / "p1.png"],
                  per_image=2, split=0.5, progress=False)
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "config.yml").write_text(yaml.safe_dump({"datasets": {"train": {"root": str(tmp_path / "data")},
                                                                        "val": {"center_crop": 32, "max_per_task": None}}}))
    (experiment / "val_log.csv").write_text("iteration,task,images,psnr,ssim\n10,haze,2,20.5,0.9\n10,rain,2,25.5,0.8\n")
    assert module.read_val_log(experiment) == {10: {"haze": 20.5, "rain": 25.5}}
    module.curves([experiment], plot=None)
    out = capsys.readouterr().out
    assert "| 10 | 20.50 | 25.50 | 23.00 |" in out
    levels = [np.mean([psnr(i["input"], i["target"], y_channel=True).item() for i in PairedImages(pairs, 32)])
              for _, pairs in sorted(discover(tmp_path / "data", "test").items())]
    assert f"| input | {levels[0]:.2f} | {levels[1]:.2f} |" in out and "| dcp |" in out
