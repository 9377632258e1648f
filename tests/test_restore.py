"""`moewir.load` / `Restorer.restore` and `moewir restore` on files, folders and bad inputs."""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import moewir
from moewir.cli.main import main
from moewir.data import read_image
from moewir.inference import Restorer
from moewir.models import save_weights


class Invert(nn.Module):
    """A network with a known answer: ``1 - x``."""

    def forward(self, x):
        return 1.0 - x


class LocalConv(nn.Module):
    """A network with a 3-pixel receptive field radius, so tiling must not change its output."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1),
                                  nn.GELU(), nn.Conv2d(8, 3, 3, padding=1))

    def forward(self, x):
        return x + 0.1 * self.body(x)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    save_weights(path, moewir.create_model("moewirnet-tiny"))
    return path


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` (an 'absurd dimensions' input)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 8))
                     + chunk(b"IEND", b""))


# --- the Python API --------------------------------------------------------------------------
def test_restore_returns_the_callers_type_and_range():
    r = Restorer(Invert(), device="cpu", tile=None)
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    np.testing.assert_array_equal(r.restore(u8), 255 - u8)
    u16 = rng.integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    out16 = r.restore(u16)
    assert out16.dtype == np.uint16
    np.testing.assert_allclose(out16.astype(np.int64), 65535 - u16.astype(np.int64), atol=2)  # float32 rounding
    f = rng.random((9, 13, 3), dtype=np.float32)
    np.testing.assert_allclose(r.restore(f), 1 - f, atol=1e-6)
    gray = rng.integers(0, 256, (9, 13), dtype=np.uint8)
    np.testing.assert_array_equal(r.restore(gray), np.repeat(255 - gray[..., None], 3, axis=2))
    rgba = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    out = r.restore(rgba)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])  # alpha passes through
    np.testing.assert_array_equal(out[..., :3], 255 - rgba[..., :3])


def test_restore_pil_images_keep_mode_and_alpha():
    r = Restorer(Invert(), device="cpu", tile=None)
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 256, (7, 11, 4), dtype=np.uint8), "RGBA")
    out = r.restore(rgba)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == (11, 7)
    np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
    np.testing.assert_array_equal(np.asarray(out)[..., :3], 255 - np.asarray(rgba)[..., :3])
    assert r.restore(Image.new("L", (5, 4), 10)).mode == "RGB"
    deep = np.array([[0, 1000, 30000], [40000, 65000, 65535]], dtype=np.uint16)  # 16-bit grey keeps its levels
    out16 = np.asarray(r.restore(Image.fromarray(deep)))
    np.testing.assert_array_equal(out16[..., 0], np.round((1 - deep / 65535) * 255).astype(np.uint8))


def test_restore_rejects_unsupported_arrays():
    r = Restorer(Invert(), device="cpu", tile=None)
    with pytest.raises(ValueError, match="H x W"):
        r.restore(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        r.restore(np.zeros((4, 4, 3), np.int32))


def test_tiled_restore_equals_untiled_for_a_local_network():
    net = LocalConv()
    image = np.random.default_rng(2).random((75, 101, 3), dtype=np.float32)
    whole = Restorer(net, device="cpu", tile=None).restore(image)
    tiled = Restorer(net, device="cpu", tile=40, tile_overlap=16).restore(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_tiled_moewirnet_is_close_to_untiled():
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny")
    image = read_image(Path(moewir.__file__).parent / "synth/photos/chelsea.jpg")[:160, :224]
    whole = Restorer(net, device="cpu", tile=None).restore(image)
    tiled = Restorer(net, device="cpu", tile=128, tile_overlap=32).restore(image)
    assert 10 * np.log10(1 / np.mean((tiled - whole) ** 2)) > 30  # global channel attention: close, not equal


class Counting(LocalConv):
    """:class:`LocalConv` that records the size of every window it restores."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape[-2:]))
        return super().forward(x)


