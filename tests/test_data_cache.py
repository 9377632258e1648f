"""moewir.data.cache: photos decoded once, the same values and patches as decoding every draw."""
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from moewir.data import MultiTaskLoader, discover, read_image, write_image
from moewir.data.cache import DecodedCache, as_float


def _photos(folder):
    """An 8-bit PNG, a 16-bit PNG (moewir's writer), a JPEG and a grey PNG: every form read_image knows."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = {}
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "p8.png")
    paths["uint8"] = folder / "p8.png"
    write_image(folder / "p16.png", rng.random((20, 24, 3)).astype(np.float32), bits=16)
    paths["uint16"] = folder / "p16.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "p.jpg", quality=80)
    paths["jpeg"] = folder / "p.jpg"
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8), mode="L").save(folder / "grey.png")
    paths["grey"] = folder / "grey.png"
    return paths


def test_cached_reads_give_read_images_values_exactly(tmp_path):
    cache = DecodedCache(tmp_path / "cache")
    for kind, path in _photos(tmp_path / "photos").items():
        first, second = cache.read(path), cache.read(path)  # decoded, then mapped from the copy
        assert isinstance(second, np.memmap)
        assert second.dtype == (np.uint16 if kind == "uint16" else np.uint8), kind
        expected = read_image(path)
        assert np.array_equal(as_float(first), expected) and np.array_equal(as_float(second), expected), kind
        assert np.array_equal(as_float(second[3:9, 5:17]), expected[3:9, 5:17])  # a crop converts alone
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left


def test_floats_that_are_not_8_or_16_bit_levels_are_kept_as_float32():
    from moewir.data.cache import _integer_form
    image = np.random.default_rng(1).random((4, 5, 3)).astype(np.float32)
    assert _integer_form(image) is image
    levels = (np.arange(60).reshape(4, 5, 3) / np.float32(255.0)).astype(np.float32)
    assert _integer_form(levels).dtype == np.uint8


def test_an_edited_photo_is_decoded_afresh_and_a_damaged_copy_replaced(tmp_path, caplog):
    path = _photos(tmp_path / "photos")["uint8"]
    cache = DecodedCache(tmp_path / "cache")
    old = np.array(cache.read(path))
    Image.fromarray(255 - old).save(path)  # new content, new mtime and entry
    assert np.array_equal(cache.read(path), 255 - old)
    entry = cache.entry(path)
    entry.write_bytes(b"not a numpy file")
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(cache.read(path), 255 - old)
    assert "unreadable" in caplog.text and np.array_equal(np.load(entry), 255 - old)


def test_an_unwritable_folder_warns_once_and_trains_on(tmp_path, caplog):
    path = _photos(tmp_path / "photos")["uint8"]
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = DecodedCache(blocker / "cache")
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(as_float(cache.read(path)), read_image(path))
        cache.read(path)
    assert caplog.text.count("cannot write") == 1


def test_a_missing_photo_is_read_images_error(tmp_path):
    from moewir.data import ImageReadError
    with pytest.raises(ImageReadError, match="no such file"):
        DecodedCache(tmp_path / "cache").read(tmp_path / "gone.png")


@pytest.mark.parametrize("zoom", [None, (0.5, 1.0)])
def test_the_training_stream_is_the_same_with_the_cache(tmp_path, zoom):
    root = tmp_path / "data"
    rng = np.random.default_rng(2)
    for task in ("haze", "rain"):
        for i in range(3):
            for split in ("input", "target"):
                (root / task / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / task / split / f"{i}.png")
    tasks = discover(root)
    kw = dict(batch_per_task=2, seed=3, patch_schedule=[(0, 8), (3, 16)], zoom=zoom)
    plain = MultiTaskLoader(tasks, 16, **kw)
    cached = MultiTaskLoader(tasks, 16, cache=tmp_path / "cache", **kw)
    for _ in range(6):  # 12 draws of 3 photos per task: every photo comes from its copy at least once
        a, b = next(plain), next(cached)
        for task in a:
            assert torch.equal(a[task][0], b[task][0]) and torch.equal(a[task][1], b[task][1])
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 12
