"""An adversarial corpus for ``moewir restore``: bad and odd inputs made here, in one run.

For every kind: the exit status says whether anything failed, each bad input gets exactly one
line ``moewir: error: <file>: <problem>``, no partial or temporary output is left, and the good
inputs of the same run are still restored (and decode). A full disk is tried on a 64 KiB
tmpfs where one can be mounted (root on Linux), and skipped elsewhere.
"""
from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import moewir
from moewir.cli.main import main
from moewir.data import read_image
from moewir.data.png16 import read_png16, write_png16
from moewir.models import save_weights


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 8)) + _chunk(b"IEND", b""))


def _encoded(array: np.ndarray, fmt: str, mode: str | None = None, **kw) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "identity.safetensors"
    save_weights(path, moewir.create_model("moewirnet-tiny", zero_init_output=True))
    return path


def _corpus(folder: Path) -> tuple[dict[str, str], dict[str, tuple[int, int]], list[str]]:
    """Writes the corpus; returns (bad name -> expected problem), (good name -> output (w, h)),
    and extra command-line items (explicit paths)."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (36, 52, 3), dtype=np.uint8)
    png, jpg = _encoded(photo, "PNG"), _encoded(photo, "JPEG", quality=90)
    folder.mkdir()
    bad = {
        "zero.png": (b"", "empty file"),
        "truncated.png": (png[:len(png) // 2], "corrupt or truncated"),
        "truncated.jpg": (jpg[:len(jpg) // 3], "corrupt or truncated"),
        "text.jpg": (b"this is a text file, not a photo\n" * 4, "not an image"),
        "html.png": (b"<!doctype html><html><body>404</body></html>", "not an image"),
        "random.png": (rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(), "not an image"),
        "bomb.png": (_png_header(60000, 60000), "decompression-bomb guard"),
        "zero_width.png": (_png_header(0, 10), ""),
        "bad_crc.png": (png[:40] + bytes([png[40] ^ 0xFF]) + png[41:], "not an image"),  # damaged IHDR
        "garbage_idat.png": (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 20, 20, 8, 2, 0, 0, 0))
                             + _chunk(b"IDAT", b"definitely not zlib") + _chunk(b"IEND", b""), "corrupt or truncated"),
        "header_only.jpg": (jpg[:2], ""),
    }
    expected_bad = {}
    for name, (data, problem) in bad.items():
        (folder / name).write_bytes(data)
        expected_bad[name] = problem
    good: dict[str, tuple[int, int]] = {}

    def keep(name: str, data: bytes, size: tuple[int, int]):
        (folder / name).write_bytes(data)
        good[name] = size

    keep("rgb.png", png, (52, 36))
    keep("photo.jpg", jpg, (52, 36))
    keep("cmyk.jpg", _encoded(photo, "JPEG", "CMYK"), (52, 36))
    palette = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    keep("palette_alpha.png", buffer.getvalue(), (52, 36))
    keep("rgba.png", _encoded(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)]), "PNG"), (52, 36))
    keep("grey.png", _encoded(photo[..., 0], "PNG"), (52, 36))
    keep("grey_alpha.png", _encoded(photo, "PNG", "LA"), (52, 36))
    keep("one_pixel.png", _encoded(photo[:1, :1], "PNG"), (1, 1))
    keep("one_by_4000.png", _encoded(rng.integers(0, 256, (1, 4000, 3), dtype=np.uint8), "PNG"), (4000, 1))
    keep("two_by_two.bmp", _encoded(photo[:2, :2], "BMP"), (2, 2))
    keep("tiff.tif", _encoded(photo, "TIFF"), (52, 36))
    keep("webp.webp", _encoded(photo, "WEBP", lossless=True), (52, 36))
    grey16 = Image.fromarray((rng.integers(0, 65536, (30, 20))).astype(np.uint16))
    buffer = io.BytesIO()
    grey16.save(buffer, format="PNG")
    keep("grey16.png", buffer.getvalue(), (20, 30))
    buffer = io.BytesIO()
    write_png16(buffer, rng.random((24, 28, 3)))
    keep("rgb16.png", buffer.getvalue(), (28, 24))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    keep("exif_rotated.jpg", _encoded(photo, "JPEG", exif=exif.tobytes()), (36, 52))  # upright: portrait
    keep("png_named.jpg", png, (52, 36))  # content decides, not the extension
    keep("ünïcødé 雨 photo.png", png, (52, 36))
    keep("animated.png", b"", (52, 36))
    frames = [Image.fromarray(np.roll(photo, k, axis=1)) for k in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    (folder / "animated.png").write_bytes(buffer.getvalue())

    # things that are not regular files, given explicitly
    (folder / "folder.png").mkdir()
    os.symlink(folder / "loop_b.png", folder / "loop_a.png")
    os.symlink(folder / "loop_a.png", folder / "loop_b.png")
    os.symlink(folder / "missing_target.png", folder / "dangling.png")
    os.mkfifo(folder / "fifo.png")
    explicit = ["folder.png", "loop_a.png", "dangling.png", "fifo.png", "nope.png"]
    expected_bad.update({"folder.png": "a folder with no images", "loop_a.png": "no such file", "dangling.png": "no such file",
                         "fifo.png": "not a file", "nope.png": "no such file"})
    return expected_bad, good, [str(folder / name) for name in explicit]


def test_adversarial_corpus(identity, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    bad, good, explicit = _corpus(src)
    assert len(bad) + len(good) >= 25
    rc = main(["restore", str(src), *explicit, "-o", str(out), "--weights", str(identity), "--no-progress",
               "--tile", "0"])
    assert rc == 1  # something failed, the run still finished
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("moewir: error:")]
    for name, problem in bad.items():
        mine = [line for line in lines if f"{name}:" in line]
        assert len(mine) == 1 and problem in mine[0], (name, mine)
    assert len(lines) == len(bad), lines
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == sorted(good), set(written) ^ set(good)  # no partial, temporary or bad-input output
    for name, size in good.items():
        if name.endswith(("png", "tif", "bmp", "webp", "jpg")):
            image = read_image(out / name)
            assert (image.shape[1], image.shape[0]) == size, name
    assert read_png16(out / "rgb16.png") is not None  # 16 bits in, 16 bits out
    # the identity network returns the picture: the EXIF-rotated photo comes back upright
    np.testing.assert_allclose(read_image(out / "rgb.png"), read_image(src / "rgb.png"), atol=1 / 255)


def test_full_disk_gives_one_line_per_file_and_no_partial_output(identity, tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        src = tmp_path / "in"
        src.mkdir()
        rng = np.random.default_rng(1)
        for k in range(4):  # incompressible 100 x 100 PNGs: about 30 KiB each
            Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(src / f"noise{k}.png")
        rc = main(["restore", str(src), "-o", str(disk / "out"), "--weights", str(identity), "--no-progress"])
        assert rc == 1
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("moewir: error:")]
        assert lines and all("cannot write the output" in line for line in lines)
        left = sorted(p.name for p in (disk / "out").iterdir())
        assert len(left) + len(lines) == 4 and all(not name.startswith(".") for name in left)
        for name in left:  # what was written is whole
            assert read_image(disk / "out" / name).shape == (100, 100, 3)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