def test_auto_tile_restores_in_one_pass_when_the_budget_allows():
    from moewir.inference.memory import UNKNOWN_BYTES_PER_PIXEL
    assert UNKNOWN_BYTES_PER_PIXEL == 16000  # the hand numbers below use it
    net = Counting()
    image = np.random.default_rng(3).random((150, 203, 3), dtype=np.float32)
    whole = Restorer(net, device="cpu", tile=None).restore(image)
    # 150 * 203 px * 16000 B = 487.2 MB: a 500 MB budget fits the image, one pass
    net.calls.clear()
    auto = Restorer(net, device="cpu", tile="auto", tile_overlap=16, memory_budget=500_000_000)
    np.testing.assert_array_equal(auto.restore(image), whole)
    assert net.calls == [(150, 203)]
    # 100 MB: sqrt(100e6 / 16000) = 79.06 -> 72-px tiles
    net.calls.clear()
    auto = Restorer(net, device="cpu", tile="auto", tile_overlap=16, memory_budget=100_000_000)
    assert auto.tile_for((1, 3, 150, 203)) == 72
    np.testing.assert_allclose(auto.restore(image), whole, atol=1e-5)  # local network: exact
    # 150 with tile 72, overlap 16: 2 windows reach 128 < 150, so 3; (150 + 32) / 3 = 60.7 -> 64.
    # 203: 3 windows reach 184 < 203, so 4; (203 + 48) / 4 = 62.75 -> 64. 3 x 4 windows of 64 x 64
    assert set(net.calls) == {(64, 64)} and len(net.calls) == 3 * 4
    # a batch of two needs twice the memory: 974 MB > 500 MB -> sqrt(500e6 / 32000) = 125 -> 120
    assert Restorer(net, device="cpu", tile="auto", tile_overlap=16,
                    memory_budget=500_000_000).tile_for((2, 3, 150, 203)) == 120
    # a tiny budget still tiles, with the smallest tile: max(64, 2 * 32 + 8) = 72
    assert Restorer(net, device="cpu", tile="auto", memory_budget=1000).tile_for((1, 3, 4000, 4000)) == 72
    # a large one caps the tile at 512
    assert Restorer(net, device="cpu", tile="auto", memory_budget=10 ** 10).tile_for((1, 3, 9000, 9000)) == 512


def test_auto_tile_budget_reads_available_memory(monkeypatch):
    from moewir.inference import memory
    monkeypatch.setattr(memory, "_available_host_bytes", lambda: 8 * 2 ** 30)
    monkeypatch.setattr(memory, "kept_heap_bytes", lambda: 0)  # tests/test_allocator.py checks it
    assert memory.memory_budget(torch.device("cpu")) == 4 * 2 ** 30  # half of what is available
    tiny, small = moewir.create_model("moewirnet-tiny"), moewir.create_model("moewirnet-small")
    assert memory.bytes_per_pixel(tiny) == 3000 and memory.bytes_per_pixel(small) == 4500  # dim 36 / 24 * 3000
    assert memory.bytes_per_pixel(LocalConv()) == memory.UNKNOWN_BYTES_PER_PIXEL
    matched, restormer = moewir.create_model("restormer-tiny-matched"), moewir.create_model("restormer-tiny")
    # measured: 3400; restormer-tiny (dim 24) scales from it: 24 * 3400 / 20 (moewirnet-small's 4500
    # above shows the family filter: across families the largest rate, restormer's, would give 6120)
    assert memory.bytes_per_pixel(matched) == 3400 and memory.bytes_per_pixel(restormer) == pytest.approx(4080)
    r = Restorer(tiny, device="cpu", tile="auto")
    # 4 GiB / 3000 B = 1.43 MP: a 1024 x 1024 image fits, 1920 x 1080 (2.07 MP) does not -> 512-px tiles
    assert r.tile_for((1, 3, 1024, 1024)) is None
    assert r.tile_for((1, 3, 1080, 1920)) == 512
    monkeypatch.setattr(memory, "_available_host_bytes", lambda: 2 * 2 ** 30)
    # 1 GiB / 3000 B: sqrt(357913) = 598 -> 512 cap; 0.5 GiB: sqrt(178956) = 423 -> 416
    assert r.tile_for((1, 3, 1024, 1024)) == 512
    monkeypatch.setattr(memory, "_available_host_bytes", lambda: 2 ** 30)
    assert r.tile_for((1, 3, 1024, 1024)) == 416


