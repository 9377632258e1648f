"""Image I/O on odd files, layout detection, pairing errors and the task-balanced loader."""
import io as _io
import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from moewir.data import (DatasetLayoutError, ImageReadError, MultiTaskLoader, PairedImages, detect_layout,
                         discover, read_image, write_image)


def _save(path, array, mode=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- image modes

def test_rgb_roundtrip_and_range(tmp_path):
    a = _rgb()
    x = read_image(_save(tmp_path / "a.png", a))
    assert x.dtype == np.float32 and x.shape == (6, 8, 3)
    np.testing.assert_allclose(x, a / 255.0, atol=1e-7)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    x = read_image(_save(tmp_path / "g.png", g))
    assert x.shape == (6, 8, 3)
    np.testing.assert_allclose(x[..., 1], g / 255.0, atol=1e-7)
    assert np.array_equal(x[..., 0], x[..., 2])


def test_16bit_png_keeps_precision(tmp_path):
    g = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1365).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(g).save(path)
    assert Image.open(path).mode.startswith("I")
    x = read_image(path)
    np.testing.assert_allclose(x[..., 0], g / 65535.0, atol=1e-6)
    assert len(np.unique(x)) > 40  # 8-bit truncation would merge values


def _naive_png16(samples: np.ndarray, exif: bytes | None = None) -> bytes:
    """A 16-bit PNG written by a scalar, by-the-spec encoder; row r uses filter type r % 5."""
    import struct
    import zlib

    h, w, ch = samples.shape
    bpp = 2 * ch
    raw = [list(samples[r].astype(">u2").tobytes()) for r in range(h)]
    out = bytearray()
    for r in range(h):
        kind = r % 5
        out.append(kind)
        for x in range(w * bpp):
            a = raw[r][x - bpp] if x >= bpp else 0
            b = raw[r - 1][x] if r > 0 else 0
            c = raw[r - 1][x - bpp] if r > 0 and x >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            pred = [0, a, b, (a + b) // 2, paeth][kind]
            out.append((raw[r][x] - pred) % 256)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour = {3: 2, 4: 6}[ch]
    blob = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
    if exif is not None:
        blob += chunk(b"eXIf", exif)
    return blob + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_keeps_precision(tmp_path, channels):
    rng = np.random.default_rng(channels)
    samples = rng.integers(0, 65536, size=(11, 7, channels), dtype=np.uint16)
    samples[3:6] = samples[2]  # smooth rows exercise Up/Average/Paeth on small residuals
    path = tmp_path / "c16.png"
    path.write_bytes(_naive_png16(samples))
    x = read_image(path)
    np.testing.assert_array_equal(np.round(x * 65535).astype(np.uint16), samples[..., :3])
    # Pillow alone keeps only the high byte: the same image at 8 bits.
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), (samples[..., :3] >> 8).astype(np.uint8))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_colour_png_exif_orientation_matches_pillow(tmp_path, orientation):
    samples = np.random.default_rng(0).integers(0, 65536, size=(5, 9, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o16.png"
    path.write_bytes(_naive_png16(samples, exif.tobytes()[6:]))  # eXIf holds the TIFF part
    x = read_image(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal((np.round(x * 65535).astype(np.uint16) >> 8).astype(np.uint8), expected)


def test_palette_and_rgba(tmp_path):
    a = _rgb()
    pal = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "p.png")
    x = read_image(tmp_path / "p.png")
    np.testing.assert_allclose(x, np.asarray(pal.convert("RGB")) / 255.0, atol=1e-7)
    rgba = np.dstack([a, np.full(a.shape[:2], 10, np.uint8)])
    y = read_image(_save(tmp_path / "rgba.png", rgba))
    np.testing.assert_allclose(y, a / 255.0, atol=1e-7)  # colour kept, alpha dropped


def test_cmyk_jpeg(tmp_path):
    a = _rgb(16, 16)
    Image.fromarray(a).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    x = read_image(tmp_path / "c.jpg")
    assert x.shape == (16, 16, 3)
    assert np.abs(x - a / 255.0).mean() < 0.06  # same picture, JPEG loss only


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((4, 10, 3), np.uint8)
    a[:, :5] = 255  # left half white
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    x = read_image(tmp_path / "o.jpg")
    assert x.shape == (10, 4, 3)
    assert x[:4].mean() > 0.8 and x[-4:].mean() < 0.2  # white half is now on top


@pytest.mark.parametrize("content,problem", [(b"", "empty file"), (b"not an image at all", "not an image"),
                                             (None, "corrupt or truncated")])
def test_bad_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    if content is None:
        buf = _io.BytesIO()
        Image.fromarray(_rgb(64, 64)).save(buf, format="PNG")
        content = buf.getvalue()[:200]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=problem) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_decompression_bomb(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    path = _save(tmp_path / "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageReadError, match="decompression-bomb"):
        read_image(path, max_pixels=5000)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_the_users_pixel_limit_is_the_one_applied(tmp_path, monkeypatch, fmt):
    """Pillow warns above its MAX_IMAGE_PIXELS (89.5 MP) and refuses twice that; a 96 or 189 MP photo
    under ``--max-megapixels 500`` must still be read. Scaled down: Pillow's limit at 1000
    pixels, a 60 x 60 image (3.6x it), a user limit of 10000."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _save(tmp_path / f"big.{fmt}", np.full((60, 60, 3), 128, np.uint8))
    assert read_image(path, max_pixels=10_000).shape == (60, 60, 3)
    with pytest.raises(ImageReadError, match="above the 0 MP limit"):
        read_image(path, max_pixels=3000)  # ours still refuses above the user's limit


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    write_image(tmp_path / "out" / "x.png", np.full((4, 4, 3), 0.5))
    assert sorted(os.listdir(tmp_path / "out")) == ["x.png"]
    np.testing.assert_allclose(read_image(tmp_path / "out" / "x.png"), 128 / 255.0)
    with pytest.raises(ValueError, match="unknown or unwritable image extension"):
        write_image(tmp_path / "out" / "x.unknown", np.zeros((2, 2, 3)))
    assert sorted(os.listdir(tmp_path / "out")) == ["x.png"]


# ----------------------------------------------------------------------------- layouts

def _pairs(folder_in, folder_out, names, size=(8, 8)):
    for i, n in enumerate(names):
        _save(folder_in / f"{n}.png", _rgb(*size, seed=i))
        _save(folder_out / f"{n}.png", _rgb(*size, seed=100 + i))


def test_weatherbench_layout(tmp_path):
    for split in ("train", "test"):
        for task in ("HAZE", "RAIN", "SNOW"):
            _pairs(tmp_path / split / task / "input", tmp_path / split / task / "target", ["a", "b"])
    assert detect_layout(tmp_path) == "weatherbench"
    tasks = discover(tmp_path, "test")
    assert sorted(tasks) == ["haze", "rain", "snow"]
    assert all(p.input.parent.parent.parent.name == "test" for p in tasks["rain"])
    assert [p.name for p in tasks["haze"]] == ["a", "b"]


def test_foundir_layout(tmp_path):
    for d in ("01Haze", "02Rain", "03Raindrop", "04NightRain", "05Rain_Haze", "06Lowlight_Haze"):
        _pairs(tmp_path / d / "LQ", tmp_path / d / "GT", ["x"])
    assert detect_layout(tmp_path) == "foundir"
    assert sorted(discover(tmp_path)) == ["haze", "lowlight+haze", "nightrain", "rain", "rain+haze", "raindrop"]


def test_unirain_layout(tmp_path):
    for d in ("drs", "drd", "nrs", "nrd"):
        _pairs(tmp_path / d / "input", tmp_path / d / "target", ["x"])
    assert detect_layout(tmp_path) == "unirain"
    assert sorted(discover(tmp_path)) == ["nightrain", "nightraindrop", "rain", "raindrop"]


def test_generic_layout_and_list_file(tmp_path):
    _pairs(tmp_path / "data" / "Fog" / "input", tmp_path / "data" / "Fog" / "target", ["1", "2"])
    assert detect_layout(tmp_path / "data") == "generic"
    assert list(discover(tmp_path / "data")) == ["fog"]
    lst = tmp_path / "pairs.csv"
    lst.write_text("input,target,task\ndata/Fog/input/1.png,data/Fog/target/1.png,Rain_Haze\n"
                   "data/Fog/input/2.png,data/Fog/target/2.png\n")
    tasks = discover(lst)
    assert sorted(tasks) == ["mixed", "rain+haze"] and tasks["mixed"][0].target.name == "2.png"


def test_unmatched_pairs_are_listed_in_one_error(tmp_path):
    root = tmp_path / "d"
    _pairs(root / "rain" / "input", root / "rain" / "target", [f"img{i}" for i in range(10)])
    for i in range(7):
        (root / "rain" / "target" / f"img{i}.png").unlink()
    _save(root / "rain" / "target" / "extra.png", _rgb())
    with pytest.raises(DatasetLayoutError) as info:
        discover(root)
    msg = str(info.value)
    assert "7 input(s) without a target" in msg and "img0, img1, img2, img3, img4, ... (2 more)" in msg
    assert "1 target(s) without an input" in msg and "extra" in msg


def test_unknown_layout_and_missing_list_entries(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no known dataset layout"):
        discover(tmp_path / "empty")
    lst = tmp_path / "l.txt"
    lst.write_text("a.png,b.png,rain\n")
    with pytest.raises(DatasetLayoutError, match="2 listed file"):
        discover(lst)


# ----------------------------------------------------------------------------- loaders

def _task_tree(tmp_path, tasks=("haze", "rain", "snow"), n=3, size=(20, 24)):
    for t in tasks:
        _pairs(tmp_path / t / "input", tmp_path / t / "target", [f"{t}{i}" for i in range(n)], size)
    return discover(tmp_path)


def test_every_iteration_yields_every_task_with_its_batch_size(tmp_path):
    tasks = _task_tree(tmp_path)
    loader = MultiTaskLoader(tasks, patch_size=16, batch_per_task={"haze": 2, "rain": 1, "snow": 3})
    for _ in range(4):
        batch = next(loader)
        assert sorted(batch) == ["haze", "rain", "snow"]
        assert [batch[t][0].shape[0] for t in ("haze", "rain", "snow")] == [2, 1, 3]
        assert batch["rain"][0].shape[1:] == (3, 16, 16) and batch["rain"][1].shape == batch["rain"][0].shape


def test_input_and_target_get_the_same_crop_and_augmentation(tmp_path):
    root = tmp_path / "same"
    for i in range(2):  # target identical to input: any misaligned crop/flip would show
        img = _rgb(20, 24, seed=i)
        _save(root / "rain" / "input" / f"{i}.png", img)
        _save(root / "rain" / "target" / f"{i}.png", img)
    loader = MultiTaskLoader(discover(root), patch_size=12, batch_per_task=4,
                             patch_schedule=[(0, 12), (2, 8)])
    for step in range(4):
        inp, tgt = next(loader)["rain"]
        assert torch.equal(inp, tgt)
        assert inp.shape[-1] == (12 if step < 2 else 8)


def test_zoomed_crop_matches_pillow_and_keeps_pairs_aligned():
    """A 48-px photo seen at zoom 1/4 as a 12-px patch is the whole photo resized: Pillow's
    bilinear resize (antialiased when reducing) of each channel is the reference."""
    from moewir.data import zoomed_crop
    rng = np.random.default_rng(0)
    photo = rng.random((48, 48, 3)).astype(np.float32)
    out, same = zoomed_crop([photo, photo.copy()], 12, (0.25, 0.25), np.random.default_rng(1))
    ref = np.stack([np.asarray(Image.fromarray(photo[..., c], mode="F").resize((12, 12), Image.BILINEAR))
                    for c in range(3)], -1)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    assert np.array_equal(out, same)
    # the crop side is clamped to the photo: zoom 1/8 of a 48-px photo is still the whole photo
    wider = zoomed_crop([photo], 12, (0.125, 0.125), np.random.default_rng(1))[0]
    np.testing.assert_allclose(wider, ref, atol=2e-5)
    # zoom 1 is the plain crop, the same pixels for the same generator state
    from moewir.data import random_crop
    plain = random_crop([photo], 12, np.random.default_rng(2))[0]
    assert np.array_equal(zoomed_crop([photo], 12, (1.0, 1.0), np.random.default_rng(2))[0], plain)


def test_zoom_widens_the_view_of_a_ramp(tmp_path):
    """On a horizontal ramp (value = x / width) a patch cut at zoom z spans about 1/z times
    the range of values of a plain patch."""
    root = tmp_path / "ramp"
    ramp = np.repeat(np.tile(np.linspace(0, 255, 192), (192, 1))[..., None], 3, -1).round().astype(np.uint8)
    _save(root / "haze" / "input" / "0.png", ramp)
    _save(root / "haze" / "target" / "0.png", ramp)
    spans = {}
    for zoom in (None, (0.25, 0.25)):
        loader = MultiTaskLoader(discover(root), patch_size=16, batch_per_task=8, rotate=False, zoom=zoom)
        inp, tgt = next(loader)["haze"]
        assert torch.equal(inp, tgt)
        spans[zoom] = float((inp[:, 0].amax((1, 2)) - inp[:, 0].amin((1, 2))).mean())
    assert spans[None] == pytest.approx(15 / 191, abs=0.01)
    assert spans[(0.25, 0.25)] == pytest.approx(4 * 15 / 191, rel=0.1)
    with pytest.raises(ValueError, match="zoom"):
        MultiTaskLoader(discover(root), patch_size=16, zoom=(0.5, 2.0))


def test_loader_is_reproducible_by_seed(tmp_path):
    tasks = _task_tree(tmp_path)
    first = [next(MultiTaskLoader(tasks, 16, seed=3)) for _ in range(2)]
    with_workers = next(MultiTaskLoader(tasks, 16, seed=3, workers=2))
    other_seed = next(MultiTaskLoader(tasks, 16, seed=4))
    for t in tasks:
        assert torch.equal(first[0][t][0], first[1][t][0])
        assert torch.equal(first[0][t][0], with_workers[t][0])
    assert not all(torch.equal(first[0][t][0], other_seed[t][0]) for t in tasks)


def test_loader_resumes_the_exact_stream(tmp_path):
    tasks = _task_tree(tmp_path)
    kw = dict(batch_per_task=3, seed=5, patch_schedule=[(0, 8), (2, 16)])
    loader = MultiTaskLoader(tasks, 16, **kw)
    full = [next(loader) for _ in range(1100)]  # crosses a 1024-item chunk of the sampler
    for start in (1, 3, 400, 1099):
        resumed = next(MultiTaskLoader(tasks, 16, start_step=start, **kw))
        for t in tasks:
            assert torch.equal(resumed[t][0], full[start][t][0]) and torch.equal(resumed[t][1], full[start][t][1])


def test_bad_pairs_can_be_skipped(tmp_path, caplog):
    tasks = _task_tree(tmp_path, tasks=("rain",), n=2)
    tasks["rain"][0].input.write_bytes(b"garbage")
    with pytest.raises(ImageReadError):
        for _ in range(5):
            next(MultiTaskLoader(tasks, 16, batch_per_task=2))
    loader = MultiTaskLoader(tasks, 16, batch_per_task=2, skip_bad=True)
    for _ in range(3):
        assert next(loader)["rain"][0].shape[0] == 2
    assert "skipping unreadable pair" in caplog.text


def test_validation_images_full_or_center_crop(tmp_path):
    tasks = _task_tree(tmp_path, tasks=("haze",), n=1, size=(20, 30))
    full = PairedImages(tasks["haze"])[0]
    assert full["input"].shape == (3, 20, 30) and full["task"] == "haze" and full["name"] == "haze0"
    crop = PairedImages(tasks["haze"], center_crop=10)[0]
    assert torch.equal(crop["input"], full["input"][:, 5:15, 10:20])