def test_host_memory_comes_from_meminfo():
    from moewir.inference.memory import _available_host_bytes
    with open("/proc/meminfo") as f:
        line = next(x for x in f if x.startswith("MemAvailable:"))
    assert abs(_available_host_bytes() - int(line.split()[1]) * 1024) < 2 ** 30  # read moments apart


@pytest.mark.parametrize("tile", ["-3", "abc", "8", "1.5", ""])
def test_bad_tile_values_are_one_line_errors(tmp_path, capsys, tile):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--tile", tile,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"moewir: error: --tile must be a whole number of pixels >= 16, 0 (no tiles) or auto, got {tile!r}"]
    assert main(["eval", "--weights", "w.safetensors", "--data", str(tmp_path), "--tile", tile]) == 2
    assert capsys.readouterr().err.strip().splitlines() == err
    with pytest.raises(ValueError, match="tile must be"):
        Restorer(LocalConv(), device="cpu", tile="big")


def test_cli_tile_auto_restores(tmp_path, weights, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(weights),
                 "--tile", "auto", "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "a.png").is_file() and "tiles chosen by memory" in capsys.readouterr().out


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 9), (37, 53)])
def test_odd_sizes_come_back_with_their_size(weights, size):
    out = moewir.load(weights, device="cpu").restore(np.random.default_rng(0).random(size + (3,), np.float32))
    assert out.shape == size + (3,) and np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_load_builds_the_network_from_metadata(weights):
    r = moewir.load(weights, device="cpu")
    assert r.name == "moewirnet-tiny"
    reference = moewir.create_model("moewirnet-tiny")
    reference.load_state_dict({k: v for k, v in r.network.state_dict().items()})
    x = torch.rand(1, 3, 24, 40)
    torch.testing.assert_close(r.restore_tensor(x), reference.eval()(x).clamp(0, 1))


def test_half_precision_stays_close_to_float(weights):
    x = torch.rand(1, 3, 64, 80)
    full = moewir.load(weights, device="cpu").restore_tensor(x)
    half = moewir.load(weights, device="cpu", half=True).restore_tensor(x)
    assert 10 * torch.log10(1 / ((full - half) ** 2).mean()) > 30


def test_self_ensemble_averages_the_eight_symmetries():
    """Against numpy's rot90/fliplr: each of the 8 views restored, turned back, averaged; on a
    non-square image, tiled, with a network that is not flip-equivariant (so it changes things)."""
    torch.manual_seed(0)
    net = LocalConv().eval()
    image = np.random.default_rng(1).random((45, 70, 3), np.float32)
    views = []
    for flip in (False, True):
        for turns in range(4):
            view = np.rot90(np.fliplr(image) if flip else image, turns)
            with torch.no_grad():
                out = net(torch.from_numpy(view.copy()).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
            back = np.rot90(out, -turns)
            views.append(np.fliplr(back) if flip else back)
    reference = np.clip(np.mean(views, axis=0), 0, 1)
    ensembled = Restorer(net, device="cpu", tile=40, tile_overlap=16, self_ensemble=True).restore(image)
    np.testing.assert_allclose(ensembled, reference, atol=1e-5)
    single = Restorer(net, device="cpu", tile=None).restore(image)
    assert np.abs(single - ensembled).max() > 1e-3


def test_cli_self_ensemble_restores(weights, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), np.uint8)).save(tmp_path / "a.png")
    for flag, out in (([], "one"), (["--self-ensemble"], "eight")):
        assert main(["restore", str(tmp_path / "a.png"), "-o", str(tmp_path / out), "--weights", str(weights),
                     "--no-progress", "--device", "cpu", *flag]) == 0
    one, eight = (read_image(tmp_path / d / "a.png") for d in ("one", "eight"))
    assert one.shape == eight.shape == (24, 40, 3) and not np.array_equal(one, eight)


def test_load_errors_are_clear(weights, tmp_path):
    with pytest.raises(ValueError, match="neither a weights file nor a registered model"):
        moewir.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no weights are shipped"):
        moewir.load("restormer-tiny")
    assert moewir.load("restormer-tiny", pretrained=False, device="cpu").name == "restormer-tiny"
    with pytest.raises(ValueError, match="holds 'moewirnet-tiny' weights, not 'restormer'"):
        moewir.load(weights, model="restormer")
    bare = tmp_path / "bare.safetensors"  # weights without moewir metadata
    save_file(dict(moewir.create_model("moewirnet-tiny").state_dict()), str(bare))
    with pytest.raises(ValueError, match="does not say which network"):
        moewir.load(bare)
    assert moewir.load(bare, model="moewirnet-tiny", device="cpu").name == "moewirnet-tiny"
    with pytest.raises(ValueError, match="do not fit the model"):
        moewir.load(bare, model="restormer-tiny")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="junk.safetensors: not a safetensors weights file"):
        moewir.load(junk)


# --- the command line ------------------------------------------------------------------------
def _photos(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    images = {"a.png": rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
              "b.jpg": rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)}
    for name, array in images.items():
        Image.fromarray(array).save(folder / name)
    return images


def test_cli_restores_files_folders_and_globs(weights, tmp_path, capsys):
    _photos(tmp_path / "in")
    _photos(tmp_path / "in" / "sub")
    (tmp_path / "in" / "sub" / "a.png").rename(tmp_path / "in" / "sub" / "c.png")
    out = tmp_path / "out"
    rc = main(["restore", str(tmp_path / "in"), "-o", str(out), "--weights", str(weights), "--recursive",
               "--no-progress", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["a.png", "b.jpg", "sub/b.jpg", "sub/c.png"]
    assert Image.open(out / "b.jpg").format == "JPEG" and Image.open(out / "a.png").size == (56, 40)
    assert oct(os.stat(out / "a.png").st_mode & 0o777) == oct(0o666 & ~_umask())
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["restored"] == 4 and report["model"] == "moewirnet-tiny"
    assert abs(report["summary"]["megapixels"] - 2 * (40 * 56 + 33 * 47) / 1e6) < 1e-9
    assert "| 4 | 0 | 0 |" in capsys.readouterr().out
    # a quoted glob is expanded by moewir; --format and --suffix change the name
    rc = main(["restore", str(tmp_path / "in" / "*.jpg"), "-o", str(tmp_path / "g"), "--weights", str(weights),
               "--format", "png", "--suffix", "_clean", "--no-progress"])
    assert rc == 0 and [p.name for p in (tmp_path / "g").iterdir()] == ["b_clean.png"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_cli_skips_existing_outputs_unless_overwrite(weights, tmp_path, capsys):
    _photos(tmp_path / "in")
    out = tmp_path / "out"
    args = ["restore", str(tmp_path / "in" / "a.png"), "-o", str(out), "--weights", str(weights), "--no-progress"]
    assert main(args) == 0
    kept = np.zeros((5, 7, 3), np.uint8)
    Image.fromarray(kept).save(out / "a.png")  # a valid image: kept
    assert main(args) == 0
    assert read_image(out / "a.png").shape == (5, 7, 3)
    assert "| 0 | 1 | 0 |" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
    assert read_image(out / "a.png").shape == (40, 56, 3)
    # a 0-byte or corrupt output (a kill, a full disk) counts as missing, not as "exists"
    for damaged in (b"", (out / "a.png").read_bytes()[:100], b"marker"):
        (out / "a.png").write_bytes(damaged)
        assert main(args) == 0
        assert "| 1 | 0 | 0 |" in capsys.readouterr().out and read_image(out / "a.png").shape == (40, 56, 3)


def test_cli_bad_inputs_fail_one_line_each_and_the_rest_go_on(weights, tmp_path, capsys):
    images = _photos(tmp_path / "in")
    bad = {"empty.png": b"", "text.jpg": b"hello, not an image\n",
           "truncated.png": (tmp_path / "in" / "a.png").read_bytes()[:200]}
    for name, data in bad.items():
        (tmp_path / "in" / name).write_bytes(data)
    _png_header_only(tmp_path / "in" / "huge.png", 60000, 60000)
    out = tmp_path / "out"
    rc = main(["restore", str(tmp_path / "in"), str(tmp_path / "missing.png"), "-o", str(out),
               "--weights", str(weights), "--no-progress"])
    assert rc == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("moewir: error:")]
    expected = {"empty.png": "empty file", "text.jpg": "not an image", "truncated.png": "corrupt or truncated",
                "huge.png": "decompression", "missing.png": "no such file"}
    assert len(err) == len(expected)
    for name, problem in expected.items():
        assert any(name in line and problem in line for line in err), (name, err)
    assert sorted(p.name for p in out.iterdir()) == sorted(images)  # no partial or temporary files


def test_cli_refuses_to_overwrite_its_input(weights, tmp_path, capsys):
    _photos(tmp_path / "in")
    rc = main(["restore", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "in"), "--weights", str(weights),
               "--no-progress"])
    assert rc == 1 and "would overwrite the input" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "in"), "--suffix", "_r",
                 "--weights", str(weights), "--no-progress"]) == 0


def test_cli_setup_errors_are_one_line(tmp_path, capsys):
    assert main(["restore", str(tmp_path), "-o", str(tmp_path / "o"), "--weights", str(tmp_path / "no.safetensors")]) == 2
    assert capsys.readouterr().err.strip().endswith("no.safetensors: no such weights file")


def test_demo_restores_the_bundled_samples_into_one_sheet(weights, tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "--weights", str(weights), "--device", "cpu"]) == 0
    written = sorted(p.name for p in (tmp_path / "demo").iterdir())
    samples = ["haze_bridge.jpg", "nightrain_bridge.jpg", "rain_dragonfly.jpg", "raindrop_bridge.jpg",
               "snow_dragonfly.jpg"]
    assert written == sorted(samples + ["before_after.png"])
    for name in samples:
        assert read_image(tmp_path / "demo" / name).shape[:2] == \
            read_image(Path(moewir.__file__).parent / "samples" / name).shape[:2]
    sheet = Image.open(tmp_path / "demo" / "before_after.png")
    assert sheet.width == 2 * 400 + 4 and sheet.height > 5 * 225  # five rows of two 400-px panels
    assert "| rain_dragonfly.jpg | 512x384 |" in capsys.readouterr().out


def test_hostile_weights_metadata_is_refused_before_building(tmp_path, monkeypatch):
    """Metadata is checked against the file's tensors on a memory-less skeleton first: a tiny file
    claiming a huge network builds nothing real; lists, bad JSON and unknown names are one line
    naming the file."""
    import json

    import torch
    from safetensors.torch import save

    import moewir.models.builder as builder

    def weights(name, meta):
        (tmp_path / name).write_bytes(save({"x": torch.zeros(1)}, metadata=meta))
        return tmp_path / name

    built = []
    real = builder.build_model
    monkeypatch.setattr(builder, "build_model", lambda *a, **kw: (built.append(torch.empty(0).device.type),
                                                                     real(*a, **kw))[1])
    big = weights("big.safetensors", {"model_name": "moewirnet", "model_config": json.dumps({"dim": 960})})
    with pytest.raises(ValueError, match=r"big.safetensors: weights do not fit the model \(\d+ missing"):
        moewir.load(big)
    assert built == ["meta"]  # only the skeleton (7.4 GB for real)
    cases = {"list": ("moewirnet", "[1, 2]", "model_config metadata must be a JSON object, got list"),
             "json": ("moewirnet", "{dim: 3", "model_config metadata is not valid JSON"),
             "name": ("gpt5", "{}", "holds an unknown model 'gpt5'; registered models: dcp, mgf, moewirnet"),
             "key": ("moewirnet", '{"depth": 3}', "model_config does not build a 'moewirnet' network"),
             "neg": ("moewirnet-tiny", '{"dim": -6}', "model_config does not build a 'moewirnet-tiny' network")}
    for stem, (name, config, message) in cases.items():
        path = weights(f"{stem}.safetensors", {"model_name": name, "model_config": config})
        with pytest.raises(ValueError, match=f"{stem}.safetensors: .*{message}") as err:
            moewir.load(path)
        assert "\n" not in str(err.value)
    assert set(built) == {"meta"}


def test_nan_or_inf_input_is_refused():
    import torch

    restorer = moewir.load("moewirnet-tiny", pretrained=False, device="cpu")
    image = np.full((16, 16, 3), 0.5, np.float32)
    image[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite value"):
        restorer.restore(image)
    image[3, 4, 1], image[0, 0, 0] = np.inf, -np.inf
    with pytest.raises(ValueError, match="2 NaN or infinite value"):
        restorer.restore(image)
    with pytest.raises(ValueError, match="NaN or infinite"):
        restorer.restore_tensor(torch.full((3, 8, 8), float("nan")))
    assert np.isfinite(restorer.restore(np.full((16, 16, 3), 0.5, np.float32))).all()


def test_cli_checks_outputs_before_any_work(weights, tmp_path, capsys):
    """-o naming a file, or a --format nobody can write, fail at once: before the network is
    loaded (the weights path here does not even exist) and before any image is restored."""
    _photos(tmp_path / "in")
    (tmp_path / "file.txt").write_text("x")
    missing = str(tmp_path / "nope.safetensors")
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "file.txt"), "--weights", missing]) == 2
    assert capsys.readouterr().err.strip() == f"moewir: error: {tmp_path / 'file.txt'}: -o must be a folder, and this is a file"
    assert main(["restore", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--format", "xyz", "--weights", missing]) == 2
    assert "cannot write .xyz images" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_cli_says_what_an_output_cannot_keep_and_keeps_16_bits(tmp_path, capsys):
    """An animated GIF is restored as its first frame with a warning; a 16-bit PNG comes back as
    a 16-bit PNG (identity network: every 16-bit sample survives), a 16-bit input written to
    another format gets a warning."""
    from moewir.data.png16 import read_png16, write_png16
    torch.manual_seed(0)
    identity = tmp_path / "identity.safetensors"
    save_weights(identity, moewir.create_model("moewirnet-tiny", zero_init_output=True))
    src = tmp_path / "in"
    src.mkdir()
    frames = [Image.fromarray(np.full((24, 32, 3), v, np.uint8)) for v in (40, 120, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(src / "anim.png", save_all=True, append_images=frames[1:2], duration=100)  # APNG
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (20, 28, 3)).astype(np.float64) / 65535.0
    with open(src / "deep.png", "wb") as f:
        write_png16(f, deep)
    np.testing.assert_array_equal(np.asarray(Image.open(src / "deep.png")),  # Pillow reads the high bytes
                                  (np.round(deep * 65535).astype(np.uint16) >> 8).astype(np.uint8))
    out = tmp_path / "out"
    assert main(["restore", str(src), str(tmp_path / "anim.gif"), "-o", str(out), "--weights", str(identity),
                 "--no-progress", "--tile", "0"]) == 0
    err = capsys.readouterr().err
    assert "anim.gif: animated image with 3 frames: only the first frame was restored" in err
    assert "anim.png: animated image with 2 frames" in err and (out / "anim.gif").is_file()
    restored = read_png16(out / "deep.png")
    assert restored is not None  # 16-bit on disk
    np.testing.assert_allclose(restored, deep, atol=0.6 / 65535)
    assert main(["restore", str(src / "deep.png"), "-o", str(tmp_path / "j"), "--format", "jpg",
                 "--weights", str(identity), "--no-progress"]) == 0
    assert "16-bit input written as 8-bit .jpg (--format png keeps 16 bits)" in capsys.readouterr().err
